//! WindowData (R-CNN fine-tuning): samples object and background windows
//! from images listed in a window file, warps each to crop_size², and
//! prefetches batches like Data. The window file repeats, per image:
//!
//! ```text
//! # image_index
//! img_path            (joined to root_folder by plain concatenation)
//! channels
//! height
//! width
//! num_windows
//! class_index overlap x1 y1 x2 y2      (num_windows lines, inclusive pixels)
//! ```
//!
//! A window with overlap ≥ fg_threshold is foreground (its label must be
//! positive); one with overlap < bg_threshold is background (label and overlap
//! become 0); others are dropped. Each batch holds
//! ⌊batch_size · fg_fraction⌋ foreground windows after the background ones,
//! drawn at random with replacement. With `context_pad` or crop_mode "square"
//! the window is first grown (to a square, and so that `context_pad` pixels of
//! context surround it after warping); the part outside the image stays 0.
//! Values are `(pixel − mean) · scale`, channels BGR.
//!
//! Which fields Caffe reads where: crop_size, mirror, mean_file and
//! mean_value come from transform_param (window_data_param's deprecated
//! crop_size, mirror and mean_file are used when transform_param leaves them
//! unset, as the legacy upgrade would have moved them); scale comes from
//! window_data_param (transform_param.scale when that one is unset).
use std::path::Path;

use crema_proto::caffe::LayerParameter;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::blob::{Blob, SharedBlob};
use crate::data::{Batch, BatchLoader, ColorMode, Image, PrefetchQueue};
use crate::error::{Error, Result};
use crate::layers::Layer;

/// One window of the file, in image pixels (inclusive corners).
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub image: usize,
    pub label: i32,
    pub overlap: f32,
    pub x1: i32,
    pub y1: i32,
    pub x2: i32,
    pub y2: i32,
}

/// An image of the window file: path (root_folder applied) and the
/// channels, height, width the file states.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowImage {
    pub path: String,
    pub dims: [usize; 3],
}

/// The parsed window file: images, foreground and background windows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WindowFile {
    pub images: Vec<WindowImage>,
    pub fg: Vec<Window>,
    pub bg: Vec<Window>,
}

impl WindowFile {
    /// Parses `text` (from `source`, named in errors) and sorts windows by
    /// the thresholds.
    pub fn parse(
        text: &str,
        source: &str,
        root: &str,
        fg_threshold: f32,
        bg_threshold: f32,
    ) -> Result<WindowFile> {
        let mut tokens = text.split_whitespace().peekable();
        let mut file = WindowFile::default();
        let err = |m: String| Error::Other(format!("window file {source}: {m}"));
        if tokens.peek().is_none() {
            return Err(err("Window file is empty".into()));
        }
        while let Some(hash) = tokens.next() {
            let image = file.images.len();
            if hash != "#" {
                return Err(err(format!(
                    "expected '#' to start image {image}, got '{hash}'"
                )));
            }
            let mut next = |what: &str| -> Result<&str> {
                tokens
                    .next()
                    .ok_or_else(|| err(format!("image {image}: file ends before its {what}")))
            };
            let int = |s: &str, what: &str| -> Result<i64> {
                s.parse::<i64>()
                    .map_err(|_| err(format!("image {image}: {what} '{s}' is not an integer")))
            };
            let index = int(next("image_index")?, "image_index")?;
            if index != image as i64 {
                return Err(err(format!(
                    "image_index {index} where {image} was expected (indices must count up from 0)"
                )));
            }
            let path = format!("{root}{}", next("path")?);
            let mut dims = [0usize; 3];
            for (d, what) in dims.iter_mut().zip(["channels", "height", "width"]) {
                let v = int(next(what)?, what)?;
                if v <= 0 {
                    return Err(err(format!(
                        "image {image} ({path}): {what} {v} must be positive"
                    )));
                }
                *d = v as usize;
            }
            let num_windows = int(next("num_windows")?, "num_windows")?;
            if num_windows < 0 {
                return Err(err(format!(
                    "image {image}: num_windows {num_windows} is negative"
                )));
            }
            for w in 0..num_windows {
                let what = format!("window {w}");
                let label = int(next(&what)?, "class_index")?;
                let o = next(&what)?;
                let overlap: f32 = o.parse().map_err(|_| {
                    err(format!(
                        "image {image} window {w}: overlap '{o}' is not a number"
                    ))
                })?;
                let mut c = [0i32; 4];
                for v in c.iter_mut() {
                    *v = int(next(&what)?, "coordinate")? as i32;
                }
                let mut win = Window {
                    image,
                    label: label as i32,
                    overlap,
                    x1: c[0],
                    y1: c[1],
                    x2: c[2],
                    y2: c[3],
                };
                if win.x2 < win.x1 || win.y2 < win.y1 || win.x1 < 0 || win.y1 < 0 {
                    return Err(err(format!(
                        "image {image} window {w}: corners {c:?} do not make a box"
                    )));
                }
                if overlap >= fg_threshold {
                    if win.label <= 0 {
                        return Err(err(format!(
                            "image {image} window {w}: a foreground window (overlap {overlap}) needs a positive label, got {label}"
                        )));
                    }
                    file.fg.push(win);
                } else if overlap < bg_threshold {
                    win.label = 0;
                    win.overlap = 0.0;
                    file.bg.push(win);
                }
            }
            file.images.push(WindowImage { path, dims });
        }
        Ok(file)
    }
}

