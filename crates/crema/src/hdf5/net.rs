//! A net's parameters as Caffe's HDF5 weights (Net::ToHDF5 and
//! CopyTrainedLayersFromHDF5): group `data`, and `diff` when diffs are
//! written, each holding one group per layer, named as the layer, with one
//! dataset per parameter blob named by its index ("0", "1", ...).
use std::collections::HashMap;
use std::path::Path;

use super::{shape_with_count, H5Reader, H5Writer};
use crate::error::{Error, Result};
use crate::net::Net;

impl Net {
    /// (layer index, blob index) -> net parameter id.
    fn param_ids_by_layer(&self) -> HashMap<(usize, usize), usize> {
        self.param_layer_indices()
            .iter()
            .enumerate()
            .map(|(id, &lj)| (lj, id))
            .collect()
    }

    /// Whether blob `j` of layer `layer` is shared from another layer's.
    fn param_is_shared(
        &self,
        ids: &HashMap<(usize, usize), usize>,
        layer: usize,
        j: usize,
    ) -> bool {
        ids.get(&(layer, j))
            .is_some_and(|&id| self.param_owners()[id].is_some())
    }

    fn hdf5_error(&self, path: &Path, message: String) -> Error {
        Error::Net {
            net: self.name().to_string(),
            message: format!("{}: {message}", path.display()),
        }
    }

    /// Writes the weights (and diffs with `write_diff`) as a Caffe HDF5
    /// weights file, atomically. Every layer gets its group, parameters or
    /// not; a shared parameter is stored by its owner only, its diff by
    /// every layer, as Caffe does.
    pub fn to_hdf5(&self, path: impl AsRef<Path>, write_diff: bool) -> Result<()> {
        let path = path.as_ref();
        let ids = self.param_ids_by_layer();
        let w = H5Writer::create(path)?;
        w.create_group("data")?;
        if write_diff {
            w.create_group("diff")?;
        }
        for (i, layer) in self.layers().iter().enumerate() {
            let name = &self.layer_names()[i];
            // HDF5 reads '/' as a path separator and '.' as the group itself.
            if name.is_empty() || name.contains('/') || name == "." {
                return Err(self.hdf5_error(
                    path,
                    format!("layer name '{name}' cannot name an HDF5 group"),
                ));
            }
            w.create_group(&format!("data/{name}"))?;
            if write_diff {
                w.create_group(&format!("diff/{name}"))?;
            }
            for (j, blob) in layer.blobs().iter().enumerate() {
                let b = blob.borrow();
                if !self.param_is_shared(&ids, i, j) {
                    w.write_f32(&format!("data/{name}/{j}"), b.shape(), b.data())?;
                }
                if write_diff {
                    w.write_f32(&format!("diff/{name}/{j}"), b.shape(), b.diff())?;
                }
            }
        }
        w.commit()
    }

    /// Copies the weights of every layer in an HDF5 weights file whose name
    /// matches a layer of this net; other source layers are ignored. Shapes
    /// must match exactly; a missing dataset is allowed only for a parameter
    /// this net shares from another layer.
    pub fn copy_trained_layers_from_hdf5(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let r = H5Reader::open(path)?;
        if !r.exists("data") {
            return Err(self.hdf5_error(path, "Error reading weights: no group 'data'".into()));
        }
        let ids = self.param_ids_by_layer();
        for name in r.member_names("data")? {
            let Some(target) = self.layer_index(&name) else {
                log::info!("Ignoring source layer {name}");
                continue;
            };
            log::debug!("Copying source layer {name}");
            let group = format!("data/{name}");
            let stored = r.member_names(&group)?.len();
            let blobs = self.layers()[target].blobs();
            if stored > blobs.len() {
                return Err(self.hdf5_error(
                    path,
                    format!(
                        "Incompatible number of blobs for layer {name}: the file has {stored}, the layer {}",
                        blobs.len()
                    ),
                ));
            }
            for (j, blob) in blobs.iter().enumerate() {
                let dataset = format!("{group}/{j}");
                if !r.exists(&dataset) {
                    if self.param_is_shared(&ids, target, j) {
                        continue;
                    }
                    return Err(self.hdf5_error(
                        path,
                        format!(
                            "Incompatible number of blobs for layer {name}: param {j} is missing"
                        ),
                    ));
                }
                let (shape, data) = r.read_f32(&dataset)?;
                let mut b = blob.borrow_mut();
                if shape != b.shape() {
                    return Err(self.hdf5_error(
                        path,
                        format!(
                            "Cannot load blob from hdf5; shape mismatch. Source shape is {} target shape is {} \
                             (layer '{name}' param {j})",
                            shape_with_count(&shape),
                            b.shape_string()
                        ),
                    ));
                }
                b.data_mut().copy_from_slice(&data);
            }
        }
        Ok(())
    }
}
