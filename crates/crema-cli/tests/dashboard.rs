//! The dashboard through the `caffe` binary: a training run serves its
//! page, events and net over HTTP while it records them to its event file;
//! `caffe dashboard DIR` serves a finished run; hostile requests are
//! refused; `caffe plot` and `draw_net` write images of the right size.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use resvg::tiny_skia::Pixmap;
use serde_json::Value;

const NET: &str = r#"name: "tiny"
layer { name: "data" type: "DummyData" top: "data" top: "target"
        dummy_data_param { shape { dim: 4 dim: 3 dim: 6 dim: 6 } shape { dim: 4 dim: 2 dim: 1 dim: 1 }
                           data_filler { type: "gaussian" std: 1 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 5 kernel_size: 3 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: AVE kernel_size: 4 } }
layer { name: "pred" type: "Convolution" bottom: "pool" top: "pred"
        convolution_param { num_output: 2 kernel_size: 1 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "pred" bottom: "target" top: "loss" }
"#;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("crema-dash-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("snap")).unwrap();
    std::fs::write(d.join("net.prototxt"), NET).unwrap();
    d
}

/// Kills the child when a test fails half-way.
struct Running(Child);
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `caffe args` in `d`; its stderr lines arrive on the receiver.
fn spawn(d: &Path, args: &[&str]) -> (Running, Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_caffe"))
        .args(args)
        .current_dir(d)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (Running(child), rx)
}

/// Waits for a log line containing `marker`; returns the text after it.
fn wait_for(rx: &Receiver<String>, marker: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(line) => {
                if let Some((_, rest)) = line.split_once(marker) {
                    return rest.to_string();
                }
                seen.push(line);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => break,
        }
    }
    panic!(
        "no log line with {marker:?}; the log was:\n{}",
        seen.join("\n")
    );
}

/// A raw request; returns (status, body).
fn raw(addr: &str, request: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // The server may refuse before reading everything we send.
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = match out.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(p) => out[p + 4..].to_vec(),
        None => Vec::new(),
    };
    (status, body)
}

fn get(addr: &str, path: &str) -> (u16, String) {
    let (status, body) = raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    );
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Reads the event stream until `n` display events have come.
fn read_displays(addr: &str, n: usize) -> Vec<Value> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut displays = Vec::new();
    for line in BufReader::new(s).lines() {
        let line = line.unwrap();
        if let Some(data) = line.strip_prefix("data: ") {
            let v: Value = serde_json::from_str(data).unwrap();
            if v["event"] == "display" {
                displays.push(v);
                if displays.len() == n {
                    break;
                }
            }
        }
    }
    displays
}

fn write_solver(d: &Path, max_iter: u32) {
    let text = format!(
        "net: \"net.prototxt\"\ntest_iter: 1\ntest_interval: 200\nbase_lr: 0.01\nmomentum: 0.9\n\
         lr_policy: \"inv\"\ngamma: 0.001\npower: 0.75\ndisplay: 20\naverage_loss: 5\nmax_iter: {max_iter}\n\
         snapshot: 400\nsnapshot_prefix: \"snap/tiny\"\nrandom_seed: 3\n"
    );
    std::fs::write(d.join("solver.prototxt"), text).unwrap();
}