/// Where the subtracted mean comes from.
enum Mean {
    None,
    /// A mean image (channels, height, width) and its values.
    File([usize; 3], Vec<f32>),
    /// One value per channel.
    Values(Vec<f32>),
}

/// The sampling and warping settings, read once from the layer parameter.
struct Settings {
    batch_size: usize,
    crop_size: usize,
    channels: usize,
    mirror: bool,
    scale: f32,
    fg_fraction: f32,
    context_pad: usize,
    square: bool,
}

/// Fills batches with sampled windows (the prefetch thread's work).
pub struct WindowBatchLoader {
    file: WindowFile,
    /// The encoded bytes of every image when cache_images.
    cache: Option<Vec<Vec<u8>>>,
    mean: Mean,
    s: Settings,
    rng: ChaCha8Rng,
}

impl WindowBatchLoader {
    /// Reads the window file (and the images when cache_images) and checks
    /// the settings. The sampling seed comes from crema's generator.
    pub fn from_param(param: &LayerParameter) -> Result<WindowBatchLoader> {
        let lerr = |m: String| Error::layer(param, m);
        let wp = param.window_data_param.get_or_default();
        let tp = param.transform_param.get_or_default();
        let text = std::fs::read_to_string(wp.source())
            .map_err(|e| lerr(format!("Failed to open window file {}: {e}", wp.source())))?;
        let file = WindowFile::parse(
            &text,
            wp.source(),
            wp.root_folder(),
            wp.fg_threshold(),
            wp.bg_threshold(),
        )
        .map_err(|e| lerr(e.to_string()))?;
        log::info!(
            "Window data layer: foreground (object) overlap threshold: {}, background (non-object) overlap threshold: {}, foreground sampling fraction: {}, cache_images: {}, root_folder: {}",
            wp.fg_threshold(),
            wp.bg_threshold(),
            wp.fg_fraction(),
            wp.cache_images(),
            wp.root_folder()
        );
        log::info!("Number of images: {}", file.images.len());
        log::info!("Amount of context padding: {}", wp.context_pad());
        log::info!("Crop mode: {}", wp.crop_mode());
        // Caffe sizes the top by the last image's channel count.
        let channels = file.images.last().map(|i| i.dims[0]).unwrap_or(3);
        if file.images.iter().any(|i| i.dims[0] != 3) {
            return Err(lerr(format!(
                "window file {}: images are read in colour, so every image must state 3 channels",
                wp.source()
            )));
        }
        let crop_size = if tp.has_crop_size() {
            tp.crop_size()
        } else {
            wp.crop_size()
        } as usize;
        if crop_size == 0 {
            return Err(lerr(
                "crop_size (transform_param) must be positive for WindowData".into(),
            ));
        }
        let batch_size = wp.batch_size() as usize;
        if batch_size == 0 {
            return Err(lerr("window_data_param.batch_size must be positive".into()));
        }
        let context_pad = wp.context_pad() as usize;
        if 2 * context_pad >= crop_size {
            return Err(lerr(format!(
                "context_pad {context_pad} leaves no room in crop_size {crop_size}"
            )));
        }
        let square = match wp.crop_mode() {
            "warp" => false,
            "square" => true,
            other => {
                return Err(lerr(format!(
                    "crop_mode must be \"warp\" or \"square\", got \"{other}\""
                )))
            }
        };
        let fg_fraction = wp.fg_fraction();
        if !(0.0..=1.0).contains(&fg_fraction) {
            return Err(lerr(format!(
                "fg_fraction {fg_fraction} must lie in [0, 1]"
            )));
        }
        let num_fg = (batch_size as f32 * fg_fraction) as usize;
        if num_fg > 0 && file.fg.is_empty() {
            return Err(lerr(format!(
                "window file {} has no foreground windows to sample",
                wp.source()
            )));
        }
        if num_fg < batch_size && file.bg.is_empty() {
            return Err(lerr(format!(
                "window file {} has no background windows to sample",
                wp.source()
            )));
        }
        let mean_file = if tp.has_mean_file() {
            Some(tp.mean_file())
        } else {
            wp.has_mean_file().then(|| wp.mean_file())
        };
        let mean = match mean_file {
            Some(_) if !tp.mean_value.is_empty() => {
                return Err(lerr(
                    "Cannot specify mean_file and mean_value at the same time".into(),
                ))
            }
            Some(path) => read_mean(path, channels, crop_size).map_err(lerr)?,
            None if tp.mean_value.is_empty() => Mean::None,
            None => {
                let v = &tp.mean_value;
                if v.len() != 1 && v.len() != channels {
                    return Err(lerr(format!(
                        "Specify either 1 mean_value or as many as channels: {channels}"
                    )));
                }
                Mean::Values(
                    (0..channels)
                        .map(|c| v[if v.len() == 1 { 0 } else { c }])
                        .collect(),
                )
            }
        };
        let cache = if wp.cache_images() {
            let bytes: Result<Vec<Vec<u8>>> = file
                .images
                .iter()
                .map(|i| {
                    std::fs::read(&i.path)
                        .map_err(|e| lerr(format!("Could not open or find file {}: {e}", i.path)))
                })
                .collect();
            Some(bytes?)
        } else {
            None
        };
        let mirror = if tp.has_mirror() {
            tp.mirror()
        } else {
            wp.mirror()
        };
        let scale = if wp.has_scale() || !tp.has_scale() {
            wp.scale()
        } else {
            tp.scale()
        };
        Ok(WindowBatchLoader {
            file,
            cache,
            mean,
            s: Settings {
                batch_size,
                crop_size,
                channels,
                mirror,
                scale,
                fg_fraction,
                context_pad,
                square,
            },
            rng: ChaCha8Rng::seed_from_u64(crate::rng::next_u64()),
        })
    }

