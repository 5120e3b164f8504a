//! Trained parameters in and out of a net: Caffe's CopyTrainedLayersFrom,
//! ToProto and the `.caffemodel` snapshot, plus building a net from a file.
use std::path::Path;

use crema_proto::caffe::{NetParameter, Phase};

use super::Net;
use crate::blob::Blob;
use crate::error::{Error, Result};

/// The prototxt text of a net, as Caffe's DebugString logs it.
pub(super) fn print_param(param: &NetParameter) -> String {
    crema_proto::text::print(param)
}

impl Net {
    /// Caffe's `Net(param_file, phase, level, stages)`: reads the prototxt
    /// (upgrading legacy formats), sets the state, and builds the net.
    pub fn from_file(
        path: impl AsRef<Path>,
        phase: Phase,
        level: i32,
        stages: &[String],
    ) -> Result<Net> {
        let mut param = crema_proto::files::read_net_text(path.as_ref())?;
        let state = param.state.mut_or_insert_default();
        state.set_phase(phase);
        state.stage.extend(stages.iter().cloned());
        state.set_level(level);
        Net::from_param(&param)
    }

    /// Copies the parameter blobs of every source layer whose name matches a
    /// layer of this net; other source layers are ignored. Stored shapes must
    /// match (legacy 4-D num/channels/height/width shapes are accepted).
    pub fn copy_trained_layers_from(&mut self, param: &NetParameter) -> Result<()> {
        let upgraded;
        let param = if crema_proto::upgrade::needs_upgrade(param) {
            let mut p = param.clone();
            crema_proto::upgrade::upgrade_net(&mut p, "trained net parameters")?;
            upgraded = p;
            &upgraded
        } else {
            param
        };
        for source in &param.layer {
            let name = source.name();
            let Some(&target) = self.layer_names_index.get(name) else {
                log::info!("Ignoring source layer {name}");
                continue;
            };
            log::debug!("Copying source layer {name}");
            let blobs = self.layers[target].blobs();
            if blobs.len() != source.blobs.len() {
                return Err(Error::Net {
                    net: self.name.clone(),
                    message: format!("Incompatible number of blobs for layer {name}"),
                });
            }
            for (j, (blob, stored)) in blobs.iter().zip(&source.blobs).enumerate() {
                let mut blob = blob.borrow_mut();
                if !blob.shape_equals(stored) {
                    let mut src = Blob::default();
                    // A stored blob too broken to show its shape still gets a message.
                    let src_shape = match src.from_proto(stored, true) {
                        Ok(()) => src.shape_string(),
                        Err(_) => format!("{:?}", crema_proto::binary::blob_shape(stored)),
                    };
                    return Err(Error::Net {
                        net: self.name.clone(),
                        message: format!(
                            "Cannot copy param {j} weights from layer '{name}'; shape mismatch.  Source param shape is {src_shape}; \
                             target param shape is {}. To learn this layer's parameters from scratch rather than copying from \
                             a saved net, rename the layer.",
                            blob.shape_string()
                        ),
                    });
                }
                blob.from_proto(stored, false).map_err(|e| Error::Net {
                    net: self.name.clone(),
                    message: format!("layer '{name}' param {j}: {e}"),
                })?;
            }
        }
        Ok(())
    }

    /// Loads trained weights from a binary `.caffemodel` (upgraded as
    /// needed), or from an HDF5 weights file when the name ends in `.h5`,
    /// as Caffe's CopyTrainedLayersFrom decides.
    pub fn copy_trained_layers_from_file(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        if crate::hdf5::is_hdf5_path(path) {
            return self.copy_trained_layers_from_hdf5(path);
        }
        let param = crema_proto::files::read_net_binary(path)?;
        self.copy_trained_layers_from(&param)
    }

    /// The net as Caffe's ToProto writes it: the name, then every layer's
    /// parameters with its blobs (and their diffs with `write_diff`).
    pub fn to_proto(&self, write_diff: bool) -> NetParameter {
        let mut param = NetParameter::new();
        param.set_name(self.name.clone());
        for (lp, layer) in self.layer_params.iter().zip(&self.layers) {
            let mut lp = lp.clone();
            lp.blobs = layer
                .blobs()
                .iter()
                .map(|b| b.borrow().to_proto(write_diff))
                .collect();
            param.layer.push(lp);
        }
        param
    }

    /// Writes the weights to a binary `.caffemodel`, atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        Ok(crema_proto::binary::write_binary(
            path.as_ref(),
            &self.to_proto(false),
        )?)
    }
}
