//! Every layer type BVLC Caffe registers can be built by crema from a minimal
//! prototxt: created through the registry, then setup + reshape on bottoms of
//! a suitable shape.
//!
//! The 61 names are BVLC/caffe master's registered types (Caffe 1.0 plus the
//! later Clip and Swish): the `REGISTER_LAYER_CLASS(...)` lines of
//! src/caffe/layers/*.cpp and the `REGISTER_LAYER_CREATOR(...)` lines of
//! src/caffe/layer_factory.cpp (Convolution, Deconvolution's engines aside:
//! Convolution, Pooling, LRN, ReLU, Sigmoid, Softmax, TanH, Python), as
//! `caffe.layer_type_list()` prints them. Abstract bases (Recurrent, Loss,
//! Neuron, BaseData, ...) register nothing.
use std::path::Path;

use crema::data::{index_key, Image, LmdbWriter};
use crema::proto::caffe::{Datum, LayerParameter};
use crema::{create_layer, layer_type_list, Blob, SharedBlob};

const CAFFE_TYPES: [&str; 61] = [
    "AbsVal",
    "Accuracy",
    "ArgMax",
    "BNLL",
    "BatchNorm",
    "BatchReindex",
    "Bias",
    "Clip",
    "Concat",
    "ContrastiveLoss",
    "Convolution",
    "Crop",
    "Data",
    "Deconvolution",
    "Dropout",
    "DummyData",
    "ELU",
    "Eltwise",
    "Embed",
    "EuclideanLoss",
    "Exp",
    "Filter",
    "Flatten",
    "HDF5Data",
    "HDF5Output",
    "HingeLoss",
    "Im2col",
    "ImageData",
    "InfogainLoss",
    "InnerProduct",
    "Input",
    "LRN",
    "LSTM",
    "LSTMUnit",
    "Log",
    "MVN",
    "MemoryData",
    "MultinomialLogisticLoss",
    "PReLU",
    "Parameter",
    "Pooling",
    "Power",
    "Python",
    "RNN",
    "ReLU",
    "Reduction",
    "Reshape",
    "SPP",
    "Scale",
    "Sigmoid",
    "SigmoidCrossEntropyLoss",
    "Silence",
    "Slice",
    "Softmax",
    "SoftmaxWithLoss",
    "Split",
    "Swish",
    "TanH",
    "Threshold",
    "Tile",
    "WindowData",
];

/// Types crema's own registry lacks. The test fails when one of them is in
/// fact registered, so this list only shrinks. "Python" needs an interpreter:
/// crema-python adds it at run time (`register_layer_type`) in programs built
/// with Python layers, so the plain library does not list it.
const PENDING: &[&str] = &["Python"];