    /// The data top's shape.
    pub fn shape(&self) -> [usize; 4] {
        [
            self.s.batch_size,
            self.s.channels,
            self.s.crop_size,
            self.s.crop_size,
        ]
    }

    fn image(&self, index: usize) -> Result<Image> {
        let path = &self.file.images[index].path;
        match &self.cache {
            Some(cache) => Image::decode(&cache[index], ColorMode::Color)
                .map_err(|e| Error::Other(format!("cannot decode image {path}: {e}"))),
            None => Image::read(Path::new(path), ColorMode::Color),
        }
    }

    /// Warps one window into `out` (channels × crop × crop, zeroed).
    fn warp(&self, win: &Window, mirror: bool, out: &mut [f32]) -> Result<()> {
        let img = self.image(win.image)?;
        let path = &self.file.images[win.image].path;
        let crop = self.s.crop_size as i32;
        let (mut x1, mut y1, mut x2, mut y2) = (win.x1, win.y1, win.x2, win.y2);
        let (mut out_w, mut out_h) = (crop, crop);
        let (mut pad_w, mut pad_h) = (0i32, 0i32);
        if self.s.context_pad > 0 || self.s.square {
            // Grow the window so that, once warped to crop², context_pad
            // pixels of context surround it; Caffe does this in float.
            let context_scale = crop as f32 / (crop - 2 * self.s.context_pad as i32) as f32;
            let mut half_h = (y2 - y1 + 1) as f32 / 2.0;
            let mut half_w = (x2 - x1 + 1) as f32 / 2.0;
            let (cx, cy) = (x1 as f32 + half_w, y1 as f32 + half_h);
            if self.s.square {
                let m = half_h.max(half_w);
                half_h = m;
                half_w = m;
            }
            x1 = (cx - half_w * context_scale).round() as i32;
            x2 = (cx + half_w * context_scale).round() as i32;
            y1 = (cy - half_h * context_scale).round() as i32;
            y2 = (cy + half_h * context_scale).round() as i32;
            // Clip to the image, remembering how much was cut on each side.
            let (unclipped_h, unclipped_w) = (y2 - y1 + 1, x2 - x1 + 1);
            let pad_x1 = (-x1).max(0);
            let pad_y1 = (-y1).max(0);
            let pad_x2 = (x2 - img.width as i32 + 1).max(0);
            let pad_y2 = (y2 - img.height as i32 + 1).max(0);
            x1 += pad_x1;
            x2 -= pad_x2;
            y1 += pad_y1;
            y2 -= pad_y2;
            let scale_x = crop as f32 / unclipped_w as f32;
            let scale_y = crop as f32 / unclipped_h as f32;
            out_w = ((x2 - x1 + 1) as f32 * scale_x).round() as i32;
            out_h = ((y2 - y1 + 1) as f32 * scale_y).round() as i32;
            let scaled = |p: i32, s: f32| (p as f32 * s).round() as i32;
            pad_h = scaled(pad_y1, scale_y);
            // A mirrored window mirrors its padding too.
            pad_w = if mirror {
                scaled(pad_x2, scale_x)
            } else {
                scaled(pad_x1, scale_x)
            };
            out_h = out_h.min(crop - pad_h);
            out_w = out_w.min(crop - pad_w);
        }
        if x2 >= img.width as i32
            || y2 >= img.height as i32
            || x1 > x2
            || y1 > y2
            || x1 < 0
            || y1 < 0
        {
            return Err(Error::Other(format!(
                "{path}: window ({}, {}, {}, {}) lies outside the {}x{} image",
                win.x1, win.y1, win.x2, win.y2, img.width, img.height
            )));
        }
        if out_w <= 0 || out_h <= 0 {
            return Err(Error::Other(format!(
                "{path}: window ({}, {}, {}, {}) warps to nothing at crop_size {crop}",
                win.x1, win.y1, win.x2, win.y2
            )));
        }
        let (x1, y1, x2, y2) = (x1 as usize, y1 as usize, x2 as usize, y2 as usize);
        let c = img.channels;
        let row = (x2 - x1 + 1) * c;
        let mut data = Vec::with_capacity(row * (y2 - y1 + 1));
        for y in y1..=y2 {
            let start = (y * img.width + x1) * c;
            data.extend_from_slice(&img.data[start..start + row]);
        }
        let roi = Image {
            height: y2 - y1 + 1,
            width: x2 - x1 + 1,
            channels: c,
            data,
        };
        let warped = roi.resize(out_h as usize, out_w as usize);
        let (crop, pad_h, pad_w) = (crop as usize, pad_h as usize, pad_w as usize);
        for h in 0..warped.height {
            for w in 0..warped.width {
                let src_w = if mirror { warped.width - 1 - w } else { w };
                for ch in 0..self.s.channels {
                    let pixel = warped.data[(h * warped.width + src_w) * c + ch] as f32;
                    let mean = match &self.mean {
                        Mean::None => 0.0,
                        Mean::Values(v) => v[ch],
                        Mean::File([_, mh, mw], v) => {
                            // Caffe centres the crop in the mean by its width.
                            let off = (mw - crop) / 2;
                            v[(ch * mh + h + off + pad_h) * mw + w + off + pad_w]
                        }
                    };
                    out[(ch * crop + h + pad_h) * crop + w + pad_w] = (pixel - mean) * self.s.scale;
                }
            }
        }
        Ok(())
    }
}

