//! Snapshots and restores in Caffe's binary formats: `<prefix>_iter_N.caffemodel`
//! (the train net, with diffs when `snapshot_diff`) and
//! `<prefix>_iter_N.solverstate` (iter, learned_net, current_step, history),
//! or with `snapshot_format: HDF5` the same content as
//! `<prefix>_iter_N.caffemodel.h5` and `<prefix>_iter_N.solverstate.h5`
//! (layouts in `crate::hdf5`). `restore` picks the format by the `.h5`
//! suffix, as Caffe does.
//!
//! crema also stores its random generator's state, so a resumed run draws
//! the same dropout masks and fills as an uninterrupted one. Those go in
//! SolverState field numbers from 1000 on, which Caffe's schema does not
//! define: Caffe keeps them as unknown fields and reads the file as usual.
use std::path::{Path, PathBuf};

use crema_proto::caffe::{solver_parameter::SnapshotFormat, SolverParameter, SolverState};
use protobuf::UnknownValueRef;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::Solver;
use crate::error::{Error, Result};

/// SolverState extension: the generator's 32-byte seed.
pub const RNG_SEED_FIELD: u32 = 1000;
/// SolverState extension: the generator's stream number.
pub const RNG_STREAM_FIELD: u32 = 1001;
/// SolverState extension: the generator's word position (16 bytes, little endian).
pub const RNG_WORD_POS_FIELD: u32 = 1002;

/// `<prefix>_iter_<iter><extension>`, Caffe's snapshot file name.
pub fn snapshot_filename(prefix: &str, iter: i32, extension: &str) -> String {
    format!("{prefix}_iter_{iter}{extension}")
}

fn check_format(param: &SolverParameter) -> Result<()> {
    if param.snapshot_format() == SnapshotFormat::HDF5 && !crate::hdf5::ENABLED {
        return Err(crate::hdf5::unsupported("snapshot_format: HDF5"));
    }
    Ok(())
}

/// Caffe's CheckSnapshotWritePermissions: fail at start-up, not hours later.
pub(super) fn check_write_permissions(param: &SolverParameter) -> Result<()> {
    if param.snapshot() <= 0 {
        return Ok(());
    }
    check_format(param)?;
    if !param.has_snapshot_prefix() {
        return Err(Error::Other(
            "In solver params, snapshot is specified but snapshot_prefix is not".into(),
        ));
    }
    let probe = snapshot_filename(param.snapshot_prefix(), 0, ".tempfile");
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(Error::Other(format!(
            "Cannot write to snapshot prefix '{}' ({e}). Make sure that the directory exists and is writeable.",
            param.snapshot_prefix()
        ))),
    }
}

fn rng_to_state(state: &mut SolverState, rng: &ChaCha8Rng) {
    let unknown = state.special_fields.mut_unknown_fields();
    unknown.add_length_delimited(RNG_SEED_FIELD, rng.get_seed().to_vec());
    unknown.add_varint(RNG_STREAM_FIELD, rng.get_stream());
    unknown.add_length_delimited(
        RNG_WORD_POS_FIELD,
        rng.get_word_pos().to_le_bytes().to_vec(),
    );
}

/// The generator stored by `rng_to_state`; None for a file without it (one
/// Caffe wrote). A malformed extension is an error, not a silent reseed.
fn rng_from_state(state: &SolverState, path: &Path) -> Result<Option<ChaCha8Rng>> {
    let unknown = state.special_fields.unknown_fields();
    let (Some(seed), Some(stream), Some(pos)) = (
        unknown.get(RNG_SEED_FIELD),
        unknown.get(RNG_STREAM_FIELD),
        unknown.get(RNG_WORD_POS_FIELD),
    ) else {
        return Ok(None);
    };
    let bad = || {
        Error::Other(format!(
            "{}: crema's random generator state (fields 1000-1002) is malformed",
            path.display()
        ))
    };
    let seed: [u8; 32] = match seed {
        UnknownValueRef::LengthDelimited(b) => b.try_into().map_err(|_| bad())?,
        _ => return Err(bad()),
    };
    let stream = match stream {
        UnknownValueRef::Varint(v) => v,
        _ => return Err(bad()),
    };
    let pos: [u8; 16] = match pos {
        UnknownValueRef::LengthDelimited(b) => b.try_into().map_err(|_| bad())?,
        _ => return Err(bad()),
    };
    let mut rng = ChaCha8Rng::from_seed(seed);
    rng.set_stream(stream);
    rng.set_word_pos(u128::from_le_bytes(pos));
    Ok(Some(rng))
}

