//! LevelDB databases in Caffe's layout: a directory of LevelDB files holding
//! key → serialized Datum, read in bytewise key order. Opened with Caffe's
//! options (64 KiB blocks, 256 MiB write buffer, 100 open files, snappy as
//! LevelDB's default). Built on rusty-leveldb, a pure-Rust LevelDB whose files
//! the C++ library reads.
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;

use rusty_leveldb::compressor::SnappyCompressor;
use rusty_leveldb::{CompressorId, LdbIterator, Options, WriteBatch, DB};

use crate::error::{Error, Result};

/// Records fetched per request to the reader thread.
const CHUNK: usize = 256;

fn ldb_err(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Other(format!("leveldb {}: {what}: {e}", path.display()))
}

/// Caffe's LevelDB::Open options; `create` is its NEW mode (create the
/// database), otherwise READ (it must exist). NEW's error_if_exists is
/// checked by the callers: rusty-leveldb 4 creates the directory (for its
/// info log) before it tests whether it exists, so its own check always fails.
fn caffe_options(create: bool) -> Options {
    Options {
        block_size: 65536,
        write_buffer_size: 268_435_456,
        max_open_files: 100,
        create_if_missing: create,
        error_if_exists: false,
        compressor: SnappyCompressor::ID,
        ..Options::default()
    }
}

/// What the cursor asks its reader thread.
enum Request {
    /// Up to CHUNK records from the first one.
    First,
    /// Up to CHUNK records following the last ones sent.
    More,
}

type Records = Vec<(Vec<u8>, Vec<u8>)>;

/// Reads records in key order, like Caffe's LevelDBCursor: `valid`, `key`,
/// `value`, `next`, `seek_to_first`. rusty-leveldb's handles are not `Send`,
/// so the database lives on a reader thread of its own that hands over
/// records in chunks; the cursor itself is `Send` and can sit on a prefetch
/// thread.
pub struct LevelDbCursor {
    path: PathBuf,
    requests: Option<Sender<Request>>,
    replies: Receiver<Result<Records>>,
    thread: Option<JoinHandle<()>>,
    buf: VecDeque<(Vec<u8>, Vec<u8>)>,
    /// The reader has sent its last record since the latest `First`.
    exhausted: bool,
}

fn read_chunk(iter: &mut rusty_leveldb::DBIterator, first: bool) -> Records {
    if first {
        iter.reset();
    }
    let mut out = Vec::with_capacity(CHUNK);
    while out.len() < CHUNK {
        match iter.next() {
            Some(kv) => out.push(kv),
            None => break,
        }
    }
    out
}

fn reader_thread(path: PathBuf, requests: Receiver<Request>, replies: Sender<Result<Records>>) {
    let opened = DB::open(&path, caffe_options(false))
        .map_err(|e| ldb_err(&path, "cannot open", e))
        .and_then(|mut db| {
            let iter = db
                .new_iter()
                .map_err(|e| ldb_err(&path, "cannot iterate", e))?;
            Ok((db, iter))
        });
    // The database stays open for as long as its iterator reads.
    let (db, mut iter) = match opened {
        Ok(x) => {
            let _ = replies.send(Ok(Vec::new()));
            x
        }
        Err(e) => {
            let _ = replies.send(Err(e));
            return;
        }
    };
    while let Ok(req) = requests.recv() {
        let reply = match req {
            Request::First => read_chunk(&mut iter, true),
            Request::More => read_chunk(&mut iter, false),
        };
        if replies.send(Ok(reply)).is_err() {
            break;
        }
    }
    drop(iter);
    drop(db);
}

impl LevelDbCursor {
    /// Opens the database at `path` (which must exist) and moves to its
    /// first record.
    pub fn open(path: &Path) -> Result<LevelDbCursor> {
        if !path.join("CURRENT").is_file() {
            return Err(Error::Other(format!(
                "leveldb {}: no such database (expected a directory holding CURRENT)",
                path.display()
            )));
        }
        let (req_tx, req_rx) = channel();
        let (rep_tx, rep_rx) = channel();
        let owned = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name(format!("leveldb {}", path.display()))
            .spawn(move || reader_thread(owned, req_rx, rep_tx))
            .map_err(|e| ldb_err(path, "cannot start the reader thread", e))?;
        let mut c = LevelDbCursor {
            path: path.to_path_buf(),
            requests: Some(req_tx),
            replies: rep_rx,
            thread: Some(thread),
            buf: VecDeque::new(),
            exhausted: false,
        };
        c.receive()?; // the open's outcome
        log::info!("Opened leveldb {}", path.display());
        c.seek_to_first()?;
        Ok(c)
    }

    /// The database's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn receive(&mut self) -> Result<Records> {
        match self.replies.recv() {
            Ok(r) => r,
            Err(_) => Err(Error::Other(format!(
                "leveldb {}: the reader thread has stopped",
                self.path.display()
            ))),
        }
    }

    fn ask(&mut self, req: Request) -> Result<()> {
        let first = matches!(req, Request::First);
        let sent = self.requests.as_ref().map(|tx| tx.send(req).is_ok());
        if sent != Some(true) {
            return Err(Error::Other(format!(
                "leveldb {}: the reader thread has stopped",
                self.path.display()
            )));
        }
        if first {
            self.buf.clear();
        }
        let records = self.receive()?;
        self.exhausted = records.len() < CHUNK;
        self.buf.extend(records);
        Ok(())
    }

    /// Moves to the first record (no record: `valid()` is false).
    pub fn seek_to_first(&mut self) -> Result<()> {
        self.ask(Request::First)
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
        if self.buf.pop_front().is_some() && self.buf.is_empty() && !self.exhausted {
            self.ask(Request::More)?;
        }
        Ok(())
    }
}

