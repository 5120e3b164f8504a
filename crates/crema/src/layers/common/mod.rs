//! Layer group; see `layers/mod.rs`.
use super::LayerCtor;

#[cfg(test)]
pub(crate) mod testutil;

/// Type names and constructors of this group's layers.
pub const REGISTRY: &[(&str, LayerCtor)] = &[];
