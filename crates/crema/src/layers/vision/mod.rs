//! Vision layers: Convolution, Deconvolution, Pooling, LRN, InnerProduct
//! (Caffe's vision_layers); see `layers/mod.rs` for the conventions.
use super::LayerCtor;

pub(crate) mod conv_base;
pub mod convolution;
pub mod deconvolution;
pub mod inner_product;
pub mod lrn;
pub mod pooling;
pub mod spp;

#[cfg(test)]
mod conv_tests;
#[cfg(test)]
mod pooling_tests;
#[cfg(test)]
mod testutil;

/// Type names and constructors of this group's layers.
pub const REGISTRY: &[(&str, LayerCtor)] = &[
    ("Convolution", convolution::ConvolutionLayer::new),
    ("Deconvolution", deconvolution::DeconvolutionLayer::new),
    ("Pooling", pooling::PoolingLayer::new),
    ("LRN", lrn::LRNLayer::new),
    ("InnerProduct", inner_product::InnerProductLayer::new),
    ("SPP", spp::SPPLayer::create),
];
