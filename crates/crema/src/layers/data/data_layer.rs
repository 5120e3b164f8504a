//! Data: batches of Datums read in key order from a database (LMDB or
//! LevelDB), looped over for as many epochs as asked, transformed by
//! `transform_param`, and loaded on a prefetch thread `data_param.prefetch`
//! batches ahead.
//! Tops: data (N x C x H x W, shaped from the first datum as Caffe does) and,
//! when a second top is given, label (N).
//! In data-parallel training a TRAIN-phase layer reads only its replica's
//! share of the records (see `parallel::shard`).
use std::path::Path;

use crema_proto::caffe::{LayerParameter, Phase};

use crate::blob::SharedBlob;
use crate::data::{
    parse_datum, Backend, Batch, BatchLoader, DataTransformer, DbCursor, PrefetchQueue,
};
use crate::error::{Error, Result};
use crate::layers::Layer;
use crate::parallel::{data_shard, DataShard};

/// Fills batches from a database cursor: the work of the prefetch thread,
/// also usable directly (a synchronous read of the same batches).
pub struct DbBatchLoader {
    cursor: DbCursor,
    transformer: DataTransformer,
    batch_size: usize,
    output_labels: bool,
    source: String,
    shard: DataShard,
    /// The record index (counted from the start, across all shards) the
    /// next datum has: a sharded reader seeks its random draws there.
    next_index: u64,
}

impl DbBatchLoader {
    /// Opens `data_param.source`, applies `rand_skip`, and checks the first
    /// record. Returns the loader and the data top's shape. Random draws (the
    /// transformer's seed, then the skip) come from crema's generator in this
    /// order, so a fixed seed gives the same batches.
    pub fn from_param(
        param: &LayerParameter,
        output_labels: bool,
    ) -> Result<(DbBatchLoader, Vec<usize>)> {
        let draws = RandomStart::draw(param);
        Ok(DbBatchLoader::open(param, output_labels, draws, 0, DataShard::WHOLE)?.0)
    }

    /// Opens the loader with its random start given, positioned after
    /// `consumed` records have been read (by all shards together), reading
    /// `shard`'s records from there. Also returns the start it used.
    fn open(
        param: &LayerParameter,
        output_labels: bool,
        start: RandomStart,
        consumed: u64,
        shard: DataShard,
    ) -> Result<((DbBatchLoader, Vec<usize>), RandomStart)> {
        let lerr = |m: String| Error::layer(param, m);
        let dp = param.data_param.get_or_default();
        let batch_size = dp.batch_size() as usize;
        if batch_size == 0 {
            return Err(lerr("data_param.batch_size must be positive".into()));
        }
        if dp.has_scale() || dp.has_mean_file() || dp.has_crop_size() || dp.has_mirror() {
            // Caffe upgrades these only in V1 nets and otherwise ignores them.
            log::warn!(
                "layer {}: data_param scale/mean_file/crop_size/mirror are ignored; set them in transform_param",
                param.name()
            );
        }
        let source = dp.source().to_string();
        if source.is_empty() {
            return Err(lerr("data_param.source is not set".into()));
        }
        let mut transformer = DataTransformer::with_seed(
            param.transform_param.get_or_default(),
            param.phase(),
            start.seed,
        )
        .map_err(|e| lerr(e.to_string()))?;
        let first = consumed + shard.rank as u64;
        transformer.seek(first);
        let mut cursor = Backend::from_proto(dp.backend())
            .open_cursor(Path::new(&source))
            .map_err(|e| lerr(e.to_string()))?;
        if !cursor.valid() {
            return Err(lerr(format!("database {source} holds no records")));
        }
        if start.skip > 0 && consumed == 0 {
            log::info!("Skipping first {} data points.", start.skip);
        }
        for _ in 0..start.skip + first {
            cursor.next_wrapping().map_err(|e| lerr(e.to_string()))?;
        }
        let key = String::from_utf8_lossy(cursor.key()).into_owned();
        let datum = parse_datum(cursor.value(), &key, &source).map_err(|e| lerr(e.to_string()))?;
        let mut shape = transformer
            .infer_shape(&datum)
            .map_err(|e| lerr(format!("record {key} in {source}: {e}")))?;
        shape[0] = batch_size;
        let loader = DbBatchLoader {
            cursor,
            transformer,
            batch_size,
            output_labels,
            source,
            shard,
            next_index: first,
        };
        Ok(((loader, shape), start))
    }
}

/// The random draws a Data layer makes when it opens: the transformer's seed,
/// then the rand_skip offset, both from crema's generator, in that order (so
/// a fixed seed gives the same batches). Kept to reopen at a saved position.
#[derive(Clone, Copy, Debug)]
struct RandomStart {
    seed: u64,
    skip: u64,
}

