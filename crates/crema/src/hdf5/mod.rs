//! Caffe's HDF5 files: `.caffemodel.h5` weights (`net.rs`), `.solverstate.h5`
//! solver states (`solver_state.rs`), and the datasets the HDF5Data and
//! HDF5Output layers read and write.
//!
//! [`H5Reader`] and [`H5Writer`] add file names to errors and make writes
//! atomic; `backend.rs` holds the libhdf5 calls. Without the `hdf5` feature
//! `disabled.rs` stands in with the same API, so every build compiles the
//! same callers and HDF5 use fails with one clear error.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, Result};

mod net;
mod solver_state;

#[cfg(feature = "hdf5")]
mod backend;
#[cfg(not(feature = "hdf5"))]
#[path = "disabled.rs"]
mod backend;

pub use solver_state::{read_solver_state, write_solver_state, SolverStateH5};

/// Whether this build reads and writes HDF5 (the `hdf5` cargo feature).
pub const ENABLED: bool = cfg!(feature = "hdf5");

/// What a build without the feature says when HDF5 is asked for.
pub(crate) const NO_HDF5: &str =
    "this crema was built without HDF5 support (rebuild with `--features hdf5`, which needs libhdf5-dev)";

/// The error for `what` (a file, a layer, an option) needing HDF5 in a
/// build without it.
pub fn unsupported(what: &str) -> Error {
    Error::Other(format!("{what}: {NO_HDF5}"))
}

/// Whether `path` names an HDF5 file the way Caffe decides it: a `.h5` suffix.
pub fn is_hdf5_path(path: &Path) -> bool {
    path.to_string_lossy().ends_with(".h5")
}

/// An HDF5 file open for reading. Dataset names are paths ("data/conv1/0").
pub struct H5Reader {
    path: PathBuf,
    file: backend::ReadFile,
}

impl H5Reader {
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = backend::ReadFile::open(&path).map_err(|e| {
            Error::Other(format!("Couldn't open HDF5 file {}: {e}", path.display()))
        })?;
        Ok(H5Reader { path, file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: String) -> Error {
        Error::Other(format!("HDF5 file {}: {e}", self.path.display()))
    }

    /// The link names in `group` ("" for the root), sorted by name.
    pub fn member_names(&self, group: &str) -> Result<Vec<String>> {
        self.file.member_names(group).map_err(|e| self.err(e))
    }

    pub fn exists(&self, name: &str) -> bool {
        self.file.exists(name)
    }

    /// A float or integer dataset as (shape, f32 values in row-major order).
    pub fn read_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        self.file.read_f32(name).map_err(|e| self.err(e))
    }

    pub fn read_i32(&self, name: &str) -> Result<i32> {
        self.file.read_i32(name).map_err(|e| self.err(e))
    }

    pub fn read_string(&self, name: &str) -> Result<String> {
        self.file.read_string(name).map_err(|e| self.err(e))
    }

    pub fn read_u8(&self, name: &str) -> Result<Vec<u8>> {
        self.file.read_u8(name).map_err(|e| self.err(e))
    }
}

/// An HDF5 file being written under a temporary name beside `path`;
/// `commit` closes it and renames it over `path`, so a crash or an error
/// never leaves half a file. Dropped uncommitted, the temporary is removed.
pub struct H5Writer {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<backend::WriteFile>,
}

impl H5Writer {
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        static SERIAL: AtomicUsize = AtomicUsize::new(0);
        let path = path.as_ref().to_path_buf();
        let name = path.file_name().ok_or_else(|| {
            Error::Other(format!(
                "{}: not a file name to write HDF5 to",
                path.display()
            ))
        })?;
        let tmp = path.with_file_name(format!(
            ".{}.tmp{}-{}",
            name.to_string_lossy(),
            std::process::id(),
            SERIAL.fetch_add(1, Ordering::Relaxed)
        ));
        let file = backend::WriteFile::create(&tmp).map_err(|e| {
            Error::Other(format!(
                "Couldn't create HDF5 file {} (as {}): {e}",
                path.display(),
                tmp.display()
            ))
        })?;
        Ok(H5Writer {
            path,
            tmp,
            file: Some(file),
        })
    }

    fn with_file(&self, f: impl FnOnce(&backend::WriteFile) -> Result<(), String>) -> Result<()> {
        let file = self
            .file
            .as_ref()
            .expect("an H5Writer holds its file until commit");
        f(file).map_err(|e| Error::Other(format!("HDF5 file {}: {e}", self.path.display())))
    }

    pub fn create_group(&self, name: &str) -> Result<()> {
        self.with_file(|f| f.create_group(name))
    }

    pub fn write_f32(&self, name: &str, shape: &[usize], data: &[f32]) -> Result<()> {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        self.with_file(|f| f.write_f32(name, shape, data))
    }

    pub fn write_i32(&self, name: &str, value: i32) -> Result<()> {
        self.with_file(|f| f.write_i32(name, value))
    }

    pub fn write_string(&self, name: &str, value: &str) -> Result<()> {
        self.with_file(|f| f.write_string(name, value))
    }

    pub fn write_u8(&self, name: &str, data: &[u8]) -> Result<()> {
        self.with_file(|f| f.write_u8(name, data))
    }

    /// Closes the file and moves it into place.
    // Without the feature the file type has no values, so the rest is dead.
    #[cfg_attr(not(feature = "hdf5"), allow(unreachable_code, unused_variables))]
    pub fn commit(mut self) -> Result<()> {
        let file = self
            .file
            .take()
            .expect("an H5Writer holds its file until commit");
        let done = file
            .close()
            .and_then(|()| std::fs::rename(&self.tmp, &self.path).map_err(|e| e.to_string()));
        done.map_err(|e| {
            let _ = std::fs::remove_file(&self.tmp);
            Error::Other(format!(
                "Couldn't write HDF5 file {}: {e}",
                self.path.display()
            ))
        })
    }
}

