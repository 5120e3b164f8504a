//! Shared by the solver tests: the fixture file, a data layer that serves
//! fixed batches in order (as Caffe's solver tests read theirs from HDF5),
//! the least-squares net built on it, and LMDB writers (a small 23-record
//! database, MNIST IDX files) for the data-fed solver tests.
#![allow(dead_code)]
use std::collections::HashMap;
use std::rc::Rc;

use crema::proto::caffe::{LayerParameter, SolverParameter};
use crema::{Layer, Result, SharedBlob, Solver};

/// `key: values` lines of tests/fixtures/solver_updates.txt, split into the
/// shared header and one map per `case:`.
pub struct Fixture {
    pub header: HashMap<String, String>,
    pub cases: Vec<(String, HashMap<String, String>)>,
}

pub fn fixture() -> Fixture {
    let text = include_str!("../fixtures/solver_updates.txt");
    let mut header = HashMap::new();
    let mut cases: Vec<(String, HashMap<String, String>)> = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (k, v) = line.split_once(':').expect("fixture lines are key: value");
        let v = v.trim().to_string();
        match k {
            "case" => cases.push((v, HashMap::new())),
            "end" => {}
            _ => match cases.last_mut() {
                Some((_, m)) => drop(m.insert(k.to_string(), v)),
                None => drop(header.insert(k.to_string(), v)),
            },
        }
    }
    Fixture { header, cases }
}

pub fn floats(s: &str) -> Vec<f32> {
    s.split_whitespace().map(|v| v.parse().unwrap()).collect()
}

pub const BATCH: usize = 4;

/// Serves rows of `data` (8 features as 2x2x2) and `target` in batches of
/// four, in order, wrapping around.
pub struct FixtureData {
    data: Rc<Vec<f32>>,
    target: Rc<Vec<f32>>,
    cursor: usize,
}

impl Layer for FixtureData {
    fn type_name(&self) -> &'static str {
        "FixtureData"
    }
    fn setup(&mut self, _b: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        top[0].borrow_mut().reshape(&[BATCH, 2, 2, 2]);
        top[1].borrow_mut().reshape(&[BATCH, 1, 1, 1]);
        Ok(())
    }
    fn reshape(&mut self, _b: &[SharedBlob], _t: &[SharedBlob]) -> Result<()> {
        Ok(())
    }
    fn forward(&mut self, _b: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let rows = self.target.len();
        let (mut x, mut y) = (top[0].borrow_mut(), top[1].borrow_mut());
        for i in 0..BATCH {
            let r = (self.cursor + i) % rows;
            x.data_mut()[i * 8..(i + 1) * 8].copy_from_slice(&self.data[r * 8..(r + 1) * 8]);
            y.data_mut()[i] = self.target[r];
        }
        self.cursor = (self.cursor + BATCH) % rows;
        Ok(())
    }
    fn backward(&mut self, _t: &[SharedBlob], _p: &[bool], _b: &[SharedBlob]) -> Result<()> {
        Ok(())
    }
}

/// The least-squares net: a 2x2 convolution to one output over a 2x2x2
/// input is an inner product with bias; EuclideanLoss against the target.
pub fn linreg_net(bias_lr_mult: f32, bias_decay_mult: f32) -> String {
    format!(
        r#"name: "linreg"
        layer {{ name: "data" type: "FixtureData" top: "data" top: "target" }}
        layer {{ name: "ip" type: "Convolution" bottom: "data" top: "pred"
                param {{ lr_mult: 1 decay_mult: 1 }} param {{ lr_mult: {bias_lr_mult} decay_mult: {bias_decay_mult} }}
                convolution_param {{ num_output: 1 kernel_size: 2 }} }}
        layer {{ name: "loss" type: "EuclideanLoss" bottom: "pred" bottom: "target" top: "loss" }}"#
    )
}

/// A solver on the least-squares net fed by FixtureData, weights set to w0/b0.
pub fn linreg_solver(solver_text: &str, bias_mult: (f32, f32), f: &Fixture) -> Solver {
    let text = format!(
        "{solver_text} net_param {{ {} }} snapshot_after_train: false",
        linreg_net(bias_mult.0, bias_mult.1)
    );
    let param: SolverParameter = crema::proto::text::parse(&text, "fixture solver").unwrap();
    let data = Rc::new(floats(&f.header["data"]));
    let target = Rc::new(floats(&f.header["target"]));
    let factory = move |p: &LayerParameter| -> Result<Box<dyn Layer>> {
        if p.type_() == "FixtureData" {
            Ok(Box::new(FixtureData {
                data: data.clone(),
                target: target.clone(),
                cursor: 0,
            }))
        } else {
            crema::create_layer(p)
        }
    };
    let solver = Solver::with_factory(&param, &factory).unwrap();
    let params = solver.net().learnable_params();
    params[0]
        .borrow_mut()
        .data_mut()
        .copy_from_slice(&floats(&f.header["w0"]));
    params[1]
        .borrow_mut()
        .data_mut()
        .copy_from_slice(&floats(&f.header["b0"]));
    solver
}

/// A unique scratch folder for one test.
pub fn scratch_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("crema-solver-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// 23 records of 1 x 5 x 5 bytes, label i % 3 (not a multiple of any batch,
/// so epochs wrap mid-batch).
pub fn write_small_db(path: &std::path::Path) {
    let mut w = crema::data::LmdbWriter::create(path).unwrap();
    for i in 0..23usize {
        let mut d = crema::proto::caffe::Datum::new();
        d.set_channels(1);
        d.set_height(5);
        d.set_width(5);
        d.set_data((0..25).map(|p| ((i * 37 + p * 11) % 251) as u8).collect());
        d.set_label((i % 3) as i32);
        w.put(
            crema::data::index_key(i).as_bytes(),
            crema::proto::binary::encode(&d).unwrap(),
        );
    }
    w.commit().unwrap();
}

/// The first `count` images of an MNIST IDX pair in an LMDB, as
/// convert_mnist_data stores them.
pub fn write_mnist_lmdb(
    images: &std::path::Path,
    labels: &std::path::Path,
    count: usize,
    db: &std::path::Path,
) {
    let images = std::fs::read(images).unwrap();
    let labels = std::fs::read(labels).unwrap();
    let mut w = crema::data::LmdbWriter::create(db).unwrap();
    for i in 0..count {
        let mut d = crema::proto::caffe::Datum::new();
        d.set_channels(1);
        d.set_height(28);
        d.set_width(28);
        d.set_data(images[16 + i * 784..16 + (i + 1) * 784].to_vec());
        d.set_label(labels[8 + i] as i32);
        w.put(
            crema::data::index_key(i),
            crema::proto::binary::encode(&d).unwrap(),
        );
    }
    w.commit().unwrap();
}