impl Drop for LevelDbCursor {
    fn drop(&mut self) {
        // Closing the request channel ends the reader, which closes the
        // database and releases its lock before the cursor is gone.
        self.requests = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes records in batches (Caffe's LevelDBTransaction: `put`, then
/// `commit` writes them as one LevelDB WriteBatch).
pub struct LevelDbWriter {
    path: PathBuf,
    db: DB,
    batch: WriteBatch,
}

impl LevelDbWriter {
    /// Creates a new database at `path`; an existing one is an error
    /// (Caffe's NEW mode: error_if_exists).
    pub fn create(path: &Path) -> Result<LevelDbWriter> {
        if path.exists() {
            return Err(Error::Other(format!(
                "leveldb {}: already exists; remove it or pick another name",
                path.display()
            )));
        }
        let db =
            DB::open(path, caffe_options(true)).map_err(|e| ldb_err(path, "cannot create", e))?;
        log::info!("Opened leveldb {}", path.display());
        Ok(LevelDbWriter {
            path: path.to_path_buf(),
            db,
            batch: WriteBatch::default(),
        })
    }

    /// Queues a record for the next `commit`.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: Vec<u8>) {
        self.batch.put(&key.into(), &value);
    }

    /// Writes the queued records in one batch.
    pub fn commit(&mut self) -> Result<()> {
        let batch = std::mem::take(&mut self.batch);
        self.db
            .write(batch, false)
            .map_err(|e| ldb_err(&self.path, "cannot write", e))
    }

    /// Flushes and closes the database, releasing its lock.
    pub fn close(mut self) -> Result<()> {
        self.db
            .close()
            .map_err(|e| ldb_err(&self.path, "cannot close", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What LevelDbWriter wrote, reopened with the crate's own API (no
    /// crema code on the read side): every key in bytewise order with its
    /// value, and Caffe's NEW/READ open modes.
    #[test]
    fn written_database_reads_back_through_the_raw_api() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ldb");
        let mut w = LevelDbWriter::create(&path).unwrap();
        for i in [3usize, 1, 20, 2, 10] {
            w.put(format!("{i:05}"), format!("value {i}").into_bytes());
        }
        w.commit().unwrap();
        w.close().unwrap();
        assert!(
            LevelDbWriter::create(&path).is_err(),
            "NEW refuses an existing db"
        );

        let mut db = DB::open(&path, Options::default()).unwrap();
        let mut it = db.new_iter().unwrap();
        let mut seen = Vec::new();
        while let Some((k, v)) = it.next() {
            seen.push((String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap()));
        }
        let want: Vec<_> = [1, 2, 3, 10, 20]
            .iter()
            .map(|i| (format!("{i:05}"), format!("value {i}")))
            .collect();
        assert_eq!(seen, want);
        drop(it);
        drop(db);

        let err = DB::open(dir.path().join("absent"), caffe_options(false));
        assert!(err.is_err(), "READ mode does not create");
    }

    #[test]
    fn cursor_reports_a_locked_database_instead_of_hanging() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ldb");
        let mut w = LevelDbWriter::create(&path).unwrap();
        w.put(b"a".to_vec(), b"1".to_vec());
        w.commit().unwrap();
        // The writer still holds LevelDB's LOCK.
        let err = LevelDbCursor::open(&path).err().unwrap().to_string();
        assert!(err.contains("leveldb") && err.contains("ldb"), "{err}");
        w.close().unwrap();
        let c = LevelDbCursor::open(&path).unwrap();
        assert_eq!(c.key(), b"a");
    }
}

#[cfg(test)]
mod cpp_interop {
    use super::*;

    /// fixtures/leveldb_cpp.py: 300 Datums written by the C++ LevelDB
    /// (snappy tables plus a log). Opening may recover the log, so the
    /// cursor reads a copy.
    #[test]
    fn reads_a_database_written_by_the_cpp_library() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/leveldb_cpp");
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("db");
        std::fs::create_dir(&copy).unwrap();
        for e in std::fs::read_dir(&fixture).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), copy.join(e.file_name())).unwrap();
        }
        let mut c = LevelDbCursor::open(&copy).unwrap();
        for i in 0..300usize {
            assert!(c.valid(), "record {i}");
            assert_eq!(c.key(), format!("{i:08}").as_bytes());
            let mut want = vec![0x08, 1, 0x10, 4, 0x18, 8, 0x22, 32];
            want.extend(std::iter::repeat_n((i % 256) as u8, 24));
            want.extend(0..8u8);
            want.extend([0x28, (i % 10) as u8]);
            assert_eq!(c.value(), &want[..], "record {i}");
            c.next().unwrap();
        }
        assert!(!c.valid());
    }
}
