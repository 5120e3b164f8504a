//! The dashboard's server: its own thread, read-only, bound to 127.0.0.1
//! unless told otherwise. Pages and scripts are compiled in; the only
//! files it reads from disk are the run's snapshots named in its record.
//! Event lines reach browsers by Server-Sent Events; each browser has a
//! bounded queue, and a full one loses frames instead of slowing anyone.
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::http::{read_request, refuse, respond, Request};
use crate::graph::layout::RankDir;
use crate::graph::{svg, NetGraph};

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// Connections served at once (page loads and event streams together).
const MAX_CONNECTIONS: usize = 32;
/// Event streams open at once.
const MAX_STREAMS: usize = 8;
/// Frames queued per browser before new ones are dropped for it.
const STREAM_QUEUE: usize = 256;

/// The default address of `--dashboard` without a value.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";

#[derive(Default)]
struct HubState {
    history: Vec<Arc<str>>,
    streams: Vec<SyncSender<Arc<str>>>,
    graph: Option<NetGraph>,
    /// Basenames of the files snapshots wrote.
    snapshots: BTreeSet<String>,
    dropped: u64,
}

/// Every event line so far, and the browsers listening for the next.
pub struct Hub {
    state: Mutex<HubState>,
    /// Where the run's files are: the event file's directory.
    run_dir: PathBuf,
    open_streams: AtomicUsize,
}

impl Hub {
    pub fn new(run_dir: &Path) -> Arc<Hub> {
        Arc::new(Hub {
            state: Mutex::new(HubState::default()),
            run_dir: run_dir.to_path_buf(),
            open_streams: AtomicUsize::new(0),
        })
    }

    /// Takes one event line: remembers it and offers it to every browser.
    pub fn publish(&self, line: &str) {
        let line = line.trim();
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            log::warn!("dashboard: skipping a malformed event line");
            return;
        };
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match v["event"].as_str() {
            Some("start") => {
                if let Ok(g) = NetGraph::from_json(&v["net"]) {
                    st.graph = Some(g);
                }
            }
            Some("snapshot") => {
                for f in v["files"].as_array().into_iter().flatten() {
                    if let Some(name) = f.as_str().and_then(|f| Path::new(f).file_name()) {
                        st.snapshots.insert(name.to_string_lossy().into_owned());
                    }
                }
            }
            _ => {}
        }
        let line: Arc<str> = Arc::from(line);
        st.history.push(line.clone());
        let mut dropped = 0;
        st.streams.retain(|tx| match tx.try_send(line.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                dropped += 1;
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        });
        st.dropped += dropped;
    }

    /// Frames browsers missed because their queues were full.
    pub fn dropped(&self) -> u64 {
        self.state.lock().map(|s| s.dropped).unwrap_or(0)
    }

    /// The history so far and a queue for what follows, taken together so
    /// no line falls between them.
    fn subscribe(&self) -> (Vec<Arc<str>>, Receiver<Arc<str>>) {
        let (tx, rx) = sync_channel(STREAM_QUEUE);
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.streams.push(tx);
        (st.history.clone(), rx)
    }
}

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    pub hub: Arc<Hub>,
}

