//! The loaders the rest of crema calls: nets and solvers from prototxt,
//! weights from caffemodels, solver states and mean files, each upgraded to
//! the current format as Caffe's ReadNetParamsFromTextFileOrDie,
//! ReadNetParamsFromBinaryFileOrDie and ReadSolverParamsFromTextFileOrDie do,
//! but returning errors instead of aborting.
use std::path::Path;

use crate::binary;
use crate::caffe::{BlobProto, NetParameter, SolverParameter, SolverState};
use crate::error::{ProtoError, Result};
use crate::text;
use crate::upgrade;

fn name_of(path: &Path) -> String {
    path.display().to_string()
}

/// Parses a prototxt as `M`. When that fails but the text is a valid `Other`
/// (a solver passed where a net belongs, or the reverse), the error says so.
fn read_text_expecting<M: protobuf::MessageFull, Other: protobuf::MessageFull>(
    path: &Path,
    expected: &str,
    other: &str,
) -> Result<M> {
    match text::read_text_file::<M>(path) {
        Ok(m) => Ok(m),
        Err(ProtoError::Text {
            file,
            line,
            column,
            message,
        }) => {
            let is_other = std::fs::read_to_string(path)
                .ok()
                .is_some_and(|t| text::parse::<Other>(&t, &name_of(path)).is_ok());
            if is_other {
                Err(ProtoError::invalid(
                    name_of(path),
                    format!(
                        "expected a {expected} prototxt, but the file is a {other} prototxt \
                         (line {line}:{column}: {message})"
                    ),
                ))
            } else {
                Err(ProtoError::Text {
                    file,
                    line,
                    column,
                    message,
                })
            }
        }
        Err(e) => Err(e),
    }
}

/// Reads a net prototxt exactly as written (no upgrade): what the upgrade
/// tools start from.
pub fn read_net_text_as_is(path: impl AsRef<Path>) -> Result<NetParameter> {
    read_text_expecting::<NetParameter, SolverParameter>(
        path.as_ref(),
        "net (NetParameter)",
        "solver (SolverParameter)",
    )
}

/// Reads a net prototxt and upgrades it to the current format.
pub fn read_net_text(path: impl AsRef<Path>) -> Result<NetParameter> {
    let path = path.as_ref();
    let mut net = read_net_text_as_is(path)?;
    upgrade::upgrade_net(&mut net, &name_of(path))?;
    Ok(net)
}

/// Reads a binary NetParameter (a `.caffemodel`) exactly as stored.
pub fn read_net_binary_as_is(path: impl AsRef<Path>) -> Result<NetParameter> {
    binary::read_binary(path.as_ref(), "caffemodel (NetParameter)")
}

/// Reads a `.caffemodel` and upgrades it to the current format, so its layers
/// carry current type strings whatever year it was trained in.
pub fn read_net_binary(path: impl AsRef<Path>) -> Result<NetParameter> {
    let path = path.as_ref();
    let mut net = read_net_binary_as_is(path)?;
    upgrade::upgrade_net(&mut net, &name_of(path))?;
    Ok(net)
}

/// Reads a solver prototxt exactly as written (no upgrade).
pub fn read_solver_text_as_is(path: impl AsRef<Path>) -> Result<SolverParameter> {
    read_text_expecting::<SolverParameter, NetParameter>(
        path.as_ref(),
        "solver (SolverParameter)",
        "net (NetParameter)",
    )
}

/// Reads a solver prototxt, upgrades `solver_type`, and fills in
/// `snapshot_prefix` as Caffe does: unset → the solver file's path without
/// its extension; an existing directory → that directory / the file's stem.
pub fn read_solver_text(path: impl AsRef<Path>) -> Result<SolverParameter> {
    let path = path.as_ref();
    let mut solver = read_solver_text_as_is(path)?;
    upgrade::upgrade_solver(&mut solver, &name_of(path))?;
    default_snapshot_prefix(&mut solver, path);
    Ok(solver)
}

fn default_snapshot_prefix(solver: &mut SolverParameter, path: &Path) {
    if !solver.has_snapshot_prefix() {
        solver.set_snapshot_prefix(path.with_extension("").to_string_lossy().into_owned());
        log::info!(
            "snapshot_prefix was not specified and is set to {}",
            solver.snapshot_prefix()
        );
    } else if Path::new(solver.snapshot_prefix()).is_dir() {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let joined = Path::new(solver.snapshot_prefix()).join(stem);
        solver.set_snapshot_prefix(joined.to_string_lossy().into_owned());
        log::info!(
            "snapshot_prefix was a directory and is replaced to {}",
            solver.snapshot_prefix()
        );
    }
}

