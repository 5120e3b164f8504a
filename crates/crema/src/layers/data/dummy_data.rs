//! DummyData: tops filled by fillers, for tests and benchmarks. Shapes come
//! from `shape` (once, or once per top) or the legacy num/channels/height/width
//! lists; fillers are none (constant 0), one for every top, or one per top.
//! Constant tops are filled once at setup; the others on every forward.
use crema_proto::caffe::{FillerParameter, LayerParameter};

use super::input::dims_of;
use crate::blob::SharedBlob;
use crate::error::{Error, Result};
use crate::fillers::fill;
use crate::layers::Layer;

pub struct DummyDataLayer {
    param: LayerParameter,
    fillers: Vec<FillerParameter>,
    /// Whether forward refills the tops of each filler (false for constants).
    refill: Vec<bool>,
}

impl DummyDataLayer {
    pub fn new(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(DummyDataLayer {
            param: param.clone(),
            fillers: Vec::new(),
            refill: Vec::new(),
        }))
    }

    fn fill_tops(&self, top: &[SharedBlob], filled_now: impl Fn(bool) -> bool) -> Result<()> {
        for (i, t) in top.iter().enumerate() {
            let f = if self.fillers.len() > 1 { i } else { 0 };
            if filled_now(self.refill[f]) {
                fill(&self.fillers[f], &mut t.borrow_mut())
                    .map_err(|e| Error::layer(&self.param, e.to_string()))?;
            }
        }
        Ok(())
    }
}

