//! The HDF5 calls behind `hdf5::{H5Reader, H5Writer}`, on the `hdf5-metno`
//! crate (the system libhdf5). Errors are plain strings; the caller adds the
//! file name.
use std::path::Path;

use h5::types::{FixedAscii, TypeDescriptor};
use hdf5_metno as h5;

/// Longest string dataset we read or write (learned_net is a path).
const MAX_STRING: usize = 4096;

fn msg(e: h5::Error) -> String {
    e.to_string()
}

/// A file open for reading.
pub struct ReadFile(h5::File);

impl ReadFile {
    pub fn open(path: &Path) -> Result<Self, String> {
        h5::File::open(path).map(ReadFile).map_err(msg)
    }

    /// Names of the links in group `group` ("" is the root), in name order
    /// (Caffe walks H5_INDEX_NAME too).
    pub fn member_names(&self, group: &str) -> Result<Vec<String>, String> {
        if group.is_empty() {
            return self.0.member_names().map_err(msg);
        }
        let g = self
            .0
            .group(group)
            .map_err(|e| format!("no group {group}: {e}"))?;
        g.member_names().map_err(msg)
    }

    /// Whether every link along `name` ("a/b/c") exists.
    pub fn exists(&self, name: &str) -> bool {
        let mut prefix = String::new();
        for part in name.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if !self.0.link_exists(&prefix) {
                return false;
            }
        }
        true
    }

    fn dataset(&self, name: &str) -> Result<h5::Dataset, String> {
        self.0
            .dataset(name)
            .map_err(|e| format!("Failed to find HDF5 dataset {name}: {e}"))
    }

    /// A numeric dataset as f32 with its shape; integer and double data are
    /// converted, as Caffe's loader reads H5T_INTEGER and H5T_FLOAT classes.
    pub fn read_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), String> {
        let ds = self.dataset(name)?;
        let class = ds.dtype().and_then(|t| t.to_descriptor()).map_err(msg)?;
        match class {
            TypeDescriptor::Float(_) | TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => {
            }
            other => {
                return Err(format!(
                    "dataset {name} holds {other}; only integer and float data can be loaded"
                ))
            }
        }
        let data = ds
            .read_raw::<f32>()
            .map_err(|e| format!("dataset {name}: {e}"))?;
        Ok((ds.shape(), data))
    }

    /// The first value of an integer dataset (Caffe stores ints as shape [1]).
    pub fn read_i32(&self, name: &str) -> Result<i32, String> {
        let ds = self.dataset(name)?;
        let v = ds
            .read_raw::<i32>()
            .map_err(|e| format!("dataset {name}: {e}"))?;
        v.first()
            .copied()
            .ok_or_else(|| format!("dataset {name} is empty"))
    }

    /// A fixed-length string dataset (H5LTmake_dataset_string's kind).
    pub fn read_string(&self, name: &str) -> Result<String, String> {
        let ds = self.dataset(name)?;
        let s = ds
            .read_scalar::<FixedAscii<MAX_STRING>>()
            .map_err(|e| format!("dataset {name}: not a scalar string ({e})"))?;
        Ok(s.as_str().to_string())
    }

    /// A byte dataset (crema's own extensions).
    pub fn read_u8(&self, name: &str) -> Result<Vec<u8>, String> {
        self.dataset(name)?
            .read_raw::<u8>()
            .map_err(|e| format!("dataset {name}: {e}"))
    }
}

/// A file open for writing (created or truncated).
pub struct WriteFile(h5::File);

impl WriteFile {
    pub fn create(path: &Path) -> Result<Self, String> {
        h5::File::create(path).map(WriteFile).map_err(msg)
    }

    pub fn create_group(&self, name: &str) -> Result<(), String> {
        self.0
            .create_group(name)
            .map(drop)
            .map_err(|e| format!("cannot create group {name}: {e}"))
    }

    /// An n-d float dataset (H5LTmake_dataset_float: native float, contiguous).
    pub fn write_f32(&self, name: &str, shape: &[usize], data: &[f32]) -> Result<(), String> {
        self.write_raw(name, shape, data)
    }

    /// A shape-[1] int dataset, as Caffe's hdf5_save_int writes.
    pub fn write_i32(&self, name: &str, value: i32) -> Result<(), String> {
        self.write_raw(name, &[1], &[value])
    }

    pub fn write_u8(&self, name: &str, data: &[u8]) -> Result<(), String> {
        self.write_raw(name, &[data.len()], data)
    }

    fn write_raw<T: h5::H5Type>(
        &self,
        name: &str,
        shape: &[usize],
        data: &[T],
    ) -> Result<(), String> {
        let ds = self
            .0
            .new_dataset::<T>()
            .shape(shape.to_vec())
            .create(name)
            .map_err(|e| format!("cannot create dataset {name}: {e}"))?;
        ds.write_raw(data)
            .map_err(|e| format!("cannot write dataset {name}: {e}"))
    }

    /// A scalar fixed-length string of exactly len + 1 bytes, the trailing
    /// NUL included, as H5LTmake_dataset_string stores it.
    pub fn write_string(&self, name: &str, value: &str) -> Result<(), String> {
        if value.len() >= MAX_STRING {
            return Err(format!(
                "string for {name} is {} bytes; at most {} fit",
                value.len(),
                MAX_STRING - 1
            ));
        }
        let s = FixedAscii::<MAX_STRING>::from_ascii(value)
            .map_err(|e| format!("string for {name}: {e}"))?;
        let dtype = h5::Datatype::from_descriptor(&TypeDescriptor::FixedAscii(value.len() + 1))
            .map_err(msg)?;
        // The crate pads fixed strings with NULs (NULLPAD); H5LTmake_dataset_string
        // marks them NULL-terminated, and so do we.
        // SAFETY: `dtype` is a valid transient datatype this function owns,
        // changed under the library lock before any dataset uses it.
        let status = h5::sync::sync(|| unsafe {
            hdf5_metno_sys::h5t::H5Tset_strpad(
                dtype.id(),
                hdf5_metno_sys::h5t::H5T_str_t::H5T_STR_NULLTERM,
            )
        });
        if status < 0 {
            return Err(format!("cannot make the string type for {name}"));
        }
        let ds = self
            .0
            .new_dataset_builder()
            .empty_as(&dtype)
            .create(name)
            .map_err(|e| format!("cannot create dataset {name}: {e}"))?;
        ds.write_scalar(&s)
            .map_err(|e| format!("cannot write dataset {name}: {e}"))
    }

    /// Flushes and closes the file (before it is renamed into place).
    pub fn close(self) -> Result<(), String> {
        self.0.flush().map_err(msg)?;
        self.0.close().map_err(msg)
    }
}