/// Binds `addr` and serves on a thread of its own.
pub fn start(addr: &str, hub: Arc<Hub>) -> Result<Server, String> {
    let listener =
        TcpListener::bind(addr).map_err(|e| format!("dashboard: cannot listen on {addr}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("dashboard: {e}"))?;
    let h = hub.clone();
    std::thread::Builder::new()
        .name("dashboard".into())
        .spawn(move || accept_loop(listener, h))
        .map_err(|e| format!("dashboard: cannot start its thread: {e}"))?;
    Ok(Server { addr: bound, hub })
}

fn accept_loop(listener: TcpListener, hub: Arc<Hub>) {
    let open = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        if open.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            let _ = refuse(&mut stream, (503, "Service Unavailable"));
            continue;
        }
        open.fetch_add(1, Ordering::SeqCst);
        let (hub, open) = (hub.clone(), open.clone());
        let spawned = std::thread::Builder::new()
            .name("dashboard conn".into())
            .spawn(move || {
                let _ = handle(stream, &hub);
                open.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            log::warn!("dashboard: cannot start a connection thread");
        }
    }
}

fn handle(mut stream: TcpStream, hub: &Hub) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let req = match read_request(&mut stream) {
        Ok(r) => r,
        Err(refusal) => return refuse(&mut stream, refusal),
    };
    let text = |s: &mut TcpStream, ty: &str, body: &str| {
        respond(s, 200, "OK", ty, body.as_bytes(), req.head_only)
    };
    match req.path.as_str() {
        "/" | "/index.html" => text(&mut stream, "text/html; charset=utf-8", INDEX_HTML),
        "/app.js" => text(&mut stream, "text/javascript; charset=utf-8", APP_JS),
        "/style.css" => text(&mut stream, "text/css; charset=utf-8", STYLE_CSS),
        "/events" => stream_events(stream, hub, &req),
        "/history.jsonl" => {
            let lines = hub.subscribe_history();
            text(&mut stream, "application/x-ndjson", &lines)
        }
        "/net.svg" => {
            let graph = hub.state.lock().map(|s| s.graph.clone()).unwrap_or(None);
            match graph {
                Some(g) => {
                    let dir = query_value(&req.query, "rankdir")
                        .and_then(|d| RankDir::parse(d).ok())
                        .unwrap_or(RankDir::TB);
                    text(&mut stream, "image/svg+xml", &svg::render(&g, dir))
                }
                None => refuse(&mut stream, (404, "Not Found")),
            }
        }
        p if p.starts_with("/files/") => {
            let name = &p["/files/".len()..];
            let known = hub
                .state
                .lock()
                .map(|s| s.snapshots.contains(name))
                .unwrap_or(false);
            // Only a snapshot the record names, and only by its bare name.
            if !known || name.contains('/') {
                return refuse(&mut stream, (404, "Not Found"));
            }
            match std::fs::read(hub.run_dir.join(name)) {
                Ok(bytes) => respond(
                    &mut stream,
                    200,
                    "OK",
                    "application/octet-stream",
                    &bytes,
                    req.head_only,
                ),
                Err(_) => refuse(&mut stream, (404, "Not Found")),
            }
        }
        _ => refuse(&mut stream, (404, "Not Found")),
    }
}

impl Hub {
    fn subscribe_history(&self) -> String {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut s = String::new();
        for l in &st.history {
            s.push_str(l);
            s.push('\n');
        }
        s
    }
}

fn query_value<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// Server-Sent Events: the history, then each new line as it comes, with a
/// comment every few seconds so a vanished browser is noticed.
fn stream_events(mut stream: TcpStream, hub: &Hub, req: &Request) -> std::io::Result<()> {
    if hub.open_streams.fetch_add(1, Ordering::SeqCst) >= MAX_STREAMS {
        hub.open_streams.fetch_sub(1, Ordering::SeqCst);
        return refuse(&mut stream, (503, "Service Unavailable"));
    }
    let result = (|| {
        stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\
              X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
        )?;
        if req.head_only {
            return Ok(());
        }
        let (history, rx) = hub.subscribe();
        let mut out = std::io::BufWriter::new(&stream);
        for line in history {
            write!(out, "data: {line}\n\n")?;
        }
        out.flush()?;
        loop {
            match rx.recv_timeout(Duration::from_secs(5)) {
                Ok(line) => {
                    write!(out, "data: {line}\n\n")?;
                    // Send what is queued together, then flush once.
                    while let Ok(more) = rx.try_recv() {
                        write!(out, "data: {more}\n\n")?;
                    }
                }
                Err(RecvTimeoutError::Timeout) => out.write_all(b": keep-alive\n\n")?,
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            out.flush()?;
        }
    })();
    hub.open_streams.fetch_sub(1, Ordering::SeqCst);
    result
}

/// Feeds `hub` from the solver's queue until the sender is gone.
pub fn pump(rx: Receiver<String>, hub: Arc<Hub>) {
    let _ = std::thread::Builder::new()
        .name("dashboard pump".into())
        .spawn(move || {
            for line in rx {
                hub.publish(&line);
            }
        });
}