/// Reads a binaryproto mean image, which must cover the crop.
fn read_mean(path: &str, channels: usize, crop: usize) -> std::result::Result<Mean, String> {
    let proto = crema_proto::files::read_mean_blob(path)
        .map_err(|e| format!("cannot read mean_file {path}: {e}"))?;
    let mut blob = Blob::new(&[]);
    blob.from_proto(&proto, true)
        .map_err(|e| format!("mean_file {path}: {e}"))?;
    let s = blob.shape();
    let dims = if s.len() >= 3 {
        [s[s.len() - 3], s[s.len() - 2], s[s.len() - 1]]
    } else {
        [0, 0, 0]
    };
    // The crop sits (width − crop) / 2 in on both axes, as in Caffe.
    let covers = dims[2] >= crop && dims[1] >= crop + (dims[2] - crop.min(dims[2])) / 2;
    if dims[0] != channels || !covers || dims.iter().product::<usize>() != blob.count() {
        return Err(format!(
            "mean_file {path} is {} but WindowData needs one {channels}-channel image of at least {crop}x{crop}",
            blob.shape_string()
        ));
    }
    log::info!("Loading mean file from: {path}");
    Ok(Mean::File(dims, blob.data().to_vec()))
}

impl BatchLoader for WindowBatchLoader {
    fn load(&mut self, batch: &mut Batch) -> Result<()> {
        let shape = self.shape();
        let per_item: usize = shape[1..].iter().product();
        batch.shape = shape.to_vec();
        batch.data.clear();
        batch.data.resize(per_item * self.s.batch_size, 0.0);
        batch.label.resize(self.s.batch_size, 0.0);
        let num_fg = (self.s.batch_size as f32 * self.s.fg_fraction) as usize;
        let mut item = 0;
        // Background windows first, then foreground, as Caffe fills a batch.
        for (is_fg, count) in [(false, self.s.batch_size - num_fg), (true, num_fg)] {
            for _ in 0..count {
                let pool = if is_fg { &self.file.fg } else { &self.file.bg };
                let win = pool[self.rng.next_u32() as usize % pool.len()].clone();
                let mirror = self.s.mirror && self.rng.next_u32() % 2 == 1;
                self.warp(
                    &win,
                    mirror,
                    &mut batch.data[item * per_item..(item + 1) * per_item],
                )?;
                batch.label[item] = win.label as f32;
                item += 1;
            }
        }
        Ok(())
    }
}

