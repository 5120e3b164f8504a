//! Silence: consumes bottoms that nothing else reads, so the net does not
//! report them as outputs. No tops; backward zeroes the bottoms' diffs.
use crema_proto::caffe::LayerParameter;

use super::propagates;
use crate::blob::SharedBlob;
use crate::error::Result;
use crate::layers::Layer;

pub struct SilenceLayer;

impl SilenceLayer {
    pub fn create(_param: &LayerParameter) -> Result<Box<dyn Layer>> {
        Ok(Box::new(SilenceLayer))
    }
}

impl Layer for SilenceLayer {
    fn type_name(&self) -> &'static str {
        "Silence"
    }
    fn setup(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        Ok(())
    }
    fn reshape(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        Ok(())
    }
    fn forward(&mut self, _bottom: &[SharedBlob], _top: &[SharedBlob]) -> Result<()> {
        Ok(())
    }
    fn backward(
        &mut self,
        _top: &[SharedBlob],
        propagate_down: &[bool],
        bottom: &[SharedBlob],
    ) -> Result<()> {
        for (i, b) in bottom.iter().enumerate() {
            if propagates(propagate_down, i) {
                b.borrow_mut().diff_mut().fill(0.0);
            }
        }
        Ok(())
    }
    fn min_bottom_blobs(&self) -> Option<usize> {
        Some(1)
    }
    fn exact_num_top_blobs(&self) -> Option<usize> {
        Some(0)
    }
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)] // `&[blob.clone()]` reads best in tests
mod tests {
    use super::super::testutil::*;

    #[test]
    fn silence_zeroes_only_requested_diffs() {
        let mut l = layer(&param("Silence", |_| {}));
        let (a, b) = (blob(&[2], &[1.0, 2.0]), blob(&[1], &[3.0]));
        run(&mut *l, &[a.clone(), b.clone()], &[]);
        a.borrow_mut().diff_mut().fill(5.0);
        b.borrow_mut().diff_mut().fill(5.0);
        l.backward(&[], &[true, false], &[a.clone(), b.clone()])
            .unwrap();
        assert_eq!(a.borrow().diff(), &[0.0, 0.0]);
        assert_eq!(b.borrow().diff(), &[5.0]);
        assert_eq!(a.borrow().data(), &[1.0, 2.0]);
        assert_eq!(l.exact_num_top_blobs(), Some(0));
    }
}
