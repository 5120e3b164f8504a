//! Caffe's HDF5 files outside the solver: `.caffemodel.h5` weights into a
//! net and back out, the HDF5Data layer on Caffe's own test files and on
//! h5py-written fixtures (tests/fixtures/hdf5/make_hdf5_fixtures.py), and
//! HDF5Output's file.
#![cfg(feature = "hdf5")]

use std::path::{Path, PathBuf};

use crema::hdf5::H5Reader;
use crema::proto::caffe::{NetParameter, Phase};
use crema::{Blob, Net};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("crema-hdf5-files-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn net(text: &str) -> Net {
    let param: NetParameter = crema::proto::text::parse(text, "test net").unwrap();
    Net::from_param(&param).unwrap()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hdf5")
        .join(name)
}

/// A list file naming `files`, one per line, for hdf5_data_param.source.
fn source_list(dir: &Path, files: &[PathBuf]) -> PathBuf {
    let list = dir.join("list.txt");
    let text: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    std::fs::write(&list, text.join("\n") + "\n").unwrap();
    list
}

fn hdf5_data_net(list: &Path, batch: usize, tops: &[&str], extra: &str) -> Net {
    let tops: String = tops.iter().map(|t| format!("top: \"{t}\" ")).collect();
    net(&format!(
        r#"name: "h5" layer {{ name: "in" type: "HDF5Data" {tops}
           hdf5_data_param {{ source: "{}" batch_size: {batch} {extra} }} }}"#,
        list.display()
    ))
}

fn top(net: &Net, name: &str) -> Blob {
    let b = net.blob_by_name(name).unwrap();
    let b = b.borrow();
    let mut out = Blob::new(b.shape());
    out.data_mut().copy_from_slice(b.data());
    out
}

