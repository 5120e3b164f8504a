//! Deconvolution (transposed convolution): the convolution layer run with input
//! and output swapped. Top spatial size is `stride·(in−1) + dil·(k−1)+1 − 2·pad`;
//! weights are `[channels, num_output/group, k...]`, as Caffe stores them.
use crema_proto::caffe::LayerParameter;

use super::convolution::ConvolutionLayer;
use crate::error::Result;
use crate::layers::Layer;

pub struct DeconvolutionLayer;

impl DeconvolutionLayer {
    pub fn new(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(ConvolutionLayer::with_direction(param, true)))
    }
}
