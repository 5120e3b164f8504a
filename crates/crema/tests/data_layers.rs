//! Data and MemoryData layers in nets built from prototxt: batches in key
//! order with labels, wrap-around, TRAIN vs TEST cropping, prefetch equal to
//! a synchronous read, errors that name the bad record.
use std::path::Path;

use crema::data::prefetch::{Batch, BatchLoader};
use crema::data::{image_key, index_key, Image, LmdbWriter};
use crema::layers::data::data_layer::DbBatchLoader;
use crema::layers::data::MemoryDataLayer;
use crema::proto::caffe::{Datum, LayerParameter, NetParameter, Phase};
use crema::Net;

/// Item i: 1 channel of 2x3 bytes with value 10*i + position, label i % 7.
fn item(i: usize) -> Datum {
    let mut d = Datum::new();
    d.set_channels(1);
    d.set_height(2);
    d.set_width(3);
    d.set_data((0..6).map(|p| (10 * i + p) as u8).collect());
    d.set_label((i % 7) as i32);
    d
}

fn write_db(path: &Path, items: &[(String, Vec<u8>)]) {
    let mut w = LmdbWriter::create(path).unwrap();
    for (k, v) in items {
        w.put(k.as_bytes(), v.clone());
    }
    w.commit().unwrap();
}

fn standard_db(path: &Path, n: usize) {
    let items: Vec<_> = (0..n)
        .map(|i| {
            (
                index_key(i),
                crema::proto::binary::encode(&item(i)).unwrap(),
            )
        })
        .collect();
    write_db(path, &items);
}

fn net(db: &Path, phase: &str, extra: &str) -> Net {
    let text = format!(
        r#"name: "d" state {{ phase: {phase} }}
        layer {{ name: "data" type: "Data" top: "data" top: "label"
                data_param {{ source: "{}" backend: LMDB batch_size: 4 }} {extra} }}"#,
        db.display()
    );
    let p: NetParameter = crema::proto::text::parse(&text, "test").unwrap();
    Net::from_param(&p).unwrap()
}

fn tops(net: &Net) -> (Vec<usize>, Vec<f32>, Vec<f32>) {
    let d = net.blob_by_name("data").unwrap();
    let l = net.blob_by_name("label").unwrap();
    let (d, l) = (d.borrow(), l.borrow());
    (d.shape().to_vec(), d.data().to_vec(), l.data().to_vec())
}

fn expected(items: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let data = items
        .iter()
        .flat_map(|&i| (0..6).map(move |p| (10 * i + p) as f32))
        .collect();
    let labels = items.iter().map(|&i| (i % 7) as f32).collect();
    (data, labels)
}

#[test]
fn data_layer_serves_batches_in_key_order_and_wraps_around() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    standard_db(&db, 10);
    for phase in ["TRAIN", "TEST"] {
        let mut n = net(&db, phase, "");
        assert_eq!(tops(&n).0, vec![4, 1, 2, 3]);
        for batch in [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 1], [2, 3, 4, 5]] {
            n.forward().unwrap();
            let (shape, data, labels) = tops(&n);
            let (want_data, want_labels) = expected(&batch);
            assert_eq!(shape, vec![4, 1, 2, 3]);
            assert_eq!(data, want_data, "{phase} batch {batch:?}");
            assert_eq!(labels, want_labels, "{phase} batch {batch:?}");
        }
    }
}

#[test]
fn test_phase_crops_the_centre_and_scales() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    standard_db(&db, 4);
    let mut n = net(
        &db,
        "TEST",
        "transform_param { crop_size: 2 scale: 0.5 mean_value: 1 }",
    );
    n.forward().unwrap();
    let (shape, data, _) = tops(&n);
    assert_eq!(shape, vec![4, 1, 2, 2]);
    // 2x3 image, crop 2: h_off 0, w_off (3-2)/2 = 0 -> positions 0,1,3,4.
    let want: Vec<f32> = (0..4)
        .flat_map(|i| [0, 1, 3, 4].map(|p| ((10 * i + p) as f32 - 1.0) * 0.5))
        .collect();
    assert_eq!(data, want);
}

