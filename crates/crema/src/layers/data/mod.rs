//! Data-side layers: Input (tops the caller fills), DummyData (filled tops)
//! and Split (the fan-out the net inserts). See `layers/mod.rs`.
use super::LayerCtor;

pub mod dummy_data;
pub mod input;
pub mod split;

pub use dummy_data::DummyDataLayer;
pub use input::InputLayer;
pub use split::SplitLayer;

/// Type names and constructors of this group's layers.
pub const REGISTRY: &[(&str, LayerCtor)] = &[
    ("DummyData", DummyDataLayer::new),
    ("Input", InputLayer::new),
    ("Split", SplitLayer::new),
];