impl Solver {
    /// Writes `<prefix>_iter_N.caffemodel` and `<prefix>_iter_N.solverstate`,
    /// each atomically.
    pub fn snapshot(&mut self) -> Result<()> {
        check_format(&self.param)?;
        let files = if self.param.snapshot_format() == SnapshotFormat::HDF5 {
            self.snapshot_hdf5()?
        } else {
            self.snapshot_binary()?
        };
        for h in &mut self.hooks {
            h.on_snapshot(self.iter, &files);
        }
        Ok(())
    }

    fn snapshot_binary(&self) -> Result<[PathBuf; 2]> {
        let prefix = self.param.snapshot_prefix();
        let model = snapshot_filename(prefix, self.iter, ".caffemodel");
        log::info!("Snapshotting to binary proto file {model}");
        let net_param = self.net.to_proto(self.param.snapshot_diff());
        crema_proto::binary::write_binary(Path::new(&model), &net_param)?;

        let mut state = SolverState::new();
        state.set_iter(self.iter);
        state.set_learned_net(model.clone());
        state.set_current_step(self.current_step);
        state.history = self.history.iter().map(|h| h.to_proto(false)).collect();
        rng_to_state(&mut state, &crate::rng::state());
        let nets: Vec<&crate::net::Net> =
            std::iter::once(&self.net).chain(&self.test_nets).collect();
        super::data_position::save(&mut state, &nets);
        let state_file = snapshot_filename(prefix, self.iter, ".solverstate");
        log::info!("Snapshotting solver state to binary proto file {state_file}");
        crema_proto::binary::write_binary(Path::new(&state_file), &state)?;
        Ok([PathBuf::from(model), PathBuf::from(state_file)])
    }

    fn snapshot_hdf5(&self) -> Result<[PathBuf; 2]> {
        let prefix = self.param.snapshot_prefix();
        let model = snapshot_filename(prefix, self.iter, ".caffemodel.h5");
        log::info!("Snapshotting to HDF5 file {model}");
        self.net.to_hdf5(&model, self.param.snapshot_diff())?;
        let state_file = snapshot_filename(prefix, self.iter, ".solverstate.h5");
        log::info!("Snapshotting solver state to HDF5 file {state_file}");
        crate::hdf5::write_solver_state(
            Path::new(&state_file),
            self.iter,
            &model,
            self.current_step,
            &self.history,
            &crate::rng::state(),
        )?;
        Ok([PathBuf::from(model), PathBuf::from(state_file)])
    }

    /// Restores iter, current_step, the learned net and the history from a
    /// binary `.solverstate` or an HDF5 `.solverstate.h5` (Caffe's or
    /// crema's), and crema's generator state when the file has it.
    pub fn restore(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        if crate::hdf5::is_hdf5_path(path) {
            return self.restore_hdf5(path);
        }
        let state = crema_proto::files::read_solver_state(path)?;
        self.check_history_len(state.history.len(), path)?;
        if state.has_learned_net() {
            let model = resolve_learned_net(state.learned_net(), path)?;
            let trained = crema_proto::files::read_net_binary(&model)?;
            self.net.copy_trained_layers_from(&trained)?;
        }
        log::info!("SGDSolver: restoring history");
        for (i, (h, stored)) in self.history.iter_mut().zip(&state.history).enumerate() {
            h.from_proto(stored, false)
                .map_err(|e| Error::Other(format!("{}: history blob {i}: {e}", path.display())))?;
        }
        self.iter = state.iter();
        self.current_step = state.current_step();
        if let Some(rng) = rng_from_state(&state, path)? {
            crate::rng::restore(rng);
        }
        let mut nets: Vec<&mut crate::net::Net> = std::iter::once(&mut self.net)
            .chain(self.test_nets.iter_mut())
            .collect();
        super::data_position::restore(&state, &mut nets, path)?;
        Ok(())
    }
}

