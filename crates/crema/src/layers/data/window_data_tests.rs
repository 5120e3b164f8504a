//! WindowData: window-file parsing, and batches from real JPEGs in
//! shared/data/images checked against the pixels read directly.
use std::path::{Path, PathBuf};

use crema_proto::caffe::LayerParameter;

use super::WindowFile;
use crate::blob::{Blob, SharedBlob};
use crate::data::{ColorMode, Image};
use crate::layers::create_layer;

const FILE: &str = "# 0\ncat.jpg\n3\n360\n480\n3\n3 0.9 100 50 107 57\n5 0.1 0 0 7 7\n7 0.45 1 1 9 9\n# 1\nfish-bike.jpg\n3 10 10\n1\n2 0.5 0 0 3 3\n";

#[test]
fn window_file_sorts_windows_by_overlap() {
    let f = WindowFile::parse(FILE, "w.txt", "/root/", 0.5, 0.3).unwrap();
    assert_eq!(f.images.len(), 2);
    assert_eq!(f.images[0].path, "/root/cat.jpg");
    assert_eq!(f.images[1].dims, [3, 10, 10]);
    // fg: overlap >= 0.5 keeps its label; bg: < 0.3 gets label 0; 0.45 dropped.
    let fg: Vec<(usize, i32, i32)> = f.fg.iter().map(|w| (w.image, w.label, w.x1)).collect();
    assert_eq!(fg, vec![(0, 3, 100), (1, 2, 0)]);
    assert_eq!(f.bg.len(), 1);
    assert_eq!((f.bg[0].label, f.bg[0].overlap, f.bg[0].x2), (0, 0.0, 7));
}

#[test]
fn window_file_errors_say_what_and_where() {
    let cases = [
        ("", "empty"),
        ("0\ncat.jpg 3 2 2 0\n", "expected '#'"),
        ("# 1\ncat.jpg 3 2 2 0\n", "image_index 1"),
        (
            "# 0\ncat.jpg 3 2 2 1\n0 0.9 0 0 1 1\n",
            "needs a positive label",
        ),
        ("# 0\ncat.jpg 3 2 2 1\n1 x 0 0 1 1\n", "overlap 'x'"),
        ("# 0\ncat.jpg 3 2 2 2\n1 0.9 0 0 1 1\n", "file ends"),
        ("# 0\ncat.jpg 3 2 2 1\n1 0.9 5 0 1 1\n", "do not make a box"),
    ];
    for (text, want) in cases {
        let msg = WindowFile::parse(text, "w.txt", "", 0.5, 0.5)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains(want) && msg.contains("w.txt"),
            "{text:?}: {msg}"
        );
    }
}

/// shared/data/images, or None (the caller prints the skip).
fn images() -> Option<PathBuf> {
    let dir = crema_proto::testdata::shared_data()?.join("images");
    dir.join("cat.jpg").is_file().then_some(dir)
}

/// Writes `text` as a window file in a fresh temp folder.
fn window_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("crema_window_data_{}_{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("windows.txt");
    std::fs::write(&path, text).unwrap();
    path
}

fn layer_param(
    source: &Path,
    root: &Path,
    edit: impl FnOnce(&mut LayerParameter),
) -> LayerParameter {
    let mut p = LayerParameter::new();
    p.set_name("windows".into());
    p.set_type("WindowData".into());
    let wp = p.window_data_param.mut_or_insert_default();
    wp.set_source(source.to_string_lossy().into_owned());
    wp.set_root_folder(format!("{}/", root.display()));
    wp.set_batch_size(4);
    wp.set_fg_threshold(0.5);
    wp.set_bg_threshold(0.3);
    edit(&mut p);
    p
}

/// One batch: data and labels.
fn forward(p: &LayerParameter, seed: u64) -> (Vec<usize>, Vec<f32>, Vec<f32>) {
    crate::rng::set_random_seed(seed);
    let mut l = create_layer(p).unwrap();
    let top: Vec<SharedBlob> = vec![Blob::shared(&[]), Blob::shared(&[])];
    l.setup(&[], &top).unwrap();
    l.reshape(&[], &top).unwrap();
    l.forward(&[], &top).unwrap();
    let d = top[0].borrow();
    let result = (
        d.shape().to_vec(),
        d.data().to_vec(),
        top[1].borrow().data().to_vec(),
    );
    result
}

/// `(pixel − mean[c]) · scale` over the h × w box at (x, y) of `img`, CHW.
fn expected(
    img: &Image,
    x: usize,
    y: usize,
    size: usize,
    mean: [f32; 3],
    scale: f32,
    mirror: bool,
) -> Vec<f32> {
    let mut out = Vec::new();
    for (c, m) in mean.iter().enumerate() {
        for h in 0..size {
            for w in 0..size {
                let sw = if mirror { size - 1 - w } else { w };
                let px = img.data[((y + h) * img.width + x + sw) * 3 + c] as f32;
                out.push((px - m) * scale);
            }
        }
    }
    out
}

