//! JPEG/PNG decoding and encoding with OpenCV's conventions, which Caffe's
//! data tools and layers inherit: pixels interleaved (HWC), colour channels in
//! BGR order, gray as one channel, bilinear resizing with half-pixel centres.
use std::path::Path;

use crema_proto::caffe::Datum;
use image::{DynamicImage, ImageFormat};

use crate::error::{Error, Result};

/// How to decode, as OpenCV's imread/imdecode flags Caffe passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorMode {
    /// IMREAD_COLOR: always three channels (gray is replicated, alpha dropped).
    Color,
    /// IMREAD_GRAYSCALE: always one channel.
    Gray,
    /// IMREAD_ANYCOLOR: gray stays one channel, anything else becomes BGR.
    Native,
}

impl ColorMode {
    /// The mode for Caffe's `is_color` flag.
    pub fn from_is_color(is_color: bool) -> Self {
        if is_color {
            ColorMode::Color
        } else {
            ColorMode::Gray
        }
    }
}

/// An 8-bit image as OpenCV holds it: `data[(h * width + w) * channels + c]`,
/// channels BGR (3) or gray (1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub data: Vec<u8>,
}

/// OpenCV's fixed-point luma (BT.601, 14 fraction bits), so a colour image
/// read as gray gets the values cv::cvtColor gives.
fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 4899 + g as u32 * 9617 + b as u32 * 1868 + (1 << 13)) >> 14) as u8
}

impl Image {
    /// Decodes JPEG or PNG bytes (format guessed from the content).
    /// The error says why the bytes are not an image; callers add where.
    pub fn decode(bytes: &[u8], mode: ColorMode) -> std::result::Result<Image, String> {
        let img = image::load_from_memory(bytes).map_err(|e| e.to_string())?;
        Ok(Image::from_dynamic(img, mode))
    }

