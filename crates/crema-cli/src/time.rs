//! `caffe time`: per-layer forward and backward timings, in Caffe's words.
use std::time::Instant;

use crema::proto::caffe::Phase;
use crema::proto::text::format_g;

use crate::flags::Flags;
use crate::netload::{load_net, optimize_for_whole_passes, phase_from_flag, stages_from_flag};

/// A number as C++ iostream prints a float by default (`%g`, 6 digits).
fn g(v: f64) -> String {
    format_g(v, 6)
}

pub fn run(flags: &Flags) -> Result<(), String> {
    let model = flags.get("model");
    if model.is_empty() {
        return Err("Need a model definition to time.".into());
    }
    let iterations = flags.get_i64("iterations")?;
    if iterations <= 0 {
        return Err(format!("iterations must be positive, got {iterations}"));
    }
    let phase = phase_from_flag(flags.get("phase"), Phase::TRAIN)?;
    let level = flags.get_i64("level")? as i32;
    let stages = stages_from_flag(flags.get("stage"));
    if !flags.get("gpu").is_empty() {
        log::warn!("This build has no GPU backend; timing on the CPU.");
    }
    log::info!("Use CPU.");
    let mut net = load_net(model, phase, level, &stages).map_err(|e| e.to_string())?;
    optimize_for_whole_passes(&mut net);
    let err = |e: crema::Error| e.to_string();

    // A first pass allocates everything and reports the loss, as Caffe's does.
    log::info!("Performing Forward");
    let initial_loss = net.forward().map_err(err)?;
    log::info!("Initial loss: {}", g(initial_loss as f64));
    log::info!("Performing Backward");
    net.backward().map_err(err)?;

    let n = net.layers().len();
    let names: Vec<String> = net.layer_names().to_vec();
    let mut fwd = vec![0f64; n];
    let mut bwd = vec![0f64; n];
    let (mut fwd_total, mut bwd_total) = (0f64, 0f64);
    log::info!("*** Benchmark begins ***");
    log::info!("Testing for {iterations} iterations.");
    let total = Instant::now();
    for j in 0..iterations {
        let iter = Instant::now();
        let t = Instant::now();
        for (i, acc) in fwd.iter_mut().enumerate() {
            let l = Instant::now();
            net.forward_from_to(i, i).map_err(err)?;
            *acc += l.elapsed().as_secs_f64();
        }
        fwd_total += t.elapsed().as_secs_f64();
        let t = Instant::now();
        for i in (0..n).rev() {
            let l = Instant::now();
            net.backward_from_to(i, i).map_err(err)?;
            bwd[i] += l.elapsed().as_secs_f64();
        }
        bwd_total += t.elapsed().as_secs_f64();
        log::info!(
            "Iteration: {} forward-backward time: {} ms.",
            j + 1,
            g(iter.elapsed().as_secs_f64() * 1e3)
        );
    }
    let total = total.elapsed().as_secs_f64();
    let per = |s: f64| g(s * 1e3 / iterations as f64);
    log::info!("Average time per layer: ");
    for i in 0..n {
        log::info!("{:>10}\tforward: {} ms.", names[i], per(fwd[i]));
        log::info!("{:>10}\tbackward: {} ms.", names[i], per(bwd[i]));
    }
    log::info!("Average Forward pass: {} ms.", per(fwd_total));
    log::info!("Average Backward pass: {} ms.", per(bwd_total));
    log::info!("Average Forward-Backward: {} ms.", per(total));
    log::info!("Total Time: {} ms.", g(total * 1e3));
    log::info!("*** Benchmark ends ***");
    Ok(())
}
