use super::*;
use crema_proto::caffe::BlobProto;

/// 2 channels of 3x4 with value c*100 + h*10 + w, so every output value says
/// where it came from.
fn datum() -> Datum {
    let mut d = Datum::new();
    d.set_channels(2);
    d.set_height(3);
    d.set_width(4);
    let mut v = Vec::new();
    for c in 0..2u8 {
        for h in 0..3u8 {
            for w in 0..4u8 {
                v.push(c * 100 + h * 10 + w);
            }
        }
    }
    d.set_data(v);
    d
}

fn param(f: impl FnOnce(&mut TransformationParameter)) -> TransformationParameter {
    let mut p = TransformationParameter::new();
    f(&mut p);
    p
}

fn run(t: &mut DataTransformer, d: &Datum) -> Vec<f32> {
    let shape = t.infer_shape(d).unwrap();
    let mut out = vec![0.0; shape.iter().product()];
    t.transform(d, &mut out).unwrap();
    out
}

/// The crop of `datum()` at (h_off, w_off), optionally mirrored.
fn crop_at(h_off: usize, w_off: usize, size: usize, mirror: bool) -> Vec<f32> {
    let mut v = Vec::new();
    for c in 0..2 {
        for h in 0..size {
            for w in 0..size {
                let w = if mirror { size - 1 - w } else { w };
                v.push((c * 100 + (h_off + h) * 10 + w_off + w) as f32);
            }
        }
    }
    v
}

#[test]
fn no_params_copies_pixels() {
    let mut t = DataTransformer::new(&TransformationParameter::new(), Phase::TRAIN).unwrap();
    let out = run(&mut t, &datum());
    assert_eq!(out.len(), 24);
    assert_eq!(&out[..5], &[0.0, 1.0, 2.0, 3.0, 10.0]);
    assert_eq!(out[12], 100.0);
}

#[test]
fn test_phase_crops_the_centre() {
    let mut t = DataTransformer::new(&param(|p| p.set_crop_size(2)), Phase::TEST).unwrap();
    assert_eq!(t.infer_shape(&datum()).unwrap(), vec![1, 2, 2, 2]);
    // h_off = (3-2)/2 = 0, w_off = (4-2)/2 = 1.
    assert_eq!(
        run(&mut t, &datum()),
        vec![1.0, 2.0, 11.0, 12.0, 101.0, 102.0, 111.0, 112.0]
    );
}

#[test]
fn train_phase_crops_at_every_offset_and_a_seed_fixes_them() {
    crate::rng::set_random_seed(1701);
    let mut t = DataTransformer::new(&param(|p| p.set_crop_size(2)), Phase::TRAIN).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    let mut first = Vec::new();
    for _ in 0..200 {
        let out = run(&mut t, &datum());
        let hit = (0..2)
            .flat_map(|h| (0..3).map(move |w| (h, w)))
            .find(|&(h, w)| crop_at(h, w, 2, false) == out);
        seen.insert(hit.expect("output is a crop of the input"));
        first.push(out);
    }
    assert_eq!(seen.len(), 6, "all 2x3 offsets are drawn: {seen:?}");
    crate::rng::set_random_seed(1701);
    let mut again = DataTransformer::new(&param(|p| p.set_crop_size(2)), Phase::TRAIN).unwrap();
    let replay: Vec<_> = (0..200).map(|_| run(&mut again, &datum())).collect();
    assert_eq!(first, replay);
}

#[test]
fn mirror_flips_rows_on_a_coin_flip() {
    let mut t = DataTransformer::new(&param(|p| p.set_mirror(true)), Phase::TEST).unwrap();
    let plain: Vec<f32> = datum().data().iter().map(|&b| b as f32).collect();
    let flipped: Vec<f32> = plain
        .chunks(4)
        .flat_map(|r| r.iter().rev().copied())
        .collect();
    assert_eq!(&flipped[..4], &[3.0, 2.0, 1.0, 0.0]);
    let (mut n_plain, mut n_flip) = (0, 0);
    for _ in 0..100 {
        let out = run(&mut t, &datum());
        if out == plain {
            n_plain += 1;
        } else {
            assert_eq!(out, flipped);
            n_flip += 1;
        }
    }
    assert!(
        n_plain > 20 && n_flip > 20,
        "{n_plain} plain, {n_flip} flipped"
    );
}

#[test]
fn centre_crop_with_mirror_reverses_each_cropped_row() {
    let mut t = DataTransformer::new(
        &param(|p| {
            p.set_crop_size(2);
            p.set_mirror(true)
        }),
        Phase::TEST,
    )
    .unwrap();
    let outs: std::collections::BTreeSet<Vec<i32>> = (0..50)
        .map(|_| run(&mut t, &datum()).iter().map(|&v| v as i32).collect())
        .collect();
    let want: std::collections::BTreeSet<Vec<i32>> = [false, true]
        .iter()
        .map(|&m| crop_at(0, 1, 2, m).iter().map(|&v| v as i32).collect())
        .collect();
    assert_eq!(outs, want);
}