#[test]
fn window_data_batches_from_real_jpegs() {
    let Some(root) = images() else {
        eprintln!("skipped: shared/data/images not found");
        return;
    };
    let cat = Image::read(&root.join("cat.jpg"), ColorMode::Color).unwrap();
    let text = format!(
        "# 0\ncat.jpg\n3\n{}\n{}\n3\n3 0.9 100 50 107 57\n5 0.1 0 0 7 7\n7 0.45 1 1 9 9\n",
        cat.height, cat.width
    );
    let src = window_file("plain", &text);
    for cache in [false, true] {
        let p = layer_param(&src, &root, |p| {
            let wp = p.window_data_param.mut_or_insert_default();
            wp.set_fg_fraction(0.5);
            wp.set_scale(0.5);
            wp.set_cache_images(cache);
            let tp = p.transform_param.mut_or_insert_default();
            tp.set_crop_size(8);
            tp.mean_value = vec![10.0, 20.0, 30.0];
        });
        let (shape, data, label) = forward(&p, 5);
        assert_eq!(shape, vec![4, 3, 8, 8]);
        // Two background windows (label forced to 0), then two foreground.
        assert_eq!(label, vec![0.0, 0.0, 3.0, 3.0]);
        let bg = expected(&cat, 0, 0, 8, [10.0, 20.0, 30.0], 0.5, false);
        let fg = expected(&cat, 100, 50, 8, [10.0, 20.0, 30.0], 0.5, false);
        for (i, want) in [&bg, &bg, &fg, &fg].iter().enumerate() {
            assert_eq!(
                &data[i * 192..(i + 1) * 192],
                want.as_slice(),
                "item {i}, cache {cache}"
            );
        }
    }
}

#[test]
fn window_data_mirror_flips_some_windows() {
    let Some(root) = images() else {
        eprintln!("skipped: shared/data/images not found");
        return;
    };
    let cat = Image::read(&root.join("cat.jpg"), ColorMode::Color).unwrap();
    let src = window_file(
        "mirror",
        &format!(
            "# 0\ncat.jpg\n3 {} {}\n1\n4 1.0 200 100 207 107\n",
            cat.height, cat.width
        ),
    );
    let p = layer_param(&src, &root, |p| {
        let wp = p.window_data_param.mut_or_insert_default();
        wp.set_fg_fraction(1.0);
        wp.set_batch_size(16);
        let tp = p.transform_param.mut_or_insert_default();
        tp.set_crop_size(8);
        tp.set_mirror(true);
    });
    let (_, data, label) = forward(&p, 11);
    assert_eq!(label, vec![4.0; 16]);
    let plain = expected(&cat, 200, 100, 8, [0.0; 3], 1.0, false);
    let flipped = expected(&cat, 200, 100, 8, [0.0; 3], 1.0, true);
    assert_ne!(plain, flipped);
    let flips: Vec<bool> = data
        .chunks_exact(192)
        .map(|item| {
            assert!(item == plain.as_slice() || item == flipped.as_slice());
            item == flipped.as_slice()
        })
        .collect();
    assert!(
        flips.iter().any(|&f| f) && flips.iter().any(|&f| !f),
        "{flips:?}"
    );
}

#[test]
fn window_data_context_pad_leaves_zero_border_outside_the_image() {
    let Some(root) = images() else {
        eprintln!("skipped: shared/data/images not found");
        return;
    };
    let cat = Image::read(&root.join("cat.jpg"), ColorMode::Color).unwrap();
    // An 8x8 window at the corner, context_pad 2 at crop 12: the grown
    // region is (-2, -2)..(10, 10), 13 pixels, so 2 columns and rows
    // (2·12/13 rounded) fall outside the image and stay 0; 11 of 13 pixels
    // warp to 10. Mirrored, the empty columns move to the right.
    let src = window_file(
        "pad",
        &format!(
            "# 0\ncat.jpg\n3 {} {}\n1\n1 0.8 0 0 7 7\n",
            cat.height, cat.width
        ),
    );
    let p = layer_param(&src, &root, |p| {
        let wp = p.window_data_param.mut_or_insert_default();
        wp.set_fg_fraction(1.0);
        wp.set_batch_size(16);
        wp.set_context_pad(2);
        let tp = p.transform_param.mut_or_insert_default();
        tp.set_crop_size(12);
        tp.set_mirror(true);
    });
    let (shape, data, _) = forward(&p, 3);
    assert_eq!(shape, vec![16, 3, 12, 12]);
    let mut seen = [false, false];
    for item in data.chunks_exact(3 * 144) {
        let at = |c: usize, h: usize, w: usize| item[(c * 12 + h) * 12 + w];
        let mirrored = (0..12).all(|h| at(0, h, 11) == 0.0 && at(1, h, 10) == 0.0);
        seen[mirrored as usize] = true;
        let zero_cols: Vec<usize> = if mirrored { vec![10, 11] } else { vec![0, 1] };
        for c in 0..3 {
            for h in 0..12 {
                for w in 0..12 {
                    let outside = h < 2 || zero_cols.contains(&w);
                    if outside {
                        assert_eq!(at(c, h, w), 0.0, "c{c} h{h} w{w} mirrored {mirrored}");
                    }
                }
            }
        }
        let inside: f32 = (2..12)
            .flat_map(|h| (0..10).map(move |w| (h, w)))
            .map(|(h, w)| at(1, h, w + if mirrored { 0 } else { 2 }))
            .sum();
        assert!(inside > 0.0, "the image part is empty");
    }
    assert!(
        seen[0] && seen[1],
        "expected plain and mirrored items: {seen:?}"
    );
}

