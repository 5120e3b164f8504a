//! Which share of the training records this replica reads. Record i (counted
//! from where reading starts, wrapping around the database as one process
//! would) goes to replica i mod count, as Caffe's data layers deal records to
//! its solvers; test-phase layers read everything.
use std::cell::Cell;

/// This replica's place among `count` readers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataShard {
    pub rank: usize,
    pub count: usize,
}

impl DataShard {
    pub const WHOLE: DataShard = DataShard { rank: 0, count: 1 };
}

thread_local! {
    static SHARD: Cell<DataShard> = const { Cell::new(DataShard::WHOLE) };
}

/// Sets the shard that data layers built on this thread from now on take.
pub fn set_data_shard(shard: DataShard) {
    assert!(
        shard.count > 0 && shard.rank < shard.count,
        "bad data shard {shard:?}"
    );
    SHARD.with(|s| s.set(shard));
}

/// The shard for a layer being built on this thread (whole data by default).
pub fn data_shard() -> DataShard {
    SHARD.with(|s| s.get())
}
