//! Data-parallel training, Caffe's multi-GPU scheme (P2PSync / NCCL) on CPU
//! replicas: worker threads in one process, or MPI ranks across processes.
//!
//! Every replica builds the same net, starts from the root's weights, reads
//! its own share of the training records (`shard`), and after backward the
//! gradients are summed over replicas and averaged (`GradientSync`), so N
//! replicas with batch B step exactly as one process with batch B and
//! iter_size N. The root replica alone tests, displays and snapshots.
//!
//! How replicas talk is the `Communicator` trait: shared memory between
//! threads here (`threads`), MPI in the `caffe` binary; NCCL plugs in later.
mod comm;
mod exchange_thread;
mod gradient_sync;
mod replica;
mod shard;
mod threads;

pub use comm::Communicator;
pub use gradient_sync::GradientSync;
pub use replica::{enter_replica, join_replica, train_on_threads};
pub use shard::{data_shard, set_data_shard, DataShard};
pub use threads::{thread_group, ThreadComm};
