//! Data-side layers: Data (database records), ImageData (image files from a
//! list), MemoryData (caller's arrays),
//! Input (tops the caller fills), DummyData (filled tops) and Split (the
//! fan-out the net inserts). See `layers/mod.rs`.
use super::LayerCtor;

pub mod data_layer;
pub mod dummy_data;
pub mod image_data;
pub mod input;
pub mod memory_data;
pub mod split;

pub use data_layer::DataLayer;
pub use dummy_data::DummyDataLayer;
pub use image_data::ImageDataLayer;
pub use input::InputLayer;
pub use memory_data::MemoryDataLayer;
pub use split::SplitLayer;

/// Type names and constructors of this group's layers.
pub const REGISTRY: &[(&str, LayerCtor)] = &[
    ("Data", DataLayer::new),
    ("DummyData", DummyDataLayer::new),
    ("ImageData", ImageDataLayer::new),
    ("Input", InputLayer::new),
    ("MemoryData", MemoryDataLayer::new),
    ("Split", SplitLayer::new),
];
