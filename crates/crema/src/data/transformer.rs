//! DataTransformer with Caffe's semantics: for each output value,
//! `(pixel - mean) * scale`, where the mean comes from `mean_file` (per pixel
//! of the full image) or `mean_value` (one, or one per channel); then a
//! `crop_size` window (random in TRAIN, centred in TEST) and, when `mirror`
//! is set, a coin flip for a horizontal flip (in either phase, as Caffe).
//! Encoded datums are decoded first, honouring force_color / force_gray.
use std::borrow::Cow;
use std::path::Path;

use crema_proto::caffe::{Datum, Phase, TransformationParameter};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::datum::{datum_dims, decode_datum};
use super::image_io::ColorMode;
use crate::blob::Blob;
use crate::error::{Error, Result};

/// A mean image: channels, height, width and values in CHW order.
struct MeanImage {
    dims: (usize, usize, usize),
    values: Vec<f32>,
}

/// Applies one layer's `transform_param` to datums.
pub struct DataTransformer {
    param: TransformationParameter,
    phase: Phase,
    mean: Option<MeanImage>,
    rng: ChaCha8Rng,
    warned_force: bool,
}

impl DataTransformer {
    /// Checks the parameters and loads the mean file. The generator is
    /// seeded from crema's thread generator, so a fixed `random_seed` fixes
    /// every crop and mirror even when the transformer moves to a data thread.
    pub fn new(param: &TransformationParameter, phase: Phase) -> Result<DataTransformer> {
        DataTransformer::with_seed(param, phase, crate::rng::next_u64())
    }

    /// Like `new`, with the generator's seed given.
    pub fn with_seed(
        param: &TransformationParameter,
        phase: Phase,
        seed: u64,
    ) -> Result<DataTransformer> {
        if param.has_mean_file() && !param.mean_value.is_empty() {
            return Err(Error::Other(
                "Cannot specify mean_file and mean_value at the same time".into(),
            ));
        }
        if param.force_color() && param.force_gray() {
            return Err(Error::Other(
                "Cannot set both force_color and force_gray".into(),
            ));
        }
        let mean = if param.has_mean_file() {
            Some(load_mean(Path::new(param.mean_file()))?)
        } else {
            None
        };
        let rng = ChaCha8Rng::seed_from_u64(seed);
        Ok(DataTransformer {
            param: param.clone(),
            phase,
            mean,
            rng,
            warned_force: false,
        })
    }

    /// The parameters this transformer applies.
    pub fn param(&self) -> &TransformationParameter {
        &self.param
    }

    /// How encoded datums are decoded.
    pub fn color_mode(&self) -> ColorMode {
        if self.param.force_color() {
            ColorMode::Color
        } else if self.param.force_gray() {
            ColorMode::Gray
        } else {
            ColorMode::Native
        }
    }

