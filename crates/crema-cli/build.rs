//! With `python-layer`, the binary links libpython: record its directory as
//! an rpath so the binary runs without LD_LIBRARY_PATH (pyenv, venvs).
fn main() {
    #[cfg(feature = "python-layer")]
    pyo3_build_config::add_libpython_rpath_link_args();
}