impl RandomStart {
    fn draw(param: &LayerParameter) -> RandomStart {
        let seed = crate::rng::next_u64();
        let rand_skip = u64::from(param.data_param.get_or_default().rand_skip());
        let skip = if rand_skip > 0 {
            crate::rng::next_u64() % rand_skip
        } else {
            0
        };
        RandomStart { seed, skip }
    }
}

impl BatchLoader for DbBatchLoader {
    fn load(&mut self, batch: &mut Batch) -> Result<()> {
        let mut per_item = 0;
        for item in 0..self.batch_size {
            let key = String::from_utf8_lossy(self.cursor.key()).into_owned();
            let at = |e: String| Error::Other(format!("record {key} in {}: {e}", self.source));
            let datum = parse_datum(self.cursor.value(), &key, &self.source)?;
            if item == 0 {
                // Each batch takes its shape from its first datum, so inputs
                // may change size between batches (not within one).
                let mut shape = self.transformer.infer_shape(&datum).map_err(at)?;
                shape[0] = self.batch_size;
                per_item = shape[1..].iter().product();
                batch.data.resize(per_item * self.batch_size, 0.0);
                batch.shape = shape;
                batch.label.resize(
                    if self.output_labels {
                        self.batch_size
                    } else {
                        0
                    },
                    0.0,
                );
            }
            let out = &mut batch.data[item * per_item..(item + 1) * per_item];
            if self.shard.count > 1 {
                // Crops and mirrors follow the record, not the reader.
                self.transformer.seek(self.next_index);
            }
            self.transformer.transform(&datum, out).map_err(at)?;
            if self.output_labels {
                batch.label[item] = datum.label() as f32;
            }
            for _ in 0..self.shard.count {
                self.cursor.next_wrapping()?;
            }
            self.next_index += self.shard.count as u64;
        }
        Ok(())
    }
}

pub struct DataLayer {
    param: LayerParameter,
    queue: Option<PrefetchQueue>,
    output_labels: bool,
    start: Option<RandomStart>,
    /// Records read so far by all shards together (batches times
    /// batch_size times shards): where a resume on any number of replicas
    /// starts reading.
    consumed: u64,
    shard: DataShard,
}

impl DataLayer {
    pub fn new(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(DataLayer {
            param: param.clone(),
            queue: None,
            output_labels: false,
            start: None,
            consumed: 0,
            shard: if param.phase() == Phase::TRAIN {
                data_shard()
            } else {
                DataShard::WHOLE
            },
        }))
    }

    /// Starts the prefetch thread on a loader `consumed` records in.
    fn start_queue(&mut self, start: RandomStart) -> Result<Vec<usize>> {
        // The old thread (if any) stops before the new one opens the database.
        self.queue = None;
        let ((loader, shape), start) = DbBatchLoader::open(
            &self.param,
            self.output_labels,
            start,
            self.consumed,
            self.shard,
        )?;
        self.start = Some(start);
        let count = self.param.data_param.get_or_default().prefetch() as usize;
        self.queue = Some(PrefetchQueue::start(self.param.name(), count, loader)?);
        Ok(shape)
    }
}

impl Layer for DataLayer {
    fn type_name(&self) -> &'static str {
        "Data"
    }

    fn setup(&mut self, _bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        self.output_labels = top.len() > 1;
        let output_labels = self.output_labels;
        let shape = self.start_queue(RandomStart::draw(&self.param))?;
        top[0].borrow_mut().reshape(&shape);
        log::info!(
            "output data size: {}",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        if output_labels {
            top[1].borrow_mut().reshape(&[shape[0]]);
        }
        Ok(())
    }

    fn reshape(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        // Forward shapes the tops from each batch.
        Ok(())
    }

    fn forward(&mut self, _bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        super::forward_prefetched(&self.param, self.queue.as_ref(), top)?;
        self.consumed += (top[0].borrow().shape()[0] * self.shard.count) as u64;
        Ok(())
    }

    fn data_position(&self) -> Option<u64> {
        Some(self.consumed)
    }

    fn seek_data(&mut self, records: u64) -> Result<()> {
        let start = self
            .start
            .ok_or_else(|| Error::layer(&self.param, "seek before setup"))?;
        self.consumed = records;
        self.start_queue(start)?;
        Ok(())
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
    fn min_top_blobs(&self) -> Option<usize> {
        Some(1)
    }
    fn max_top_blobs(&self) -> Option<usize> {
        Some(2)
    }
}
