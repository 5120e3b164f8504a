//! Caffe's database choice (`backend`: LMDB or LEVELDB) behind one cursor and
//! one writer, and the key formats Caffe's tools write. A writer builds its
//! database under a temporary name beside the target and renames it into
//! place on `finish`, so a failed or interrupted tool leaves nothing behind.
use std::path::{Path, PathBuf};

use crema_proto::caffe::data_parameter::DB;

use super::leveldb::{LevelDbCursor, LevelDbWriter};
use super::lmdb::{LmdbCursor, LmdbWriter};
use crate::error::{Error, Result};

/// A database backend, as `data_param.backend` or the tools' `--backend`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Lmdb,
    LevelDb,
}

impl Backend {
    /// The tools' `--backend` value ("lmdb" or "leveldb").
    pub fn parse(name: &str) -> Result<Backend> {
        match name {
            "lmdb" => Ok(Backend::Lmdb),
            "leveldb" => Ok(Backend::LevelDb),
            other => Err(Error::Other(format!(
                "Unknown db backend {other} (known: lmdb, leveldb)"
            ))),
        }
    }

    /// The backend a DataParameter names.
    pub fn from_proto(db: DB) -> Backend {
        match db {
            DB::LMDB => Backend::Lmdb,
            DB::LEVELDB => Backend::LevelDb,
        }
    }

