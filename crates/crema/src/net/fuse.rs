//! Fusing an in-place ReLU into the convolution before it: the convolution
//! applies it with its bias while the output is still in cache, and the net
//! skips the ReLU's own forward pass over memory (AlexNet's relu1 alone
//! reads and writes 74 MB at batch 64). Backward is unchanged.
use std::rc::Rc;

use super::Net;

impl Net {
    /// Turns the fusion on or off for every Convolution or Deconvolution
    /// whose single top the next layer, a ReLU, runs on in place. While on,
    /// that top holds the ReLU's output as soon as the convolution has run,
    /// so callers that stop a forward between the two see it rectified;
    /// `caffe train`, `time` and `test` never do.
    pub fn fuse_relus(&mut self, on: bool) {
        self.fused = vec![false; self.layers.len()];
        for i in 0..self.layers.len().saturating_sub(1) {
            let conv = matches!(
                self.layer_params[i].type_(),
                "Convolution" | "Deconvolution"
            );
            let relu = &self.layer_params[i + 1];
            let (tops, next_bottoms, next_tops) = (
                &self.top_vecs[i],
                &self.bottom_vecs[i + 1],
                &self.top_vecs[i + 1],
            );
            let in_place = tops.len() == 1
                && next_bottoms.len() == 1
                && next_tops.len() == 1
                && Rc::ptr_eq(&tops[0], &next_bottoms[0])
                && Rc::ptr_eq(&tops[0], &next_tops[0]);
            if !(conv && relu.type_() == "ReLU" && in_place) {
                continue;
            }
            let slope = relu.relu_param.get_or_default().negative_slope();
            self.fused[i + 1] = self.layers[i].fuse_relu(on.then_some(slope)) && on;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_same_param_diffs, parse};
    use super::Net;

    /// Convolutions followed by in-place ReLUs (leaky, plain, without bias,
    /// after a Deconvolution), one ReLU that is not in place, and one after
    /// a layer that is not a convolution.
    const NET: &str = r#"
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 3 dim: 2 dim: 9 dim: 9 } shape { dim: 3 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1
    weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "constant" value: -0.2 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" relu_param { negative_slope: 0.1 } }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
  convolution_param { num_output: 4 kernel_size: 3 stride: 2 bias_term: false
    weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "up" type: "Deconvolution" bottom: "conv2" top: "up"
  convolution_param { num_output: 3 kernel_size: 2 stride: 2
    weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu3" type: "ReLU" bottom: "up" top: "up" }
layer { name: "conv3" type: "Convolution" bottom: "up" top: "conv3"
  convolution_param { num_output: 3 kernel_size: 1 weight_filler { type: "xavier" } } }
layer { name: "relu4" type: "ReLU" bottom: "conv3" top: "relu4" }
layer { name: "fc" type: "InnerProduct" bottom: "relu4" top: "fc"
  inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
layer { name: "relu5" type: "ReLU" bottom: "fc" top: "fc" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
"#;

    fn feed(net: &Net, step: usize) {
        let data = net.blob_by_name("data").unwrap();
        for (k, v) in data.borrow_mut().data_mut().iter_mut().enumerate() {
            *v = (((k * 29 + step * 7) % 19) as f32 - 9.0) / 5.0;
        }
        let label = net.blob_by_name("label").unwrap();
        for (k, v) in label.borrow_mut().data_mut().iter_mut().enumerate() {
            *v = ((k + step) % 4) as f32;
        }
    }

    fn bits(net: &Net, name: &str) -> Vec<u32> {
        let b = net.blob_by_name(name).unwrap();
        let b = b.borrow();
        b.data().iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn fused_relus_train_bit_for_bit_and_skip_only_in_place_ones() {
        let mut plain = Net::from_param(&parse(NET)).unwrap();
        let mut fused = Net::from_param(&parse(NET)).unwrap();
        for (a, b) in plain.params().iter().zip(fused.params()) {
            b.borrow_mut().copy_from(&a.borrow(), false).unwrap();
        }
        fused.fuse_relus(true);
        let skipped: Vec<&str> = (0..fused.layers.len())
            .filter(|&i| fused.fused[i])
            .map(|i| fused.layer_names[i].as_str())
            .collect();
        assert_eq!(skipped, ["relu1", "relu2", "relu3"]);
        for step in 0..3 {
            for net in [&mut plain, &mut fused] {
                feed(net, step);
                net.clear_param_diffs();
            }
            let loss = plain.forward_backward().unwrap();
            assert_eq!(loss.to_bits(), fused.forward_backward().unwrap().to_bits());
            for name in ["conv1", "conv2", "up", "relu4", "fc"] {
                assert_eq!(
                    bits(&plain, name),
                    bits(&fused, name),
                    "step {step}: {name}"
                );
            }
            assert_same_param_diffs(&plain, &fused, &format!("step {step}, fused ReLUs"));
            plain.update();
            fused.update();
        }
        // Off again: every layer runs its own forward.
        fused.fuse_relus(false);
        assert!(fused.fused.iter().all(|&f| !f));
        for net in [&mut plain, &mut fused] {
            feed(net, 5);
            net.forward().unwrap();
        }
        assert_eq!(bits(&plain, "conv1"), bits(&fused, "conv1"));
    }
}
