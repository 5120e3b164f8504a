//! Finite-difference gradient checking, in the manner of Caffe's GradientChecker.
//!
//! The objective is either one top element (exhaustive mode walks every element
//! of every top) or half the sum of squares of all tops. The analytic gradient
//! comes from one backward pass; the numeric one from central differences
//! `(f(x+h) - f(x-h)) / 2h` on every element of the checked bottoms and of the
//! layer's parameters. A difference passes when it is within
//! `threshold * max(|analytic|, |numeric|, 1)`. Elements within `kink_range` of
//! `kink` (ReLU's 0, say) are skipped, since the derivative jumps there. The RNG
//! is reseeded before each forward so stochastic layers (Dropout) draw the same
//! mask every time.
use crate::blob::SharedBlob;
use crate::layers::Layer;
use crate::rng;

/// Settings of a gradient check; `Default` is Caffe's usual (1e-2, 1e-3).
#[derive(Clone, Debug)]
pub struct GradientChecker {
    pub stepsize: f32,
    pub threshold: f32,
    pub seed: u64,
    pub kink: f32,
    pub kink_range: f32,
}

impl Default for GradientChecker {
    fn default() -> Self {
        GradientChecker {
            stepsize: 1e-2,
            threshold: 1e-3,
            seed: 1701,
            kink: 0.0,
            kink_range: -1.0,
        }
    }
}

/// Which objective a check differentiates.
#[derive(Clone, Copy, Debug)]
enum Objective {
    /// Half the sum of squares over every top.
    SumSquares,
    /// One element of one top.
    Element { top: usize, index: usize },
}

impl GradientChecker {
    pub fn new(stepsize: f32, threshold: f32) -> Self {
        GradientChecker {
            stepsize,
            threshold,
            ..Default::default()
        }
    }
    /// Skips elements within `range` of `kink`.
    pub fn with_kink(mut self, kink: f32, range: f32) -> Self {
        self.kink = kink;
        self.kink_range = range;
        self
    }

    /// Sets the layer up, then checks the gradient of ½Σtop² w.r.t. every bottom
    /// (or only `check_bottom`) and every parameter blob. Panics on a mismatch,
    /// naming the blob, element and both values: it is a test helper.
    pub fn check_gradient(
        &self,
        layer: &mut dyn Layer,
        bottom: &[SharedBlob],
        top: &[SharedBlob],
        check_bottom: Option<usize>,
    ) {
        setup(layer, bottom, top);
        self.check(layer, bottom, top, check_bottom, Objective::SumSquares);
    }

    /// Like `check_gradient`, but once per top element with that element alone
    /// as the objective (Caffe's CheckGradientExhaustive). Use on small blobs.
    pub fn check_gradient_exhaustive(
        &self,
        layer: &mut dyn Layer,
        bottom: &[SharedBlob],
        top: &[SharedBlob],
        check_bottom: Option<usize>,
    ) {
        setup(layer, bottom, top);
        for t in 0..top.len() {
            let n = top[t].borrow().count();
            for index in 0..n {
                self.check(
                    layer,
                    bottom,
                    top,
                    check_bottom,
                    Objective::Element { top: t, index },
                );
            }
        }
    }

    fn check(
        &self,
        layer: &mut dyn Layer,
        bottom: &[SharedBlob],
        top: &[SharedBlob],
        check_bottom: Option<usize>,
        obj: Objective,
    ) {
        let params: Vec<SharedBlob> = layer.blobs().to_vec();
        // Blobs to check: chosen bottoms, then every parameter.
        let mut checked: Vec<(String, SharedBlob)> = Vec::new();
        for (i, b) in bottom.iter().enumerate() {
            if check_bottom.is_none_or(|c| c == i) {
                checked.push((format!("bottom[{i}]"), b.clone()));
            }
        }
        for (i, p) in params.iter().enumerate() {
            checked.push((format!("param[{i}]"), p.clone()));
        }
        let propagate: Vec<bool> = (0..bottom.len())
            .map(|i| check_bottom.is_none_or(|c| c == i))
            .collect();

        // Analytic gradient.
        for p in &params {
            p.borrow_mut().diff_mut().fill(0.0);
        }
        self.forward(layer, bottom, top);
        set_top_diff(top, obj);
        layer.backward(top, &propagate, bottom).expect("backward");
        let analytic: Vec<Vec<f32>> = checked
            .iter()
            .map(|(_, b)| b.borrow().diff().to_vec())
            .collect();

        // Numeric gradient, element by element.
        for ((name, blob), grad) in checked.iter().zip(&analytic) {
            let n = blob.borrow().count();
            for j in 0..n {
                let x = blob.borrow().data()[j];
                if self.kink_range > 0.0 && (x - self.kink).abs() <= self.kink_range {
                    continue;
                }
                blob.borrow_mut().data_mut()[j] = x + self.stepsize;
                let plus = self.objective(layer, bottom, top, obj);
                blob.borrow_mut().data_mut()[j] = x - self.stepsize;
                let minus = self.objective(layer, bottom, top, obj);
                blob.borrow_mut().data_mut()[j] = x;
                let numeric = ((plus - minus) / (2.0 * self.stepsize as f64)) as f32;
                let computed = grad[j];
                let scale = numeric.abs().max(computed.abs()).max(1.0);
                assert!(
                    (numeric - computed).abs() <= self.threshold * scale,
                    "{} {name}[{j}] ({obj:?}): analytic {computed} vs numeric {numeric}",
                    layer.type_name()
                );
            }
        }
    }

    fn forward(&self, layer: &mut dyn Layer, bottom: &[SharedBlob], top: &[SharedBlob]) {
        rng::set_random_seed(self.seed);
        layer.reshape(bottom, top).expect("reshape");
        layer.forward(bottom, top).expect("forward");
    }

    fn objective(
        &self,
        layer: &mut dyn Layer,
        bottom: &[SharedBlob],
        top: &[SharedBlob],
        obj: Objective,
    ) -> f64 {
        self.forward(layer, bottom, top);
        match obj {
            Objective::SumSquares => {
                top.iter()
                    .map(|t| {
                        t.borrow()
                            .data()
                            .iter()
                            .map(|&v| (v as f64) * (v as f64))
                            .sum::<f64>()
                    })
                    .sum::<f64>()
                    / 2.0
            }
            Objective::Element { top: t, index } => top[t].borrow().data()[index] as f64,
        }
    }
}

fn setup(layer: &mut dyn Layer, bottom: &[SharedBlob], top: &[SharedBlob]) {
    layer.setup(bottom, top).expect("setup");
    layer.reshape(bottom, top).expect("reshape");
}

/// Top diff = d(objective)/d(top).
fn set_top_diff(top: &[SharedBlob], obj: Objective) {
    for (t, blob) in top.iter().enumerate() {
        let mut b = blob.borrow_mut();
        match obj {
            Objective::SumSquares => {
                let data = b.data().to_vec();
                b.diff_mut().copy_from_slice(&data);
            }
            Objective::Element { top: ot, index } => {
                let d = b.diff_mut();
                d.fill(0.0);
                if t == ot {
                    d[index] = 1.0;
                }
            }
        }
    }
}

/// Fills a blob's data with a seeded uniform(-1, 1) draw (gaussian-like test
/// inputs without depending on the filler module).
pub fn fill_uniform(blob: &SharedBlob, lo: f32, hi: f32, seed: u64) {
    use rand::{Rng, SeedableRng};
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for v in blob.borrow_mut().data_mut() {
        *v = r.gen_range(lo..hi);
    }
}
