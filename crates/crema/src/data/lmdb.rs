//! LMDB databases in Caffe's layout: a directory holding `data.mdb` and
//! `lock.mdb`, one unnamed database of key → serialized Datum, read in key
//! order. Built on heed, which bundles LMDB's C source.
use std::collections::{HashMap, VecDeque};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use heed::types::Bytes;
use heed::{Database, Env, EnvFlags, EnvOpenOptions, WithoutTls};

use crate::error::{Error, Result};

type RawDb = Database<Bytes, Bytes>;

/// Caffe's original LMDB map size (1 TiB of address space; the file itself
/// only grows as records are written).
const WRITE_MAP_SIZE: usize = 1 << 40;

/// Records fetched per read transaction: long enough to amortize the
/// transaction, short enough that no transaction stays open for long.
const CHUNK: usize = 256;

/// heed refuses to open one path twice in a process, yet a TRAIN and a TEST
/// net may read the same database at once: environments are shared here,
/// counted, and closed when the last user goes.
static OPEN_ENVS: Mutex<Option<EnvRegistry>> = Mutex::new(None);

/// Canonical path → (environment, number of handles on it).
type EnvRegistry = HashMap<PathBuf, (Env<WithoutTls>, usize)>;

fn lmdb_err(path: &Path, what: &str, e: heed::Error) -> Error {
    Error::Other(format!("lmdb {}: {what}: {e}", path.display()))
}

/// A counted handle on a shared environment.
struct EnvHandle {
    key: PathBuf,
    env: Env<WithoutTls>,
    path: PathBuf,
}

impl EnvHandle {
    fn open(path: &Path, read_only: bool) -> Result<EnvHandle> {
        let key = path
            .canonicalize()
            .map_err(|e| Error::Other(format!("cannot open lmdb {}: {e}", path.display())))?;
        let mut guard = OPEN_ENVS.lock().unwrap_or_else(|p| p.into_inner());
        let map = guard.get_or_insert_with(HashMap::new);
        if let Some((env, users)) = map.get_mut(&key) {
            let env_read_only = env
                .get_flags()
                .map(|f| f & EnvFlags::READ_ONLY.bits() != 0)
                .unwrap_or(true);
            if env_read_only && !read_only {
                return Err(Error::Other(format!(
                    "lmdb {}: already open read-only in this process, cannot write to it",
                    path.display()
                )));
            }
            *users += 1;
            return Ok(EnvHandle {
                key,
                env: env.clone(),
                path: path.to_path_buf(),
            });
        }
        let mut opts = EnvOpenOptions::new().read_txn_without_tls();
        if read_only {
            // SAFETY: READ_ONLY only restricts what this process may do.
            unsafe { opts.flags(EnvFlags::READ_ONLY) };
        } else {
            opts.map_size(WRITE_MAP_SIZE);
        }
        // SAFETY: the environment is opened once per process (the registry
        // above); files changed under a reader by another process are LMDB's
        // documented hazard, as in Caffe.
        let env = unsafe { opts.open(&key) }.map_err(|e| lmdb_err(path, "cannot open", e))?;
        map.insert(key.clone(), (env.clone(), 1));
        Ok(EnvHandle {
            key,
            env,
            path: path.to_path_buf(),
        })
    }
}

impl Drop for EnvHandle {
    fn drop(&mut self) {
        let mut guard = OPEN_ENVS.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(map) = guard.as_mut() {
            if let Some((_, users)) = map.get_mut(&self.key) {
                *users -= 1;
                if *users == 0 {
                    map.remove(&self.key);
                }
            }
        }
    }
}

fn open_main_db(handle: &EnvHandle) -> Result<RawDb> {
    let rtxn = handle
        .env
        .read_txn()
        .map_err(|e| lmdb_err(&handle.path, "cannot begin a read", e))?;
    let db = handle
        .env
        .open_database::<Bytes, Bytes>(&rtxn, None)
        .map_err(|e| lmdb_err(&handle.path, "cannot open the main database", e))?
        .ok_or_else(|| Error::Other(format!("lmdb {}: no main database", handle.path.display())))?;
    // Committing makes the handle valid for later transactions (heed's rule).
    rtxn.commit()
        .map_err(|e| lmdb_err(&handle.path, "cannot open the main database", e))?;
    Ok(db)
}

