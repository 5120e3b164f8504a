//! Data-side layers: Input (tops the caller fills), DummyData (filled tops)
//! and Split (the fan-out the net inserts). See `layers/mod.rs`.
use super::LayerCtor;

pub mod input;
pub mod split;

pub use input::InputLayer;
pub use split::SplitLayer;

/// Type names and constructors of this group's layers.
pub const REGISTRY: &[(&str, LayerCtor)] =
    &[("Input", InputLayer::new), ("Split", SplitLayer::new)];