#[test]
fn caffe_hdf5_weights_load_into_cifar10_quick_and_agree_with_the_binary_snapshot() {
    let Some(data) = crema::proto::testdata::shared_data() else {
        eprintln!("skipped: shared data not found");
        return;
    };
    let dir = data.join("models/cifar10_quick_bxuan");
    let mut from_h5 =
        Net::from_file(dir.join("cifar10_quick.prototxt"), Phase::TEST, 0, &[]).unwrap();
    let h5_path = dir.join("cifar10_quick_iter_5000.caffemodel.h5");
    from_h5.copy_trained_layers_from_file(&h5_path).unwrap();
    let mut from_bin =
        Net::from_file(dir.join("cifar10_quick.prototxt"), Phase::TEST, 0, &[]).unwrap();
    from_bin
        .copy_trained_layers_from_file(dir.join("cifar10_quick_iter_4000.caffemodel"))
        .unwrap();

    let file = H5Reader::open(&h5_path).unwrap();
    let expected: [(&str, &[usize], &[usize]); 5] = [
        ("conv1", &[32, 3, 5, 5], &[32]),
        ("conv2", &[32, 32, 5, 5], &[32]),
        ("conv3", &[64, 32, 5, 5], &[64]),
        ("ip1", &[64, 1024], &[64]),
        ("ip2", &[10, 64], &[10]),
    ];
    for (name, w_shape, b_shape) in expected {
        let layer = from_h5.layer_by_name(name).unwrap();
        let other = from_bin.layer_by_name(name).unwrap();
        for (j, shape) in [w_shape, b_shape].into_iter().enumerate() {
            let got = layer.blobs()[j].borrow();
            let (stored_shape, stored) = file.read_f32(&format!("data/{name}/{j}")).unwrap();
            assert_eq!(
                (got.shape(), stored_shape.as_slice()),
                (shape, shape),
                "{name} {j}"
            );
            assert_eq!(got.data(), stored.as_slice(), "{name} {j}");
            // Iteration 5000 continued iteration 4000's run at lr 1e-4, so
            // the weights moved only a little; the same values misplaced
            // (reversed) are far off, which a misread layout would be.
            let before = other.blobs()[j].borrow();
            let rel = |v: &[f32]| {
                let d: f32 = v
                    .iter()
                    .zip(before.data())
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum();
                let n: f32 = before.data().iter().map(|b| b * b).sum();
                (d / n).sqrt()
            };
            let moved = rel(got.data());
            let reversed: Vec<f32> = got.data().iter().rev().copied().collect();
            eprintln!(
                "{name} {j}: relative change {moved}, reversed {}",
                rel(&reversed)
            );
            assert!(
                moved > 0.0 && moved < 0.1,
                "{name} {j}: relative change {moved}"
            );
            assert!(rel(&reversed) > 5.0 * moved, "{name} {j}");
        }
    }

    // Written back out, the file has Caffe's layout and loads into a fresh net.
    let out_dir = scratch("cifar-out");
    let out = out_dir.join("copy.caffemodel.h5");
    from_h5.to_hdf5(&out, false).unwrap();
    let copy = H5Reader::open(&out).unwrap();
    assert_eq!(copy.member_names("").unwrap(), ["data"]);
    // One group per layer of this (deploy) net; Caffe's file came from the
    // train net, with its data and loss layers instead of data and prob.
    let mut layers = from_h5.layer_names().to_vec();
    layers.sort();
    assert_eq!(copy.member_names("data").unwrap(), layers);
    for name in ["conv1", "ip2", "relu1"] {
        let group = format!("data/{name}");
        assert_eq!(
            copy.member_names(&group).unwrap(),
            file.member_names(&group).unwrap()
        );
    }
    let mut fresh =
        Net::from_file(dir.join("cifar10_quick.prototxt"), Phase::TEST, 0, &[]).unwrap();
    fresh.copy_trained_layers_from_file(&out).unwrap();
    for (a, b) in fresh
        .learnable_params()
        .iter()
        .zip(from_h5.learnable_params())
    {
        assert_eq!(a.borrow().data(), b.borrow().data());
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}

const SHARED_NET: &str = r#"name: "shared"
  layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
  layer { name: "a" type: "InnerProduct" bottom: "x" top: "y" param { name: "w" } param { name: "b" }
          inner_product_param { num_output: 3 weight_filler { type: "gaussian" } bias_filler { type: "gaussian" } } }
  layer { name: "b" type: "InnerProduct" bottom: "y" top: "z" param { name: "w" } param { name: "b" }
          inner_product_param { num_output: 3 } }
  layer { name: "c" type: "InnerProduct" bottom: "z" top: "out"
          inner_product_param { num_output: 2 weight_filler { type: "gaussian" } } }"#;

#[test]
fn shared_params_are_stored_by_their_owner_and_diffs_by_every_layer() {
    let dir = scratch("shared");
    let source = net(SHARED_NET);
    for p in source.learnable_params() {
        p.borrow_mut().diff_mut().fill(0.5);
    }
    let path = dir.join("w.caffemodel.h5");
    source.to_hdf5(&path, true).unwrap();
    let r = H5Reader::open(&path).unwrap();
    assert_eq!(r.member_names("data").unwrap(), ["a", "b", "c", "in"]);
    assert_eq!(r.member_names("data/a").unwrap(), ["0", "1"]);
    assert!(
        r.member_names("data/b").unwrap().is_empty(),
        "b's params are a's"
    );
    assert_eq!(r.member_names("diff/b").unwrap(), ["0", "1"]);
    assert_eq!(r.read_f32("diff/b/0").unwrap(), (vec![3, 3], vec![0.5; 9]));

    let mut target = net(SHARED_NET);
    target.copy_trained_layers_from_file(&path).unwrap();
    for (a, b) in target
        .learnable_params()
        .iter()
        .zip(source.learnable_params())
    {
        assert_eq!(a.borrow().data(), b.borrow().data());
    }
    // Layer "c" without its bias in the file is an error: it shares nothing.
    let other = net(&SHARED_NET.replace("num_output: 2", "num_output: 3"));
    let e = other
        .to_hdf5(dir.join("o.h5"), false)
        .and_then(|()| target.copy_trained_layers_from_file(dir.join("o.h5")));
    let e = e.unwrap_err().to_string();
    assert!(
        e.contains("Cannot load blob from hdf5; shape mismatch. Source shape is 3 3 (9)")
            && e.contains("'c'"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hdf5_data_reads_caffes_sample_files_in_order_and_cycles() {
    let Some(data) = crema::proto::testdata::shared_data() else {
        eprintln!("skipped: shared data not found");
        return;
    };
    // Caffe's generate_sample_data.py: data = arange over (10, 8, 6, 5),
    // plus 2400 in the gzip file; label = 1..10 (uint8 in the gzip file);
    // label2 = label + 1. Caffe's HDF5Data test reads them in batches of 5.
    let dir = scratch("sample");
    let files = [
        data.join("caffe_test_data/sample_data.h5"),
        data.join("caffe_test_data/sample_data_2_gzip.h5"),
    ];
    let list = source_list(&dir, &files);
    let mut n = hdf5_data_net(&list, 5, &["data", "label", "label2"], "");
    for iter in 0..8 {
        n.forward().unwrap();
        let file_base = if iter % 4 < 2 { 0.0 } else { 2400.0 };
        let first_row = 5 * (iter % 2);
        let (d, l, l2) = (top(&n, "data"), top(&n, "label"), top(&n, "label2"));
        assert_eq!(d.shape(), [5, 8, 6, 5]);
        assert_eq!(
            (l.shape(), l2.shape()),
            ([5, 1].as_slice(), [5, 1].as_slice())
        );
        for i in 0..5 {
            let row = first_row + i;
            assert_eq!(l.data()[i], (row + 1) as f32, "iter {iter}");
            assert_eq!(l2.data()[i], (row + 2) as f32, "iter {iter}");
            for k in (0..240).step_by(17) {
                assert_eq!(
                    d.data()[i * 240 + k],
                    file_base + (row * 240 + k) as f32,
                    "iter {iter}"
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The fixture rows' values, as make_hdf5_fixtures.py writes them.
fn fixture_row(g: usize) -> (Vec<f32>, f32, Vec<f32>) {
    let data = (0..2)
        .flat_map(|i| (0..3).map(move |j| (g * 10 + i * 3 + j) as f32 - 0.5))
        .collect();
    let extra = (0..2).map(|k| -(g as f32) - 0.25 * k as f32).collect();
    (data, 100.0 + g as f32, extra)
}

#[test]
fn hdf5_data_serves_h5py_rows_of_any_rank_and_type_across_files() {
    let dir = scratch("fixture");
    let list = source_list(&dir, &[fixture("rows_a.h5"), fixture("rows_b.h5")]);
    let mut n = hdf5_data_net(&list, 3, &["data", "label", "extra"], "");
    // 5 + 3 rows per cycle, served 3 at a time across the file boundary.
    let mut served = Vec::new();
    for _ in 0..6 {
        n.forward().unwrap();
        let (d, l, e) = (top(&n, "data"), top(&n, "label"), top(&n, "extra"));
        assert_eq!(
            (d.shape(), l.shape(), e.shape()),
            (
                [3, 2, 3].as_slice(),
                [3].as_slice(),
                [3, 1, 1, 2].as_slice()
            )
        );
        for i in 0..3 {
            let g = (l.data()[i] - 100.0) as usize;
            let (want_d, want_l, want_e) = fixture_row(g);
            assert_eq!(&d.data()[i * 6..i * 6 + 6], want_d.as_slice());
            assert_eq!(l.data()[i], want_l);
            assert_eq!(&e.data()[i * 2..i * 2 + 2], want_e.as_slice());
            served.push(g);
        }
    }
    let cycle: Vec<usize> = (0..8).collect();
    assert_eq!(served[..8], cycle[..]);
    assert_eq!(served[8..16], cycle[..]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hdf5_data_shuffle_serves_every_row_once_per_pass() {
    let dir = scratch("shuffle");
    let list = source_list(&dir, &[fixture("rows_a.h5")]);
    crema::rng::set_random_seed(5);
    let mut n = hdf5_data_net(&list, 5, &["label"], "shuffle: true");
    let mut passes = Vec::new();
    for _ in 0..4 {
        n.forward().unwrap();
        let mut pass: Vec<f32> = top(&n, "label").data().to_vec();
        passes.push(pass.clone());
        pass.sort_by(f32::total_cmp);
        assert_eq!(pass, [100.0, 101.0, 102.0, 103.0, 104.0]);
    }
    assert!(
        passes.windows(2).any(|w| w[0] != w[1]),
        "the order changes between passes: {passes:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hdf5_data_errors_name_the_file_and_dataset() {
    let dir = scratch("errors");
    let list = source_list(&dir, &[fixture("rows_a.h5")]);
    let build = |list: &Path, tops: &[&str], extra: &str| {
        let tops: String = tops.iter().map(|t| format!("top: \"{t}\" ")).collect();
        let param: NetParameter = crema::proto::text::parse(
            &format!(
                r#"name: "h5" layer {{ name: "in" type: "HDF5Data" {tops}
                   hdf5_data_param {{ source: "{}" batch_size: 2 }} {extra} }}"#,
                list.display()
            ),
            "t",
        )
        .unwrap();
        Net::from_param(&param)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let e = build(&list, &["data", "nope"], "");
    assert!(
        e.contains("Failed to find HDF5 dataset nope") && e.contains("rows_a.h5"),
        "{e}"
    );
    let e = build(&dir.join("absent.txt"), &["data"], "");
    assert!(
        e.contains("Failed to open source file") && e.contains("absent.txt"),
        "{e}"
    );
    let e = build(&list, &["data"], "transform_param { scale: 2 }");
    assert!(e.contains("does not transform data"), "{e}");
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "\n").unwrap();
    let e = build(&empty, &["data"], "");
    assert!(e.contains("Must have at least 1 HDF5 filename"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hdf5_output_writes_data_and_label_like_caffe() {
    let dir = scratch("output");
    let list = source_list(&dir, &[fixture("rows_a.h5")]);
    let out = dir.join("out.h5");
    let text = format!(
        r#"name: "out"
        layer {{ name: "in" type: "HDF5Data" top: "data" top: "label" hdf5_data_param {{ source: "{}" batch_size: 4 }} }}
        layer {{ name: "save" type: "HDF5Output" bottom: "data" bottom: "label" hdf5_output_param {{ file_name: "{}" }} }}"#,
        list.display(),
        out.display()
    );
    let mut n = net(&text);
    assert!(out.is_file(), "the file is created at setup");
    for pass in 0..2 {
        n.forward().unwrap();
        let r = H5Reader::open(&out).unwrap();
        assert_eq!(r.member_names("").unwrap(), ["data", "label"]);
        let (d_shape, d) = r.read_f32("data").unwrap();
        let (l_shape, l) = r.read_f32("label").unwrap();
        // Caffe writes legacy 4-D shapes.
        assert_eq!((d_shape, l_shape), (vec![4, 2, 3, 1], vec![4, 1, 1, 1]));
        for i in 0..4 {
            let g = (pass * 4 + i) % 5;
            let (want_d, want_l, _) = fixture_row(g);
            assert_eq!(&d[i * 6..i * 6 + 6], want_d.as_slice(), "pass {pass}");
            assert_eq!(l[i], want_l, "pass {pass}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hdf5_layers_outside_a_net_refuse_unnamed_tops_and_missing_bottoms() {
    use crema::proto::caffe::LayerParameter;
    let parse =
        |text: &str| -> LayerParameter { crema::proto::text::parse(text, "layer").unwrap() };
    let mut data = crema::create_layer(&parse(
        r#"name: "in" type: "HDF5Data" hdf5_data_param { source: "list.txt" batch_size: 1 }"#,
    ))
    .unwrap();
    let tops = [Blob::shared(&[]), Blob::shared(&[])];
    let e = data.setup(&[], &tops).unwrap_err().to_string();
    assert!(e.contains("2 tops and 0 top names"), "{e}");
    let dir = scratch("outside");
    let out = dir.join("o.h5");
    let mut output = crema::create_layer(&parse(&format!(
        r#"name: "out" type: "HDF5Output" hdf5_output_param {{ file_name: "{}" }}"#,
        out.display()
    )))
    .unwrap();
    let e = output
        .setup(&[Blob::shared(&[2, 3])], &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("writes two bottoms") && !out.exists(), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
