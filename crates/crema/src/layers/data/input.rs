//! Input: tops the caller fills (a deploy net's `data`). Shapes come from
//! `input_param.shape`: one shape for every top, one per top, or none (the
//! caller reshapes the blobs before the first forward).
use crema_proto::caffe::{BlobShape, LayerParameter};

use crate::blob::SharedBlob;
use crate::error::{Error, Result};
use crate::layers::Layer;

pub struct InputLayer {
    param: LayerParameter,
}

impl InputLayer {
    pub fn new(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(InputLayer {
            param: param.clone(),
        }))
    }
}

/// A stored shape as blob dimensions; negative dimensions are refused.
pub(crate) fn dims_of(param: &LayerParameter, shape: &BlobShape) -> Result<Vec<usize>> {
    if shape.dim.len() > crate::blob::MAX_BLOB_AXES {
        return Err(Error::layer(
            param,
            format!(
                "shape has {} axes, more than {}",
                shape.dim.len(),
                crate::blob::MAX_BLOB_AXES
            ),
        ));
    }
    shape
        .dim
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| {
                Error::layer(
                    param,
                    format!("shape {:?} has a negative dimension", shape.dim),
                )
            })
        })
        .collect()
}

impl Layer for InputLayer {
    fn type_name(&self) -> &'static str {
        "Input"
    }

    fn setup(&mut self, _bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let shapes = &self.param.input_param.shape;
        let (num_top, num_shape) = (top.len(), shapes.len());
        if !(num_shape == 0 || num_shape == 1 || num_shape == num_top) {
            return Err(Error::layer(
                &self.param,
                format!("Must specify 'shape' once, once per top blob, or not at all: {num_top} tops vs. {num_shape} shapes."),
            ));
        }
        if num_shape > 0 {
            for (i, t) in top.iter().enumerate() {
                let dims = dims_of(&self.param, &shapes[if num_shape == 1 { 0 } else { i }])?;
                t.borrow_mut().reshape(&dims);
            }
        }
        Ok(())
    }

    // The caller owns the tops' shapes and values.
    fn reshape(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        Ok(())
    }
    fn forward(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::Blob;

    fn input_param(shapes: &[&[i64]]) -> LayerParameter {
        let mut p = LayerParameter::new();
        p.set_name("data".into());
        p.set_type("Input".into());
        for s in shapes {
            let mut bs = BlobShape::new();
            bs.dim = s.to_vec();
            p.input_param.mut_or_insert_default().shape.push(bs);
        }
        p
    }

    #[test]
    fn one_shape_applies_to_every_top() {
        let tops = vec![Blob::shared(&[]), Blob::shared(&[])];
        let mut l = InputLayer::new(&input_param(&[&[2, 3, 4]])).unwrap();
        l.setup(&[], &tops).unwrap();
        assert_eq!(tops[0].borrow().shape(), &[2, 3, 4]);
        assert_eq!(tops[1].borrow().shape(), &[2, 3, 4]);
    }

    #[test]
    fn one_shape_per_top() {
        let tops = vec![Blob::shared(&[]), Blob::shared(&[])];
        let mut l = InputLayer::new(&input_param(&[&[5, 1, 28, 28], &[5]])).unwrap();
        l.setup(&[], &tops).unwrap();
        assert_eq!(tops[0].borrow().shape(), &[5, 1, 28, 28]);
        assert_eq!(tops[1].borrow().shape(), &[5]);
    }

    #[test]
    fn shape_count_must_match_tops() {
        let tops = vec![Blob::shared(&[]), Blob::shared(&[]), Blob::shared(&[])];
        let mut l = InputLayer::new(&input_param(&[&[1], &[2]])).unwrap();
        let err = l.setup(&[], &tops).unwrap_err().to_string();
        assert!(
            err.contains(
                "Must specify 'shape' once, once per top blob, or not at all: 3 tops vs. 2 shapes."
            ),
            "{err}"
        );
        let mut l = InputLayer::new(&input_param(&[&[1, -2]])).unwrap();
        assert!(l
            .setup(&[], &tops[..1])
            .unwrap_err()
            .to_string()
            .contains("negative"));
    }
}
