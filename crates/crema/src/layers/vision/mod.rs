//! Layer group; see `layers/mod.rs`.
use super::LayerCtor;

/// Type names and constructors of this group's layers.
pub const REGISTRY: &[(&str, LayerCtor)] = &[];
