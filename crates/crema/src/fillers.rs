//! Weight initialization (Caffe's filler.hpp): constant, uniform, gaussian
//! (optionally sparse), positive_unitball, xavier, msra and bilinear, with
//! Caffe's defaults and formulas. Every draw comes from the seeded thread RNG,
//! so `random_seed` fixes the initial weights.
use crema_proto::caffe::filler_parameter::VarianceNorm;
use crema_proto::caffe::FillerParameter;
use rand::Rng;
use rand_distr::{Bernoulli, Distribution, Normal};

use crate::blob::Blob;
use crate::error::{Error, Result};
use crate::rng::with_rng;

/// The filler types `fill` knows, as written in prototxt.
pub const FILLER_TYPES: &[&str] = &[
    "constant",
    "uniform",
    "gaussian",
    "positive_unitball",
    "xavier",
    "msra",
    "bilinear",
];

fn err(kind: &str, msg: impl std::fmt::Display) -> Error {
    Error::Other(format!("{kind} filler: {msg}"))
}

/// Fills `blob`'s data as `param` says. Unknown types and parameters Caffe
/// would reject (sparse on a non-gaussian filler, min > max, ...) are errors.
pub fn fill(param: &FillerParameter, blob: &mut Blob) -> Result<()> {
    let kind = param.type_();
    if !FILLER_TYPES.contains(&kind) {
        return Err(Error::Other(format!(
            "unknown filler type \"{kind}\" (known: {})",
            FILLER_TYPES.join(", ")
        )));
    }
    if kind != "gaussian" && param.sparse() != -1 {
        return Err(err(
            kind,
            "sparsity is only supported by the gaussian filler",
        ));
    }
    match kind {
        "constant" => blob.data_mut().fill(param.value()),
        "uniform" => {
            uniform(blob.data_mut(), param.min(), param.max()).map_err(|m| err(kind, m))?
        }
        "gaussian" => gaussian(param, blob)?,
        "positive_unitball" => positive_unitball(blob)?,
        "xavier" => {
            let n = fan(param, blob, kind)?;
            let scale = (3.0 / n).sqrt();
            uniform(blob.data_mut(), -scale, scale).map_err(|m| err(kind, m))?;
        }
        "msra" => {
            let n = fan(param, blob, kind)?;
            normal(blob.data_mut(), 0.0, (2.0 / n).sqrt()).map_err(|m| err(kind, m))?;
        }
        "bilinear" => bilinear(blob)?,
        _ => unreachable!("checked against FILLER_TYPES"),
    }
    Ok(())
}

/// Uniform on [lo, hi), like caffe_rng_uniform; lo == hi gives lo everywhere.
fn uniform(data: &mut [f32], lo: f32, hi: f32) -> std::result::Result<(), String> {
    if lo.is_nan() || hi.is_nan() || lo > hi {
        return Err(format!("min ({lo}) must not exceed max ({hi})"));
    }
    if lo == hi {
        data.fill(lo);
        return Ok(());
    }
    with_rng(|r| {
        if !one_draw_each(lo, hi) {
            // A draw can round up to `hi`, which gen_range draws again for.
            data.iter_mut().for_each(|v| *v = r.gen_range(lo..hi));
        } else {
            uniform_bulk(r, data, lo, hi - lo);
        }
    });
    Ok(())
}

/// gen_range(lo..hi)'s value for one 32-bit draw: 23 random mantissa bits as
/// a value in [0, 1), times the width, plus lo (not fused, like rand).
fn from_draw(u: u32, lo: f32, scale: f32) -> f32 {
    let unit = f32::from_bits((u >> 9) | 0x3f80_0000) - 1.0;
    unit * scale + lo
}

/// Whether every draw gives a value below `hi`, so that gen_range takes
/// exactly one draw per value (true unless `hi - lo` rounds up at the top).
fn one_draw_each(lo: f32, hi: f32) -> bool {
    let scale = hi - lo;
    scale.is_finite() && from_draw(u32::MAX, lo, scale) < hi
}

