//! What crema's command-line programs share: gflags-style flags, loading a net
//! from `-model/-phase/-level/-stage`, and the driver of the upgrade tools.
pub mod flags;
pub mod netload;
pub mod record_progress;
pub mod upgrade_tool;
