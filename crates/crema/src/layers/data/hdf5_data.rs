//! HDF5Data: rows from HDF5 files listed in `hdf5_data_param.source` (one
//! path per whitespace-separated token). Each top reads the dataset named
//! as the top, of any rank, float or integer; all of a file's datasets have
//! the same first dimension, the rows. Tops are batch_size x (row shape).
//!
//! As Caffe: files are read whole, one at a time, in list order, wrapping
//! around; with `shuffle` the file order is shuffled at setup and at each
//! wrap, and the row order at each file load and each pass over a file.
use std::path::Path;

use crema_proto::caffe::LayerParameter;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::blob::SharedBlob;
use crate::error::{Error, Result};
use crate::hdf5::H5Reader;
use crate::layers::Layer;

pub struct HDF5DataLayer {
    param: LayerParameter,
    batch_size: usize,
    files: Vec<String>,
    file_order: Vec<usize>,
    current_file: usize,
    /// The loaded file's datasets, one per top: (shape, values).
    datasets: Vec<(Vec<usize>, Vec<f32>)>,
    row_order: Vec<usize>,
    current_row: usize,
    shuffle: Option<ChaCha8Rng>,
}

fn shuffle(order: &mut [usize], rng: &mut ChaCha8Rng) {
    for i in (1..order.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
}

impl HDF5DataLayer {
    pub fn new(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        if !crate::hdf5::ENABLED {
            return Err(Error::layer(param, crate::hdf5::NO_HDF5));
        }
        Ok(Box::new(HDF5DataLayer {
            param: param.clone(),
            batch_size: 0,
            files: Vec::new(),
            file_order: Vec::new(),
            current_file: 0,
            datasets: Vec::new(),
            row_order: Vec::new(),
            current_row: 0,
            shuffle: None,
        }))
    }

    fn err(&self, msg: impl Into<String>) -> Error {
        Error::layer(&self.param, msg)
    }

    /// Reads every top's dataset from file `files[file_order[current_file]]`.
    fn load_file(&mut self) -> Result<()> {
        let name = self.files[self.file_order[self.current_file]].clone();
        log::debug!("Loading HDF5 file: {name}");
        let file = H5Reader::open(Path::new(&name)).map_err(|e| self.err(e.to_string()))?;
        let mut datasets = Vec::with_capacity(self.param.top.len());
        for top in &self.param.top {
            let (shape, data) = file.read_f32(top).map_err(|e| self.err(e.to_string()))?;
            if shape.is_empty() {
                return Err(self.err(format!(
                    "{name}: dataset {top} is a scalar; it needs at least 1 axis"
                )));
            }
            datasets.push((shape, data));
        }
        let rows = datasets[0].0[0];
        if rows == 0 {
            return Err(self.err(format!("{name}: dataset {} has no rows", self.param.top[0])));
        }
        for (top, (shape, _)) in self.param.top.iter().zip(&datasets).skip(1) {
            if shape[0] != rows {
                return Err(self.err(format!(
                    "{name}: dataset {top} has {} rows, {} has {rows}; all must have the same first dimension",
                    shape[0], self.param.top[0]
                )));
            }
        }
        self.datasets = datasets;
        self.row_order = (0..rows).collect();
        if let Some(rng) = self.shuffle.as_mut() {
            shuffle(&mut self.row_order, rng);
        }
        log::debug!("Successfully loaded {rows} rows");
        Ok(())
    }
}

impl Layer for HDF5DataLayer {
    fn type_name(&self) -> &'static str {
        "HDF5Data"
    }

    fn setup(&mut self, _bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        if self.param.transform_param.is_some() {
            return Err(self.err("HDF5Data does not transform data."));
        }
        // Each top reads the dataset its name gives, so every top needs one.
        if top.is_empty() || self.param.top.len() != top.len() {
            return Err(self.err(format!(
                "HDF5Data reads the dataset named by each top: it has {} tops and {} top names",
                top.len(),
                self.param.top.len()
            )));
        }
        let p = self.param.hdf5_data_param.get_or_default();
        self.batch_size = p.batch_size() as usize;
        if self.batch_size == 0 {
            return Err(self.err("hdf5_data_param.batch_size must be positive"));
        }
        let source = p.source().to_string();
        log::info!("Loading list of HDF5 filenames from: {source}");
        let list = std::fs::read_to_string(&source)
            .map_err(|e| self.err(format!("Failed to open source file: {source}: {e}")))?;
        self.files = list.split_whitespace().map(str::to_string).collect();
        log::info!("Number of HDF5 files: {}", self.files.len());
        if self.files.is_empty() {
            return Err(self.err(format!(
                "Must have at least 1 HDF5 filename listed in {source}"
            )));
        }
        self.file_order = (0..self.files.len()).collect();
        if p.shuffle() {
            let mut rng = ChaCha8Rng::seed_from_u64(crate::rng::next_u64());
            shuffle(&mut self.file_order, &mut rng);
            self.shuffle = Some(rng);
        }
        self.current_file = 0;
        self.load_file()?;
        self.current_row = 0;
        for (t, (shape, _)) in top.iter().zip(&self.datasets) {
            let mut s = shape.clone();
            s[0] = self.batch_size;
            t.borrow_mut().reshape(&s);
        }
        Ok(())
    }

    fn reshape(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        Ok(())
    }

    fn forward(&mut self, _bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let mut tops: Vec<_> = top.iter().map(|t| t.borrow_mut()).collect();
        for i in 0..self.batch_size {
            if self.current_row == self.row_order.len() {
                if self.files.len() > 1 {
                    self.current_file += 1;
                    if self.current_file == self.files.len() {
                        self.current_file = 0;
                        if let Some(rng) = self.shuffle.as_mut() {
                            shuffle(&mut self.file_order, rng);
                        }
                        log::debug!("Looping around to first file.");
                    }
                    self.load_file()?;
                }
                self.current_row = 0;
                if let Some(rng) = self.shuffle.as_mut() {
                    shuffle(&mut self.row_order, rng);
                }
            }
            let row = self.row_order[self.current_row];
            for (j, t) in tops.iter_mut().enumerate() {
                let (shape, data) = &self.datasets[j];
                let dim: usize = shape[1..].iter().product();
                if t.count() != self.batch_size * dim {
                    return Err(self.err(format!(
                        "{}: dataset {} rows are {:?}, the top was shaped for {:?}",
                        self.files[self.file_order[self.current_file]],
                        self.param.top[j],
                        &shape[1..],
                        &t.shape()[1..]
                    )));
                }
                t.data_mut()[i * dim..(i + 1) * dim]
                    .copy_from_slice(&data[row * dim..(row + 1) * dim]);
            }
            self.current_row += 1;
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

    fn exact_num_bottom_blobs(&self) -> Option<usize> {
        Some(0)
    }
    fn min_top_blobs(&self) -> Option<usize> {
        Some(1)
    }
}