fn sigint(child: &Running) {
    let ok = Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[test]
fn training_serves_live_events_and_records_them() {
    let d = dir("train");
    write_solver(&d, 1_000_000);
    let (mut child, rx) = spawn(
        &d,
        &[
            "train",
            "--solver=solver.prototxt",
            "--dashboard=127.0.0.1:0",
        ],
    );
    let addr = wait_for(&rx, "Dashboard: http://")
        .trim_end_matches('/')
        .to_string();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");

    let (status, page) = get(&addr, "/");
    assert_eq!(status, 200);
    assert!(page.contains("id=\"chart-loss\"") && page.contains("/app.js"));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no outside assets"
    );
    assert_eq!(get(&addr, "/app.js").0, 200);

    let displays = read_displays(&addr, 3);
    let iters: Vec<i64> = displays
        .iter()
        .map(|v| v["iter"].as_i64().unwrap())
        .collect();
    assert_eq!(iters, vec![0, 20, 40]);
    for v in &displays {
        assert!(v["loss"].as_f64().unwrap().is_finite());
        assert!(v["lr"].as_f64().unwrap() > 0.0);
        assert!(v["data_wait_ms"].as_f64().unwrap() >= 0.0);
        let layers: Vec<&str> = v["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["name"].as_str().unwrap())
            .collect();
        assert_eq!(layers, vec!["data", "conv", "relu", "pool", "pred", "loss"]);
    }

    let (status, svg) = get(&addr, "/net.svg?rankdir=LR");
    assert_eq!(status, 200);
    assert!(svg.contains(r#"data-name="conv" data-type="Convolution""#));
    assert!(svg.contains(r#"data-shape="4 5 4 4""#), "conv's top shape");

    // Hostile requests: nothing outside the page's own names comes back.
    for path in [
        "/../net.prototxt",
        "/files/..%2fsolver.prototxt",
        "/files/%2e%2e/%2e%2e/etc/passwd",
    ] {
        let (status, body) = get(&addr, path);
        assert_eq!(status, 400, "{path}");
        assert!(!body.contains("DummyData") && !body.contains("root:"));
    }
    assert_eq!(
        get(&addr, "/files/solver.prototxt").0,
        404,
        "not a snapshot"
    );
    assert_eq!(get(&addr, "/net.prototxt").0, 404);
    assert_eq!(get(&addr, &format!("/{}", "a".repeat(5000))).0, 414);
    let huge = format!("GET / HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "p".repeat(64 * 1024));
    assert_eq!(raw(&addr, huge.as_bytes()).0, 431);
    assert_eq!(
        raw(&addr, b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc").0,
        405
    );

    // SIGINT stops training with a snapshot, which the record names.
    sigint(&child);
    assert!(child.0.wait().unwrap().success());
    let record = std::fs::read_to_string(d.join("snap/tiny_events.jsonl")).unwrap();
    let events: Vec<Value> = record
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["event"], "start");
    assert_eq!(events[0]["net"]["name"], "tiny");
    let last = events.last().unwrap();
    assert_eq!(last["event"], "snapshot");
    let files: Vec<&str> = last["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(files[0].starts_with("snap/tiny_iter_") && files[0].ends_with(".caffemodel"));
    let recorded: Vec<i64> = events
        .iter()
        .filter(|e| e["event"] == "display")
        .map(|e| e["iter"].as_i64().unwrap())
        .collect();
    assert_eq!(&recorded[..3], &[0, 20, 40]);
    assert!(recorded.windows(2).all(|w| w[1] == w[0] + 20));
}

#[test]
fn dashboard_dir_serves_a_finished_run_and_only_its_snapshots() {
    let d = dir("serve");
    write_solver(&d, 60);
    let (ok, log) = {
        let out = Command::new(env!("CARGO_BIN_EXE_caffe"))
            .args(["train", "--solver=solver.prototxt"])
            .current_dir(&d)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert!(ok, "{log}");
    assert!(log.contains("Recording events to snap/tiny_events.jsonl"));
    std::fs::write(d.join("snap/secret.txt"), "not for the web").unwrap();
    let (_child, rx) = spawn(&d, &["dashboard", "snap", "--dashboard=127.0.0.1:0"]);
    let addr = wait_for(&rx, " at http://")
        .trim_end_matches('/')
        .to_string();
    // The record is read in the background; wait for it to be served whole.
    let record = std::fs::read_to_string(d.join("snap/tiny_events.jsonl")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = get(&addr, "/history.jsonl");
        assert_eq!(status, 200);
        if body == record || Instant::now() > deadline {
            assert_eq!(body, record);
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, model) = raw(
        &addr,
        b"GET /files/tiny_iter_60.caffemodel HTTP/1.1\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert_eq!(
        model,
        std::fs::read(d.join("snap/tiny_iter_60.caffemodel")).unwrap()
    );
    assert_eq!(get(&addr, "/files/secret.txt").0, 404);
    assert_eq!(get(&addr, "/files/tiny_events.jsonl").0, 404);

    // caffe plot draws the recorded run: two charts, the loss line drawn.
    let out = d.join("plot.png");
    let status = Command::new(env!("CARGO_BIN_EXE_caffe"))
        .args([
            "plot",
            "snap/tiny_events.jsonl",
            out.to_str().unwrap(),
            "--y",
            "loss",
            "--y=lr",
        ])
        .current_dir(&d)
        .status()
        .unwrap();
    assert!(status.success());
    let png = Pixmap::decode_png(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!((png.width(), png.height()), (800, 600));
    let blue = png
        .pixels()
        .iter()
        .filter(|p| (p.red(), p.green(), p.blue()) == (31, 119, 180))
        .count();
    assert!(blue > 100, "{blue} pixels of the loss line");
}

fn draw_net(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_draw_net"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `width="W" height="H"` of an SVG document.
fn svg_size(svg: &str) -> (u32, u32) {
    let attr = |name: &str| -> u32 {
        let start = svg.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        svg[start..].split('"').next().unwrap().parse().unwrap()
    };
    (attr("width"), attr("height"))
}

#[test]
fn draw_net_writes_lenet_as_svg_and_png() {
    let d = dir("draw");
    let lenet = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/mnist/lenet_train_test.prototxt"
    );
    let svg_path = d.join("lenet.svg");
    let (ok, err) = draw_net(&[
        lenet,
        svg_path.to_str().unwrap(),
        "--phase",
        "TRAIN",
        "--display_lrm",
    ]);
    assert!(ok, "{err}");
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(svg.contains(r#"data-name="conv1" data-type="Convolution""#));
    assert!(svg.contains(">lr mult: 1, 2</text>"));
    assert!(
        !svg.contains(r#"data-name="accuracy""#),
        "accuracy is TEST only"
    );
    let (w, h) = svg_size(&svg);
    assert!(w > h, "LR draws the net across: {w}x{h}");

    let png_path = d.join("lenet.png");
    let (ok, err) = draw_net(&[
        lenet,
        png_path.to_str().unwrap(),
        "--rankdir=TB",
        "--phase=ALL",
    ]);
    assert!(ok, "{err}");
    let png = Pixmap::decode_png(&std::fs::read(&png_path).unwrap()).unwrap();
    let (ok, _) = draw_net(&[lenet, svg_path.to_str().unwrap(), "--rankdir", "TB"]);
    assert!(ok);
    let (w, h) = svg_size(&std::fs::read_to_string(&svg_path).unwrap());
    assert_eq!((png.width(), png.height()), (w, h));
    assert!(h > w, "TB draws the net down: {w}x{h}");
    // Convolution boxes are draw_net's red.
    let red = png
        .pixels()
        .iter()
        .filter(|p| (p.red(), p.green(), p.blue()) == (0xFF, 0x50, 0x50))
        .count();
    assert!(red > 500, "{red} red pixels");

    let (ok, err) = draw_net(&[lenet, "x.gif"]);
    assert!(!ok && err.contains(".svg or .png"), "{err}");
    let (ok, err) = draw_net(&[lenet, "x.svg", "--phase", "VAL"]);
    assert!(!ok && err.contains("TRAIN, TEST or ALL"), "{err}");
    let (ok, err) = draw_net(&["/no/such/net.prototxt", "x.svg"]);
    assert!(!ok && err.contains("/no/such/net.prototxt"), "{err}");
}
