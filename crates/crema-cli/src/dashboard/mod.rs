//! Watching training as it happens: `caffe train` records every display,
//! test and snapshot in `<snapshot_prefix>_events.jsonl`; `--dashboard`
//! serves a live page from the same events, and `caffe dashboard DIR`
//! serves a finished (or remote) run from its file.
use std::path::Path;
use std::rc::Rc;
use std::sync::mpsc::sync_channel;

use crema::proto::caffe::SolverParameter;
use crema::Solver;
use serde_json::json;

pub mod http;
pub mod record;
pub mod server;
pub mod timing;

use record::{events_path, EventSink, Recorder};
use timing::LayerClock;

/// Lines the solver may queue for the server before it drops some.
const LIVE_QUEUE: usize = 1024;

/// `--dashboard` alone means the default address; `--dashboard=ADDR:PORT`
/// names one. Binding elsewhere than loopback is the user's explicit choice.
pub fn address(flag: &str) -> String {
    match flag {
        "" | "true" => server::DEFAULT_ADDR.to_string(),
        a => a.to_string(),
    }
}

/// Hooks the record (and, with `dashboard` set, the live server) to
/// `solver`. Its nets must have been built with `timing::timed_factory(clock)`
/// for the per-layer times.
pub fn attach(
    solver: &mut Solver,
    param: &SolverParameter,
    solver_file: &Path,
    dashboard: Option<&str>,
    clock: Rc<LayerClock>,
) -> Result<Option<server::Server>, String> {
    let path = events_path(param.snapshot_prefix(), solver_file);
    let (live, srv) = match dashboard {
        Some(flag) => {
            let run_dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => std::path::PathBuf::from("."),
            };
            let hub = server::Hub::new(&run_dir);
            let srv = server::start(&address(flag), hub.clone())?;
            let (tx, rx) = sync_channel(LIVE_QUEUE);
            server::pump(rx, hub);
            log::info!("Dashboard: http://{}/", srv.addr);
            (Some(tx), Some(srv))
        }
        None => (None, None),
    };
    let sink = match EventSink::open(&path, live.clone()) {
        Ok(s) => {
            log::info!("Recording events to {}", path.display());
            s
        }
        Err(e) => match live {
            Some(tx) => {
                log::warn!("{e}; the dashboard shows this run live only");
                EventSink::live_only(tx)
            }
            None => {
                log::warn!("{e}; this run is not recorded");
                return Ok(None);
            }
        },
    };
    let mut nets = vec![solver.net()];
    nets.extend(solver.test_nets().iter());
    let graph = crate::graph::from_nets(solver.net().name(), &nets);
    let mut rec = Recorder::new(sink, clock, param.display());
    rec.emit(json!({
        "event": "start", "solver": solver_file.display().to_string(),
        "iter": solver.iter(), "max_iter": param.max_iter(), "display": param.display(),
        "average_loss": param.average_loss(), "test_interval": param.test_interval(),
        "snapshot": param.snapshot(), "base_lr": param.base_lr(),
        "lr_policy": param.lr_policy(), "net": graph.to_json(),
    }));
    solver.add_hook(Box::new(rec));
    Ok(srv)
}

/// `caffe dashboard DIR`: serves the newest event file in DIR (or the file
/// given), following it while another process appends.
pub fn serve_dir(dir: &str, addr_flag: &str) -> Result<(), String> {
    if dir.is_empty() {
        return Err("usage: caffe dashboard DIR_OR_EVENTS_FILE [--dashboard=ADDR:PORT]".into());
    }
    let file = server::find_events_file(Path::new(dir))?;
    let run_dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let hub = server::Hub::new(&run_dir);
    server::follow(file.clone(), hub.clone());
    let srv = server::start(&address(addr_flag), hub)?;
    log::info!("Serving {} at http://{}/", file.display(), srv.addr);
    loop {
        std::thread::park();
    }
}