#[test]
fn mean_values_are_subtracted_before_scaling() {
    let p = param(|p| {
        p.mean_value = vec![1.0, 2.0];
        p.set_scale(0.5);
    });
    let mut t = DataTransformer::new(&p, Phase::TEST).unwrap();
    let out = run(&mut t, &datum());
    // (3 - 1) * 0.5 = 1; (100 - 2) * 0.5 = 49; (123 - 2) * 0.5 = 60.5.
    assert_eq!(out[3], 1.0);
    assert_eq!(out[12], 49.0);
    assert_eq!(out[23], 60.5);
    // One value serves every channel.
    let mut one = DataTransformer::new(&param(|p| p.mean_value = vec![10.0]), Phase::TEST).unwrap();
    let out = run(&mut one, &datum());
    assert_eq!((out[0], out[12]), (-10.0, 90.0));
    // Three values for two channels is refused.
    let mut bad =
        DataTransformer::new(&param(|p| p.mean_value = vec![1.0, 2.0, 3.0]), Phase::TEST).unwrap();
    let mut buf = vec![0.0; 24];
    let err = bad.transform(&datum(), &mut buf).unwrap_err();
    assert!(err.contains("1 mean_value or as many as channels"), "{err}");
}

fn write_mean(dir: &Path, dims: [i32; 4], values: Vec<f32>) -> std::path::PathBuf {
    let mut b = BlobProto::new();
    b.set_num(dims[0]);
    b.set_channels(dims[1]);
    b.set_height(dims[2]);
    b.set_width(dims[3]);
    b.data = values;
    let path = dir.join("mean.binaryproto");
    std::fs::write(&path, crema_proto::binary::encode(&b).unwrap()).unwrap();
    path
}

#[test]
fn mean_file_is_per_pixel_of_the_uncropped_image() {
    let dir = tempfile::tempdir().unwrap();
    // Mean value at flat index i is i / 4.
    let path = write_mean(
        dir.path(),
        [1, 2, 3, 4],
        (0..24).map(|i| i as f32 / 4.0).collect(),
    );
    let p = param(|p| {
        p.set_mean_file(path.to_string_lossy().into_owned());
        p.set_crop_size(2);
        p.set_scale(2.0);
    });
    let mut t = DataTransformer::new(&p, Phase::TEST).unwrap();
    let out = run(&mut t, &datum());
    // Centre crop (0, 1): source indices 1, 2, 5, 6 of channel 0 and 13, 14,
    // 17, 18 of channel 1; out = (pixel - index/4) * 2.
    let want: Vec<f32> = [
        (1, 1.0),
        (2, 2.0),
        (5, 11.0),
        (6, 12.0),
        (13, 101.0),
        (14, 102.0),
        (17, 111.0),
        (18, 112.0),
    ]
    .iter()
    .map(|&(i, v)| (v - i as f32 / 4.0) * 2.0)
    .collect();
    assert_eq!(out, want);
}

#[test]
fn mean_file_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no_mean.binaryproto");
    let p = param(|p| p.set_mean_file(missing.to_string_lossy().into_owned()));
    let err = DataTransformer::new(&p, Phase::TRAIN)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no_mean.binaryproto"), "{err}");

    let both = param(|p| {
        p.set_mean_file("m".into());
        p.mean_value = vec![1.0];
    });
    let err = DataTransformer::new(&both, Phase::TRAIN)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("Cannot specify mean_file and mean_value"),
        "{err}"
    );

    let path = write_mean(dir.path(), [1, 1, 3, 4], vec![0.0; 12]);
    let p = param(|p| p.set_mean_file(path.to_string_lossy().into_owned()));
    let mut t = DataTransformer::new(&p, Phase::TEST).unwrap();
    let err = t.transform(&datum(), &mut [0.0; 24]).unwrap_err();
    assert!(err.contains("1x3x4") && err.contains("2x3x4"), "{err}");
}

#[test]
fn crop_larger_than_the_image_is_an_error() {
    let mut t = DataTransformer::new(&param(|p| p.set_crop_size(5)), Phase::TRAIN).unwrap();
    assert!(t.infer_shape(&datum()).unwrap_err().contains("crop_size 5"));
}

#[test]
fn float_data_is_transformed_like_bytes() {
    let mut d = Datum::new();
    d.set_channels(1);
    d.set_height(1);
    d.set_width(3);
    d.float_data = vec![0.25, -1.5, 8.0];
    let mut t = DataTransformer::new(&param(|p| p.set_scale(2.0)), Phase::TEST).unwrap();
    assert_eq!(run(&mut t, &d), vec![0.5, -3.0, 16.0]);
}

#[test]
fn encoded_datums_honour_force_gray_and_force_color() {
    use crate::data::image_io::Image;
    let img = Image {
        height: 1,
        width: 2,
        channels: 3,
        data: vec![0, 0, 255, 255, 255, 255],
    };
    let mut d = Datum::new();
    d.set_data(img.encode("png").unwrap());
    d.set_encoded(true);
    let mut native = DataTransformer::new(&TransformationParameter::new(), Phase::TEST).unwrap();
    // B plane 0, 255; G plane 0, 255; R plane 255, 255.
    assert_eq!(
        run(&mut native, &d),
        vec![0.0, 255.0, 0.0, 255.0, 255.0, 255.0]
    );
    let mut gray = DataTransformer::new(&param(|p| p.set_force_gray(true)), Phase::TEST).unwrap();
    // Pure red as luma: 4899 * 255 / 16384 rounded = 76.
    assert_eq!(run(&mut gray, &d), vec![76.0, 255.0]);
    let both = param(|p| {
        p.set_force_gray(true);
        p.set_force_color(true)
    });
    assert!(DataTransformer::new(&both, Phase::TEST).is_err());
}
