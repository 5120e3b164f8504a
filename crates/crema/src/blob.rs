//! Blob: an N-D array of f32 with a data buffer and a gradient (diff) buffer.
//!
//! Each buffer is a `SyncedMem`: today it lives on the host only, but its API
//! (read/write accessors that say which side they need) is the one a device copy
//! will slot into, as Caffe's SyncedMemory does, so layers won't change when the
//! GPU backend arrives.
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use crema_proto::binary::blob_shape;
use crema_proto::caffe::{BlobProto, BlobShape};

use crate::error::{Error, Result};

/// Caffe's limit on the number of axes of a blob.
pub const MAX_BLOB_AXES: usize = 32;

/// Where the current copy of a buffer is (host only, for now).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Head {
    Uninitialized,
    AtHost,
}

/// A buffer of f32 that may later also live on a device.
#[derive(Debug)]
pub struct SyncedMem {
    host: Vec<f32>,
    head: Head,
    /// Buffers replaced by growth while `keep_retired` is set: a raw view
    /// handed out earlier (a pycaffe numpy array) may still point into them,
    /// so they live as long as the blob instead of being freed under it.
    retired: Vec<Vec<f32>>,
    keep_retired: bool,
    /// Stamp of the last mutable access (`next_version`): equal stamps mean
    /// unchanged contents, so layers may keep what they derive from them.
    version: u64,
    /// The buffer is lent to the net's diff sharing (`Blob::lend_diff`):
    /// `host` is empty and must not be read until it comes back.
    lent: bool,
}

/// Stamps for `SyncedMem::version`, unique across all buffers of the process.
fn next_version() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl SyncedMem {
    fn new() -> Self {
        SyncedMem {
            host: Vec::new(),
            head: Head::Uninitialized,
            retired: Vec::new(),
            keep_retired: false,
            version: next_version(),
            lent: false,
        }
    }
    /// Grows the buffer to hold `len` values (new space zeroed); never shrinks,
    /// so a blob reshaped down and back up reuses its allocation.
    fn ensure_len(&mut self, len: usize) {
        if self.host.len() >= len || self.lent {
            return;
        }
        self.version = next_version();
        if self.keep_retired && self.host.capacity() < len {
            // Doubling keeps the retired buffers smaller in total than the live one.
            let mut grown = Vec::with_capacity(len.max(2 * self.host.capacity()));
            grown.extend_from_slice(&self.host);
            grown.resize(len, 0.0);
            self.retired.push(std::mem::replace(&mut self.host, grown));
        } else if self.host.capacity() < len {
            // A fresh zeroed allocation maps its pages on first write, so a
            // buffer nobody writes (the diff of a data layer's top, every diff
            // of a net that only runs forward) costs no memory, as Caffe's
            // lazily allocated diffs don't. `resize` would write the zeros,
            // making every page resident.
            let mut grown = vec![0.0; len];
            grown[..self.host.len()].copy_from_slice(&self.host);
            self.host = grown;
        } else {
            self.host.resize(len, 0.0);
        }
    }
    pub fn head(&self) -> Head {
        self.head
    }
    /// A layer touching a lent diff is a wrong sharing plan, not bad input.
    fn assert_not_lent(&self) {
        assert!(
            !self.lent,
            "a blob's diff was used while the net's diff sharing had lent its buffer out"
        );
    }
    fn cpu(&self, count: usize) -> &[f32] {
        self.assert_not_lent();
        &self.host[..count]
    }
    fn cpu_mut(&mut self, count: usize) -> &mut [f32] {
        self.assert_not_lent();
        self.head = Head::AtHost;
        self.version = next_version();
        &mut self.host[..count]
    }
}

/// The shared handle through which nets and layers hold blobs. A blob used in
/// place (ReLU's top is its bottom) is one `SharedBlob` in both lists.
pub type SharedBlob = Rc<RefCell<Blob>>;

/// An N-D array with data and diff, like Caffe's `Blob<float>`.
#[derive(Debug)]
pub struct Blob {
    shape: Vec<usize>,
    count: usize,
    data: SyncedMem,
    diff: SyncedMem,
}

impl Default for Blob {
    fn default() -> Self {
        Blob {
            shape: Vec::new(),
            count: 0,
            data: SyncedMem::new(),
            diff: SyncedMem::new(),
        }
    }
}

impl Blob {
    /// A zero-filled blob of `shape`.
    pub fn new(shape: &[usize]) -> Self {
        let mut b = Blob::default();
        b.reshape(shape);
        b
    }

