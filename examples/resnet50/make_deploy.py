#!/usr/bin/env python3
"""Writes deploy.prototxt: ResNet-50 (He, Zhang, Ren, Sun, "Deep Residual
Learning for Image Recognition", 2015, Table 1, 50-layer column) for
inference, with the layer and blob names of the BVLC-style release:

  conv1 -> bn_conv1 -> scale_conv1 -> conv1_relu -> pool1
  res2a..res2c, res3a..res3d, res4a..res4f, res5a..res5c: bottleneck blocks
    branch2a (1x1) -> branch2b (3x3) -> branch2c (1x1, 4x wider), each
    followed by bn<block>_<branch> (BatchNorm, use_global_stats) and
    scale<block>_<branch> (Scale with bias); ReLU after 2a and 2b.
    The first block of a stage has a projection shortcut branch1 (1x1);
    stages 3-5 downsample with stride 2 in branch1 and branch2a.
    res<block> = Eltwise SUM of shortcut and branch2c, then ReLU in place.
  pool5 (7x7 average) -> fc1000 -> prob (Softmax)

Run `python3 make_deploy.py > deploy.prototxt`.
"""

out = []


def emit(text):
    out.append(text)


def conv(name, bottom, num_output, kernel, stride=1, pad=0, bias=False):
    extra = "" if bias else "\n    bias_term: false"
    emit(f'''layer {{
  name: "{name}"
  type: "Convolution"
  bottom: "{bottom}"
  top: "{name}"
  convolution_param {{
    num_output: {num_output}
    kernel_size: {kernel}
    pad: {pad}
    stride: {stride}{extra}
  }}
}}''')


def bn_scale(suffix, blob):
    emit(f'''layer {{
  name: "bn{suffix}"
  type: "BatchNorm"
  bottom: "{blob}"
  top: "{blob}"
  batch_norm_param {{
    use_global_stats: true
  }}
}}
layer {{
  name: "scale{suffix}"
  type: "Scale"
  bottom: "{blob}"
  top: "{blob}"
  scale_param {{
    bias_term: true
  }}
}}''')


def relu(name, blob):
    emit(f'''layer {{
  name: "{name}"
  type: "ReLU"
  bottom: "{blob}"
  top: "{blob}"
}}''')


def block(name, bottom, width, stride, project):
    """One bottleneck block res<name>; returns its top."""
    shortcut = bottom
    if project:
        shortcut = f"res{name}_branch1"
        conv(shortcut, bottom, 4 * width, 1, stride)
        bn_scale(f"{name}_branch1", shortcut)
    a, b, c = (f"res{name}_branch2{x}" for x in "abc")
    conv(a, bottom, width, 1, stride)
    bn_scale(f"{name}_branch2a", a)
    relu(f"{a}_relu", a)
    conv(b, a, width, 3, 1, 1)
    bn_scale(f"{name}_branch2b", b)
    relu(f"{b}_relu", b)
    conv(c, b, 4 * width, 1)
    bn_scale(f"{name}_branch2c", c)
    top = f"res{name}"
    emit(f'''layer {{
  name: "{top}"
  type: "Eltwise"
  bottom: "{shortcut}"
  bottom: "{c}"
  top: "{top}"
  eltwise_param {{
    operation: SUM
  }}
}}''')
    relu(f"{top}_relu", top)
    return top


emit('''name: "ResNet-50"
layer {
  name: "data"
  type: "Input"
  top: "data"
  input_param {
    shape {
      dim: 1
      dim: 3
      dim: 224
      dim: 224
    }
  }
}''')
conv("conv1", "data", 64, 7, 2, 3, bias=True)
bn_scale("_conv1", "conv1")
relu("conv1_relu", "conv1")
emit('''layer {
  name: "pool1"
  type: "Pooling"
  bottom: "conv1"
  top: "pool1"
  pooling_param {
    pool: MAX
    kernel_size: 3
    stride: 2
  }
}''')
blob = "pool1"
# (stage, blocks, bottleneck width, stride of the first block)
for stage, blocks, width, stride in [(2, 3, 64, 1), (3, 4, 128, 2), (4, 6, 256, 2), (5, 3, 512, 2)]:
    for i in range(blocks):
        blob = block(f"{stage}{chr(ord('a') + i)}", blob, width, stride if i == 0 else 1, i == 0)
emit(f'''layer {{
  name: "pool5"
  type: "Pooling"
  bottom: "{blob}"
  top: "pool5"
  pooling_param {{
    pool: AVE
    kernel_size: 7
    stride: 1
  }}
}}
layer {{
  name: "fc1000"
  type: "InnerProduct"
  bottom: "pool5"
  top: "fc1000"
  inner_product_param {{
    num_output: 1000
  }}
}}
layer {{
  name: "prob"
  type: "Softmax"
  bottom: "fc1000"
  top: "prob"
}}''')
print("\n".join(out))