impl Solver {
    fn check_history_len(&self, stored: usize, path: &Path) -> Result<()> {
        let expected = self.history.len();
        if stored != expected {
            return Err(Error::Other(format!(
                "{}: Incorrect length of history blobs: the file has {stored}, the {} solver on this net needs {expected}",
                path.display(),
                self.param.type_()
            )));
        }
        Ok(())
    }

    /// Caffe's RestoreSolverStateFromHDF5. The whole file is checked before
    /// anything changes: history blobs must match in number and exact shape
    /// (Caffe loads them without reshaping); the learned net is loaded by
    /// its suffix, binary or HDF5.
    fn restore_hdf5(&mut self, path: &Path) -> Result<()> {
        if !crate::hdf5::ENABLED {
            return Err(crate::hdf5::unsupported(&path.display().to_string()));
        }
        let state = crate::hdf5::read_solver_state(path)?;
        self.check_history_len(state.history.len(), path)?;
        for (i, (h, (shape, _))) in self.history.iter().zip(&state.history).enumerate() {
            if h.shape() != shape.as_slice() {
                return Err(Error::Other(format!(
                    "{}: history blob {i}: Cannot load blob from hdf5; shape mismatch. Source shape is {} target shape is {}",
                    path.display(),
                    crate::hdf5::shape_with_count(shape),
                    h.shape_string()
                )));
            }
        }
        if let Some(stored) = &state.learned_net {
            let model = resolve_learned_net(stored, path)?;
            self.net.copy_trained_layers_from_file(&model)?;
        }
        log::info!("SGDSolver: restoring history");
        for (h, (_, data)) in self.history.iter_mut().zip(&state.history) {
            h.data_mut().copy_from_slice(data);
        }
        self.iter = state.iter;
        self.current_step = state.current_step;
        if let Some(rng) = state.rng {
            crate::rng::restore(rng);
        }
        Ok(())
    }
}

/// The learned_net path as stored (relative to where training ran), else the
/// same file name beside the solverstate, where snapshots usually travel.
fn resolve_learned_net(stored: &str, state_path: &Path) -> Result<PathBuf> {
    let as_stored = PathBuf::from(stored);
    if as_stored.is_file() {
        return Ok(as_stored);
    }
    if let (Some(name), Some(dir)) = (as_stored.file_name(), state_path.parent()) {
        let beside = dir.join(name);
        if beside.is_file() {
            log::warn!("learned_net {stored} not found; using {}", beside.display());
            return Ok(beside);
        }
    }
    Err(Error::Other(format!(
        "{}: its learned_net {stored} was not found (neither as written nor beside the solverstate)",
        state_path.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_follow_caffe() {
        assert_eq!(
            snapshot_filename("examples/mnist/lenet", 500, ".caffemodel"),
            "examples/mnist/lenet_iter_500.caffemodel"
        );
        assert_eq!(
            snapshot_filename("x", 0, ".solverstate"),
            "x_iter_0.solverstate"
        );
    }

    #[test]
    fn rng_state_round_trips_through_unknown_fields() {
        use rand::RngCore;
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        rng.next_u64();
        let mut state = SolverState::new();
        state.set_iter(3);
        rng_to_state(&mut state, &rng);
        let bytes = crema_proto::binary::encode(&state).unwrap();
        let back: SolverState =
            crema_proto::binary::decode(&bytes, Path::new("x"), "solverstate").unwrap();
        let mut restored = rng_from_state(&back, Path::new("x")).unwrap().unwrap();
        assert_eq!(restored.next_u64(), rng.next_u64());
        assert!(rng_from_state(&SolverState::new(), Path::new("x"))
            .unwrap()
            .is_none());
    }
}
