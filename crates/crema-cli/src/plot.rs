//! `caffe plot LOG_OR_EVENTS OUT.svg|OUT.png [--y loss|accuracy|lr|NAME ...]`:
//! the dashboard's charts drawn to a file with plotters, from a training
//! log (Caffe's glog lines) or from an `_events.jsonl` record.
use std::path::Path;

use plotters::prelude::*;
use serde_json::Value;

/// One named line of a chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Everything a log or record says over iterations.
#[derive(Debug, Default, PartialEq)]
pub struct History {
    /// The loss of the display iteration itself (events only).
    pub raw_loss: Vec<(f64, f64)>,
    /// The average_loss-smoothed loss Caffe logs.
    pub smoothed_loss: Vec<(f64, f64)>,
    pub lr: Vec<(f64, f64)>,
    /// (iteration, output name, value) of the train net at display steps.
    pub train_outputs: Vec<(f64, String, f64)>,
    /// (iteration, test net, output name, value).
    pub test_outputs: Vec<(f64, usize, String, f64)>,
}

impl History {
    /// Reads an event record (first line a JSON object) or a log.
    pub fn read(path: &Path) -> Result<History, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        if first.trim_start().starts_with('{') {
            History::from_events(&text).map_err(|e| format!("{}: {e}", path.display()))
        } else {
            Ok(History::from_log(&text))
        }
    }

    pub fn from_events(text: &str) -> Result<History, String> {
        let mut h = History::default();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(line)
                .map_err(|e| format!("line {}: not a JSON event: {e}", n + 1))?;
            let iter = v["iter"].as_f64().unwrap_or(0.0);
            let outputs = || {
                v["outputs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|o| Some((o["name"].as_str()?.to_string(), o["value"].as_f64()?)))
            };
            match v["event"].as_str() {
                Some("display") => {
                    if let Some(l) = v["loss"].as_f64() {
                        h.raw_loss.push((iter, l));
                    }
                    if let Some(l) = v["smoothed_loss"].as_f64() {
                        h.smoothed_loss.push((iter, l));
                    }
                    if let Some(lr) = v["lr"].as_f64() {
                        h.lr.push((iter, lr));
                    }
                    h.train_outputs
                        .extend(outputs().map(|(name, val)| (iter, name, val)));
                }
                Some("test") => {
                    let net = v["net"].as_u64().unwrap_or(0) as usize;
                    h.test_outputs
                        .extend(outputs().map(|(name, val)| (iter, net, name, val)));
                }
                _ => {}
            }
        }
        Ok(h)
    }

    /// Reads Caffe's log lines (with or without the glog prefix); other
    /// lines are skipped.
    pub fn from_log(text: &str) -> History {
        let mut h = History::default();
        let (mut iter, mut test_iter, mut test_net) = (0.0, 0.0, 0usize);
        for line in text.lines() {
            let msg = line.split_once("] ").map_or(line, |(_, m)| m).trim();
            if let Some(rest) = msg.strip_prefix("Iteration ") {
                let (num, tail) = rest.split_at(
                    rest.find(|c: char| !c.is_ascii_digit())
                        .unwrap_or(rest.len()),
                );
                let Ok(n) = num.parse::<f64>() else { continue };
                if let Some(net) = tail.strip_prefix(", Testing net (#") {
                    test_iter = n;
                    test_net = net.trim_end_matches(')').parse().unwrap_or(0);
                } else if let Some(lr) = tail.strip_prefix(", lr = ") {
                    if let Ok(lr) = lr.trim().parse() {
                        h.lr.push((n, lr));
                    }
                } else if let Some((_, loss)) = tail.rsplit_once("loss = ") {
                    iter = n;
                    if let Ok(l) = loss.trim().parse() {
                        h.smoothed_loss.push((n, l));
                    }
                }
            } else if let Some((which, name, value)) = output_line(msg) {
                if which == "Train" {
                    h.train_outputs.push((iter, name, value));
                } else {
                    h.test_outputs.push((test_iter, test_net, name, value));
                }
            }
        }
        h
    }

    /// The series a `--y` choice names.
    pub fn series(&self, y: &str) -> Vec<Series> {
        let mut out = Vec::new();
        let mut push = |name: String, points: Vec<(f64, f64)>| {
            if !points.is_empty() {
                out.push(Series { name, points });
            }
        };
        let matches = |name: &str| match y {
            "loss" => name.contains("loss"),
            "accuracy" => name.contains("acc"),
            other => name == other,
        };
        if y == "lr" {
            push("learning rate".into(), self.lr.clone());
            return out;
        }
        if y == "loss" {
            push("train loss".into(), self.raw_loss.clone());
            push("train loss (smoothed)".into(), self.smoothed_loss.clone());
        }
        let mut names: Vec<&str> = Vec::new();
        for (_, n, _) in &self.train_outputs {
            if matches(n) && !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
        for n in names {
            // The log's raw train loss is the train net's loss output.
            if y == "loss" && !self.raw_loss.is_empty() {
                break;
            }
            let pts = self
                .train_outputs
                .iter()
                .filter(|(_, m, _)| m == n)
                .map(|&(i, _, v)| (i, v))
                .collect();
            push(format!("train {n}"), pts);
        }
        let mut keys: Vec<(usize, &str)> = Vec::new();
        for (_, net, n, _) in &self.test_outputs {
            if matches(n) && !keys.contains(&(*net, n.as_str())) {
                keys.push((*net, n));
            }
        }
        for (net, n) in keys {
            let pts = self
                .test_outputs
                .iter()
                .filter(|(_, k, m, _)| *k == net && m == n)
                .map(|&(i, _, _, v)| (i, v))
                .collect();
            push(format!("test #{net} {n}"), pts);
        }
        out
    }
}