/// `data[i] = gen_range(lo..lo + scale)` for every i in turn, with the same
/// draws and the generator left where those calls leave it (`one_draw_each`
/// must hold), but the draws made in bulk (`rng::fill_u32`): DummyData's
/// uniform refill of AlexNet's batch of 64 (9.9M values) took 36 ms of a
/// 2.3 s training iteration one value at a time, 9 ms this way.
fn uniform_bulk(r: &mut rand_chacha::ChaCha8Rng, data: &mut [f32], lo: f32, scale: f32) {
    crate::rng::fill_u32(r, crate::rng::as_words(data));
    for v in data.iter_mut() {
        *v = from_draw(v.to_bits(), lo, scale);
    }
}

fn normal(data: &mut [f32], mean: f32, std: f32) -> std::result::Result<(), String> {
    // Caffe's caffe_rng_gaussian requires sigma > 0.
    if !std.is_finite() || std <= 0.0 {
        return Err(format!("std must be positive, got {std}"));
    }
    let dist = Normal::new(mean, std).map_err(|e| e.to_string())?;
    with_rng(|r| data.iter_mut().for_each(|v| *v = dist.sample(r)));
    Ok(())
}

/// Gaussian; with `sparse: s`, each weight is kept with probability
/// s / shape[0] (s inputs per output on average) and zeroed otherwise.
fn gaussian(param: &FillerParameter, blob: &mut Blob) -> Result<()> {
    normal(blob.data_mut(), param.mean(), param.std()).map_err(|m| err("gaussian", m))?;
    let sparse = param.sparse();
    if sparse < 0 {
        return Ok(());
    }
    let outputs = *blob
        .shape()
        .first()
        .ok_or_else(|| err("gaussian", "sparse needs a blob with at least one axis"))?;
    let p = sparse as f64 / outputs as f64;
    if !(0.0..=1.0).contains(&p) {
        return Err(err(
            "gaussian",
            format!("sparse ({sparse}) exceeds the number of outputs ({outputs})"),
        ));
    }
    let keep = Bernoulli::new(p).map_err(|e| err("gaussian", e))?;
    with_rng(|r| {
        for v in blob.data_mut() {
            if !keep.sample(r) {
                *v = 0.0;
            }
        }
    });
    Ok(())
}

/// Uniform(0, 1), then each of the shape[0] rows scaled to sum to 1.
fn positive_unitball(blob: &mut Blob) -> Result<()> {
    let rows = blob.shape().first().copied().unwrap_or(1);
    if rows == 0 || blob.count() == 0 {
        return Ok(());
    }
    let dim = blob.count() / rows;
    uniform(blob.data_mut(), 0.0, 1.0).map_err(|m| err("positive_unitball", m))?;
    for row in blob.data_mut().chunks_exact_mut(dim) {
        let sum: f32 = row.iter().sum();
        row.iter_mut().for_each(|v| *v /= sum);
    }
    Ok(())
}

/// The `n` of xavier/msra: fan_in = count / shape[0], fan_out = count /
/// shape[1] (Caffe's num() and channels(), so a 1-axis blob has fan_out =
/// count), or their average.
fn fan(param: &FillerParameter, blob: &Blob, kind: &str) -> Result<f32> {
    let count = blob.count();
    if count == 0 {
        return Err(err(
            kind,
            format!("cannot fill an empty blob ({})", blob.shape_string()),
        ));
    }
    let fan_in = count / blob.shape()[0];
    let fan_out = count / blob.shape().get(1).copied().unwrap_or(1);
    Ok(match param.variance_norm() {
        VarianceNorm::FAN_IN => fan_in as f32,
        VarianceNorm::FAN_OUT => fan_out as f32,
        VarianceNorm::AVERAGE => (fan_in + fan_out) as f32 / 2.0,
    })
}

