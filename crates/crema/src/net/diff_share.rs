//! Diff sharing: an activation's diff is needed only from the backward that
//! writes it (its consumer's) to the backward that last reads it (its
//! producer's), so a chain of layers needs about two diff buffers during
//! backward, not one per blob. For AlexNet at batch 64 that is 149 MB instead
//! of 323 MB.
//!
//! Opt-in (`Net::share_activation_diffs`), because afterwards the shared blobs'
//! diffs cannot be read: `caffe train` and `caffe time` never read them, a
//! pycaffe script may. Shared blobs are those whose diff the first layer to
//! touch it in backward writes from scratch: not loss tops (forward writes
//! their diff), not the net's inputs or outputs (callers read or set those).
use crate::blob::SharedBlob;

/// Per layer, the shared blobs its backward touches, and the buffers free
/// between uses.
pub(super) struct DiffSharing {
    /// For each layer: (blob id, whether this layer's backward writes the
    /// diff before anything reads it).
    touched: Vec<Vec<(usize, bool)>>,
    /// For each layer: blob ids whose diff nobody reads after its backward.
    release: Vec<Vec<usize>>,
    /// Buffers lent by released diffs, waiting for the next blob.
    pool: Vec<Vec<f32>>,
}

/// What the sharing plan needs to know of a net's wiring.
pub(super) struct Wiring<'a> {
    pub blobs: usize,
    pub layer_need_backward: &'a [bool],
    pub top_ids: &'a [Vec<usize>],
    pub bottom_ids: &'a [Vec<usize>],
    pub bottom_need_backward: &'a [Vec<bool>],
    pub blob_loss_weights: &'a [f32],
    pub inputs: &'a [usize],
    pub outputs: &'a [usize],
}

impl DiffSharing {
    pub(super) fn plan(w: &Wiring) -> DiffSharing {
        let layers = w.layer_need_backward.len();
        // The backward pass runs layers in reverse: a blob's first use is at
        // its highest touching layer, its last at its lowest.
        let mut first: Vec<Option<usize>> = vec![None; w.blobs];
        let mut last: Vec<Option<usize>> = vec![None; w.blobs];
        let mut touches: Vec<Vec<usize>> = vec![Vec::new(); layers];
        for i in (0..layers).filter(|&i| w.layer_need_backward[i]) {
            let written = w.bottom_ids[i]
                .iter()
                .zip(&w.bottom_need_backward[i])
                .filter(|(_, &need)| need)
                .map(|(&b, _)| b);
            for b in w.top_ids[i].iter().copied().chain(written) {
                if !touches[i].contains(&b) {
                    touches[i].push(b);
                }
                first[b] = Some(i);
                last[b].get_or_insert(i);
            }
        }
        let shared = |b: usize| {
            let Some(h) = first[b] else { return false };
            let written_first = w.bottom_ids[h]
                .iter()
                .zip(&w.bottom_need_backward[h])
                .any(|(&x, &need)| x == b && need)
                && !w.top_ids[h].contains(&b);
            written_first
                && w.blob_loss_weights[b] == 0.0
                && !w.inputs.contains(&b)
                && !w.outputs.contains(&b)
        };
        let mut touched = vec![Vec::new(); layers];
        let mut release = vec![Vec::new(); layers];
        for (i, blobs) in touches.iter().enumerate() {
            for &b in blobs.iter().filter(|&&b| shared(b)) {
                touched[i].push((b, first[b] == Some(i)));
                if last[b] == Some(i) {
                    release[i].push(b);
                }
            }
        }
        DiffSharing {
            touched,
            release,
            pool: Vec::new(),
        }
    }

    /// Gives each shared blob layer `i` touches a diff buffer if it has none.
    pub(super) fn before_backward(&mut self, i: usize, blobs: &[SharedBlob]) {
        for &(b, written_first) in &self.touched[i] {
            let mut blob = blobs[b].borrow_mut();
            if !blob.diff_is_lent() {
                continue;
            }
            let buf = take_fitting(&mut self.pool, blob.count());
            blob.return_diff(buf);
            if !written_first {
                // Only a partial backward (starting below the writer) gets
                // here: the writer did not run, so the diff is zero.
                blob.diff_mut().fill(0.0);
            }
        }
    }

    /// Lends the buffers of diffs nobody reads any more to the pool.
    pub(super) fn after_backward(&mut self, i: usize, blobs: &[SharedBlob]) {
        for &b in &self.release[i] {
            if let Some(buf) = blobs[b].borrow_mut().lend_diff() {
                self.pool.push(buf);
            }
        }
    }

    #[cfg(test)]
    pub(super) fn pooled(&self) -> usize {
        self.pool.len()
    }

    /// Lends every shared diff and frees its buffer: from here on the
    /// buffers the pool hands out are the only ones.
    pub(super) fn start(&mut self, blobs: &[SharedBlob]) {
        for i in 0..self.release.len() {
            self.after_backward(i, blobs);
        }
        self.pool.clear();
    }

    /// Gives every lent diff a buffer back, zeroed (sharing is being turned off).
    pub(super) fn return_all(&mut self, blobs: &[SharedBlob]) {
        for blob in blobs {
            let mut blob = blob.borrow_mut();
            if blob.diff_is_lent() {
                let buf = take_fitting(&mut self.pool, blob.count());
                blob.return_diff(buf);
                blob.diff_mut().fill(0.0);
            }
        }
    }
}

/// The smallest pooled buffer holding `len` values, else the largest (the
/// blob grows it, so after one pass every buffer fits its users), else a new one.
fn take_fitting(pool: &mut Vec<Vec<f32>>, len: usize) -> Vec<f32> {
    let fitting = (0..pool.len())
        .filter(|&k| pool[k].len() >= len)
        .min_by_key(|&k| pool[k].len());
    let pick = fitting.or_else(|| (0..pool.len()).max_by_key(|&k| pool[k].len()));
    match pick {
        Some(k) => pool.swap_remove(k),
        None => vec![0.0; len],
    }
}
