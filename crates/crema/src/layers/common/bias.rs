//! Bias: `top = bottom[0] + b`, where `b` is broadcast over bottom[0]'s axes
//! `axis .. axis + b.num_axes()`. `b` is either a learnable blob (one bottom;
//! its shape is bottom[0]'s from `axis`, `num_axes` long, -1 meaning to the
//! end, filled by `filler`, default constant 0) or a second bottom. Works in
//! place. The broadcast helpers here serve Scale as well.
use crema_proto::caffe::{FillerParameter, LayerParameter};

use super::{canonical_axis, propagates};
use crate::blob::{Blob, SharedBlob};
use crate::error::{Error, Result};
use crate::fillers;
use crate::layers::neuron::same_blob;
use crate::layers::Layer;

/// How an operand of shape `S` lines up with bottom[0]: bottom[0] is
/// `[outer, S..., inner]` with `dim = count(S)`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Broadcast {
    pub outer: usize,
    pub dim: usize,
    pub inner: usize,
}

impl Broadcast {
    /// Index into the operand of bottom element `i`.
    pub fn operand_index(&self, i: usize) -> usize {
        (i / self.inner) % self.dim
    }
}

/// The learnable operand's shape: bottom[0]'s axes from `axis`, `num_axes` of
/// them (-1: all the rest).
pub(crate) fn param_shape(
    p: &LayerParameter,
    bottom: &Blob,
    axis: i32,
    num_axes: i32,
) -> Result<Vec<usize>> {
    let axis = canonical_axis(p, bottom, axis as i64)?;
    crate::ensure!(
        p,
        num_axes >= -1,
        "num_axes must be non-negative, or -1 to extend to the end of bottom[0]; got {num_axes}"
    );
    let end = if num_axes == -1 {
        bottom.num_axes()
    } else {
        axis + num_axes as usize
    };
    crate::ensure!(
        p,
        end <= bottom.num_axes(),
        "the operand's shape extends past bottom[0]'s shape {} when applied starting with bottom[0] axis = {axis} for {num_axes} axes",
        bottom.shape_string()
    );
    Ok(bottom.shape()[axis..end].to_vec())
}

/// Checks that `operand` fits bottom[0] from `axis` on (axis 0 for a scalar
/// operand, as Caffe) and returns the broadcast geometry.
pub(crate) fn broadcast(
    p: &LayerParameter,
    bottom: &Blob,
    operand: &[usize],
    axis: i32,
) -> Result<Broadcast> {
    let axis = if operand.is_empty() {
        0
    } else {
        canonical_axis(p, bottom, axis as i64)?
    };
    let end = axis + operand.len();
    crate::ensure!(
        p,
        end <= bottom.num_axes() && bottom.shape()[axis..end] == *operand,
        "operand shape ({}) does not match bottom[0] {} from axis {axis}",
        operand
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(" "),
        bottom.shape_string()
    );
    Ok(Broadcast {
        outer: bottom.count_range(0, axis),
        dim: operand.iter().product(),
        inner: bottom.count_from(end),
    })
}

/// `out[d] (+)= Σ over outer and inner of v[o, d, i]`: the operand's gradient.
pub(crate) fn sum_to_operand(v: &[f32], g: Broadcast, out: &mut [f32], accumulate: bool) {
    if !accumulate {
        out.fill(0.0);
    }
    for o in 0..g.outer {
        for (d, acc) in out.iter_mut().enumerate() {
            let start = (o * g.dim + d) * g.inner;
            *acc += crate::backend::sum(&v[start..start + g.inner]);
        }
    }
}

/// Fills a new operand blob with `filler`, naming the layer in a filler error.
pub(crate) fn filled_blob(
    p: &LayerParameter,
    shape: &[usize],
    filler: &FillerParameter,
) -> Result<SharedBlob> {
    let blob = Blob::shared(shape);
    fillers::fill(filler, &mut blob.borrow_mut()).map_err(|e| Error::layer(p, e.to_string()))?;
    Ok(blob)
}

/// Refuses the operand bottom being bottom[0] or the top (in place is only
/// for bottom[0] and top[0]).
pub(crate) fn check_operand_apart(
    p: &LayerParameter,
    bottom: &[SharedBlob],
    top: &[SharedBlob],
) -> Result<()> {
    if let Some(op) = bottom.get(1) {
        crate::ensure!(
            p,
            !same_blob(op, &bottom[0]) && !same_blob(op, &top[0]),
            "{} layer's second bottom cannot also be bottom[0] or the top",
            p.type_()
        );
    }
    Ok(())
}