/// A bottom: shape and the value every element holds (labels and indices 0,
/// selectors 1).
type Bottom = (&'static [usize], f32);

/// One type's minimal layer: parameter text, bottoms, number of tops.
fn case(ty: &str, files: &Files) -> (String, Vec<Bottom>, usize) {
    const X: Bottom = (&[2, 3, 4, 4], 0.5);
    const V: Bottom = (&[2, 5], 0.2);
    const L: Bottom = (&[2], 0.0);
    let neuron = |text: &str| (text.to_string(), vec![X], 1);
    match ty {
        "AbsVal" | "BNLL" | "ELU" | "Exp" | "Log" | "Power" | "ReLU" | "Sigmoid" | "Swish"
        | "TanH" | "Threshold" | "Dropout" | "PReLU" | "BatchNorm" | "MVN" | "Softmax"
        | "Flatten" | "LRN" | "Split" => neuron(""),
        "Clip" => neuron("clip_param { min: -1 max: 1 }"),
        "Scale" => neuron("scale_param { bias_term: true }"),
        "Reshape" => neuron("reshape_param { shape { dim: 0 dim: -1 } }"),
        "Tile" => neuron("tile_param { tiles: 2 }"),
        "Reduction" => neuron("reduction_param { axis: 1 }"),
        "Pooling" => neuron("pooling_param { kernel_size: 2 stride: 2 }"),
        "SPP" => neuron("spp_param { pyramid_height: 2 }"),
        "Convolution" => neuron("convolution_param { num_output: 4 kernel_size: 3 }"),
        "Deconvolution" => neuron("convolution_param { num_output: 2 kernel_size: 2 stride: 2 }"),
        "Im2col" => neuron("convolution_param { kernel_size: 3 pad: 1 }"),
        "InnerProduct" => neuron("inner_product_param { num_output: 4 }"),
        "ArgMax" => (String::new(), vec![V], 1),
        "Bias" => (String::new(), vec![X, (&[3], 0.1)], 1),
        "Eltwise" => (String::new(), vec![X, X], 1),
        "Concat" => (String::new(), vec![(&[2, 3], 1.0), (&[2, 4], 1.0)], 1),
        "Slice" => (String::new(), vec![(&[2, 4], 1.0)], 2),
        "Silence" => (String::new(), vec![X], 0),
        "Crop" => (String::new(), vec![X, (&[2, 3, 2, 2], 0.0)], 1),
        "BatchReindex" => (String::new(), vec![(&[3, 2], 1.0), (&[4], 0.0)], 1),
        "Filter" => (String::new(), vec![(&[4, 3], 1.0), (&[4], 1.0)], 1),
        "Embed" => ("embed_param { num_output: 3 input_dim: 4 }".into(), vec![L], 1),
        "Accuracy" | "HingeLoss" | "SoftmaxWithLoss" | "MultinomialLogisticLoss" => (String::new(), vec![V, L], 1),
        "InfogainLoss" => (String::new(), vec![V, L, (&[1, 1, 5, 5], 1.0)], 1),
        "EuclideanLoss" | "SigmoidCrossEntropyLoss" => (String::new(), vec![V, V], 1),
        "ContrastiveLoss" => (String::new(), vec![(&[2, 3, 1, 1], 0.5), (&[2, 3, 1, 1], 0.1), (&[2, 1, 1, 1], 0.0)], 1),
        "Input" => ("input_param { shape { dim: 2 dim: 3 } }".into(), vec![], 1),
        "DummyData" => ("dummy_data_param { shape { dim: 2 dim: 3 } }".into(), vec![], 1),
        "Parameter" => ("parameter_param { shape { dim: 2 dim: 3 } }".into(), vec![], 1),
        "MemoryData" => ("memory_data_param { batch_size: 2 channels: 1 height: 2 width: 2 }".into(), vec![], 2),
        "Data" => (format!("data_param {{ source: {:?} backend: LMDB batch_size: 2 }}", files.lmdb), vec![], 2),
        "ImageData" => (format!("image_data_param {{ source: {:?} batch_size: 2 }}", files.list), vec![], 2),
        "WindowData" => (
            format!("window_data_param {{ source: {:?} batch_size: 2 }} transform_param {{ crop_size: 4 }}", files.windows),
            vec![],
            2,
        ),
        "HDF5Data" => (format!("top: \"data\" top: \"label\" hdf5_data_param {{ source: {:?} batch_size: 2 }}", files.h5_list), vec![], 2),
        "HDF5Output" => (format!("hdf5_output_param {{ file_name: {:?} }}", files.h5_out), vec![V, L], 0),
        // Sequences are T x N x ...: two steps of one stream.
        "RNN" | "LSTM" => (
            "recurrent_param { num_output: 4 }".into(),
            vec![(&[2, 1, 3], 0.5), (&[2, 1], 1.0)],
            1,
        ),
        "LSTMUnit" => (String::new(), vec![(&[1, 2, 4], 0.5), (&[1, 2, 16], 0.5), (&[1, 2], 1.0)], 2),
        other => panic!("no case for layer type {other}"),
    }
}

/// Small files the data layers read, written into a temp folder.
struct Files {
    _dir: tempfile::TempDir,
    lmdb: String,
    list: String,
    windows: String,
    h5_list: String,
    h5_out: String,
}

fn write_files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let img = Image {
        height: 6,
        width: 6,
        channels: 3,
        data: (0..108).map(|v| v as u8).collect(),
    };
    std::fs::write(p("a.png"), img.encode("png").unwrap()).unwrap();
    std::fs::write(p("list.txt"), format!("{} 1\n", p("a.png"))).unwrap();
    std::fs::write(
        p("windows.txt"),
        format!(
            "# 0\n{}\n3 6 6\n2\n1 0.9 0 0 3 3\n0 0.1 1 1 5 5\n",
            p("a.png")
        ),
    )
    .unwrap();
    let mut w = LmdbWriter::create(Path::new(&p("lmdb"))).unwrap();
    let d: Datum = img.to_datum(1);
    w.put(index_key(0), crema::proto::binary::encode(&d).unwrap());
    w.commit().unwrap();
    // HDF5Data reads Caffe's own unit-test file when shared/data has it.
    let h5 = crema_proto::testdata::shared_data()
        .map(|d| {
            d.join("caffe_test_data/sample_data.h5")
                .to_string_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    std::fs::write(p("h5_list.txt"), format!("{h5}\n")).unwrap();
    Files {
        lmdb: p("lmdb"),
        list: p("list.txt"),
        windows: p("windows.txt"),
        h5_list: p("h5_list.txt"),
        h5_out: p("out.h5"),
        _dir: dir,
    }
}

fn build(ty: &str, files: &Files) -> Result<Vec<SharedBlob>, String> {
    let (params, bottoms, tops) = case(ty, files);
    let text = format!("name: \"l\" type: \"{ty}\" {params}");
    let param: LayerParameter =
        crema::proto::text::parse(&text, "layer_registry").map_err(|e| e.to_string())?;
    let mut layer = create_layer(&param).map_err(|e| e.to_string())?;
    let bottom: Vec<SharedBlob> = bottoms
        .iter()
        .map(|(shape, v)| {
            let b = Blob::shared(shape);
            b.borrow_mut().data_mut().fill(*v);
            b
        })
        .collect();
    let top: Vec<SharedBlob> = (0..tops).map(|_| Blob::shared(&[])).collect();
    layer.setup(&bottom, &top).map_err(|e| e.to_string())?;
    layer.reshape(&bottom, &top).map_err(|e| e.to_string())?;
    Ok(top)
}

#[test]
fn caffe_type_list_has_61_distinct_names() {
    let mut v = CAFFE_TYPES.to_vec();
    v.sort_unstable();
    v.dedup();
    assert_eq!(v.len(), 61);
}

#[test]
fn every_caffe_layer_type_is_registered_and_builds() {
    let registered = layer_type_list();
    let files = write_files();
    let mut failures = Vec::new();
    for ty in CAFFE_TYPES {
        let is_registered = registered.contains(&ty);
        if PENDING.contains(&ty) {
            if is_registered {
                failures.push(format!("{ty} is registered now: move it out of PENDING"));
            }
            continue;
        }
        if !is_registered {
            failures.push(format!("{ty} is not registered"));
            continue;
        }
        match build(ty, &files) {
            Ok(top) => {
                for (i, t) in top.iter().enumerate() {
                    let t = t.borrow();
                    if t.num_axes() > 0 && t.count() == 0 {
                        failures.push(format!("{ty}: top {i} is empty ({})", t.shape_string()));
                    }
                }
            }
            // A build without the hdf5 feature registers the HDF5 layers but
            // refuses them at setup with a clear message; that is the contract.
            Err(e) if e.contains("built without HDF5") => {}
            Err(e) if ty == "HDF5Data" && crema_proto::testdata::shared_data().is_none() => {
                eprintln!("skipped: HDF5Data needs shared/data/caffe_test_data ({e})")
            }
            Err(e) => failures.push(format!("{ty}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
