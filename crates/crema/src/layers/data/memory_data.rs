//! MemoryData: batches from arrays the caller hands over with `reset` (or as
//! datums with `add_datum_vector`, which are transformed), cycled through in
//! order. Tops: data (batch_size x channels x height x width) and labels.
//! Callers reach the layer through the net with `as_any_mut`:
//! `net.layers_mut()[i].as_any_mut().and_then(|l| l.downcast_mut::<MemoryDataLayer>())`.
use crema_proto::caffe::{Datum, LayerParameter};

use crate::blob::SharedBlob;
use crate::data::DataTransformer;
use crate::error::{Error, Result};
use crate::layers::Layer;

pub struct MemoryDataLayer {
    param: LayerParameter,
    batch_size: usize,
    channels: usize,
    height: usize,
    width: usize,
    data: Vec<f32>,
    labels: Vec<f32>,
    n: usize,
    pos: usize,
    /// Set by `add_datum_vector` until its data has been served once.
    has_new_data: bool,
    transformer: Option<DataTransformer>,
}

impl MemoryDataLayer {
    pub fn new(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        let p = param.memory_data_param.get_or_default();
        Ok(Box::new(MemoryDataLayer {
            param: param.clone(),
            batch_size: p.batch_size() as usize,
            channels: p.channels() as usize,
            height: p.height() as usize,
            width: p.width() as usize,
            data: Vec::new(),
            labels: Vec::new(),
            n: 0,
            pos: 0,
            has_new_data: false,
            transformer: None,
        }))
    }

    fn item_size(&self) -> usize {
        self.channels * self.height * self.width
    }

    fn err(&self, msg: impl Into<String>) -> Error {
        Error::layer(&self.param, msg)
    }

    /// Serves `n` items from `data` (n x channels x height x width values)
    /// and `labels` (n values), starting over at the first. `n` must be a
    /// multiple of the batch size. Array data is not transformed.
    pub fn reset(&mut self, data: Vec<f32>, labels: Vec<f32>, n: usize) -> Result<()> {
        if n == 0 || n % self.batch_size != 0 {
            return Err(self.err(format!(
                "n must be a multiple of batch size {} (got {n})",
                self.batch_size
            )));
        }
        if data.len() != n * self.item_size() {
            return Err(self.err(format!(
                "data holds {} values; {n} items of {}x{}x{} need {}",
                data.len(),
                self.channels,
                self.height,
                self.width,
                n * self.item_size()
            )));
        }
        if labels.len() != n {
            return Err(self.err(format!("labels hold {} values for {n} items", labels.len())));
        }
        if self.param.transform_param.is_some() {
            log::warn!("MemoryData does not transform array data on reset()");
        }
        self.data = data;
        self.labels = labels;
        self.n = n;
        self.pos = 0;
        Ok(())
    }

    /// Transforms datums with `transform_param` and serves them (Caffe's
    /// AddDatumVector); their number must be a multiple of the batch size.
    pub fn add_datum_vector(&mut self, datums: &[Datum]) -> Result<()> {
        if self.has_new_data {
            return Err(self.err("Can't add data until current data has been consumed."));
        }
        if datums.is_empty() || datums.len() % self.batch_size != 0 {
            return Err(self.err(format!(
                "The added data must be a multiple of the batch size {} (got {})",
                self.batch_size,
                datums.len()
            )));
        }
        let size = self.item_size();
        let mut data = vec![0.0; datums.len() * size];
        let t = self
            .transformer
            .as_mut()
            .ok_or_else(|| Error::layer(&self.param, "add_datum_vector before setup"))?;
        for (i, d) in datums.iter().enumerate() {
            let shape = t
                .infer_shape(d)
                .map_err(|e| Error::layer(&self.param, format!("datum {i}: {e}")))?;
            if shape[1..] != [self.channels, self.height, self.width] {
                return Err(Error::layer(
                    &self.param,
                    format!(
                        "datum {i} transforms to {:?}, the layer serves {}x{}x{}",
                        &shape[1..],
                        self.channels,
                        self.height,
                        self.width
                    ),
                ));
            }
            t.transform(d, &mut data[i * size..(i + 1) * size])
                .map_err(|e| Error::layer(&self.param, format!("datum {i}: {e}")))?;
        }
        let labels = datums.iter().map(|d| d.label() as f32).collect();
        let n = datums.len();
        self.data = data;
        self.labels = labels;
        self.n = n;
        self.pos = 0;
        self.has_new_data = true;
        Ok(())
    }

    /// Changes the batch size (Caffe's set_batch_size).
    pub fn set_batch_size(&mut self, batch_size: usize) -> Result<()> {
        if self.has_new_data {
            return Err(self.err("Can't change batch_size until current data has been consumed."));
        }
        if batch_size == 0 {
            return Err(self.err("batch_size must be positive"));
        }
        self.batch_size = batch_size;
        Ok(())
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }
    pub fn channels(&self) -> usize {
        self.channels
    }
    pub fn height(&self) -> usize {
        self.height
    }
    pub fn width(&self) -> usize {
        self.width
    }
}

impl Layer for MemoryDataLayer {
    fn type_name(&self) -> &'static str {
        "MemoryData"
    }

    fn setup(&mut self, _bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        if self.batch_size * self.item_size() == 0 {
            return Err(self.err("batch_size, channels, height, and width must be specified and positive in memory_data_param"));
        }
        self.transformer = Some(
            DataTransformer::new(
                self.param.transform_param.get_or_default(),
                self.param.phase(),
            )
            .map_err(|e| self.err(e.to_string()))?,
        );
        top[0]
            .borrow_mut()
            .reshape(&[self.batch_size, self.channels, self.height, self.width]);
        top[1].borrow_mut().reshape(&[self.batch_size]);
        Ok(())
    }

    fn reshape(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        Ok(())
    }

    fn forward(&mut self, _bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        if self.n == 0 {
            return Err(self.err("MemoryData needs to be initialized by calling reset"));
        }
        let (b, size) = (self.batch_size, self.item_size());
        // reset checked n against the batch size of its time; a later
        // set_batch_size may not divide it, so the last batch can wrap.
        let mut data = top[0].borrow_mut();
        data.reshape(&[b, self.channels, self.height, self.width]);
        let mut labels = top[1].borrow_mut();
        labels.reshape(&[b, 1, 1, 1]);
        let (out, lab) = (data.data_mut(), labels.data_mut());
        for i in 0..b {
            let src = (self.pos + i) % self.n;
            out[i * size..(i + 1) * size].copy_from_slice(&self.data[src * size..(src + 1) * size]);
            lab[i] = self.labels[src];
        }
        self.pos = (self.pos + b) % self.n;
        if self.pos == 0 {
            self.has_new_data = false;
        }
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

    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        Some(self)
    }

    fn exact_num_bottom_blobs(&self) -> Option<usize> {
        Some(0)
    }
    fn exact_num_top_blobs(&self) -> Option<usize> {
        Some(2)
    }
}