    /// A new blob wrapped for sharing between a net and its layers.
    pub fn shared(shape: &[usize]) -> SharedBlob {
        Rc::new(RefCell::new(Blob::new(shape)))
    }

    /// Changes the shape; the buffers keep their allocation when they are large
    /// enough (values are then unspecified, as in Caffe).
    pub fn reshape(&mut self, shape: &[usize]) {
        assert!(
            shape.len() <= MAX_BLOB_AXES,
            "blob of {} axes exceeds Caffe's {MAX_BLOB_AXES}",
            shape.len()
        );
        self.shape = shape.to_vec();
        self.count = shape.iter().product();
        self.data.ensure_len(self.count);
        self.diff.ensure_len(self.count);
    }

    /// From now on, growing keeps the old data and diff buffers alive until the
    /// blob is dropped: for bindings that hand out raw views of the buffers
    /// (pycaffe's numpy arrays), which must not dangle after a reshape.
    pub fn keep_host_buffers_alive(&mut self) {
        self.data.keep_retired = true;
        self.diff.keep_retired = true;
    }

    /// Reshapes to `other`'s shape.
    pub fn reshape_like(&mut self, other: &Blob) {
        let s = other.shape.clone();
        self.reshape(&s);
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn num_axes(&self) -> usize {
        self.shape.len()
    }
    pub fn count(&self) -> usize {
        self.count
    }
    /// Product of the dimensions in `start..end`.
    pub fn count_range(&self, start: usize, end: usize) -> usize {
        self.shape[start..end].iter().product()
    }
    /// Product of the dimensions from `start` on.
    pub fn count_from(&self, start: usize) -> usize {
        self.count_range(start, self.shape.len())
    }

    /// Turns a possibly negative axis index (-1 = last) into 0..num_axes.
    pub fn canonical_axis(&self, axis: i64) -> Result<usize> {
        let n = self.shape.len() as i64;
        if axis < -n || axis >= n {
            return Err(Error::Other(format!(
                "axis {axis} out of range for a {n}-D blob of shape {}",
                self.shape_string()
            )));
        }
        Ok(if axis < 0 {
            (axis + n) as usize
        } else {
            axis as usize
        })
    }

    /// The dimension of a (possibly negative) axis.
    pub fn shape_at(&self, axis: i64) -> Result<usize> {
        Ok(self.shape[self.canonical_axis(axis)?])
    }

    /// Caffe's legacy 4-D accessors: axes beyond the blob count as 1.
    fn legacy_dim(&self, i: usize) -> usize {
        assert!(
            self.shape.len() <= 4,
            "legacy accessor on a {}-D blob",
            self.shape.len()
        );
        self.shape.get(i).copied().unwrap_or(1)
    }
    pub fn num(&self) -> usize {
        self.legacy_dim(0)
    }
    pub fn channels(&self) -> usize {
        self.legacy_dim(1)
    }
    pub fn height(&self) -> usize {
        self.legacy_dim(2)
    }
    pub fn width(&self) -> usize {
        self.legacy_dim(3)
    }
    /// Linear index of (n, c, h, w), Caffe's `offset`.
    pub fn offset(&self, n: usize, c: usize, h: usize, w: usize) -> usize {
        ((n * self.channels() + c) * self.height() + h) * self.width() + w
    }

    pub fn data(&self) -> &[f32] {
        self.data.cpu(self.count)
    }
    pub fn data_mut(&mut self) -> &mut [f32] {
        self.data.cpu_mut(self.count)
    }
    pub fn diff(&self) -> &[f32] {
        self.diff.cpu(self.count)
    }
    pub fn diff_mut(&mut self) -> &mut [f32] {
        self.diff.cpu_mut(self.count)
    }
    /// Data and diff both writable at once (a solver step that updates the
    /// weights in the same pass that turns their gradient into the step).
    pub fn data_and_diff_both_mut(&mut self) -> (&mut [f32], &mut [f32]) {
        let n = self.count;
        let diff = self.diff.cpu_mut(n);
        (self.data.cpu_mut(n), diff)
    }
    /// Data read-only and diff writable at once (backward of in-place layers).
    pub fn data_and_diff_mut(&mut self) -> (&[f32], &mut [f32]) {
        self.diff.assert_not_lent();
        let n = self.count;
        self.diff.head = Head::AtHost;
        (&self.data.host[..n], &mut self.diff.host[..n])
    }
    /// A stamp that changes whenever the data may have been written, unique
    /// across blobs; `None` once raw views of the buffer were handed out
    /// (`keep_host_buffers_alive`: pycaffe's numpy arrays write behind it).
    /// Takes the diff buffer away for another blob to use (the net's diff
    /// sharing); the diff is unusable until `return_diff`. None, and nothing
    /// taken, when bindings hold raw views of it (`keep_host_buffers_alive`)
    /// or it is already lent.
    pub(crate) fn lend_diff(&mut self) -> Option<Vec<f32>> {
        if self.diff.keep_retired || self.diff.lent {
            return None;
        }
        self.diff.lent = true;
        Some(std::mem::take(&mut self.diff.host))
    }
    /// Gives the diff a buffer back (any earlier lent one), grown to the
    /// blob's count; its values are whatever the buffer held.
    pub(crate) fn return_diff(&mut self, mut buf: Vec<f32>) {
        if buf.len() < self.count {
            buf.resize(self.count, 0.0);
        }
        self.diff.host = buf;
        self.diff.lent = false;
        self.diff.version = next_version();
    }
    pub(crate) fn diff_is_lent(&self) -> bool {
        self.diff.lent
    }

    pub fn data_version(&self) -> Option<u64> {
        (!self.data.keep_retired).then_some(self.data.version)
    }
    pub fn data_head(&self) -> Head {
        self.data.head()
    }

    /// `"10 96 55 55 (2904000)"`, as Caffe logs top shapes.
    pub fn shape_string(&self) -> String {
        let mut s = String::new();
        for d in &self.shape {
            s.push_str(&d.to_string());
            s.push(' ');
        }
        s.push_str(&format!("({})", self.count));
        s
    }

    /// Whether a stored blob has this blob's shape; a proto with only the legacy
    /// num/channels/height/width matches when those equal our shape padded to 4-D.
    pub fn shape_equals(&self, proto: &BlobProto) -> bool {
        if proto.shape.is_some() {
            let dims = blob_shape(proto);
            return dims.len() == self.shape.len()
                && dims.iter().zip(&self.shape).all(|(&a, &b)| a == b as i64);
        }
        if self.shape.len() > 4 {
            return false;
        }
        let mut padded = vec![1usize; 4 - self.shape.len()];
        padded.extend_from_slice(&self.shape);
        let legacy = [proto.num(), proto.channels(), proto.height(), proto.width()];
        legacy
            .iter()
            .zip(&padded)
            .all(|(&a, &b)| a as i64 == b as i64)
    }

    /// Loads a stored blob. With `reshape`, takes the stored shape; otherwise the
    /// shapes must agree. Reads float or double data, and the diff when present.
    pub fn from_proto(&mut self, proto: &BlobProto, reshape: bool) -> Result<()> {
        if reshape {
            let dims = blob_shape(proto);
            if dims.iter().any(|&d| d < 0) || dims.len() > MAX_BLOB_AXES {
                return Err(Error::Other(format!(
                    "stored blob has an invalid shape {dims:?}"
                )));
            }
            let dims: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
            self.reshape(&dims);
        } else if !self.shape_equals(proto) {
            return Err(Error::Other(format!(
                "shape mismatch: stored blob is {:?}, expected {}",
                blob_shape(proto),
                self.shape_string()
            )));
        }
        let n = self.count;
        let fill = |dst: &mut [f32], f: &[f32], d: &[f64], what: &str| -> Result<()> {
            if !d.is_empty() {
                if d.len() != n {
                    return Err(Error::Other(format!(
                        "stored {what} has {} values, shape needs {n}",
                        d.len()
                    )));
                }
                dst.iter_mut().zip(d).for_each(|(o, &v)| *o = v as f32);
            } else if !f.is_empty() || n == 0 {
                if f.len() != n {
                    return Err(Error::Other(format!(
                        "stored {what} has {} values, shape needs {n}",
                        f.len()
                    )));
                }
                dst.copy_from_slice(f);
            }
            Ok(())
        };
        fill(
            self.data.cpu_mut(n),
            &proto.data,
            &proto.double_data,
            "data",
        )?;
        if !proto.diff.is_empty() || !proto.double_diff.is_empty() {
            fill(
                self.diff.cpu_mut(n),
                &proto.diff,
                &proto.double_diff,
                "diff",
            )?;
        }
        Ok(())
    }

    /// Stores the blob with its `shape` (today's format) and float data.
    pub fn to_proto(&self, write_diff: bool) -> BlobProto {
        let mut p = BlobProto::new();
        let mut shape = BlobShape::new();
        shape.dim = self.shape.iter().map(|&d| d as i64).collect();
        p.shape = Some(shape).into();
        p.data = self.data().to_vec();
        if write_diff {
            p.diff = self.diff().to_vec();
        }
        p
    }

    /// Sum of absolute values of data / diff, and sum of squares (debug_info, clipping).
    pub fn asum_data(&self) -> f32 {
        self.data().iter().map(|v| v.abs()).sum()
    }
    pub fn asum_diff(&self) -> f32 {
        self.diff().iter().map(|v| v.abs()).sum()
    }
    pub fn sumsq_diff(&self) -> f32 {
        self.diff().iter().map(|v| v * v).sum()
    }
    /// data -= diff (the plain update step of Caffe's Blob::Update).
    pub fn update(&mut self) {
        let n = self.count;
        let diff = self.diff.cpu(n);
        self.data.head = Head::AtHost;
        self.data.version = next_version();
        self.data.host[..n]
            .iter_mut()
            .zip(diff)
            .for_each(|(d, g)| *d -= g);
    }
    /// Makes this blob's data equal to `other`'s (same count required).
    pub fn copy_from(&mut self, other: &Blob, copy_diff: bool) -> Result<()> {
        if other.count != self.count {
            return Err(Error::Other(format!(
                "cannot copy a blob of {} into one of {}",
                other.shape_string(),
                self.shape_string()
            )));
        }
        if copy_diff {
            self.diff_mut().copy_from_slice(other.diff());
        } else {
            self.data_mut().copy_from_slice(other.data());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_version_changes_with_every_write_to_the_data() {
        let mut b = Blob::new(&[2, 3]);
        let v0 = b.data_version().unwrap();
        let _ = b.data();
        b.diff_mut()[0] = 1.0;
        assert_eq!(b.data_version(), Some(v0), "reads and diff writes keep it");
        b.data_mut()[0] = 1.0;
        let v1 = b.data_version().unwrap();
        assert_ne!(v1, v0);
        b.update();
        let v2 = b.data_version().unwrap();
        assert_ne!(v2, v1, "the solver's update writes the data");
        b.reshape(&[4, 4]);
        assert_ne!(b.data_version(), Some(v2), "growing reallocates");
        b.keep_host_buffers_alive();
        assert_eq!(b.data_version(), None, "raw views write behind our back");
    }

    #[test]
    fn reshape_reuses_capacity_and_counts() {
        let mut b = Blob::new(&[2, 3, 4, 5]);
        assert_eq!(b.count(), 120);
        assert_eq!(b.count_from(1), 60);
        assert_eq!(b.shape_at(-1).unwrap(), 5);
        assert!(b.shape_at(4).is_err());
        let p = b.data().as_ptr();
        b.reshape(&[2, 3]);
        b.reshape(&[4, 5, 6]);
        assert_eq!(
            b.data().as_ptr(),
            p,
            "shrinking and regrowing within capacity must not reallocate"
        );
        assert_eq!((b.num(), b.channels(), b.height(), b.width()), (4, 5, 6, 1));
    }

    #[test]
    fn kept_buffers_survive_growth_with_their_values() {
        let mut b = Blob::new(&[4]);
        b.keep_host_buffers_alive();
        b.data_mut().copy_from_slice(&[1.0, 2.0, 3.0, 4.0]);
        let old = b.data().as_ptr();
        b.reshape(&[1000]);
        assert_ne!(b.data().as_ptr(), old, "growing past capacity reallocates");
        assert_eq!(&b.data()[..4], &[1.0, 2.0, 3.0, 4.0]);
        // SAFETY: the retired buffer is kept by the blob, which is alive.
        let kept = unsafe { std::slice::from_raw_parts(old, 4) };
        assert_eq!(kept, &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(b.data.retired.len(), 1);
        b.reshape(&[1500]); // past capacity 1000: doubles to 2000
        assert_eq!(b.data.retired.len(), 2);
        b.reshape(&[2000]);
        assert_eq!(b.data.retired.len(), 2, "doubling left room: no new buffer");
    }

    #[test]
    fn legacy_proto_shape_matches_padded_shape() {
        let mut p = BlobProto::new();
        p.set_num(1);
        p.set_channels(1);
        p.set_height(500);
        p.set_width(800);
        p.data = vec![0.5; 400000];
        let mut b = Blob::new(&[500, 800]);
        assert!(b.shape_equals(&p));
        b.from_proto(&p, false).unwrap();
        assert_eq!(b.data()[399999], 0.5);
        assert_eq!(b.shape_string(), "500 800 (400000)");
    }
}
