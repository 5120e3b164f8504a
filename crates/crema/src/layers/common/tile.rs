//! Tile: repeats everything from `tile_param.axis` (default 1) on `tiles`
//! times along that axis, so the axis grows `tiles`-fold. The gradient sums
//! the copies.
use crema_proto::caffe::LayerParameter;

use super::{canonical_axis, check_distinct, propagates};
use crate::blob::SharedBlob;
use crate::ensure;
use crate::error::Result;
use crate::layers::Layer;

pub struct TileLayer {
    param: LayerParameter,
    tiles: usize,
    /// Items before the axis, and values in one tiled block (axis and after).
    outer: usize,
    inner: usize,
}

impl TileLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(TileLayer {
            param: param.clone(),
            tiles: 0,
            outer: 0,
            inner: 0,
        }))
    }
}

impl Layer for TileLayer {
    fn type_name(&self) -> &'static str {
        "Tile"
    }
    fn setup(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        let (p, tp) = (&self.param, self.param.tile_param.get_or_default());
        ensure!(p, tp.has_tiles(), "tile_param.tiles must be specified");
        ensure!(
            p,
            tp.tiles() > 0,
            "Number of tiles must be positive (got {}).",
            tp.tiles()
        );
        self.tiles = tp.tiles() as usize;
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let p = &self.param;
        check_distinct(p, bottom, top)?;
        let b = bottom[0].borrow();
        let axis = canonical_axis(p, &b, p.tile_param.get_or_default().axis() as i64)?;
        let mut shape = b.shape().to_vec();
        shape[axis] *= self.tiles;
        self.outer = b.count_range(0, axis);
        self.inner = b.count_from(axis);
        drop(b);
        top[0].borrow_mut().reshape(&shape);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let b = bottom[0].borrow();
        let x = b.data();
        let mut t = top[0].borrow_mut();
        let y = t.data_mut();
        let (inner, tiles) = (self.inner, self.tiles);
        for o in 0..self.outer {
            let src = &x[o * inner..(o + 1) * inner];
            for k in 0..tiles {
                let d = (o * tiles + k) * inner;
                y[d..d + inner].copy_from_slice(src);
            }
        }
        Ok(())
    }
    fn backward(
        &mut self,
        top: &[SharedBlob],
        propagate_down: &[bool],
        bottom: &[SharedBlob],
    ) -> Result<()> {
        if !propagates(propagate_down, 0) {
            return Ok(());
        }
        let t = top[0].borrow();
        let dy = t.diff();
        let mut b = bottom[0].borrow_mut();
        let dx = b.diff_mut();
        let (inner, tiles) = (self.inner, self.tiles);
        for o in 0..self.outer {
            let d = &mut dx[o * inner..(o + 1) * inner];
            d.copy_from_slice(&dy[o * tiles * inner..(o * tiles + 1) * inner]);
            for k in 1..tiles {
                let s = (o * tiles + k) * inner;
                d.iter_mut()
                    .zip(&dy[s..s + inner])
                    .for_each(|(a, b)| *a += b);
            }
        }
        Ok(())
    }
    fn exact_num_bottom_blobs(&self) -> Option<usize> {
        Some(1)
    }
    fn exact_num_top_blobs(&self) -> Option<usize> {
        Some(1)
    }
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)]
mod tests {
    use super::super::testutil::*;
    use crate::gradient_check::GradientChecker;

    const TEXT: &str = include_str!("../../../tests/fixtures/catalog_layers.txt");

    fn tile(axis: Option<i32>, tiles: Option<i32>) -> crema_proto::caffe::LayerParameter {
        param("Tile", |p| {
            let tp = p.tile_param.mut_or_insert_default();
            if let Some(a) = axis {
                tp.set_axis(a);
            }
            if let Some(t) = tiles {
                tp.set_tiles(t);
            }
        })
    }

    fn x() -> crate::SharedBlob {
        blob(&[2, 3, 2], &fixture_line(TEXT, "tile_x"))
    }

    #[test]
    fn tile_matches_numpy_tile() {
        let t = empty();
        run(&mut *layer(&tile(None, Some(3))), &[x()], &[t.clone()]);
        assert_eq!(t.borrow().shape(), &[2, 9, 2]);
        assert_close(t.borrow().data(), &fixture_line(TEXT, "tile_axis1_3"), 1e-7);
        let t = empty();
        run(&mut *layer(&tile(Some(-1), Some(2))), &[x()], &[t.clone()]);
        assert_eq!(t.borrow().shape(), &[2, 3, 4]);
        assert_close(
            t.borrow().data(),
            &fixture_line(TEXT, "tile_axis_last_2"),
            1e-7,
        );
    }

    #[test]
    fn tile_gradient() {
        let mut l = layer(&tile(Some(1), Some(3)));
        GradientChecker::new(1e-2, 1e-3).check_gradient_exhaustive(
            &mut *l,
            &[x()],
            &[empty()],
            None,
        );
    }

    #[test]
    fn tile_refuses_missing_or_nonpositive_tiles() {
        for p in [tile(None, None), tile(None, Some(0))] {
            let msg = setup_error(&mut *layer(&p), &[x()], &[empty()]);
            assert!(msg.contains("tiles"), "{msg}");
        }
        let msg = setup_error(&mut *layer(&tile(Some(3), Some(2))), &[x()], &[empty()]);
        assert!(msg.contains("out of range"), "{msg}");
    }
}
