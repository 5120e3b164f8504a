//! Image::resize (ImageData's and convert_imageset's resizing) against
//! OpenCV's cv2.resize INTER_LINEAR, values from fixtures/resize_opencv.py:
//! a synthetic colour and gray image, and a crop of a real photo (cat.jpg)
//! stored losslessly so both sides resize identical pixels. Every value must
//! agree within one grey level (OpenCV's own scalar and vector paths round
//! differently); the counts of values off by one are printed.
use crema::data::{ColorMode, Image};

const FIXTURE: &str = include_str!("fixtures/resize_opencv.txt");
const PHOTO: &[u8] = include_bytes!("fixtures/resize_photo.png");

/// A fixture line: (h, w, c, stride, values).
fn line(key: &str) -> (usize, usize, usize, usize, Vec<u8>) {
    let l = FIXTURE
        .lines()
        .find(|l| l.split(' ').next() == Some(key))
        .unwrap_or_else(|| panic!("fixture {key} missing"));
    let nums: Vec<usize> = l.split(' ').skip(1).map(|v| v.parse().unwrap()).collect();
    let vals = nums[4..].iter().map(|&v| v as u8).collect();
    (nums[0], nums[1], nums[2], nums[3], vals)
}

fn source(key: &str) -> Image {
    let (height, width, channels, _, data) = line(key);
    Image {
        height,
        width,
        channels,
        data,
    }
}

/// Resizes `src` to the size in `key` and compares within one grey level;
/// returns how many values differ at all.
fn check(src: &Image, key: &str) -> usize {
    let (h, w, c, stride, want) = line(key);
    let got = src.resize(h, w);
    assert_eq!((got.height, got.width, got.channels), (h, w, c), "{key}");
    let sampled: Vec<u8> = got.data.iter().step_by(stride).copied().collect();
    assert_eq!(sampled.len(), want.len(), "{key}");
    let mut off = 0;
    for (i, (&g, &e)) in sampled.iter().zip(&want).enumerate() {
        let d = (g as i32 - e as i32).abs();
        assert!(
            d <= 1,
            "{key}: value {} is {g}, OpenCV gives {e}",
            i * stride
        );
        off += usize::from(d > 0);
    }
    off
}

#[test]
fn synthetic_images_resize_as_opencv_within_one_level() {
    let syn = source("syn_src");
    let gray = source("gray_src");
    let mut off = 0;
    for key in [
        "syn_13x17",
        "syn_14x18",
        "syn_4x5",
        "syn_3x4",
        "syn_7x20",
        "syn_20x3",
        "syn_1x1",
    ] {
        off += check(&syn, key);
    }
    for key in ["gray_4x5", "gray_16x20", "gray_5x3", "gray_11x13"] {
        off += check(&gray, key);
    }
    eprintln!("values one level off OpenCV: {off}");
}

#[test]
fn photo_crop_resizes_as_opencv_within_one_level() {
    let photo = Image::decode(PHOTO, ColorMode::Color).unwrap();
    assert_eq!((photo.height, photo.width, photo.channels), (60, 80, 3));
    let mut off = 0;
    for key in [
        "photo_256x256",
        "photo_227x227",
        "photo_30x40",
        "photo_23x37",
    ] {
        off += check(&photo, key);
    }
    eprintln!("values one level off OpenCV: {off}");
}