impl Drop for H5Writer {
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            drop(file);
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// `dims (count)`, the way Caffe's HDF5 loader prints a source shape.
pub(crate) fn shape_with_count(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("{} ({})", dims.join(" "), shape.iter().product::<usize>())
}

#[cfg(all(test, feature = "hdf5"))]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("crema-hdf5-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn written_datasets_read_back_with_shapes_and_types() {
        let dir = scratch("roundtrip");
        let path = dir.join("x.h5");
        let w = H5Writer::create(&path).unwrap();
        w.create_group("g").unwrap();
        w.write_f32("g/0", &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, -6.5])
            .unwrap();
        w.write_i32("iter", 42).unwrap();
        w.write_string("learned_net", "a/b_iter_42.caffemodel.h5")
            .unwrap();
        w.write_u8("bytes", &[0, 255, 7]).unwrap();
        assert!(!path.exists(), "nothing at the final name before commit");
        w.commit().unwrap();
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["x.h5"], "the temporary file is gone");

        let r = H5Reader::open(&path).unwrap();
        assert_eq!(
            r.member_names("").unwrap(),
            ["bytes", "g", "iter", "learned_net"]
        );
        assert_eq!(r.member_names("g").unwrap(), ["0"]);
        assert!(r.exists("g/0") && !r.exists("g/1") && !r.exists("h/0"));
        let (shape, data) = r.read_f32("g/0").unwrap();
        assert_eq!(
            (shape, data),
            (vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, -6.5])
        );
        assert_eq!(r.read_i32("iter").unwrap(), 42);
        assert_eq!(
            r.read_f32("iter").unwrap(),
            (vec![1], vec![42.0]),
            "ints convert to float"
        );
        assert_eq!(
            r.read_string("learned_net").unwrap(),
            "a/b_iter_42.caffemodel.h5"
        );
        assert_eq!(r.read_u8("bytes").unwrap(), [0, 255, 7]);
        let e = r.read_f32("learned_net").unwrap_err().to_string();
        assert!(
            e.contains("x.h5") && e.contains("learned_net") && e.contains("string"),
            "{e}"
        );
        let e = r.read_f32("nope").unwrap_err().to_string();
        assert!(e.contains("Failed to find HDF5 dataset nope"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_uncommitted_writer_leaves_nothing_and_bad_files_name_themselves() {
        let dir = scratch("uncommitted");
        let path = dir.join("y.h5");
        {
            let w = H5Writer::create(&path).unwrap();
            w.write_i32("iter", 1).unwrap();
            assert!(
                w.write_i32("iter", 2).is_err(),
                "a second dataset of one name"
            );
        }
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::write(&path, b"not hdf5").unwrap();
        let e = H5Reader::open(&path).err().unwrap().to_string();
        assert!(
            e.contains("Couldn't open HDF5 file") && e.contains("y.h5"),
            "{e}"
        );
        let e = H5Writer::create(dir.join("missing_dir/z.h5"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("z.h5"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn shapes_print_like_caffe() {
        assert_eq!(shape_with_count(&[20, 1, 5, 5]), "20 1 5 5 (500)");
    }
}

#[cfg(all(test, not(feature = "hdf5")))]
mod without_feature_tests {
    use super::*;

    #[test]
    fn every_hdf5_path_fails_with_one_clear_error() {
        let e = H5Reader::open("w.caffemodel.h5").err().unwrap().to_string();
        assert!(
            e.contains("w.caffemodel.h5") && e.contains("built without HDF5 support"),
            "{e}"
        );
        let e = H5Writer::create(std::env::temp_dir().join("x.h5"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("built without HDF5 support"), "{e}");
        for kind in ["HDF5Data", "HDF5Output"] {
            let param: crema_proto::caffe::LayerParameter =
                crema_proto::text::parse(&format!("name: \"h\" type: \"{kind}\""), "layer")
                    .unwrap();
            let e = crate::layers::create_layer(&param)
                .err()
                .unwrap()
                .to_string();
            assert!(
                e.contains(kind) && e.contains("built without HDF5 support"),
                "{e}"
            );
        }
        let solver: crema_proto::caffe::SolverParameter = crema_proto::text::parse(
            r#"net_param { name: "n" layer { name: "in" type: "Input" top: "x"
                 input_param { shape { dim: 1 } } } }
               base_lr: 0.1 lr_policy: "fixed" snapshot: 1 snapshot_prefix: "/tmp/crema-no-h5" snapshot_format: HDF5"#,
            "solver",
        )
        .unwrap();
        let e = crate::Solver::new(&solver).err().unwrap().to_string();
        assert!(
            e.contains("snapshot_format: HDF5") && e.contains("built without HDF5 support"),
            "{e}"
        );
    }
}
