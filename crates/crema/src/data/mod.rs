//! Data pipeline: Datum records in LMDB or LevelDB databases (Caffe's
//! layout), JPEG/PNG decoding with OpenCV's channel order, the DataTransformer
//! (crop, mirror, mean, scale) and a prefetch thread that keeps batches ready
//! ahead of the net. The layers built on it live in `layers/data/`.
pub mod datum;
pub mod db;
pub mod image_io;
pub mod leveldb;
pub mod lmdb;
pub mod prefetch;
pub mod transformer;

pub use datum::{decode_datum, parse_datum, read_image_to_datum};
pub use db::{image_key, index_key, Backend, DbCursor, DbWriter};
pub use image_io::{ColorMode, Image};
pub use leveldb::{LevelDbCursor, LevelDbWriter};
pub use lmdb::{LmdbCursor, LmdbWriter};
pub use prefetch::{Batch, BatchLoader, PrefetchQueue};
pub use transformer::DataTransformer;
