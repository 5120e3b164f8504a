//! ImageData on the real photos in shared/data/images: list order, labels,
//! resizing, gray, wrap-around, per-epoch shuffling with a fixed seed, the
//! same pixels as a Data layer over a database of the same images, and
//! errors that name the file.
use std::path::{Path, PathBuf};

use crema::data::{image_key, read_image_to_datum, ColorMode, Image, LmdbWriter};
use crema::proto::caffe::NetParameter;
use crema::Net;
use crema_proto::testdata::shared_data;

const FILES: [(&str, i32); 3] = [
    ("cat.jpg", 281),
    ("fish-bike.jpg", 671),
    ("cat_gray.jpg", 282),
];

fn setup() -> Option<(PathBuf, tempfile::TempDir, PathBuf)> {
    let Some(data) = shared_data() else {
        eprintln!("skipped: shared/data not found");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("list.txt");
    let text: String = FILES.iter().map(|(f, l)| format!("{f} {l}\n")).collect();
    std::fs::write(&list, text).unwrap();
    Some((data.join("images"), dir, list))
}

fn image_net(images: &Path, list: &Path, params: &str, extra: &str) -> Net {
    let text = format!(
        r#"name: "i" state {{ phase: TEST }}
        layer {{ name: "img" type: "ImageData" top: "data" top: "label"
                image_data_param {{ source: "{}" root_folder: "{}/" batch_size: 2 {params} }} {extra} }}"#,
        list.display(),
        images.display()
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

/// The CHW values of `file` read as the layer reads it.
fn pixels(images: &Path, file: &str, mode: ColorMode, h: usize, w: usize) -> Vec<f32> {
    let img = Image::read(&images.join(file), mode).unwrap().resize(h, w);
    img.to_datum(0).data().iter().map(|&b| b as f32).collect()
}

#[test]
fn image_data_reads_the_list_in_order_resized_and_wraps() {
    let Some((images, _dir, list)) = setup() else {
        return;
    };
    let mut net = image_net(&images, &list, "new_height: 24 new_width: 32", "");
    assert_eq!(tops(&net).0, vec![2, 3, 24, 32]);
    let order = [[0, 1], [2, 0], [1, 2]];
    for pair in order {
        net.forward().unwrap();
        let (shape, data, labels) = tops(&net);
        assert_eq!(shape, vec![2, 3, 24, 32]);
        let want: Vec<f32> = pair
            .iter()
            .flat_map(|&i| pixels(&images, FILES[i].0, ColorMode::Color, 24, 32))
            .collect();
        assert_eq!(data, want, "{pair:?}");
        assert_eq!(labels, pair.map(|i| FILES[i].1 as f32));
    }
}

#[test]
fn image_data_gray_gives_one_channel() {
    let Some((images, _dir, list)) = setup() else {
        return;
    };
    let mut net = image_net(
        &images,
        &list,
        "new_height: 8 new_width: 8 is_color: false",
        "",
    );
    net.forward().unwrap();
    let (shape, data, _) = tops(&net);
    assert_eq!(shape, vec![2, 1, 8, 8]);
    assert_eq!(
        &data[..64],
        &pixels(&images, "cat.jpg", ColorMode::Gray, 8, 8)[..]
    );
}

#[test]
fn image_data_matches_a_data_layer_over_the_same_images() {
    let Some((images, dir, list)) = setup() else {
        return;
    };
    let transform = "transform_param { crop_size: 16 mean_value: 104 mean_value: 117 mean_value: 123 scale: 0.5 }";
    let mut via_list = image_net(&images, &list, "new_height: 24 new_width: 32", transform);
    // The databases convert_imageset would write for this list: raw pixels,
    // and PNG-encoded (lossless, decoded by the Data layer).
    let mut via_dbs: Vec<Net> = ["", "png"]
        .iter()
        .map(|encoding| {
            let db = dir.path().join(format!("db{encoding}"));
            let mut w = LmdbWriter::create(&db).unwrap();
            for (i, (f, l)) in FILES.iter().enumerate() {
                let d = read_image_to_datum(&images.join(f), *l, 24, 32, true, encoding).unwrap();
                assert_eq!(d.encoded(), !encoding.is_empty());
                w.put(image_key(i, f), crema::proto::binary::encode(&d).unwrap());
            }
            w.commit().unwrap();
            let text = format!(
                r#"name: "d" state {{ phase: TEST }}
                layer {{ name: "d" type: "Data" top: "data" top: "label"
                        data_param {{ source: "{}" backend: LMDB batch_size: 2 }} {transform} }}"#,
                db.display()
            );
            let p: NetParameter = crema::proto::text::parse(&text, "test").unwrap();
            Net::from_param(&p).unwrap()
        })
        .collect();
    for _ in 0..3 {
        via_list.forward().unwrap();
        for via_db in via_dbs.iter_mut() {
            via_db.forward().unwrap();
            assert_eq!(tops(&via_list), tops(via_db));
        }
    }
    assert_eq!(tops(&via_list).0, vec![2, 3, 16, 16]);
}

#[test]
fn image_data_shuffles_each_epoch_and_a_seed_fixes_the_order() {
    let Some((images, _dir, list)) = setup() else {
        return;
    };
    let labels_of = |seed: u64| -> Vec<f32> {
        crema::rng::set_random_seed(seed);
        let mut net = image_net(
            &images,
            &list,
            "new_height: 4 new_width: 4 shuffle: true",
            "",
        );
        (0..6)
            .flat_map(|_| {
                net.forward().unwrap();
                tops(&net).2
            })
            .collect()
    };
    let a = labels_of(5);
    assert_eq!(a, labels_of(5));
    // Every epoch of 3 is a permutation of the three labels.
    for epoch in a.chunks(3) {
        let mut e = epoch.to_vec();
        e.sort_by(|x, y| x.partial_cmp(y).unwrap());
        assert_eq!(e, vec![281.0, 282.0, 671.0]);
    }
    let orders: std::collections::BTreeSet<Vec<i32>> = (0..8)
        .flat_map(|s| {
            labels_of(s)
                .chunks(3)
                .map(|c| c.iter().map(|&v| v as i32).collect())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(orders.len() > 2, "shuffling varies the order: {orders:?}");
}

#[test]
fn image_data_errors_name_the_file() {
    let Some((images, dir, _)) = setup() else {
        return;
    };
    let list = dir.path().join("bad.txt");
    std::fs::write(&list, "cat.jpg 1\nnot_there.jpg 2\n").unwrap();
    let mut net = image_net(&images, &list, "new_height: 4 new_width: 4", "");
    let err = net.forward().unwrap_err().to_string();
    assert!(
        err.contains("not_there.jpg") && err.contains("img"),
        "{err}"
    );
    let garbage = dir.path().join("garbage.jpg");
    std::fs::write(&garbage, b"\xff\xd8\xff\xe0 not a jpeg").unwrap();
    std::fs::write(&list, format!("{} 0\n", garbage.display())).unwrap();
    let text = format!(
        r#"name: "i" layer {{ name: "img" type: "ImageData" top: "data" top: "label"
           image_data_param {{ source: "{}" batch_size: 1 }} }}"#,
        list.display()
    );
    let p: NetParameter = crema::proto::text::parse(&text, "test").unwrap();
    let err = Net::from_param(&p).err().unwrap().to_string();
    assert!(
        err.contains("garbage.jpg") && err.contains("decode"),
        "{err}"
    );
    let p: NetParameter = crema::proto::text::parse(
        &text.replace("batch_size: 1", "batch_size: 1 new_height: 4"),
        "t",
    )
    .unwrap();
    let err = Net::from_param(&p).err().unwrap().to_string();
    assert!(err.contains("new_height and new_width"), "{err}");
}