fn layer_param(db: &Path, phase: Phase) -> LayerParameter {
    let text = format!(
        r#"name: "data" type: "Data" top: "data" top: "label"
        data_param {{ source: "{}" batch_size: 3 prefetch: 2 }}
        transform_param {{ crop_size: 2 mirror: true }}"#,
        db.display()
    );
    let mut p: LayerParameter = crema::proto::text::parse(&text, "test").unwrap();
    p.set_phase(phase);
    p
}

#[test]
fn prefetched_batches_equal_a_synchronous_read() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    standard_db(&db, 7);
    crema::rng::set_random_seed(37);
    let (mut loader, shape) =
        DbBatchLoader::from_param(&layer_param(&db, Phase::TRAIN), true).unwrap();
    assert_eq!(shape, vec![3, 1, 2, 2]);
    let sync: Vec<Batch> = (0..6)
        .map(|_| {
            let mut b = Batch::default();
            loader.load(&mut b).unwrap();
            b
        })
        .collect();
    // Random crops and mirrors really happen, so equality means the same draws.
    let first_items: std::collections::BTreeSet<Vec<i32>> = sync
        .iter()
        .map(|b| b.data[..4].iter().map(|&v| v as i32).collect())
        .collect();
    assert!(first_items.len() > 1);

    crema::rng::set_random_seed(37);
    let mut p = NetParameter::new();
    p.set_name("d".into());
    p.state.mut_or_insert_default().set_phase(Phase::TRAIN);
    p.layer.push(layer_param(&db, Phase::TRAIN));
    let mut n = Net::from_param(&p).unwrap();
    for (i, b) in sync.iter().enumerate() {
        n.forward().unwrap();
        let (shape, data, labels) = tops(&n);
        assert_eq!(shape, b.shape, "batch {i}");
        assert_eq!(data, b.data, "batch {i}");
        assert_eq!(labels, b.label, "batch {i}");
    }
}

#[test]
fn a_corrupt_record_is_an_error_naming_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut items: Vec<_> = (0..8)
        .map(|i| {
            (
                index_key(i),
                crema::proto::binary::encode(&item(i)).unwrap(),
            )
        })
        .collect();
    items[5].1 = vec![0x0a, 0xff, 0xff, 0xff, 0x0f]; // a length running past the end
    write_db(&db, &items);
    let mut n = net(&db, "TEST", "");
    n.forward().unwrap();
    let err = n.forward().unwrap_err().to_string();
    assert!(err.contains("00000005") && err.contains("data"), "{err}");
}

#[test]
fn an_encoded_record_that_does_not_decode_names_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let good = Image {
        height: 2,
        width: 3,
        channels: 1,
        data: vec![1, 2, 3, 4, 5, 6],
    };
    let mut enc = Datum::new();
    enc.set_encoded(true);
    enc.set_data(good.encode("png").unwrap());
    let mut bad = enc.clone();
    bad.set_data(b"\xff\xd8\xff\xe0 truncated jpeg".to_vec());
    let items = vec![
        (
            image_key(0, "a.png"),
            crema::proto::binary::encode(&enc).unwrap(),
        ),
        (
            image_key(1, "broken.jpg"),
            crema::proto::binary::encode(&bad).unwrap(),
        ),
    ];
    write_db(&db, &items);
    let text = format!(
        r#"name: "d" layer {{ name: "data" type: "Data" top: "data"
           data_param {{ source: "{}" batch_size: 2 }} }}"#,
        db.display()
    );
    let p: NetParameter = crema::proto::text::parse(&text, "test").unwrap();
    let mut n = Net::from_param(&p).unwrap();
    let err = n.forward().unwrap_err().to_string();
    assert!(
        err.contains("00000001_broken.jpg") && err.contains("decode"),
        "{err}"
    );
}

#[test]
fn missing_database_and_leveldb_are_setup_errors() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"name: "d" layer {{ name: "data" type: "Data" top: "data"
           data_param {{ source: "{}/nothing_here" batch_size: 2 }} }}"#,
        dir.path().display()
    );
    let p: NetParameter = crema::proto::text::parse(&text, "test").unwrap();
    let err = Net::from_param(&p).err().unwrap().to_string();
    assert!(err.contains("nothing_here"), "{err}");
    let p: NetParameter = crema::proto::text::parse(
        &text.replace("batch_size: 2", "batch_size: 2 backend: LEVELDB"),
        "t",
    )
    .unwrap();
    let err = Net::from_param(&p).err().unwrap().to_string();
    assert!(
        err.contains("nothing_here") && err.contains("leveldb") && err.contains("no such database"),
        "{err}"
    );
}