    /// The name Caffe's tools use for it ("lmdb", "leveldb").
    pub fn name(self) -> &'static str {
        match self {
            Backend::Lmdb => "lmdb",
            Backend::LevelDb => "leveldb",
        }
    }

    /// Opens a database for reading, at its first record. LEVELDB is
    /// data_param's default, so a prototxt that never names a backend still
    /// reads a directory that plainly holds an LMDB (`data.mdb`), with a warning.
    pub fn open_cursor(self, path: &Path) -> Result<DbCursor> {
        match self {
            Backend::LevelDb if path.join("data.mdb").is_file() => {
                log::warn!(
                    "{} is an LMDB database; reading it as LMDB although the backend says LEVELDB",
                    path.display()
                );
                Ok(DbCursor::Lmdb(LmdbCursor::open(path)?))
            }
            Backend::LevelDb => Ok(DbCursor::LevelDb(LevelDbCursor::open(path)?)),
            Backend::Lmdb if path.join("CURRENT").is_file() => Err(Error::Other(format!(
                "{} is a LevelDB database, not an LMDB; set backend: LEVELDB (or --backend leveldb)",
                path.display()
            ))),
            Backend::Lmdb => Ok(DbCursor::Lmdb(LmdbCursor::open(path)?)),
        }
    }

    /// Creates a new database for writing; it appears at `path` only when
    /// the writer's `finish` succeeds. An existing `path` is an error, as in
    /// Caffe's NEW mode.
    pub fn create_writer(self, path: &Path) -> Result<DbWriter> {
        if path.exists() {
            return Err(Error::Other(format!(
                "{} {}: already exists; remove it or pick another name",
                self.name(),
                path.display()
            )));
        }
        let name = path
            .file_name()
            .ok_or_else(|| Error::Other(format!("{}: not a database name", path.display())))?;
        let temp = path.with_file_name(format!(
            ".{}.partial-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        // A leftover from a killed run of this same process id is stale.
        let _ = std::fs::remove_dir_all(&temp);
        let inner = match self {
            Backend::Lmdb => Writer::Lmdb(LmdbWriter::create(&temp)?),
            Backend::LevelDb => Writer::LevelDb(LevelDbWriter::create(&temp)?),
        };
        Ok(DbWriter {
            inner: Some(inner),
            temp,
            dest: path.to_path_buf(),
        })
    }
}

/// Reads a database in key order, whichever its backend (Caffe's db::Cursor).
pub enum DbCursor {
    Lmdb(LmdbCursor),
    LevelDb(LevelDbCursor),
}

impl DbCursor {
    /// Whether the cursor stands on a record.
    pub fn valid(&self) -> bool {
        match self {
            DbCursor::Lmdb(c) => c.valid(),
            DbCursor::LevelDb(c) => c.valid(),
        }
    }

    /// The current record's key. Call only when `valid()`.
    pub fn key(&self) -> &[u8] {
        match self {
            DbCursor::Lmdb(c) => c.key(),
            DbCursor::LevelDb(c) => c.key(),
        }
    }

    /// The current record's value. Call only when `valid()`.
    pub fn value(&self) -> &[u8] {
        match self {
            DbCursor::Lmdb(c) => c.value(),
            DbCursor::LevelDb(c) => c.value(),
        }
    }

    /// Moves to the first record.
    pub fn seek_to_first(&mut self) -> Result<()> {
        match self {
            DbCursor::Lmdb(c) => c.seek_to_first(),
            DbCursor::LevelDb(c) => c.seek_to_first(),
        }
    }

    /// Moves to the next record; past the last one `valid()` is false.
    #[allow(clippy::should_implement_trait)] // Caffe's cursor verb, not an iterator
    pub fn next(&mut self) -> Result<()> {
        match self {
            DbCursor::Lmdb(c) => c.next(),
            DbCursor::LevelDb(c) => c.next(),
        }
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

enum Writer {
    Lmdb(LmdbWriter),
    LevelDb(LevelDbWriter),
}

/// Writes a new database in batches (Caffe's db::Transaction): `put`, then
/// `commit`; `finish` closes it and moves it to its name. Dropped without
/// `finish`, it deletes what it wrote.
pub struct DbWriter {
    inner: Option<Writer>,
    temp: PathBuf,
    dest: PathBuf,
}

impl DbWriter {
    /// Queues a record for the next `commit`.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: Vec<u8>) {
        match self.inner.as_mut() {
            Some(Writer::Lmdb(w)) => w.put(key, value),
            Some(Writer::LevelDb(w)) => w.put(key, value),
            None => {}
        }
    }

    /// Writes the queued records in one transaction.
    pub fn commit(&mut self) -> Result<()> {
        match self.inner.as_mut() {
            Some(Writer::Lmdb(w)) => w.commit(),
            Some(Writer::LevelDb(w)) => w.commit(),
            None => Ok(()),
        }
    }

    /// Commits what is queued, closes the database and renames it to the
    /// path it was created for.
    pub fn finish(mut self) -> Result<()> {
        self.commit()?;
        match self.inner.take() {
            Some(Writer::Lmdb(w)) => drop(w),
            Some(Writer::LevelDb(w)) => w.close()?,
            None => {}
        }
        std::fs::rename(&self.temp, &self.dest).map_err(|e| {
            Error::Other(format!(
                "cannot move the finished database {} to {}: {e}",
                self.temp.display(),
                self.dest.display()
            ))
        })
    }
}

impl Drop for DbWriter {
    fn drop(&mut self) {
        if let Some(w) = self.inner.take() {
            drop(w);
            let _ = std::fs::remove_dir_all(&self.temp);
        }
    }
}

/// The key convert_mnist_data writes for record `index`: eight digits.
pub fn index_key(index: usize) -> String {
    format!("{index:08}")
}

/// The key convert_imageset writes: `%08d_<filename as listed>`.
pub fn image_key(index: usize, filename: &str) -> String {
    format!("{index:08}_{filename}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_in_record_order() {
        assert_eq!(index_key(7), "00000007");
        assert_eq!(image_key(12, "cat/1.jpg"), "00000012_cat/1.jpg");
        assert!(index_key(9) < index_key(10));
    }

    #[test]
    fn unknown_backends_and_existing_targets_are_refused_clearly() {
        assert!(Backend::parse("rocksdb")
            .unwrap_err()
            .to_string()
            .contains("rocksdb"));
        assert_eq!(Backend::parse("lmdb").unwrap(), Backend::Lmdb);
        assert_eq!(Backend::parse("leveldb").unwrap(), Backend::LevelDb);
        let dir = tempfile::tempdir().unwrap();
        for b in [Backend::Lmdb, Backend::LevelDb] {
            let err = b.create_writer(dir.path()).err().unwrap().to_string();
            assert!(err.contains("already exists"), "{err}");
            let missing = dir.path().join("missing");
            let err = b.open_cursor(&missing).err().unwrap().to_string();
            assert!(
                err.contains("missing") && err.contains("no such database"),
                "{err}"
            );
        }
    }

    #[test]
    fn default_leveldb_backend_still_reads_an_lmdb_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lmdb");
        let mut w = Backend::Lmdb.create_writer(&path).unwrap();
        w.put(index_key(0), b"v".to_vec());
        w.finish().unwrap();
        let c = Backend::LevelDb.open_cursor(&path).unwrap();
        assert_eq!(c.value(), b"v");
    }

    #[test]
    fn lmdb_backend_names_a_leveldb_directory_for_what_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ldb");
        let mut w = Backend::LevelDb.create_writer(&path).unwrap();
        w.put(index_key(0), b"v".to_vec());
        w.finish().unwrap();
        let err = Backend::Lmdb.open_cursor(&path).err().unwrap().to_string();
        assert!(
            err.contains("LevelDB") && err.contains("backend: LEVELDB"),
            "{err}"
        );
    }

    /// Both backends: records written out of order come back in key order
    /// across several reader chunks, the cursor wraps, and an unfinished
    /// writer leaves no directory behind.
    #[test]
    fn both_backends_round_trip_in_key_order_and_wrap() {
        for backend in [Backend::Lmdb, Backend::LevelDb] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(format!("db_{}", backend.name()));
            let mut w = backend.create_writer(&path).unwrap();
            assert!(!path.exists(), "{backend:?}: visible before finish");
            let n = 1000;
            for i in (0..n).rev() {
                w.put(index_key(i), vec![(i % 251) as u8; 1 + i % 7]);
                if i % 300 == 0 {
                    w.commit().unwrap();
                }
            }
            w.finish().unwrap();
            let leftovers: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(leftovers.len(), 1, "{backend:?}: {leftovers:?}");

            let mut c = backend.open_cursor(&path).unwrap();
            for i in 0..n {
                assert!(c.valid(), "{backend:?} record {i}");
                assert_eq!(c.key(), index_key(i).as_bytes());
                assert_eq!(c.value(), &vec![(i % 251) as u8; 1 + i % 7][..]);
                c.next().unwrap();
            }
            assert!(!c.valid());
            c.seek_to_first().unwrap();
            for _ in 0..n {
                c.next_wrapping().unwrap();
            }
            assert_eq!(c.key(), index_key(0).as_bytes(), "{backend:?} wraps");
            drop(c);

            let unfinished = dir.path().join("unfinished");
            let mut w = backend.create_writer(&unfinished).unwrap();
            w.put(index_key(0), b"x".to_vec());
            w.commit().unwrap();
            drop(w);
            let names: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names.len(), 1, "{backend:?} left {names:?}");
        }
    }
}