/// Reads a binary `.solverstate`, checking that each history blob holds as
/// many values as its shape says.
pub fn read_solver_state(path: impl AsRef<Path>) -> Result<SolverState> {
    let path = path.as_ref();
    let state: SolverState = binary::read_binary(path, "solverstate (SolverState)")?;
    for (i, h) in state.history.iter().enumerate() {
        binary::check_blob(h, &format!("{} (history blob {i})", name_of(path)))?;
    }
    Ok(state)
}

/// Reads a mean file (`.binaryproto`, one BlobProto).
pub fn read_mean_blob(path: impl AsRef<Path>) -> Result<BlobProto> {
    binary::read_blob(path.as_ref())
}

/// Writes a net as prototxt in Caffe's layout, atomically.
pub fn write_net_text(path: impl AsRef<Path>, net: &NetParameter) -> Result<()> {
    text::write_text_file(path.as_ref(), net)
}

/// Writes a solver as prototxt in Caffe's layout, atomically.
pub fn write_solver_text(path: impl AsRef<Path>, solver: &SolverParameter) -> Result<()> {
    text::write_text_file(path.as_ref(), solver)
}

/// Writes a net as a binary caffemodel, atomically.
pub fn write_net_binary(path: impl AsRef<Path>, net: &NetParameter) -> Result<()> {
    binary::write_binary(path.as_ref(), net)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, contents: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("crema-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }

    #[test]
    fn solver_given_as_net_names_the_file_and_the_expected_kind() {
        let p = temp_file(
            "solver_as_net.prototxt",
            "net: \"x.prototxt\"\nbase_lr: 0.01\n",
        );
        let e = read_net_text(&p).unwrap_err().to_string();
        assert!(
            e.contains("solver_as_net.prototxt") && e.contains("expected a net (NetParameter)"),
            "{e}"
        );
        assert!(e.contains("is a solver (SolverParameter)"), "{e}");
    }

    #[test]
    fn net_given_as_solver_names_the_file_and_the_expected_kind() {
        let p = temp_file(
            "net_as_solver.prototxt",
            "name: \"n\"\nlayer { name: \"a\" type: \"ReLU\" }\n",
        );
        let e = read_solver_text(&p).unwrap_err().to_string();
        assert!(
            e.contains("net_as_solver.prototxt")
                && e.contains("expected a solver (SolverParameter)"),
            "{e}"
        );
    }

    #[test]
    fn garbage_keeps_the_parser_error_with_its_position() {
        let p = temp_file("garbage.prototxt", "name: \"n\"\nlayer { nme: 3 }\n");
        match read_net_text(&p).unwrap_err() {
            ProtoError::Text { line, .. } => assert_eq!(line, 2),
            e => panic!("unexpected error {e}"),
        }
    }

    #[test]
    fn missing_snapshot_prefix_defaults_to_the_solver_path_without_extension() {
        let p = temp_file(
            "my_solver.prototxt",
            "net: \"n.prototxt\"\nsolver_type: ADAM\n",
        );
        let s = read_solver_text(&p).unwrap();
        assert_eq!(s.snapshot_prefix(), p.with_extension("").to_string_lossy());
        assert_eq!(s.type_(), "Adam");
        assert!(!s.has_solver_type());
    }

    #[test]
    fn snapshot_prefix_naming_a_directory_gets_the_solver_stem() {
        let dir = std::env::temp_dir().join(format!("crema-files-snap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = format!("snapshot_prefix: \"{}\"\n", dir.display());
        let p = temp_file("stem_solver.prototxt", &text);
        let s = read_solver_text(&p).unwrap();
        assert_eq!(
            s.snapshot_prefix(),
            dir.join("stem_solver").to_string_lossy()
        );
    }

    #[test]
    fn missing_file_is_an_io_error_naming_it() {
        let e = read_net_binary("/nonexistent/x.caffemodel").unwrap_err();
        assert!(
            matches!(e, ProtoError::Io { .. })
                && e.to_string().contains("/nonexistent/x.caffemodel")
        );
    }
}