#[test]
fn memory_data_cycles_through_reset_arrays() {
    let text = r#"name: "m" layer { name: "mem" type: "MemoryData" top: "data" top: "label"
        memory_data_param { batch_size: 2 channels: 1 height: 1 width: 2 } }"#;
    let p: NetParameter = crema::proto::text::parse(text, "test").unwrap();
    let mut n = Net::from_param(&p).unwrap();
    assert!(n.forward().unwrap_err().to_string().contains("reset"));
    let i = n.layer_index("mem").unwrap();
    let mem = n.layers_mut()[i]
        .as_any_mut()
        .and_then(|l| l.downcast_mut::<MemoryDataLayer>())
        .unwrap();
    assert!(mem
        .reset(vec![0.0; 6], vec![0.0; 3], 3)
        .unwrap_err()
        .to_string()
        .contains("multiple of batch size"));
    mem.reset(
        (0..8).map(|v| v as f32).collect(),
        vec![10.0, 11.0, 12.0, 13.0],
        4,
    )
    .unwrap();
    for (data, labels) in [
        ([0., 1., 2., 3.], [10., 11.]),
        ([4., 5., 6., 7.], [12., 13.]),
        ([0., 1., 2., 3.], [10., 11.]),
    ] {
        n.forward().unwrap();
        assert_eq!(n.blob_by_name("data").unwrap().borrow().data(), &data);
        assert_eq!(n.blob_by_name("label").unwrap().borrow().data(), &labels);
    }
    assert_eq!(
        n.blob_by_name("label").unwrap().borrow().shape(),
        &[2, 1, 1, 1]
    );
}

#[test]
fn memory_data_transforms_added_datums() {
    let text = r#"name: "m" layer { name: "mem" type: "MemoryData" top: "data" top: "label"
        transform_param { scale: 0.1 }
        memory_data_param { batch_size: 2 channels: 1 height: 2 width: 3 } }"#;
    let p: NetParameter = crema::proto::text::parse(text, "test").unwrap();
    let mut n = Net::from_param(&p).unwrap();
    let i = n.layer_index("mem").unwrap();
    let mem = n.layers_mut()[i]
        .as_any_mut()
        .and_then(|l| l.downcast_mut::<MemoryDataLayer>())
        .unwrap();
    mem.add_datum_vector(&[item(1), item(2)]).unwrap();
    assert!(
        mem.add_datum_vector(&[item(1), item(2)]).is_err(),
        "unconsumed data is refused"
    );
    n.forward().unwrap();
    let data = n.blob_by_name("data").unwrap().borrow().data().to_vec();
    let want: Vec<f32> = [1usize, 2]
        .iter()
        .flat_map(|&i| (0..6).map(move |p| (10 * i + p) as f32 * 0.1))
        .collect();
    for (a, b) in data.iter().zip(&want) {
        assert!((a - b).abs() < 1e-6, "{data:?} vs {want:?}");
    }
    assert_eq!(
        n.blob_by_name("label").unwrap().borrow().data(),
        &[1.0, 2.0]
    );
}

#[test]
fn legacy_transform_fields_in_data_param_still_apply() {
    // V1 prototxts put scale/crop_size in data_param; the net upgrades them
    // into transform_param as Caffe does. (In a current-format `layer`
    // Caffe ignores them, and so does crema, with a warning.)
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    standard_db(&db, 4);
    let text = format!(
        r#"name: "d" state {{ phase: TEST }}
        layers {{ name: "data" type: DATA top: "data" top: "label"
                 data_param {{ source: "{}" backend: LMDB batch_size: 4 scale: 0.5 crop_size: 2 }} }}"#,
        db.display()
    );
    let p: NetParameter = crema::proto::text::parse(&text, "test").unwrap();
    let mut n = Net::from_param(&p).unwrap();
    n.forward().unwrap();
    let (shape, data, _) = tops(&n);
    assert_eq!(shape, vec![4, 1, 2, 2]);
    assert_eq!(&data[..4], &[0.0, 0.5, 1.5, 2.0]);
}