    /// The datum as raw pixels (decoded if it is encoded).
    pub fn decode<'a>(&mut self, datum: &'a Datum) -> std::result::Result<Cow<'a, Datum>, String> {
        if !datum.encoded()
            && (self.param.force_color() || self.param.force_gray())
            && !self.warned_force
        {
            log::error!("force_color and force_gray only for encoded datum");
            self.warned_force = true;
        }
        decode_datum(datum, self.color_mode())
    }

    /// The shape one transformed datum takes, `[1, channels, height, width]`
    /// with height and width the crop size when cropping (InferBlobShape).
    pub fn infer_shape(&mut self, datum: &Datum) -> std::result::Result<Vec<usize>, String> {
        let raw = self.decode(datum)?;
        let (c, h, w) = datum_dims(&raw)?;
        let crop = self.param.crop_size() as usize;
        if crop > 0 {
            if h < crop || w < crop {
                return Err(format!("crop_size {crop} is larger than the {h}x{w} image"));
            }
            return Ok(vec![1, c, crop, crop]);
        }
        Ok(vec![1, c, h, w])
    }

    /// Random words one `transform` draws: the mirror coin, then the two
    /// crop offsets in TRAIN. Fixed per datum, which makes `seek` exact.
    fn draws_per_datum(&self) -> u128 {
        let mirror = u128::from(self.param.mirror());
        let crop = if self.param.crop_size() > 0 && self.phase == Phase::TRAIN {
            2
        } else {
            0
        };
        mirror + crop
    }

    /// Puts the generator where it is after `transform` ran on `datums`
    /// datums from the seed (a resumed run draws the crops and mirrors the
    /// uninterrupted run would).
    pub fn seek(&mut self, datums: u64) {
        self.rng.set_word_pos(u128::from(datums) * self.draws_per_datum());
    }

    /// Caffe's Rand(n): a uniform draw in `0..n`.
    fn rand(&mut self, n: usize) -> usize {
        (self.rng.next_u32() as usize) % n
    }

    /// Transforms one datum (encoded or raw) into `out`, which must hold
    /// exactly the values of `infer_shape`.
    pub fn transform(&mut self, datum: &Datum, out: &mut [f32]) -> std::result::Result<(), String> {
        let raw = self.decode(datum)?;
        let (channels, height, width) = datum_dims(&raw)?;
        let crop = self.param.crop_size() as usize;
        let scale = self.param.scale();
        // Draw order as Caffe: the mirror coin first, then the crop offsets.
        let mirror = self.param.mirror() && self.rand(2) == 1;

        if let Some(m) = &self.mean {
            if m.dims != (channels, height, width) {
                let (mc, mh, mw) = m.dims;
                return Err(format!(
                    "mean_file is {mc}x{mh}x{mw} but the datum is {channels}x{height}x{width} (channels x height x width)"
                ));
            }
        }
        let mean_values: Vec<f32> = match self.param.mean_value.len() {
            0 => Vec::new(),
            1 => vec![self.param.mean_value[0]; channels],
            n if n == channels => self.param.mean_value.clone(),
            n => {
                return Err(format!(
                    "Specify either 1 mean_value or as many as channels: {channels} (got {n})"
                ))
            }
        };

        let (out_h, out_w, h_off, w_off) = if crop > 0 {
            if height < crop || width < crop {
                return Err(format!(
                    "crop_size {crop} is larger than the {height}x{width} image"
                ));
            }
            let (h_off, w_off) = if self.phase == Phase::TRAIN {
                let h_off = self.rand(height - crop + 1);
                (h_off, self.rand(width - crop + 1))
            } else {
                ((height - crop) / 2, (width - crop) / 2)
            };
            (crop, crop, h_off, w_off)
        } else {
            (height, width, 0, 0)
        };
        if out.len() != channels * out_h * out_w {
            return Err(format!(
                "output holds {} values, the transformed datum has {channels}x{out_h}x{out_w}",
                out.len()
            ));
        }

        let bytes = raw.data();
        let floats = &raw.float_data;
        for c in 0..channels {
            for h in 0..out_h {
                let src_row = (c * height + h_off + h) * width + w_off;
                let dst_row = (c * out_h + h) * out_w;
                for w in 0..out_w {
                    let src = src_row + w;
                    let pixel = if bytes.is_empty() {
                        floats[src]
                    } else {
                        bytes[src] as f32
                    };
                    let centred = match &self.mean {
                        Some(m) => pixel - m.values[src],
                        None if !mean_values.is_empty() => pixel - mean_values[c],
                        None => pixel,
                    };
                    let dst = if mirror {
                        dst_row + out_w - 1 - w
                    } else {
                        dst_row + w
                    };
                    out[dst] = centred * scale;
                }
            }
        }
        Ok(())
    }
}

/// Reads a binaryproto mean; the error names the file.
fn load_mean(path: &Path) -> Result<MeanImage> {
    let proto = crema_proto::files::read_mean_blob(path)
        .map_err(|e| Error::Other(format!("cannot read mean_file {}: {e}", path.display())))?;
    let mut blob = Blob::new(&[]);
    blob.from_proto(&proto, true)
        .map_err(|e| Error::Other(format!("mean_file {}: {e}", path.display())))?;
    // Caffe reads the mean's legacy channels/height/width, i.e. its last three axes.
    let shape = blob.shape();
    let dim = |back: usize| {
        if shape.len() >= back {
            shape[shape.len() - back]
        } else {
            1
        }
    };
    let dims = (dim(3), dim(2), dim(1));
    if dims.0 * dims.1 * dims.2 != blob.count() {
        return Err(Error::Other(format!(
            "mean_file {} holds {} images; it must hold one",
            path.display(),
            blob.count() / (dims.0 * dims.1 * dims.2).max(1)
        )));
    }
    log::info!("Loading mean file from: {}", path.display());
    Ok(MeanImage {
        dims,
        values: blob.data().to_vec(),
    })
}

#[cfg(test)]
#[path = "transformer_tests.rs"]
mod tests;