/// Reads records in key order, like Caffe's LMDBCursor: `valid`, `key`,
/// `value`, `next`, `seek_to_first`. Records are fetched in short read
/// transactions, so the cursor is `Send` and can live on a prefetch thread.
pub struct LmdbCursor {
    handle: EnvHandle,
    db: RawDb,
    buf: VecDeque<(Vec<u8>, Vec<u8>)>,
}

impl LmdbCursor {
    /// Opens the database at `path` read-only and moves to its first record.
    pub fn open(path: &Path) -> Result<LmdbCursor> {
        if !path.is_dir() {
            return Err(Error::Other(format!(
                "lmdb {}: no such database (expected a directory holding data.mdb)",
                path.display()
            )));
        }
        let handle = EnvHandle::open(path, true)?;
        let db = open_main_db(&handle)?;
        log::info!("Opened lmdb {}", path.display());
        let mut c = LmdbCursor {
            handle,
            db,
            buf: VecDeque::new(),
        };
        c.seek_to_first()?;
        Ok(c)
    }

    /// The database's path, for messages.
    pub fn path(&self) -> &Path {
        &self.handle.path
    }

    /// Number of records.
    pub fn len(&self) -> Result<u64> {
        let rtxn = self
            .handle
            .env
            .read_txn()
            .map_err(|e| lmdb_err(self.path(), "cannot begin a read", e))?;
        self.db
            .len(&rtxn)
            .map_err(|e| lmdb_err(self.path(), "cannot count records", e))
    }

    /// Whether the database holds no record.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    fn fill(&mut self, after: Option<&[u8]>) -> Result<()> {
        let path = self.handle.path.clone();
        let rtxn = self
            .handle
            .env
            .read_txn()
            .map_err(|e| lmdb_err(&path, "cannot begin a read", e))?;
        let lower = match after {
            Some(k) => Bound::Excluded(k),
            None => Bound::Unbounded,
        };
        let range = (lower, Bound::Unbounded);
        let iter = self
            .db
            .range(&rtxn, &range)
            .map_err(|e| lmdb_err(&path, "cannot seek", e))?;
        for item in iter.take(CHUNK) {
            let (k, v) = item.map_err(|e| lmdb_err(&path, "cannot read a record", e))?;
            self.buf.push_back((k.to_vec(), v.to_vec()));
        }
        Ok(())
    }

    /// Moves to the first record (no record: `valid()` is false).
    pub fn seek_to_first(&mut self) -> Result<()> {
        self.buf.clear();
        self.fill(None)
    }

    /// Whether the cursor stands on a record.
    pub fn valid(&self) -> bool {
        !self.buf.is_empty()
    }

    /// The current record's key. Call only when `valid()`.
    pub fn key(&self) -> &[u8] {
        &self.buf.front().expect("cursor is valid").0
    }

    /// The current record's value. Call only when `valid()`.
    pub fn value(&self) -> &[u8] {
        &self.buf.front().expect("cursor is valid").1
    }

    /// Moves to the next record; past the last one `valid()` is false.
    #[allow(clippy::should_implement_trait)] // Caffe's cursor verb, not an iterator
    pub fn next(&mut self) -> Result<()> {
        if let Some((key, _)) = self.buf.pop_front() {
            if self.buf.is_empty() {
                self.fill(Some(&key))?;
            }
        }
        Ok(())
    }

    /// Moves to the next record, starting over at the end, as Caffe's data
    /// readers loop over a database for as many epochs as training takes.
    pub fn next_wrapping(&mut self) -> Result<()> {
        self.next()?;
        if !self.valid() {
            log::info!("Restarting data prefetching from start.");
            self.seek_to_first()?;
        }
        Ok(())
    }
}

