//! The handle registry: every object a C host holds is a 64-bit id looked up
//! here, never a pointer. Ids are never reused, so a deleted or reset handle
//! is reported as such instead of being dereferenced.
//!
//! Nets, layers and blobs borrowed from a standalone net or a solver are
//! children of that root: deleting the root (or `crema_reset`) removes them
//! too. Asking twice for the same child gives the same id.
use std::cell::RefCell;
use std::collections::HashMap;

use crema::{Net, SharedBlob, Solver};

use crate::error::{CError, R};

/// A host-visible id; 0 is never valid.
pub type Handle = u64;

/// Where a net handle's Net lives.
pub enum NetSlot {
    /// Built by `crema_net_new`; the handle owns it.
    Own(Box<Net>),
    /// A solver's train net (`test: None`) or one of its test nets.
    InSolver { solver: Handle, test: Option<usize> },
}

pub enum Object {
    Net(NetSlot),
    Solver(Box<Solver>),
    Layer { net: Handle, index: usize },
    Blob(SharedBlob),
}

impl Object {
    fn kind(&self) -> &'static str {
        match self {
            Object::Net(_) => "net",
            Object::Solver(_) => "solver",
            Object::Layer { .. } => "layer",
            Object::Blob(_) => "blob",
        }
    }
}

/// What a child handle stands for, so repeated requests share one id.
#[derive(Clone, PartialEq, Eq, Hash)]
enum ChildKey {
    SolverNet(Option<usize>),
    Layer(Handle, usize),
    /// The blob's allocation address: stable while the entry holds the Rc.
    Blob(usize),
}

struct Entry {
    object: Object,
    /// The standalone net, solver or blob whose deletion removes this entry.
    root: Handle,
    key: Option<ChildKey>,
}

pub struct Registry {
    next: Handle,
    entries: HashMap<Handle, Entry>,
    children: HashMap<(Handle, ChildKey), Handle>,
    init_key: f64,
}

thread_local! {
    static REGISTRY: RefCell<Registry> = RefCell::new(Registry::new());
}

/// Runs `f` on this thread's registry (crema's nets are single-threaded, so
/// handles belong to the thread that made them).
pub fn with<T>(f: impl FnOnce(&mut Registry) -> R<T>) -> R<T> {
    REGISTRY.with(|r| {
        let mut reg = r.try_borrow_mut().map_err(|_| {
            CError::argument("crema was re-entered while a call was running on this thread")
        })?;
        f(&mut reg)
    })
}

/// A fresh key that differs from the last one (matcaffe's init_key).
fn new_init_key(old: f64) -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
        .unwrap_or(1);
    // Kept below 2^31 so it survives a round trip through a double or an int.
    let mut key = f64::from(nanos & 0x7fff_ffff);
    if key == old {
        key = f64::from((nanos.wrapping_add(1)) & 0x7fff_ffff);
    }
    key
}

impl Registry {
    fn new() -> Self {
        Registry {
            next: 1,
            entries: HashMap::new(),
            children: HashMap::new(),
            init_key: new_init_key(-1.0),
        }
    }

    pub fn init_key(&self) -> f64 {
        self.init_key
    }

    fn fresh(&mut self) -> Handle {
        let h = self.next;
        self.next += 1;
        h
    }

    /// Registers a standalone object (a net, solver or blob the host owns).
    pub fn insert_root(&mut self, object: Object) -> Handle {
        let h = self.fresh();
        self.entries.insert(
            h,
            Entry {
                object,
                root: h,
                key: None,
            },
        );
        h
    }

    fn child(&mut self, root: Handle, key: ChildKey, make: impl FnOnce() -> Object) -> Handle {
        if let Some(&h) = self.children.get(&(root, key.clone())) {
            return h;
        }
        let h = self.fresh();
        self.children.insert((root, key.clone()), h);
        self.entries.insert(
            h,
            Entry {
                object: make(),
                root,
                key: Some(key),
            },
        );
        h
    }

    fn entry(&self, h: Handle) -> R<&Entry> {
        self.entries.get(&h).ok_or_else(|| {
            CError::handle(format!(
                "handle {h} is not valid: its object was deleted, crema was reset, or it was never made"
            ))
        })
    }

    fn wrong_kind(h: Handle, got: &Object, want: &str) -> CError {
        CError::handle(format!("handle {h} is a {}, not a {want}", got.kind()))
    }