impl Layer for DummyDataLayer {
    fn type_name(&self) -> &'static str {
        "DummyData"
    }

    fn setup(&mut self, _bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let p = self.param.dummy_data_param.get_or_default();
        let num_top = top.len();
        let num_fillers = p.data_filler.len();
        if !(num_fillers == 0 || num_fillers == 1 || num_fillers == num_top) {
            return Err(Error::layer(
                &self.param,
                format!(
                    "Number of data fillers must be 0, 1 or equal to the number of tops: {num_top}; you specified {num_fillers} data fillers."
                ),
            ));
        }
        let legacy = [&p.num, &p.channels, &p.height, &p.width];
        let legacy_dims = legacy.iter().any(|v| !v.is_empty());
        let mut shapes = Vec::with_capacity(num_top);
        if legacy_dims {
            if !p.shape.is_empty() {
                return Err(Error::layer(
                    &self.param,
                    "Both shape and legacy fields were specified",
                ));
            }
            for (field, values) in ["num", "channels", "height", "width"].iter().zip(legacy) {
                if values.len() != 1 && values.len() != num_top {
                    return Err(Error::layer(
                        &self.param,
                        format!(
                            "Must specify '{field}' once, or once per top blob ({num_top}); specified {}.",
                            values.len()
                        ),
                    ));
                }
            }
            for i in 0..num_top {
                let pick = |v: &Vec<u32>| v[if v.len() == 1 { 0 } else { i }] as usize;
                shapes.push(legacy.iter().map(|v| pick(v)).collect::<Vec<_>>());
            }
        } else {
            if p.shape.len() != 1 && p.shape.len() != num_top {
                return Err(Error::layer(
                    &self.param,
                    format!("Must specify 'shape' once, or once per top blob ({num_top}); specified {}.", p.shape.len()),
                ));
            }
            for i in 0..num_top {
                shapes.push(dims_of(
                    &self.param,
                    &p.shape[if p.shape.len() == 1 { 0 } else { i }],
                )?);
            }
        }
        self.fillers = if num_fillers == 0 {
            let mut zero = FillerParameter::new();
            zero.set_type("constant".into());
            zero.set_value(0.0);
            vec![zero]
        } else {
            p.data_filler.clone()
        };
        // Caffe makes its fillers here, so an unknown type fails at setup.
        let known = crate::fillers::FILLER_TYPES;
        if let Some(f) = self.fillers.iter().find(|f| !known.contains(&f.type_())) {
            let msg = format!(
                "unknown filler type \"{}\" (known: {})",
                f.type_(),
                known.join(", ")
            );
            return Err(Error::layer(&self.param, msg));
        }
        self.refill = self
            .fillers
            .iter()
            .map(|f| f.type_() != "constant")
            .collect();
        for (t, s) in top.iter().zip(&shapes) {
            t.borrow_mut().reshape(s);
        }
        // Constant tops never change: fill them now, and never again.
        self.fill_tops(top, |refill| !refill)
    }

    fn reshape(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        Ok(())
    }

    fn forward(&mut self, _bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        self.fill_tops(top, |refill| refill)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::Blob;

    fn layer(text: &str) -> Box<dyn Layer> {
        let p: LayerParameter = protobuf::text_format::parse_from_str(text).unwrap();
        DummyDataLayer::new(&p).unwrap()
    }
    fn tops(n: usize) -> Vec<SharedBlob> {
        (0..n).map(|_| Blob::shared(&[])).collect()
    }

    #[test]
    fn without_fillers_tops_are_zero_and_stay_put() {
        let mut l = layer(
            r#"name: "d" type: "DummyData" dummy_data_param { num: 2 channels: 3 height: 1 width: 4 num: 5 channels: 1 height: 1 width: 1 }"#,
        );
        let t = tops(2);
        l.setup(&[], &t).unwrap();
        assert_eq!(t[0].borrow().shape(), &[2, 3, 1, 4]);
        assert_eq!(t[1].borrow().shape(), &[5, 1, 1, 1]);
        t[0].borrow_mut().data_mut()[0] = 9.0;
        l.forward(&[], &t).unwrap();
        // A constant top is filled once, at setup.
        assert_eq!(t[0].borrow().data()[0], 9.0);
        assert!(t[1].borrow().data().iter().all(|&v| v == 0.0));
    }

    #[test]
    fn one_filler_per_top_refills_the_random_ones() {
        let mut l = layer(
            r#"name: "d" type: "DummyData" dummy_data_param {
                shape { dim: 3 dim: 2 } shape { dim: 4 }
                data_filler { type: "constant" value: 7 } data_filler { type: "uniform" min: 1 max: 2 } }"#,
        );
        let t = tops(2);
        l.setup(&[], &t).unwrap();
        assert!(t[0].borrow().data().iter().all(|&v| v == 7.0));
        // The uniform top is first filled by forward.
        assert!(t[1].borrow().data().iter().all(|&v| v == 0.0));
        l.forward(&[], &t).unwrap();
        let first = t[1].borrow().data().to_vec();
        assert!(first.iter().all(|&v| (1.0..=2.0).contains(&v)), "{first:?}");
        l.forward(&[], &t).unwrap();
        assert_ne!(t[1].borrow().data(), &first[..]);
    }

    #[test]
    fn one_shape_and_one_filler_serve_every_top() {
        let mut l = layer(
            r#"name: "d" type: "DummyData" dummy_data_param { shape { dim: 2 } data_filler { value: 3 } }"#,
        );
        let t = tops(3);
        l.setup(&[], &t).unwrap();
        for b in &t {
            assert_eq!(b.borrow().data(), &[3.0, 3.0]);
        }
    }

    #[test]
    fn bad_counts_use_caffes_messages() {
        let t = tops(3);
        let e = layer(
            r#"name: "d" dummy_data_param { shape { dim: 1 } data_filler { } data_filler { } }"#,
        )
        .setup(&[], &t)
        .unwrap_err()
        .to_string();
        assert!(e.contains("Number of data fillers must be 0, 1 or equal to the number of tops: 3; you specified 2 data fillers."), "{e}");
        let e = layer(r#"name: "d" dummy_data_param { shape { dim: 1 } shape { dim: 1 } }"#)
            .setup(&[], &t)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Must specify 'shape' once, or once per top blob (3); specified 2."),
            "{e}"
        );
        let e = layer(r#"name: "d" dummy_data_param { num: 1 channels: 1 height: 1 }"#)
            .setup(&[], &t)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Must specify 'width' once, or once per top blob (3); specified 0."),
            "{e}"
        );
        let e = layer(r#"name: "d" dummy_data_param { num: 1 channels: 1 height: 1 width: 1 shape { dim: 1 } }"#)
            .setup(&[], &t)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Both shape and legacy fields were specified"),
            "{e}"
        );
        let e = layer(
            r#"name: "d" dummy_data_param { shape { dim: 1 } data_filler { type: "nope" } }"#,
        )
        .setup(&[], &t[..1])
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown filler type"), "{e}");
    }
}
