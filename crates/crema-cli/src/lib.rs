//! What crema's command-line programs share: gflags-style flags, loading a net
//! from `-model/-phase/-level/-stage`, and the driver of the upgrade tools.
pub mod flags;
pub mod netload;
pub mod record_progress;
pub mod upgrade_tool;
/// The training dashboard, its event record and server.
pub mod dashboard;
/// Nets as graphs: draw_net's picture, laid out without graphviz.
pub mod graph;
/// `caffe plot`: training charts from a log or an event file.
pub mod plot;
/// SVG to PNG.
pub mod raster;