/// Feeds `hub` from an event file another process writes (or wrote),
/// reading complete lines as they appear.
pub fn follow(path: PathBuf, hub: Arc<Hub>) {
    let _ = std::thread::Builder::new()
        .name("dashboard follow".into())
        .spawn(move || {
            let mut offset = 0u64;
            let mut partial = String::new();
            loop {
                if let Ok(mut f) = std::fs::File::open(&path) {
                    if f.seek(SeekFrom::Start(offset)).is_ok() {
                        let mut r = BufReader::new(f);
                        let mut line = String::new();
                        while let Ok(n) = r.read_line(&mut line) {
                            if n == 0 {
                                break;
                            }
                            offset += n as u64;
                            partial.push_str(&line);
                            line.clear();
                            if partial.ends_with('\n') {
                                hub.publish(&partial);
                                partial.clear();
                            }
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        });
}

/// The newest `*_events.jsonl` in `dir` (or `dir` itself when it is one).
pub fn find_events_file(dir: &Path) -> Result<PathBuf, String> {
    if dir.is_file() {
        return Ok(dir.to_path_buf());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| {
        format!(
            "dashboard: cannot read the directory {}: {e}",
            dir.display()
        )
    })?;
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with("_events.jsonl"))
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
        .ok_or_else(|| {
            format!(
                "dashboard: no *_events.jsonl in {} (train with --dashboard to write one)",
                dir.display()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_browser_that_stops_reading_loses_frames_without_blocking() {
        let hub = Hub::new(Path::new("."));
        let (_history, stalled) = hub.subscribe();
        for i in 0..(STREAM_QUEUE + 100) {
            hub.publish(&format!("{{\"event\":\"display\",\"iter\":{i}}}"));
        }
        assert_eq!(hub.dropped(), 100);
        // The queued frames are the oldest ones, in order.
        let first: Vec<String> = stalled.try_iter().take(2).map(|l| l.to_string()).collect();
        assert_eq!(first[1], "{\"event\":\"display\",\"iter\":1}");
        // A browser that went away is forgotten.
        drop(stalled);
        hub.publish("{\"event\":\"test\",\"iter\":9}");
        assert_eq!(hub.state.lock().unwrap().streams.len(), 0);
        assert_eq!(hub.state.lock().unwrap().history.len(), STREAM_QUEUE + 101);
    }

    #[test]
    fn snapshots_and_the_net_come_from_the_record() {
        let hub = Hub::new(Path::new("/runs"));
        hub.publish(r#"{"event":"start","net":{"name":"n","nodes":[{"kind":"layer","name":"conv1","type":"Convolution"}],"edges":[]}}"#);
        hub.publish(r#"{"event":"snapshot","iter":5,"files":["a/b/x_iter_5.caffemodel","a/b/x_iter_5.solverstate"]}"#);
        hub.publish("not json");
        let st = hub.state.lock().unwrap();
        assert_eq!(st.graph.as_ref().unwrap().nodes[0].name, "conv1");
        let names: Vec<&str> = st.snapshots.iter().map(String::as_str).collect();
        assert_eq!(names, vec!["x_iter_5.caffemodel", "x_iter_5.solverstate"]);
        assert_eq!(st.history.len(), 2, "the malformed line is skipped");
    }

    #[test]
    fn the_default_address_is_loopback() {
        assert!(DEFAULT_ADDR.starts_with("127.0.0.1:"));
        assert_eq!(super::super::address("true"), DEFAULT_ADDR);
        assert_eq!(super::super::address("0.0.0.0:9000"), "0.0.0.0:9000");
    }

    #[test]
    fn the_run_directory_is_searched_for_its_event_file() {
        let d = std::env::temp_dir().join(format!("crema-find-events-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let none = find_events_file(&d).unwrap_err();
        assert!(none.contains("no *_events.jsonl in"), "{none}");
        std::fs::write(d.join("notes.txt"), "x").unwrap();
        std::fs::write(d.join("lenet_events.jsonl"), "").unwrap();
        assert_eq!(find_events_file(&d).unwrap(), d.join("lenet_events.jsonl"));
        // A file given directly is used as it is.
        let f = d.join("notes.txt");
        assert_eq!(find_events_file(&f).unwrap(), f);
        let missing = find_events_file(&d.join("nope")).unwrap_err();
        assert!(missing.contains("cannot read the directory"), "{missing}");
    }
}
