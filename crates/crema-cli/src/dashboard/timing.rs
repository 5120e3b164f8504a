//! Per-layer forward/backward times without touching the engine: every
//! layer the solver builds is wrapped in a `TimedLayer` that reads the
//! clock only while the shared `LayerClock` is on (display iterations), so
//! other iterations pay one flag test per layer.
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crema::proto::caffe::LayerParameter;
use crema::{Layer, SharedBlob};

/// One layer's times over the iteration the clock was on.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LayerTime {
    pub name: String,
    pub layer_type: String,
    /// Reshape plus forward, as Caffe's Layer::Forward does both.
    pub forward: Duration,
    pub backward: Duration,
    pub calls: u32,
}

/// Shared by every wrapped layer of every net the factory built.
#[derive(Default)]
pub struct LayerClock {
    on: Cell<bool>,
    times: RefCell<Vec<LayerTime>>,
}

impl LayerClock {
    /// Starts timing (from zero) or stops it.
    pub fn set_on(&self, on: bool) {
        if on {
            for t in self.times.borrow_mut().iter_mut() {
                t.forward = Duration::ZERO;
                t.backward = Duration::ZERO;
                t.calls = 0;
            }
        }
        self.on.set(on);
    }

    /// The layers that ran while the clock was on, in creation order (net
    /// order; test nets' layers, built later, do not run then).
    pub fn ran(&self) -> Vec<LayerTime> {
        self.times
            .borrow()
            .iter()
            .filter(|t| t.calls > 0)
            .cloned()
            .collect()
    }

    fn add(&self, slot: usize, forward: bool, d: Duration) {
        let mut times = self.times.borrow_mut();
        let t = &mut times[slot];
        if forward {
            t.forward += d;
            t.calls += 1;
        } else {
            t.backward += d;
        }
    }
}

/// A layer that reports its times to a `LayerClock`.
pub struct TimedLayer {
    inner: Box<dyn Layer>,
    slot: usize,
    clock: Rc<LayerClock>,
}

impl TimedLayer {
    pub fn wrap(
        inner: Box<dyn Layer>,
        param: &LayerParameter,
        clock: Rc<LayerClock>,
    ) -> TimedLayer {
        let slot = {
            let mut times = clock.times.borrow_mut();
            times.push(LayerTime {
                name: param.name().to_string(),
                layer_type: param.type_().to_string(),
                ..LayerTime::default()
            });
            times.len() - 1
        };
        TimedLayer { inner, slot, clock }
    }

    fn timed<T>(&mut self, forward: bool, f: impl FnOnce(&mut dyn Layer) -> T) -> T {
        if !self.clock.on.get() {
            return f(self.inner.as_mut());
        }
        let start = Instant::now();
        let r = f(self.inner.as_mut());
        self.clock.add(self.slot, forward, start.elapsed());
        r
    }
}

impl Layer for TimedLayer {
    fn type_name(&self) -> &'static str {
        self.inner.type_name()
    }
    fn setup(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> crema::Result<()> {
        self.inner.setup(bottom, top)
    }
    fn reshape(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> crema::Result<()> {
        // Counted with forward but not as a call: the net reshapes before
        // each forward.
        if !self.clock.on.get() {
            return self.inner.reshape(bottom, top);
        }
        let start = Instant::now();
        let r = self.inner.reshape(bottom, top);
        self.clock.times.borrow_mut()[self.slot].forward += start.elapsed();
        r
    }
    fn forward(&mut self, bottom: &[SharedBlob], top: &[SharedBlob]) -> crema::Result<()> {
        self.timed(true, |l| l.forward(bottom, top))
    }
    fn backward(
        &mut self,
        top: &[SharedBlob],
        propagate_down: &[bool],
        bottom: &[SharedBlob],
    ) -> crema::Result<()> {
        self.timed(false, |l| l.backward(top, propagate_down, bottom))
    }
    fn blobs(&self) -> &[SharedBlob] {
        self.inner.blobs()
    }
    fn blobs_mut(&mut self) -> Option<&mut Vec<SharedBlob>> {
        self.inner.blobs_mut()
    }
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        self.inner.as_any_mut()
    }
    fn exact_num_bottom_blobs(&self) -> Option<usize> {
        self.inner.exact_num_bottom_blobs()
    }
    fn min_bottom_blobs(&self) -> Option<usize> {
        self.inner.min_bottom_blobs()
    }
    fn max_bottom_blobs(&self) -> Option<usize> {
        self.inner.max_bottom_blobs()
    }
    fn exact_num_top_blobs(&self) -> Option<usize> {
        self.inner.exact_num_top_blobs()
    }
    fn min_top_blobs(&self) -> Option<usize> {
        self.inner.min_top_blobs()
    }
    fn max_top_blobs(&self) -> Option<usize> {
        self.inner.max_top_blobs()
    }
    fn equal_num_bottom_top_blobs(&self) -> bool {
        self.inner.equal_num_bottom_top_blobs()
    }
    fn auto_top_blobs(&self) -> bool {
        self.inner.auto_top_blobs()
    }
    fn allow_force_backward(&self, bottom_index: usize) -> bool {
        self.inner.allow_force_backward(bottom_index)
    }
    fn default_param_spec(&self, param_index: usize) -> Option<crema::proto::caffe::ParamSpec> {
        self.inner.default_param_spec(param_index)
    }
    fn default_loss_weight(&self, top_index: usize) -> f32 {
        self.inner.default_loss_weight(top_index)
    }
    // Without these a resumed `caffe train` restarted its data at record 0.
    fn data_position(&self) -> Option<u64> {
        self.inner.data_position()
    }
    fn seek_data(&mut self, records: u64) -> crema::Result<()> {
        self.inner.seek_data(records)
    }
}

/// A layer factory for `Solver::with_factory` that times every layer.
pub fn timed_factory(
    clock: Rc<LayerClock>,
) -> impl Fn(&LayerParameter) -> crema::Result<Box<dyn Layer>> {
    move |p: &LayerParameter| {
        let inner = crema::create_layer(p)?;
        Ok(Box::new(TimedLayer::wrap(inner, p, clock.clone())) as Box<dyn Layer>)
    }
}