pub struct WindowDataLayer {
    param: LayerParameter,
    queue: Option<PrefetchQueue>,
}

impl WindowDataLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(WindowDataLayer {
            param: param.clone(),
            queue: None,
        }))
    }
}

impl Layer for WindowDataLayer {
    fn type_name(&self) -> &'static str {
        "WindowData"
    }
    fn setup(&mut self, _bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let loader = WindowBatchLoader::from_param(&self.param)?;
        let shape = loader.shape();
        log::info!(
            "output data size: {},{},{},{}",
            shape[0],
            shape[1],
            shape[2],
            shape[3]
        );
        top[0].borrow_mut().reshape(&shape);
        top[1].borrow_mut().reshape(&[shape[0]]);
        let count = crema_proto::caffe::DataParameter::new().prefetch() as usize;
        self.queue = Some(PrefetchQueue::start(self.param.name(), count, loader)?);
        Ok(())
    }
    fn reshape(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        Ok(())
    }
    fn forward(&mut self, _bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        super::forward_prefetched(&self.param, self.queue.as_ref(), top)
    }
    fn backward(
        &mut self,
        _top: &[SharedBlob],
        _propagate_down: &[bool],
        _bottom: &[SharedBlob],
    ) -> Result<()> {
        Ok(())
    }
    fn exact_num_bottom_blobs(&self) -> Option<usize> {
        Some(0)
    }
    fn exact_num_top_blobs(&self) -> Option<usize> {
        Some(2)
    }
}

#[cfg(test)]
#[path = "window_data_tests.rs"]
mod tests;
