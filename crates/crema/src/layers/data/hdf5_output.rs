//! HDF5Output: writes its two bottoms to `hdf5_output_param.file_name` as
//! datasets "data" and "label", each in Caffe's legacy 4-D shape
//! (num, channels, height, width; missing axes are 1). The file is created
//! at setup, as Caffe's layer does, and rewritten (atomically) with the
//! latest batch on every forward; Caffe's own layer aborts on a second
//! forward because the datasets exist already. No tops, no backward.
use crema_proto::caffe::LayerParameter;

use crate::blob::{Blob, SharedBlob};
use crate::error::{Error, Result};
use crate::hdf5::H5Writer;
use crate::layers::Layer;

pub struct HDF5OutputLayer {
    param: LayerParameter,
    file_name: String,
}

impl HDF5OutputLayer {
    pub fn new(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        if !crate::hdf5::ENABLED {
            return Err(Error::layer(param, crate::hdf5::NO_HDF5));
        }
        Ok(Box::new(HDF5OutputLayer {
            param: param.clone(),
            file_name: param
                .hdf5_output_param
                .get_or_default()
                .file_name()
                .to_string(),
        }))
    }

    fn err(&self, msg: impl Into<String>) -> Error {
        Error::layer(&self.param, msg)
    }

    /// The blob's shape as Caffe's legacy num/channels/height/width.
    fn legacy_shape(&self, blob: &Blob, which: &str) -> Result<[usize; 4]> {
        let s = blob.shape();
        if s.len() > 4 {
            return Err(self.err(format!(
                "the {which} bottom has {} axes ({}); HDF5Output writes at most 4",
                s.len(),
                blob.shape_string()
            )));
        }
        let mut out = [1; 4];
        out[..s.len()].copy_from_slice(s);
        Ok(out)
    }
}

impl Layer for HDF5OutputLayer {
    fn type_name(&self) -> &'static str {
        "HDF5Output"
    }

    fn setup(&mut self, bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        if bottom.len() != 2 {
            return Err(self.err(format!(
                "HDF5Output writes two bottoms (data, label); it has {}",
                bottom.len()
            )));
        }
        if self.file_name.is_empty() {
            return Err(self.err("hdf5_output_param.file_name is empty"));
        }
        H5Writer::create(&self.file_name)
            .and_then(H5Writer::commit)
            .map_err(|e| self.err(format!("Failed to open HDF5 file {}: {e}", self.file_name)))
    }

    fn reshape(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        Ok(())
    }

    fn forward(&mut self, bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        let (data, label) = (bottom[0].borrow(), bottom[1].borrow());
        let data_shape = self.legacy_shape(&data, "data")?;
        let label_shape = self.legacy_shape(&label, "label")?;
        if data_shape[0] != label_shape[0] {
            return Err(self.err(format!(
                "data blob and label blob must have the same batch size ({} vs {})",
                data_shape[0], label_shape[0]
            )));
        }
        log::info!("Saving HDF5 file {}", self.file_name);
        let w = H5Writer::create(&self.file_name).map_err(|e| self.err(e.to_string()))?;
        w.write_f32("data", &data_shape, data.data())
            .and_then(|()| w.write_f32("label", &label_shape, label.data()))
            .and_then(|()| w.commit())
            .map_err(|e| self.err(e.to_string()))?;
        log::info!("Successfully saved {} rows", data_shape[0]);
        Ok(())
    }

    fn backward(
        &mut self,
        _top: &[SharedBlob],
        _propagate_down: &[bool],
        _bottom: &[SharedBlob],
    ) -> Result<()> {
        Ok(())
    }

    fn exact_num_bottom_blobs(&self) -> Option<usize> {
        Some(2)
    }
    fn exact_num_top_blobs(&self) -> Option<usize> {
        Some(0)
    }
}
