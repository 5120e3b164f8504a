//! Data-side layers: Data (database records), ImageData (image files from a
//! list), HDF5Data / HDF5Output (HDF5 files), MemoryData (caller's arrays),
//! Input (tops the caller fills), DummyData (filled tops) and Split (the
//! fan-out the net inserts). See `layers/mod.rs`.
use crema_proto::caffe::LayerParameter;

use super::LayerCtor;
use crate::blob::SharedBlob;
use crate::data::PrefetchQueue;
use crate::error::{Error, Result};

pub mod data_layer;
pub mod dummy_data;
pub mod hdf5_data;
pub mod hdf5_output;
pub mod image_data;
pub mod input;
pub mod memory_data;
pub mod split;
pub mod window_data;

pub use data_layer::DataLayer;
pub use dummy_data::DummyDataLayer;
pub use hdf5_data::HDF5DataLayer;
pub use hdf5_output::HDF5OutputLayer;
pub use image_data::ImageDataLayer;
pub use input::InputLayer;
pub use memory_data::MemoryDataLayer;
pub use split::SplitLayer;
pub use window_data::WindowDataLayer;

/// Type names and constructors of this group's layers.
pub const REGISTRY: &[(&str, LayerCtor)] = &[
    ("Data", DataLayer::new),
    ("DummyData", DummyDataLayer::new),
    ("HDF5Data", HDF5DataLayer::new),
    ("HDF5Output", HDF5OutputLayer::new),
    ("ImageData", ImageDataLayer::new),
    ("Input", InputLayer::new),
    ("MemoryData", MemoryDataLayer::new),
    ("Split", SplitLayer::new),
    ("WindowData", WindowDataLayer::create),
];

/// Forward of a prefetching data layer (Caffe's BasePrefetchingDataLayer):
/// takes the next ready batch, shapes `top[0]` (and `top[1]`, the labels, when
/// present) to it, copies it in, and hands the buffer back for reuse.
pub(crate) fn forward_prefetched(
    param: &LayerParameter,
    queue: Option<&PrefetchQueue>,
    top: &[SharedBlob],
) -> Result<()> {
    let queue = queue.ok_or_else(|| Error::layer(param, "forward before setup"))?;
    let batch = queue
        .pop()
        .map_err(|e| Error::layer(param, e.to_string()))?;
    {
        let mut data = top[0].borrow_mut();
        data.reshape(&batch.shape);
        data.data_mut().copy_from_slice(&batch.data);
    }
    if let Some(label_top) = top.get(1) {
        let mut label = label_top.borrow_mut();
        label.reshape(&[batch.label.len()]);
        label.data_mut().copy_from_slice(&batch.label);
    }
    queue.recycle(batch);
    Ok(())
}