/// The kernel of bilinear upsampling for a Deconvolution layer: every
/// [kh, kw] slice is the same separable tent centred on the kernel.
fn bilinear(blob: &mut Blob) -> Result<()> {
    if blob.num_axes() != 4 {
        return Err(err(
            "bilinear",
            format!("blob must be 4-D, got {}", blob.shape_string()),
        ));
    }
    let (h, w) = (blob.shape()[2], blob.shape()[3]);
    if h != w {
        return Err(err(
            "bilinear",
            format!("filter must be square, got {h}x{w}"),
        ));
    }
    let f = w.div_ceil(2) as f32;
    let c = (2.0 * f - 1.0 - (f % 2.0)) / (2.0 * f);
    for (i, v) in blob.data_mut().iter_mut().enumerate() {
        let x = (i % w) as f32;
        let y = ((i / w) % h) as f32;
        *v = (1.0 - (x / f - c).abs()) * (1.0 - (y / f - c).abs());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::set_random_seed;

    fn param(kind: &str) -> FillerParameter {
        let mut p = FillerParameter::new();
        p.set_type(kind.to_string());
        p
    }

    fn stats(v: &[f32]) -> (f64, f64) {
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    #[test]
    fn constant_fills_value_and_defaults_to_zero() {
        let mut b = Blob::new(&[2, 3, 4]);
        b.data_mut().fill(7.0);
        fill(&param("constant"), &mut b).unwrap();
        assert!(b.data().iter().all(|&v| v == 0.0));
        let mut p = param("constant");
        p.set_value(1.5);
        fill(&p, &mut b).unwrap();
        assert!(b.data().iter().all(|&v| v == 1.5));
    }

    #[test]
    fn uniform_stays_in_range_with_uniform_moments() {
        set_random_seed(1);
        let mut b = Blob::new(&[100, 1000]);
        let mut p = param("uniform");
        p.set_min(-2.0);
        p.set_max(4.0);
        fill(&p, &mut b).unwrap();
        assert!(b.data().iter().all(|&v| (-2.0..4.0).contains(&v)));
        let (mean, std) = stats(b.data());
        assert!((mean - 1.0).abs() < 0.02, "mean {mean}");
        assert!((std - 6.0 / 12f64.sqrt()).abs() < 0.02, "std {std}");
    }

    #[test]
    fn bulk_uniform_gives_gen_ranges_values_and_leaves_the_generator_where_it_does() {
        use crate::rng::with_rng;
        // Sizes below, at and across the parallel part size; ranges whose top
        // draw stays below hi (so one draw each), including an unaligned start.
        for (n, lo, hi, skip) in [
            (7, -2.0f32, 4.0f32, 0),
            (1 << 16, -100.0, 100.0, 3),
            (150_001, 0.0, 1.0, 5),
        ] {
            set_random_seed(9);
            let reference: Vec<f32> = with_rng(|r| {
                (0..skip).for_each(|_| {
                    r.gen::<u32>();
                });
                (0..n).map(|_| r.gen_range(lo..hi)).collect()
            });
            let after = with_rng(|r| r.gen::<u64>());
            set_random_seed(9);
            with_rng(|r| {
                (0..skip).for_each(|_| {
                    r.gen::<u32>();
                })
            });
            let mut got = vec![0f32; n];
            assert!(one_draw_each(lo, hi));
            uniform(&mut got, lo, hi).unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert!(bits(&got) == bits(&reference), "n {n}: values differ");
            assert_eq!(
                with_rng(|r| r.gen::<u64>()),
                after,
                "n {n}: generator left elsewhere"
            );
        }
        // Whether a top draw rounds up to hi is what picks the path.
        assert!(!one_draw_each(1.0, 1.0 + f32::EPSILON));
    }

    #[test]
    fn gaussian_moments_and_sparse_fraction() {
        set_random_seed(2);
        let mut b = Blob::new(&[200, 500]);
        let mut p = param("gaussian");
        p.set_mean(1.0);
        p.set_std(0.5);
        fill(&p, &mut b).unwrap();
        let (mean, std) = stats(b.data());
        assert!(
            (mean - 1.0).abs() < 0.01 && (std - 0.5).abs() < 0.01,
            "{mean} {std}"
        );

        // sparse 50 over 200 outputs keeps a quarter of the weights.
        p.set_sparse(50);
        fill(&p, &mut b).unwrap();
        let nonzero = b.data().iter().filter(|&&v| v != 0.0).count() as f64 / b.count() as f64;
        assert!((nonzero - 0.25).abs() < 0.01, "nonzero fraction {nonzero}");
    }

    #[test]
    fn positive_unitball_rows_sum_to_one() {
        set_random_seed(3);
        let mut b = Blob::new(&[5, 2, 3, 4]);
        fill(&param("positive_unitball"), &mut b).unwrap();
        assert!(b.data().iter().all(|&v| (0.0..=1.0).contains(&v)));
        for row in b.data().chunks(24) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn xavier_and_msra_scale_by_fan() {
        set_random_seed(4);
        // shape [50, 40, 3, 3]: fan_in = 360, fan_out = 450.
        let mut b = Blob::new(&[50, 40, 3, 3]);
        for (norm, n) in [
            (VarianceNorm::FAN_IN, 360.0),
            (VarianceNorm::FAN_OUT, 450.0),
            (VarianceNorm::AVERAGE, 405.0),
        ] {
            let mut p = param("xavier");
            p.set_variance_norm(norm);
            fill(&p, &mut b).unwrap();
            let scale = (3.0f64 / n).sqrt();
            assert!(b.data().iter().all(|&v| (v as f64).abs() <= scale + 1e-6));
            let (mean, std) = stats(b.data());
            assert!(
                mean.abs() < 0.003 && (std - scale / 3f64.sqrt()).abs() < 0.002,
                "xavier {norm:?}: {mean} {std}"
            );

            let mut p = param("msra");
            p.set_variance_norm(norm);
            fill(&p, &mut b).unwrap();
            let (mean, std) = stats(b.data());
            assert!(
                mean.abs() < 0.003 && (std - (2.0 / n).sqrt()).abs() < 0.002,
                "msra {norm:?}: {mean} {std}"
            );
        }
    }

    #[test]
    fn bilinear_kernel_exact_values() {
        // Kernel 4 (upsampling by 2): f = 2, c = 0.75 → taps 0.25, 0.75, 0.75, 0.25.
        let mut b = Blob::new(&[1, 1, 4, 4]);
        fill(&param("bilinear"), &mut b).unwrap();
        let t = [0.25f32, 0.75, 0.75, 0.25];
        for y in 0..4 {
            for x in 0..4 {
                assert!((b.data()[y * 4 + x] - t[y] * t[x]).abs() < 1e-6);
            }
        }
        // Kernel 5: f = 3, c = 2/3 → taps 1/3, 2/3, 1, 2/3, 1/3, on every slice.
        let mut b = Blob::new(&[2, 1, 5, 5]);
        fill(&param("bilinear"), &mut b).unwrap();
        let t = [1.0f32 / 3.0, 2.0 / 3.0, 1.0, 2.0 / 3.0, 1.0 / 3.0];
        for (i, &v) in b.data().iter().enumerate() {
            let (y, x) = ((i / 5) % 5, i % 5);
            assert!((v - t[y] * t[x]).abs() < 1e-6, "[{i}] {v}");
        }
    }

    #[test]
    fn bad_parameters_are_errors() {
        let mut b = Blob::new(&[2, 3]);
        let e = fill(&param("nonsense"), &mut b).unwrap_err().to_string();
        assert!(e.contains("unknown filler type \"nonsense\""), "{e}");
        let mut p = param("uniform");
        p.set_sparse(1);
        assert!(fill(&p, &mut b).is_err());
        let mut p = param("uniform");
        p.set_min(2.0);
        p.set_max(1.0);
        assert!(fill(&p, &mut b).is_err());
        let mut p = param("gaussian");
        p.set_std(0.0);
        assert!(fill(&p, &mut b).is_err());
        let mut p = param("gaussian");
        p.set_sparse(3);
        assert!(fill(&p, &mut b).is_err(), "sparse 3 with 2 outputs");
        assert!(fill(&param("bilinear"), &mut b).is_err());
        assert!(fill(&param("bilinear"), &mut Blob::new(&[1, 1, 2, 3])).is_err());
        assert!(fill(&param("xavier"), &mut Blob::new(&[0, 3])).is_err());
    }

    #[test]
    fn same_seed_same_weights() {
        let mut a = Blob::new(&[10, 10]);
        let mut b = Blob::new(&[10, 10]);
        set_random_seed(9);
        fill(&param("gaussian"), &mut a).unwrap();
        set_random_seed(9);
        fill(&param("gaussian"), &mut b).unwrap();
        assert_eq!(a.data(), b.data());
    }
}