/// `Train net output #0: loss = 2.3 (* 1 = 2.3 loss)` as (Train, loss, 2.3).
fn output_line(msg: &str) -> Option<(&'static str, String, f64)> {
    let (which, rest) = if let Some(r) = msg.strip_prefix("Train net output #") {
        ("Train", r)
    } else {
        ("Test", msg.strip_prefix("Test net output #")?)
    };
    let (_, rest) = rest.split_once(": ")?;
    let (name, value) = rest.split_once(" = ")?;
    let value = value.split_whitespace().next()?.parse().ok()?;
    Some((which, name.to_string(), value))
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

pub const CHART_W: u32 = 800;
pub const CHART_H: u32 = 300;

/// One chart per `ys` entry, stacked, as an SVG document.
pub fn render(h: &History, ys: &[String]) -> Result<String, String> {
    let charts: Vec<(String, Vec<Series>)> = ys.iter().map(|y| (y.clone(), h.series(y))).collect();
    if let Some((y, _)) = charts.iter().find(|(_, s)| s.is_empty()) {
        return Err(format!(
            "nothing to plot for --y {y}: the input has no such values"
        ));
    }
    let mut buf = String::new();
    {
        let err = |e: DrawingAreaErrorKind<_>| format!("plot: {e}");
        let root = SVGBackend::with_string(&mut buf, (CHART_W, CHART_H * charts.len() as u32))
            .into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        for (area, (y, series)) in root.split_evenly((charts.len(), 1)).iter().zip(&charts) {
            let pts = series.iter().flat_map(|s| s.points.iter());
            let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
            for &(x, v) in pts.filter(|p| p.1.is_finite()) {
                (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(v), y1.max(v));
            }
            if x0 > x1 {
                (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
            }
            let pad = ((y1 - y0) * 0.05).max(y1.abs() * 1e-3).max(1e-9);
            let xpad = if x1 > x0 { 0.0 } else { 1.0 };
            let mut chart = ChartBuilder::on(area)
                .caption(y, ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(60)
                .build_cartesian_2d(x0 - xpad..x1 + xpad, y0 - pad..y1 + pad)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc("iterations")
                .y_desc(y.as_str())
                .draw()
                .map_err(err)?;
            for (i, s) in series.iter().enumerate() {
                let color = COLORS[i % COLORS.len()];
                let line = s.points.iter().copied().filter(|p| p.1.is_finite());
                chart
                    .draw_series(LineSeries::new(line, color.stroke_width(2)))
                    .map_err(err)?
                    .label(s.name.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(buf)
}

/// The `plot` action: `args` are what follows `caffe plot`.
pub fn run(args: &[String]) -> Result<(), String> {
    let usage =
        "usage: caffe plot LOG_OR_EVENTS OUT.svg|OUT.png [--y loss|accuracy|lr|OUTPUT_NAME ...]";
    let mut files = Vec::new();
    let mut ys = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if let Some(v) = a.strip_prefix("--y=").or_else(|| a.strip_prefix("-y=")) {
            ys.push(v.to_string());
        } else if a == "--y" || a == "-y" {
            let v = args
                .get(i)
                .ok_or_else(|| format!("--y needs a value\n{usage}"))?;
            ys.push(v.clone());
            i += 1;
        } else if a.starts_with('-') {
            return Err(format!("unknown flag '{a}'\n{usage}"));
        } else {
            files.push(a.clone());
        }
    }
    let [input, out] = files.as_slice() else {
        return Err(usage.to_string());
    };
    let h = History::read(Path::new(input))?;
    if ys.is_empty() {
        ys.push("loss".into());
        if !h.series("accuracy").is_empty() {
            ys.push("accuracy".into());
        }
        if !h.lr.is_empty() {
            ys.push("lr".into());
        }
    }
    let svg = render(&h, &ys)?;
    crate::raster::write_image(&svg, Path::new(out))?;
    log::info!("Plotted {} to {out}", ys.join(", "));
    Ok(())
}

#[cfg(test)]
mod tests;
