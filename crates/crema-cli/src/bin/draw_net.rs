//! `draw_net NET OUT.svg|OUT.png [--rankdir LR|TB|BT|RL] [--phase TRAIN|TEST|ALL] [--display_lrm]`:
//! Caffe's python/draw_net.py without Python or graphviz.
use std::path::Path;

use crema::proto::caffe::Phase;
use crema_cli::graph::layout::RankDir;
use crema_cli::graph::{from_net_param, svg, LabelOptions};

const USAGE: &str = "usage: draw_net NET_PROTOTXT OUTPUT_IMAGE.svg|.png [--rankdir LR|TB|BT|RL] [--phase TRAIN|TEST|ALL] [--display_lrm]";

struct Args {
    net: String,
    out: String,
    rankdir: RankDir,
    phase: Option<Phase>,
    display_lrm: bool,
}

/// argparse's spellings: `--rankdir TB` or `--rankdir=TB`.
fn parse(args: &[String]) -> Result<Args, String> {
    let mut files = Vec::new();
    let (mut rankdir, mut phase, mut display_lrm) = ("LR".to_string(), "ALL".to_string(), false);
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if a.starts_with("--") => (n, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut value = |flag: &str| -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => {
                    i += 1;
                    args.get(i - 1)
                        .cloned()
                        .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
                }
            }
        };
        match name {
            "--rankdir" => rankdir = value("--rankdir")?,
            "--phase" => phase = value("--phase")?,
            "--display_lrm" => display_lrm = true,
            "-h" | "--help" => return Err(USAGE.into()),
            f if f.starts_with('-') => return Err(format!("unknown flag '{f}'\n{USAGE}")),
            _ => files.push(a.clone()),
        }
    }
    let [net, out] = files.as_slice() else {
        return Err(USAGE.into());
    };
    let phase = match phase.as_str() {
        "TRAIN" => Some(Phase::TRAIN),
        "TEST" => Some(Phase::TEST),
        "ALL" => None,
        other => {
            return Err(format!(
                "--phase must be TRAIN, TEST or ALL, got \"{other}\""
            ))
        }
    };
    Ok(Args {
        net: net.clone(),
        out: out.clone(),
        rankdir: RankDir::parse(&rankdir)?,
        phase,
        display_lrm,
    })
}

fn run(args: &[String]) -> Result<(), String> {
    let a = parse(args)?;
    let param = crema::proto::files::read_net_text(&a.net).map_err(|e| e.to_string())?;
    let opts = LabelOptions {
        one_line: matches!(a.rankdir, RankDir::TB | RankDir::BT),
        display_lrm: a.display_lrm,
    };
    let graph = from_net_param(&param, a.phase, opts);
    println!("Drawing net to {}", a.out);
    crema_cli::raster::write_image(&svg::render(&graph, a.rankdir), Path::new(&a.out))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("draw_net: {e}");
        std::process::exit(1);
    }
}