    /// Removes a root and everything borrowed from it. Returns the object.
    fn remove_root(&mut self, h: Handle) -> Option<Object> {
        let doomed: Vec<Handle> = self
            .entries
            .iter()
            .filter(|(&id, e)| e.root == h && id != h)
            .map(|(&id, _)| id)
            .collect();
        for id in doomed {
            if let Some(e) = self.entries.remove(&id) {
                if let Some(k) = e.key {
                    self.children.remove(&(h, k));
                }
            }
        }
        self.entries.remove(&h).map(|e| e.object)
    }

    /// Deletes what `h` names when it is a root of kind `want`. A net that
    /// belongs to a solver is left alone (its solver owns it), as matcaffe's
    /// delete_net does.
    pub fn delete(&mut self, h: Handle, want: &str) -> R<()> {
        let e = self.entry(h)?;
        if e.object.kind() != want {
            return Err(Registry::wrong_kind(h, &e.object, want));
        }
        match &e.object {
            Object::Net(NetSlot::InSolver { .. }) => return Ok(()),
            Object::Blob(_) if e.root != h => {
                return Err(CError::argument(format!(
                    "blob handle {h} belongs to a net; delete the net instead"
                )))
            }
            _ => {}
        }
        self.remove_root(h);
        Ok(())
    }

    /// Drops every object and changes the init key; returns how many solvers
    /// and standalone nets were cleared.
    pub fn reset(&mut self) -> (usize, usize) {
        let mut solvers = 0;
        let mut nets = 0;
        for e in self.entries.values() {
            match e.object {
                Object::Solver(_) => solvers += 1,
                Object::Net(NetSlot::Own(_)) => nets += 1,
                _ => {}
            }
        }
        self.entries.clear();
        self.children.clear();
        self.init_key = new_init_key(self.init_key);
        (solvers, nets)
    }

    pub fn solver_mut(&mut self, h: Handle) -> R<&mut Solver> {
        self.entry(h)?;
        match &mut self.entries.get_mut(&h).expect("checked above").object {
            Object::Solver(s) => Ok(s),
            other => Err(Registry::wrong_kind(h, other, "solver")),
        }
    }

    pub fn net_mut(&mut self, h: Handle) -> R<&mut Net> {
        let (solver, test) = match &self.entry(h)?.object {
            Object::Net(NetSlot::InSolver { solver, test }) => (*solver, *test),
            Object::Net(NetSlot::Own(_)) => (0, None),
            other => return Err(Registry::wrong_kind(h, other, "net")),
        };
        if solver == 0 {
            return match &mut self.entries.get_mut(&h).expect("checked above").object {
                Object::Net(NetSlot::Own(n)) => Ok(n),
                _ => unreachable!("checked above"),
            };
        }
        let s = self.solver_mut(solver)?;
        match test {
            None => Ok(s.net_mut()),
            Some(i) => Ok(&mut s.test_nets_mut()[i]),
        }
    }

    /// The layer handle's net handle and layer index.
    pub fn layer(&self, h: Handle) -> R<(Handle, usize)> {
        match &self.entry(h)?.object {
            Object::Layer { net, index } => Ok((*net, *index)),
            other => Err(Registry::wrong_kind(h, other, "layer")),
        }
    }

    pub fn blob(&self, h: Handle) -> R<SharedBlob> {
        match &self.entry(h)?.object {
            Object::Blob(b) => Ok(b.clone()),
            other => Err(Registry::wrong_kind(h, other, "blob")),
        }
    }

    fn root_of(&self, h: Handle) -> R<Handle> {
        Ok(self.entry(h)?.root)
    }

    /// The handle of a solver's train net (`None`) or test net `i`.
    pub fn solver_net(&mut self, solver: Handle, test: Option<usize>) -> R<Handle> {
        self.solver_mut(solver)?;
        Ok(self.child(solver, ChildKey::SolverNet(test), || {
            Object::Net(NetSlot::InSolver { solver, test })
        }))
    }

    /// The handle of layer `index` of `net` (index already checked).
    pub fn layer_handle(&mut self, net: Handle, index: usize) -> R<Handle> {
        let root = self.root_of(net)?;
        Ok(
            self.child(root, ChildKey::Layer(net, index), || Object::Layer {
                net,
                index,
            }),
        )
    }

    /// The handle of a blob borrowed from the object `owner` (a net or layer).
    pub fn blob_handle(&mut self, owner: Handle, blob: SharedBlob) -> R<Handle> {
        let root = self.root_of(owner)?;
        let addr = std::rc::Rc::as_ptr(&blob) as usize;
        Ok(self.child(root, ChildKey::Blob(addr), || Object::Blob(blob)))
    }
}
