//! Building a net from `-model`, `-phase`, `-level` and `-stage` as Caffe's tools do.
use crema::net::Net;
use crema::proto::caffe::{NetParameter, Phase};
use crema::proto::files;

/// Parses `-phase` (TRAIN/TEST); empty means `default`.
pub fn phase_from_flag(flag: &str, default: Phase) -> Result<Phase, String> {
    match flag {
        "" => Ok(default),
        "TRAIN" => Ok(Phase::TRAIN),
        "TEST" => Ok(Phase::TEST),
        other => Err(format!(
            "phase must be \"TRAIN\" or \"TEST\", got \"{other}\""
        )),
    }
}

/// `-stage a,b` as a list.
pub fn stages_from_flag(flag: &str) -> Vec<String> {
    flag.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Reads and upgrades a net prototxt and sets its state, as Caffe's
/// `Net(param_file, phase, level, stages)` does.
pub fn load_param(
    model: &str,
    phase: Phase,
    level: i32,
    stages: &[String],
) -> crema::Result<NetParameter> {
    let mut param = files::read_net_text(model)?;
    let state = param.state.mut_or_insert_default();
    state.set_phase(phase);
    state.set_level(level);
    state.stage.extend(stages.iter().cloned());
    Ok(param)
}

/// Builds the net of `model` in `phase`.
pub fn load_net(model: &str, phase: Phase, level: i32, stages: &[String]) -> crema::Result<Net> {
    Net::from_param(&load_param(model, phase, level, stages)?)
}

/// What a net the command only trains or times as whole passes can skip
/// (nobody reads its blobs between layers): its activation diffs share
/// memory (`Net::share_activation_diffs`; not with Python layers, whose
/// numpy views of blob diffs must stay valid), and in-place ReLUs run inside
/// the convolutions before them (`Net::fuse_relus`).
pub fn optimize_for_whole_passes(net: &mut Net) {
    if !net.layer_params().iter().any(|p| p.type_() == "Python") {
        net.share_activation_diffs(true);
    }
    // Nothing here stops a forward between a convolution and its ReLU.
    net.fuse_relus(true);
}
