//! ImageData: images named in a list file (`<file> <label>` per line, the
//! label after the last space), read from `root_folder` + file, optionally
//! resized to new_height x new_width, gray or colour, shuffled each epoch
//! when asked, transformed, and prefetched like Data. In data-parallel
//! training each replica reads its share of the entries (`parallel::shard`).
use std::path::Path;

use crema_proto::caffe::{LayerParameter, Phase};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::blob::SharedBlob;
use crate::data::{Batch, BatchLoader, ColorMode, DataTransformer, Image, PrefetchQueue};
use crate::error::{Error, Result};
use crate::layers::Layer;
use crate::parallel::{data_shard, DataShard};

/// Reads list-file lines into (file, label) pairs; a bad line names its number.
pub fn read_image_list(path: &Path) -> Result<Vec<(String, i32)>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Other(format!("cannot read image list {}: {e}", path.display())))?;
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let entry = line
            .rsplit_once(' ')
            .and_then(|(f, l)| Some((f.to_string(), l.trim().parse::<i32>().ok()?)));
        lines.push(entry.ok_or_else(|| {
            Error::Other(format!(
                "{}:{}: expected '<file> <integer label>', got '{line}'",
                path.display(),
                n + 1
            ))
        })?);
    }
    Ok(lines)
}

/// Fills batches from the image list (the prefetch thread's work).
pub struct ImageBatchLoader {
    lines: Vec<(String, i32)>,
    pos: usize,
    root: String,
    new_size: Option<(usize, usize)>,
    mode: ColorMode,
    shuffle: Option<ChaCha8Rng>,
    transformer: DataTransformer,
    batch_size: usize,
    /// In data-parallel training (TRAIN phase), this replica's share: list
    /// entries i mod count of the (shuffled, wrapping) sequence one process
    /// would read, with each entry's crop and mirror drawn for its index.
    shard: DataShard,
    next_index: u64,
}

impl ImageBatchLoader {
    /// Reads the list, shuffles or skips as asked, and reads the first image
    /// to give the data top's shape. Random draws (transformer seed, shuffle
    /// seed, skip) come from crema's generator, so a fixed seed fixes them.
    pub fn from_param(param: &LayerParameter) -> Result<(ImageBatchLoader, Vec<usize>)> {
        let lerr = |m: String| Error::layer(param, m);
        let p = param.image_data_param.get_or_default();
        let (nh, nw) = (p.new_height() as usize, p.new_width() as usize);
        if (nh == 0) != (nw == 0) {
            return Err(lerr("Current implementation requires new_height and new_width to be set at the same time.".into()));
        }
        let batch_size = p.batch_size() as usize;
        if batch_size == 0 {
            return Err(lerr("image_data_param.batch_size must be positive".into()));
        }
        let transformer =
            DataTransformer::new(param.transform_param.get_or_default(), param.phase())
                .map_err(|e| lerr(e.to_string()))?;
        let mut lines = read_image_list(Path::new(p.source())).map_err(|e| lerr(e.to_string()))?;
        if lines.is_empty() {
            return Err(lerr(format!("image list {} is empty", p.source())));
        }
        let shuffle = if p.shuffle() {
            log::info!("Shuffling data");
            let mut rng = ChaCha8Rng::seed_from_u64(crate::rng::next_u64());
            shuffle_lines(&mut lines, &mut rng);
            Some(rng)
        } else {
            None
        };
        log::info!("A total of {} images.", lines.len());
        let mut pos = 0;
        if p.rand_skip() > 0 {
            let skip = (crate::rng::next_u64() % p.rand_skip() as u64) as usize;
            log::info!("Skipping first {skip} data points.");
            if skip >= lines.len() {
                return Err(lerr(format!(
                    "Not enough points to skip: {skip} of {}",
                    lines.len()
                )));
            }
            pos = skip;
        }
        let mut loader = ImageBatchLoader {
            lines,
            pos,
            root: p.root_folder().to_string(),
            new_size: (nh > 0).then_some((nh, nw)),
            mode: ColorMode::from_is_color(p.is_color()),
            shuffle,
            transformer,
            batch_size,
            shard: if param.phase() == Phase::TRAIN {
                data_shard()
            } else {
                DataShard::WHOLE
            },
            next_index: 0,
        };
        for _ in 0..loader.shard.rank {
            loader.advance();
        }
        loader.next_index = loader.shard.rank as u64;
        let first = loader.read(loader.pos).map_err(|e| lerr(e.to_string()))?;
        let mut shape = loader
            .transformer
            .infer_shape(&first.to_datum(0))
            .map_err(lerr)?;
        shape[0] = batch_size;
        Ok((loader, shape))
    }

    fn read(&self, index: usize) -> Result<Image> {
        // Caffe joins by plain concatenation: root_folder keeps its slash.
        let path = format!("{}{}", self.root, self.lines[index].0);
        let img = Image::read(Path::new(&path), self.mode)?;
        Ok(match self.new_size {
            Some((h, w)) => img.resize(h, w),
            None => img,
        })
    }
}

impl ImageBatchLoader {
    /// Moves to the next list entry, reshuffling at each epoch's end.
    fn advance(&mut self) {
        self.pos += 1;
        if self.pos == self.lines.len() {
            log::debug!("Restarting data prefetching from start.");
            self.pos = 0;
            if let Some(rng) = self.shuffle.as_mut() {
                shuffle_lines(&mut self.lines, rng);
            }
        }
    }
}

fn shuffle_lines(lines: &mut [(String, i32)], rng: &mut ChaCha8Rng) {
    for i in (1..lines.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        lines.swap(i, j);
    }
}

impl BatchLoader for ImageBatchLoader {
    fn load(&mut self, batch: &mut Batch) -> Result<()> {
        let mut per_item = 0;
        for item in 0..self.batch_size {
            let (file, label) = self.lines[self.pos].clone();
            let datum = self.read(self.pos)?.to_datum(label);
            if item == 0 {
                let mut shape = self
                    .transformer
                    .infer_shape(&datum)
                    .map_err(|e| Error::Other(format!("{file}: {e}")))?;
                shape[0] = self.batch_size;
                per_item = shape[1..].iter().product();
                batch.data.resize(per_item * self.batch_size, 0.0);
                batch.shape = shape;
                batch.label.resize(self.batch_size, 0.0);
            }
            let out = &mut batch.data[item * per_item..(item + 1) * per_item];
            if self.shard.count > 1 {
                self.transformer.seek(self.next_index);
            }
            self.transformer
                .transform(&datum, out)
                .map_err(|e| Error::Other(format!("{file}: {e}")))?;
            batch.label[item] = label as f32;
            for _ in 0..self.shard.count {
                self.advance();
            }
            self.next_index += self.shard.count as u64;
        }
        Ok(())
    }
}

pub struct ImageDataLayer {
    param: LayerParameter,
    queue: Option<PrefetchQueue>,
}

impl ImageDataLayer {
    pub fn new(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(ImageDataLayer {
            param: param.clone(),
            queue: None,
        }))
    }
}

impl Layer for ImageDataLayer {
    fn type_name(&self) -> &'static str {
        "ImageData"
    }

    fn setup(&mut self, _bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let (loader, shape) = ImageBatchLoader::from_param(&self.param)?;
        top[0].borrow_mut().reshape(&shape);
        log::info!(
            "output data size: {}",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        top[1].borrow_mut().reshape(&[shape[0]]);
        // ImageData has no prefetch field of its own; Caffe's default depth.
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
