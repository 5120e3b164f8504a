//! Caffe's database choice (`backend`) and key formats. LMDB is the backend
//! crema reads and writes; LEVELDB is named so it can be refused clearly.
use std::path::Path;

use crema_proto::caffe::data_parameter::DB;

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

    fn require_lmdb(self, path: &Path) -> Result<()> {
        match self {
            Backend::Lmdb => Ok(()),
            Backend::LevelDb => Err(Error::Other(format!(
                "{}: the LEVELDB backend is not supported yet; convert the data to LMDB (backend: LMDB)",
                path.display()
            ))),
        }
    }

    /// Opens a database for reading, at its first record. LEVELDB is
    /// data_param's default, so a prototxt that never names a backend still
    /// reads a directory that plainly holds an LMDB (`data.mdb`), with a warning.
    pub fn open_cursor(self, path: &Path) -> Result<LmdbCursor> {
        if self == Backend::LevelDb && path.join("data.mdb").is_file() {
            log::warn!(
                "{} is an LMDB database; reading it as LMDB although the backend says LEVELDB",
                path.display()
            );
            return LmdbCursor::open(path);
        }
        self.require_lmdb(path)?;
        LmdbCursor::open(path)
    }

    /// Creates a new database for writing.
    pub fn create_writer(self, path: &Path) -> Result<LmdbWriter> {
        self.require_lmdb(path)?;
        LmdbWriter::create(path)
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
    fn leveldb_and_unknown_backends_are_refused_clearly() {
        let err = Backend::LevelDb
            .open_cursor(Path::new("/data/x_leveldb"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("LEVELDB") && err.contains("/data/x_leveldb"),
            "{err}"
        );
        assert!(Backend::parse("rocksdb")
            .unwrap_err()
            .to_string()
            .contains("rocksdb"));
        assert_eq!(Backend::parse("lmdb").unwrap(), Backend::Lmdb);
    }

    #[test]
    fn default_leveldb_backend_still_reads_an_lmdb_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lmdb");
        let mut w = Backend::Lmdb.create_writer(&path).unwrap();
        w.put(index_key(0), b"v".to_vec());
        w.commit().unwrap();
        drop(w);
        let c = Backend::LevelDb.open_cursor(&path).unwrap();
        assert_eq!(c.value(), b"v");
        assert!(Backend::LevelDb
            .create_writer(&dir.path().join("x"))
            .is_err());
    }
}
