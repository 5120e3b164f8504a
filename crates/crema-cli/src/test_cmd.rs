//! `caffe test`: score a trained model for `--iterations` batches, logging
//! every output per batch and their means, in Caffe's words.
use crema::proto::caffe::Phase;
use crema::proto::text::format_g;

use crate::flags::Flags;
use crate::netload::{load_net, stages_from_flag};

fn g(v: f32) -> String {
    format_g(f64::from(v), 6)
}

pub fn run(flags: &Flags) -> Result<(), String> {
    let model = flags.get("model");
    if model.is_empty() {
        return Err("Need a model definition to score.".into());
    }
    let weights = flags.get("weights");
    if weights.is_empty() {
        return Err("Need model weights to score.".into());
    }
    let iterations = flags.get_i64("iterations")?;
    if iterations <= 0 {
        return Err(format!("iterations must be positive, got {iterations}"));
    }
    let level = flags.get_i64("level")? as i32;
    let stages = stages_from_flag(flags.get("stage"));
    if !flags.get("gpu").is_empty() {
        log::warn!("This build of crema has no GPU backend; testing on the CPU.");
    }
    log::info!("Use CPU.");
    let err = |e: crema::Error| e.to_string();
    let mut net = load_net(model, Phase::TEST, level, &stages).map_err(err)?;
    net.copy_trained_layers_from_file(weights).map_err(err)?;
    log::info!("Running for {iterations} iterations.");

    let mut scores: Vec<f32> = Vec::new();
    let mut score_blob: Vec<usize> = Vec::new();
    let mut loss = 0.0f32;
    for i in 0..iterations {
        loss += net.forward().map_err(err)?;
        let mut idx = 0;
        for &blob_id in net.output_blob_indices() {
            let name = &net.blob_names()[blob_id];
            for &score in net.blobs()[blob_id].borrow().data() {
                if i == 0 {
                    scores.push(score);
                    score_blob.push(blob_id);
                } else {
                    scores[idx] += score;
                }
                idx += 1;
                log::info!("Batch {i}, {name} = {}", g(score));
            }
        }
    }
    loss /= iterations as f32;
    log::info!("Loss: {}", g(loss));
    for (&score, &blob_id) in scores.iter().zip(&score_blob) {
        let name = &net.blob_names()[blob_id];
        let weight = net.blob_loss_weights()[blob_id];
        let mean = score / iterations as f32;
        let suffix = if weight != 0.0 {
            format!(" (* {} = {} loss)", g(weight), g(weight * mean))
        } else {
            String::new()
        };
        log::info!("{name} = {}{suffix}", g(mean));
    }
    Ok(())
}