#[test]
fn window_data_square_mode_and_bad_settings() {
    let Some(root) = images() else {
        eprintln!("skipped: shared/data/images not found");
        return;
    };
    let src = window_file(
        "square",
        "# 0\ncat.jpg\n3 360 480\n2\n1 0.8 100 50 115 57\n0 0.0 0 0 20 20\n",
    );
    let p = layer_param(&src, &root, |p| {
        p.window_data_param
            .mut_or_insert_default()
            .set_crop_mode("square".into());
        p.transform_param.mut_or_insert_default().set_crop_size(8);
    });
    let (shape, data, label) = forward(&p, 1);
    assert_eq!(shape, vec![4, 3, 8, 8]);
    assert_eq!(label, vec![0.0, 0.0, 0.0, 1.0]);
    assert!(data.iter().any(|&v| v != 0.0));
    let refuse = |edit: &dyn Fn(&mut LayerParameter), want: &str| {
        let mut p = p.clone();
        edit(&mut p);
        let mut l = create_layer(&p).unwrap();
        let top = vec![Blob::shared(&[]), Blob::shared(&[])];
        let Err(e) = l.setup(&[], &top) else {
            panic!("setup should refuse: {want}");
        };
        let msg = e.to_string();
        assert!(msg.contains(want), "{msg}");
    };
    refuse(
        &|p| p.transform_param.mut_or_insert_default().set_crop_size(0),
        "crop_size",
    );
    refuse(
        &|p| {
            p.window_data_param
                .mut_or_insert_default()
                .set_crop_mode("stretch".into())
        },
        "crop_mode",
    );
    refuse(
        &|p| {
            p.window_data_param
                .mut_or_insert_default()
                .set_source("/nonexistent/w.txt".into())
        },
        "Failed to open window file",
    );
    refuse(
        &|p| p.transform_param.mut_or_insert_default().mean_value = vec![1.0, 2.0],
        "mean_value",
    );
    refuse(
        &|p| {
            p.window_data_param
                .mut_or_insert_default()
                .set_fg_fraction(1.5)
        },
        "fg_fraction",
    );
}

#[test]
fn window_data_mean_file_is_centred_on_the_crop() {
    let Some(root) = images() else {
        eprintln!("skipped: shared/data/images not found");
        return;
    };
    let cat = Image::read(&root.join("cat.jpg"), ColorMode::Color).unwrap();
    // A 3x12x10 mean image whose values name their position: the 8x8 crop
    // sits (10 − 8) / 2 = 1 in on both axes, Caffe's offset by the width.
    let mut mean = Blob::new(&[1, 3, 12, 10]);
    for (i, v) in mean.data_mut().iter_mut().enumerate() {
        *v = (i / 120) as f32 * 100.0 + ((i / 10) % 12) as f32 * 10.0 + (i % 10) as f32;
    }
    let src = window_file("mean", "# 0\ncat.jpg\n3 360 480\n1\n2 1.0 100 50 107 57\n");
    let mean_path = src.with_file_name("mean.binaryproto");
    std::fs::write(
        &mean_path,
        crema_proto::binary::encode(&mean.to_proto(false)).unwrap(),
    )
    .unwrap();
    let p = layer_param(&src, &root, |p| {
        let wp = p.window_data_param.mut_or_insert_default();
        wp.set_fg_fraction(1.0);
        wp.set_batch_size(1);
        let tp = p.transform_param.mut_or_insert_default();
        tp.set_crop_size(8);
        tp.set_mean_file(mean_path.to_string_lossy().into_owned());
    });
    let (_, data, _) = forward(&p, 2);
    for c in 0..3 {
        for h in 0..8 {
            for w in 0..8 {
                let px = cat.data[((50 + h) * cat.width + 100 + w) * 3 + c] as f32;
                let m = c as f32 * 100.0 + (h + 1) as f32 * 10.0 + (w + 1) as f32;
                assert_eq!(data[(c * 8 + h) * 8 + w], px - m, "c{c} h{h} w{w}");
            }
        }
    }
}
