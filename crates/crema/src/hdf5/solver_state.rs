//! Caffe's `.solverstate.h5` (SGDSolver's SnapshotSolverStateToHDF5): int
//! datasets `iter` and `current_step` of shape [1], the string
//! `learned_net`, and group `history` with datasets "0", "1", ... in the
//! solver's history order.
//!
//! crema adds group `crema_rng` (the random generator's seed, stream and word
//! position as bytes) so a resumed run draws what an uninterrupted one
//! would; Caffe never looks for it, and a file without it restores as usual.
use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{H5Reader, H5Writer};
use crate::blob::Blob;
use crate::error::{Error, Result};

/// A solver state read from an HDF5 file.
pub struct SolverStateH5 {
    pub iter: i32,
    /// The weights file, when the state names one.
    pub learned_net: Option<String>,
    pub current_step: i32,
    /// Each history blob as (shape, values).
    pub history: Vec<(Vec<usize>, Vec<f32>)>,
    /// crema's generator state, when the file has it.
    pub rng: Option<ChaCha8Rng>,
}

const RNG_GROUP: &str = "crema_rng";

/// Writes a solver state, atomically.
pub fn write_solver_state(
    path: &Path,
    iter: i32,
    learned_net: &str,
    current_step: i32,
    history: &[Blob],
    rng: &ChaCha8Rng,
) -> Result<()> {
    let w = H5Writer::create(path)?;
    w.write_i32("iter", iter)?;
    w.write_string("learned_net", learned_net)?;
    w.write_i32("current_step", current_step)?;
    w.create_group("history")?;
    for (i, h) in history.iter().enumerate() {
        w.write_f32(&format!("history/{i}"), h.shape(), h.data())?;
    }
    w.create_group(RNG_GROUP)?;
    w.write_u8(&format!("{RNG_GROUP}/seed"), &rng.get_seed())?;
    w.write_u8(
        &format!("{RNG_GROUP}/stream"),
        &rng.get_stream().to_le_bytes(),
    )?;
    w.write_u8(
        &format!("{RNG_GROUP}/word_pos"),
        &rng.get_word_pos().to_le_bytes(),
    )?;
    w.commit()
}

/// Reads a solver state written by Caffe or by `write_solver_state`.
pub fn read_solver_state(path: &Path) -> Result<SolverStateH5> {
    let r = H5Reader::open(path)?;
    let iter = r.read_i32("iter")?;
    let learned_net = if r.exists("learned_net") {
        Some(r.read_string("learned_net")?)
    } else {
        None
    };
    let current_step = r.read_i32("current_step")?;
    if !r.exists("history") {
        return Err(Error::Other(format!(
            "{}: Error reading history: no group 'history'",
            path.display()
        )));
    }
    let count = r.member_names("history")?.len();
    let history = (0..count)
        .map(|i| r.read_f32(&format!("history/{i}")))
        .collect::<Result<Vec<_>>>()?;
    let rng = if r.exists(RNG_GROUP) {
        Some(read_rng(&r)?)
    } else {
        None
    };
    Ok(SolverStateH5 {
        iter,
        learned_net,
        current_step,
        history,
        rng,
    })
}

fn read_rng(r: &H5Reader) -> Result<ChaCha8Rng> {
    let bad = || {
        Error::Other(format!(
            "{}: crema's random generator state (group {RNG_GROUP}) is malformed",
            r.path().display()
        ))
    };
    let seed: [u8; 32] = r
        .read_u8(&format!("{RNG_GROUP}/seed"))?
        .try_into()
        .map_err(|_| bad())?;
    let stream: [u8; 8] = r
        .read_u8(&format!("{RNG_GROUP}/stream"))?
        .try_into()
        .map_err(|_| bad())?;
    let pos: [u8; 16] = r
        .read_u8(&format!("{RNG_GROUP}/word_pos"))?
        .try_into()
        .map_err(|_| bad())?;
    let mut rng = ChaCha8Rng::from_seed(seed);
    rng.set_stream(u64::from_le_bytes(stream));
    rng.set_word_pos(u128::from_le_bytes(pos));
    Ok(rng)
}
