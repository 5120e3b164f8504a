//! Where the shared Caffe files live, for tests and benchmarks.
use std::path::{Path, PathBuf};

/// `../shared/data` beside the repository (or `$CREMA_SHARED_DATA`), if present.
/// Callers print `skipped: ...` when this is `None`.
pub fn shared_data() -> Option<PathBuf> {
    let dir = match std::env::var_os("CREMA_SHARED_DATA") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    };
    dir.is_dir().then(|| dir.canonicalize().unwrap_or(dir))
}

/// Every file under `dir` (recursively) whose name ends with one of `suffixes`,
/// sorted so test output is stable.
pub fn files_with_suffix(dir: &Path, suffixes: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if suffixes.iter().any(|s| p.to_string_lossy().ends_with(s)) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