pub struct BiasLayer {
    param: LayerParameter,
    blobs: Vec<SharedBlob>,
    geometry: Broadcast,
}

impl BiasLayer {
    pub fn create(param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(BiasLayer {
            param: param.clone(),
            blobs: Vec::new(),
            geometry: Broadcast::default(),
        }))
    }
}

impl Layer for BiasLayer {
    fn type_name(&self) -> &'static str {
        "Bias"
    }
    fn setup(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let p = &self.param;
        check_operand_apart(p, bottom, top)?;
        if bottom.len() == 1 && self.blobs.is_empty() {
            let bp = &p.bias_param;
            let shape = param_shape(p, &bottom[0].borrow(), bp.axis(), bp.num_axes())?;
            self.blobs = vec![filled_blob(p, &shape, bp.filler.get_or_default())?];
        }
        Ok(())
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let operand = bottom.get(1).unwrap_or_else(|| &self.blobs[0]);
        let shape = operand.borrow().shape().to_vec();
        self.geometry = broadcast(
            &self.param,
            &bottom[0].borrow(),
            &shape,
            self.param.bias_param.axis(),
        )?;
        crate::layers::neuron::reshape_like(&bottom[0], &top[0]);
        Ok(())
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> Result<()> {
        let g = self.geometry;
        let operand = bottom.get(1).unwrap_or_else(|| &self.blobs[0]).borrow();
        let b = operand.data();
        if same_blob(&bottom[0], &top[0]) {
            let mut t = top[0].borrow_mut();
            t.data_mut()
                .iter_mut()
                .enumerate()
                .for_each(|(i, y)| *y += b[g.operand_index(i)]);
        } else {
            let x = bottom[0].borrow();
            let mut t = top[0].borrow_mut();
            for (i, (y, &xi)) in t.data_mut().iter_mut().zip(x.data()).enumerate() {
                *y = xi + b[g.operand_index(i)];
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
        let g = self.geometry;
        let is_param = bottom.len() == 1;
        if is_param || propagates(propagate_down, 1) {
            let operand = if is_param { &self.blobs[0] } else { &bottom[1] };
            let t = top[0].borrow();
            sum_to_operand(t.diff(), g, operand.borrow_mut().diff_mut(), is_param);
        }
        if propagates(propagate_down, 0) && !same_blob(&bottom[0], &top[0]) {
            let t = top[0].borrow();
            bottom[0].borrow_mut().diff_mut().copy_from_slice(t.diff());
        }
        Ok(())
    }
    fn blobs(&self) -> &[SharedBlob] {
        &self.blobs
    }
    fn blobs_mut(&mut self) -> Option<&mut Vec<SharedBlob>> {
        Some(&mut self.blobs)
    }
    fn min_bottom_blobs(&self) -> Option<usize> {
        Some(1)
    }
    fn max_bottom_blobs(&self) -> Option<usize> {
        Some(2)
    }
    fn exact_num_top_blobs(&self) -> Option<usize> {
        Some(1)
    }
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)]
mod tests {
    use crema_proto::caffe::LayerParameter;

    use crate::gradient_check::{fill_uniform, GradientChecker};
    use crate::layers::common::testutil::*;
    use crate::Blob;

    fn bias(axis: Option<i32>, num_axes: Option<i32>, gaussian: bool) -> LayerParameter {
        param("Bias", |p| {
            let bp = p.bias_param.mut_or_insert_default();
            if let Some(a) = axis {
                bp.set_axis(a);
            }
            if let Some(n) = num_axes {
                bp.set_num_axes(n);
            }
            if gaussian {
                bp.filler
                    .mut_or_insert_default()
                    .set_type("gaussian".into());
            }
        })
    }

    #[test]
    fn bias_param_defaults_to_zero_per_channel() {
        let mut l = layer(&bias(None, None, false));
        let t = empty();
        run(&mut *l, &[blob(&[2, 3, 1], &[1.0; 6])], &[t.clone()]);
        assert_eq!(l.blobs()[0].borrow().shape(), &[3]);
        assert_eq!(l.blobs()[0].borrow().data(), &[0.0; 3]);
        assert_eq!(t.borrow().data(), &[1.0; 6]);
    }

    #[test]
    fn bias_broadcast_by_hand_param_and_bottom_forms() {
        // x [2, 2, 2], b [2] along axis 1: x + b[c].
        let x: Vec<f32> = (0..8).map(|v| v as f32).collect();
        let want = [10.0, 11.0, 22.0, 23.0, 14.0, 15.0, 26.0, 27.0];
        // Second-bottom form; also in place.
        for in_place in [false, true] {
            let (b, op) = (blob(&[2, 2, 2], &x), blob(&[2], &[10.0, 20.0]));
            let t = if in_place { b.clone() } else { empty() };
            let mut l = layer(&bias(None, None, false));
            run(&mut *l, &[b.clone(), op.clone()], &[t.clone()]);
            assert_eq!(t.borrow().data(), &want);
            t.borrow_mut()
                .diff_mut()
                .copy_from_slice(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
            op.borrow_mut().diff_mut().fill(100.0);
            l.backward(&[t.clone()], &[true, true], &[b.clone(), op.clone()])
                .unwrap();
            assert_eq!(
                op.borrow().diff(),
                &[1.0 + 2.0 + 5.0 + 6.0, 3.0 + 4.0 + 7.0 + 8.0],
                "overwritten"
            );
            assert_eq!(b.borrow().diff(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        }
        // Param form over the last axis (axis -1): b[w]; its diff accumulates.
        let mut l = layer(&bias(Some(-1), None, false));
        let (b, t) = (blob(&[2, 2, 2], &x), empty());
        l.setup(&[b.clone()], &[t.clone()]).unwrap();
        l.blobs()[0]
            .borrow_mut()
            .data_mut()
            .copy_from_slice(&[0.5, -0.5]);
        l.reshape(&[b.clone()], &[t.clone()]).unwrap();
        l.forward(&[b.clone()], &[t.clone()]).unwrap();
        assert_eq!(t.borrow().data(), &[0.5, 0.5, 2.5, 2.5, 4.5, 4.5, 6.5, 6.5]);
        t.borrow_mut().diff_mut().fill(1.0);
        l.blobs()[0].borrow_mut().diff_mut().fill(1.0);
        l.backward(&[t], &[true], &[b]).unwrap();
        assert_eq!(l.blobs()[0].borrow().diff(), &[5.0, 5.0]);
    }

    #[test]
    fn bias_num_axes_shapes() {
        let shape_of = |axis, n| {
            let mut l = layer(&bias(Some(axis), Some(n), false));
            run(&mut *l, &[Blob::shared(&[2, 3, 4, 5])], &[empty()]);
            let s = l.blobs()[0].borrow().shape().to_vec();
            s
        };
        assert_eq!(shape_of(1, -1), vec![3, 4, 5]);
        assert_eq!(shape_of(0, 2), vec![2, 3]);
        assert_eq!(shape_of(2, 0), Vec::<usize>::new());
    }

    #[test]
    fn bias_refuses_bad_shapes() {
        let msg = setup_error(
            &mut *layer(&bias(Some(2), Some(3), false)),
            &[Blob::shared(&[2, 3, 4])],
            &[empty()],
        );
        assert!(msg.contains("extends past"), "{msg}");
        let msg = setup_error(
            &mut *layer(&bias(None, Some(-2), false)),
            &[Blob::shared(&[2, 3])],
            &[empty()],
        );
        assert!(msg.contains("num_axes must be"), "{msg}");
        let msg = setup_error(
            &mut *layer(&bias(None, None, false)),
            &[Blob::shared(&[2, 3, 4]), Blob::shared(&[4])],
            &[empty()],
        );
        assert!(msg.contains("does not match"), "{msg}");
    }

    #[test]
    fn bias_gradient_param_and_bottom() {
        let x = Blob::shared(&[2, 3, 2, 2]);
        fill_uniform(&x, -1.0, 1.0, 41);
        let checker = GradientChecker::new(1e-3, 1e-2);
        checker.check_gradient_exhaustive(
            &mut *layer(&bias(None, Some(2), true)),
            &[x.clone()],
            &[empty()],
            None,
        );
        let op = Blob::shared(&[3, 2]);
        fill_uniform(&op, -1.0, 1.0, 43);
        checker.check_gradient_exhaustive(
            &mut *layer(&bias(None, None, false)),
            &[x.clone(), op],
            &[empty()],
            None,
        );
        let scalar = blob(&[], &[0.3]);
        checker.check_gradient_exhaustive(
            &mut *layer(&bias(None, None, false)),
            &[x, scalar],
            &[empty()],
            None,
        );
    }
}