/// Writes records in batches (Caffe's LMDBTransaction: `put`, then `commit`
/// writes them in one LMDB transaction).
pub struct LmdbWriter {
    handle: EnvHandle,
    db: RawDb,
    pending: Vec<(Vec<u8>, Vec<u8>)>,
}

impl LmdbWriter {
    /// Creates a new database directory at `path`; an existing one is an
    /// error, as in Caffe (which refuses to mkdir over it).
    pub fn create(path: &Path) -> Result<LmdbWriter> {
        if path.exists() {
            return Err(Error::Other(format!(
                "lmdb {}: already exists; remove it or pick another name",
                path.display()
            )));
        }
        std::fs::create_dir_all(path).map_err(|e| {
            Error::Other(format!(
                "cannot create lmdb directory {}: {e}",
                path.display()
            ))
        })?;
        let handle = EnvHandle::open(path, false)?;
        let mut wtxn = handle
            .env
            .write_txn()
            .map_err(|e| lmdb_err(path, "cannot begin a write", e))?;
        let db = handle
            .env
            .create_database::<Bytes, Bytes>(&mut wtxn, None)
            .map_err(|e| lmdb_err(path, "cannot create the main database", e))?;
        wtxn.commit()
            .map_err(|e| lmdb_err(path, "cannot create the main database", e))?;
        log::info!("Opened lmdb {}", path.display());
        Ok(LmdbWriter {
            handle,
            db,
            pending: Vec::new(),
        })
    }

    /// Queues a record for the next `commit`.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: Vec<u8>) {
        self.pending.push((key.into(), value));
    }

    /// Writes the queued records in one transaction.
    pub fn commit(&mut self) -> Result<()> {
        let path = self.handle.path.clone();
        let mut wtxn = self
            .handle
            .env
            .write_txn()
            .map_err(|e| lmdb_err(&path, "cannot begin a write", e))?;
        for (k, v) in self.pending.drain(..) {
            self.db.put(&mut wtxn, &k, &v).map_err(|e| {
                lmdb_err(
                    &path,
                    &format!("cannot write record {}", String::from_utf8_lossy(&k)),
                    e,
                )
            })?;
        }
        wtxn.commit()
            .map_err(|e| lmdb_err(&path, "cannot commit", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_records_read_back_in_key_order_and_wrap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut w = LmdbWriter::create(&path).unwrap();
        // More than one fetch chunk, written out of order.
        let n = CHUNK * 2 + 7;
        for i in (0..n).rev() {
            w.put(format!("{i:08}"), vec![(i % 251) as u8; i % 5]);
            if i % 100 == 0 {
                w.commit().unwrap();
            }
        }
        w.commit().unwrap();
        // A reader may open while the writer is still alive (shared env).
        let mut c = LmdbCursor::open(&path).unwrap();
        drop(w);
        assert_eq!(c.len().unwrap(), n as u64);
        for i in 0..n {
            assert!(c.valid());
            assert_eq!(c.key(), format!("{i:08}").as_bytes());
            assert_eq!(c.value(), &vec![(i % 251) as u8; i % 5][..]);
            c.next().unwrap();
        }
        assert!(!c.valid());
        c.seek_to_first().unwrap();
        for _ in 0..n {
            c.next_wrapping().unwrap();
        }
        assert_eq!(c.key(), b"00000000");
        // Two readers of one path at once.
        let c2 = LmdbCursor::open(&path).unwrap();
        assert_eq!(c2.key(), b"00000000");
    }

    #[test]
    fn missing_and_existing_paths_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = LmdbCursor::open(&missing).err().unwrap().to_string();
        assert!(
            err.contains("nope") && err.contains("no such database"),
            "{err}"
        );
        let err = LmdbWriter::create(dir.path()).err().unwrap().to_string();
        assert!(err.contains("already exists"), "{err}");
    }

    #[test]
    fn empty_database_has_no_valid_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty");
        drop(LmdbWriter::create(&path).unwrap());
        let c = LmdbCursor::open(&path).unwrap();
        assert!(!c.valid());
        assert!(c.is_empty().unwrap());
    }
}