    /// Reads and decodes an image file; the error names the file.
    pub fn read(path: &Path, mode: ColorMode) -> Result<Image> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::Other(format!("cannot read image {}: {e}", path.display())))?;
        Image::decode(&bytes, mode)
            .map_err(|e| Error::Other(format!("cannot decode image {}: {e}", path.display())))
    }

    fn from_dynamic(img: DynamicImage, mode: ColorMode) -> Image {
        let (width, height) = (img.width() as usize, img.height() as usize);
        let is_gray = !img.color().has_color();
        let gray = match mode {
            ColorMode::Gray => true,
            ColorMode::Color => false,
            ColorMode::Native => is_gray,
        };
        let data = if gray && is_gray {
            img.into_luma8().into_raw()
        } else {
            let rgb = img.into_rgb8().into_raw();
            if gray {
                rgb.chunks_exact(3)
                    .map(|p| luma(p[0], p[1], p[2]))
                    .collect()
            } else {
                let mut bgr = rgb;
                bgr.chunks_exact_mut(3).for_each(|p| p.swap(0, 2));
                bgr
            }
        };
        Image {
            height,
            width,
            channels: if gray { 1 } else { 3 },
            data,
        }
    }

    /// Bilinear resize as cv::resize with INTER_LINEAR on 8-bit images:
    /// half-pixel centres and 11-bit fixed-point weights computed in f32 as
    /// OpenCV does. Columns past the edge take the edge pixel's full weight;
    /// rows keep their fractional weights on the clamped row (OpenCV clamps
    /// the row index, not the weight), and the vertical blend rounds as
    /// OpenCV's vectorized path does. Bit-exact against opencv-python in the
    /// fixtures; OpenCV's scalar tail (row lengths not a multiple of its
    /// vector width) may round one level differently.
    pub fn resize(&self, new_height: usize, new_width: usize) -> Image {
        if new_height == self.height && new_width == self.width {
            return self.clone();
        }
        const BITS: u32 = 11;
        const ONE: i64 = 1 << BITS;
        // (first source index, second, weight of the first) along one axis.
        let taps = |dst: usize, src: usize, clamp_weight: bool| -> Vec<(usize, usize, i64)> {
            let scale = src as f64 / dst as f64;
            let last = src as i64 - 1;
            (0..dst)
                .map(|d| {
                    let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
                    let mut i = f.floor() as i64;
                    let mut frac = f - f.floor();
                    if clamp_weight && i < 0 {
                        i = 0;
                        frac = 0.0;
                    }
                    if clamp_weight && i >= last {
                        i = last;
                        frac = 0.0;
                    }
                    let w0 = ((1.0f32 - frac) * ONE as f32).round_ties_even() as i64;
                    (
                        i.clamp(0, last) as usize,
                        (i + 1).clamp(0, last) as usize,
                        w0,
                    )
                })
                .collect()
        };
        let xs = taps(new_width, self.width, true);
        let ys = taps(new_height, self.height, false);
        let c = self.channels;
        let row_len = self.width * c;
        let one = ONE as i32;
        // Horizontal pass into ONE-scaled rows, each source row once (i32
        // holds 255 * ONE), then the vertical blend.
        let hrow = |y: usize| -> Vec<i32> {
            let row = &self.data[y * row_len..(y + 1) * row_len];
            let mut out = Vec::with_capacity(new_width * c);
            for &(x0, x1, w0) in &xs {
                let (w0, w1) = (w0 as i32, one - w0 as i32);
                let (p0, p1) = (&row[x0 * c..x0 * c + c], &row[x1 * c..x1 * c + c]);
                out.extend(
                    p0.iter()
                        .zip(p1)
                        .map(|(&a, &b)| a as i32 * w0 + b as i32 * w1),
                );
            }
            out
        };
        let mut rows: Vec<Option<Vec<i32>>> = vec![None; self.height];
        let mut data = Vec::with_capacity(new_height * new_width * c);
        for &(y0, y1, w0) in &ys {
            for y in [y0, y1] {
                if rows[y].is_none() {
                    rows[y] = Some(hrow(y));
                }
            }
            let (r0, r1) = (rows[y0].as_deref().unwrap(), rows[y1].as_deref().unwrap());
            let (w0, w1) = (w0 as i32, one - w0 as i32);
            // OpenCV's VResizeLinearVec_32s8u: drop 4 bits, a 16-bit high
            // multiply per row, then round off the last 2.
            data.extend(r0.iter().zip(r1).map(|(&a, &b)| {
                let v = ((((a >> 4) * w0) >> 16) + (((b >> 4) * w1) >> 16) + 2) >> 2;
                v.clamp(0, 255) as u8
            }));
        }
        Image {
            height: new_height,
            width: new_width,
            channels: c,
            data,
        }
    }

    /// Encodes as `ext` ("jpg", "jpeg" or "png"), as cv::imencode does; BGR is
    /// turned back into the file's RGB.
    pub fn encode(&self, ext: &str) -> Result<Vec<u8>> {
        let format = match ext.to_ascii_lowercase().as_str() {
            "jpg" | "jpeg" | "jpe" => ImageFormat::Jpeg,
            "png" => ImageFormat::Png,
            other => {
                return Err(Error::Other(format!(
                    "cannot encode images as \"{other}\" (known: jpg, png)"
                )))
            }
        };
        let (w, h) = (self.width as u32, self.height as u32);
        let dynamic = if self.channels == 1 {
            DynamicImage::ImageLuma8(
                image::GrayImage::from_raw(w, h, self.data.clone()).expect("size checked"),
            )
        } else {
            let mut rgb = self.data.clone();
            rgb.chunks_exact_mut(3).for_each(|p| p.swap(0, 2));
            DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, rgb).expect("size checked"))
        };
        let mut out = std::io::Cursor::new(Vec::new());
        if format == ImageFormat::Jpeg {
            // OpenCV's default JPEG quality.
            let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95);
            dynamic.write_with_encoder(enc)
        } else {
            dynamic.write_to(&mut out, format)
        }
        .map_err(|e| {
            Error::Other(format!(
                "cannot encode a {}x{} image as {ext}: {e}",
                self.height, self.width
            ))
        })?;
        Ok(out.into_inner())
    }

    /// The image as an unencoded Datum in Caffe's planar CHW layout.
    pub fn to_datum(&self, label: i32) -> Datum {
        let (h, w, c) = (self.height, self.width, self.channels);
        let mut planar = vec![0u8; h * w * c];
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    planar[(ch * h + y) * w + x] = self.data[(y * w + x) * c + ch];
                }
            }
        }
        let mut d = Datum::new();
        d.set_channels(c as i32);
        d.set_height(h as i32);
        d.set_width(w as i32);
        d.set_data(planar);
        d.set_label(label);
        d.set_encoded(false);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(h: usize, w: usize, c: usize, data: Vec<u8>) -> Image {
        Image {
            height: h,
            width: w,
            channels: c,
            data,
        }
    }

    #[test]
    fn to_datum_makes_planar_chw() {
        // 1x2 BGR pixels (1,2,3) and (4,5,6) -> B plane 1,4; G 2,5; R 3,6.
        let d = img(1, 2, 3, vec![1, 2, 3, 4, 5, 6]).to_datum(7);
        assert_eq!(d.data(), &[1, 4, 2, 5, 3, 6]);
        assert_eq!(
            (d.channels(), d.height(), d.width(), d.label()),
            (3, 1, 2, 7)
        );
    }

    #[test]
    fn resize_doubles_with_half_pixel_centres() {
        // Source 0, 100 upscaled to 4: positions -0.25, 0.25, 0.75, 1.25 ->
        // 0 (clamped), 25, 75, 100 (clamped), as cv::resize gives.
        let out = img(1, 2, 1, vec![0, 100]).resize(1, 4);
        assert_eq!(out.data, vec![0, 25, 75, 100]);
        // Halving averages pairs: (10+30)/2, (50+70)/2.
        let out = img(1, 4, 1, vec![10, 30, 50, 70]).resize(1, 2);
        assert_eq!(out.data, vec![20, 60]);
    }

    #[test]
    fn png_round_trip_keeps_bgr_and_gray() {
        let bgr = img(2, 2, 3, vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30]);
        let png = bgr.encode("png").unwrap();
        assert_eq!(Image::decode(&png, ColorMode::Color).unwrap(), bgr);
        assert_eq!(Image::decode(&png, ColorMode::Native).unwrap(), bgr);
        // Pure blue (B=255) as gray: 1868*255/16384 rounded = 29.
        let gray = Image::decode(&png, ColorMode::Gray).unwrap();
        assert_eq!(gray.channels, 1);
        assert_eq!(gray.data[0], 29);
        assert_eq!(gray.data[1], luma(0, 255, 0));
        // A gray PNG stays gray natively and is replicated as colour.
        let g = img(1, 2, 1, vec![7, 200]).encode("png").unwrap();
        assert_eq!(Image::decode(&g, ColorMode::Native).unwrap().channels, 1);
        assert_eq!(
            Image::decode(&g, ColorMode::Color).unwrap().data,
            vec![7, 7, 7, 200, 200, 200]
        );
    }

    #[test]
    fn garbage_bytes_do_not_decode() {
        assert!(Image::decode(b"\xff\xd8\xff\xe0 not really a jpeg", ColorMode::Color).is_err());
        assert!(img(1, 1, 1, vec![0]).encode("bmp").is_err());
    }
}
