//! Solvers: Caffe's Solver (building the nets, the training loop, testing,
//! snapshots) and its update rules, SGD, Nesterov, AdaGrad, RMSProp,
//! AdaDelta and Adam, one file each.
//!
//! `mod.rs` builds a solver from a SolverParameter as Caffe's Solver::Init
//! does; `solve.rs` is Solve/Step/Test; `update.rs` is ApplyUpdate
//! (clipping, iter_size normalization, regularization, the rule);
//! `lr_policy.rs` the rate schedules; `snapshot.rs` the `.caffemodel` /
//! `.solverstate` files.
use crema_proto::caffe::{NetParameter, NetState, Phase, SolverParameter};

use crate::blob::Blob;
use crate::error::{Error, Result};
use crate::layers::create_layer;
use crate::net::{LayerFactory, Net};

pub mod adadelta;
pub mod adagrad;
pub mod adam;
mod data_position;
pub mod hooks;
pub mod lr_policy;
pub mod nesterov;
pub mod rmsprop;
pub mod sgd;
mod snapshot;
mod solve;
mod update;

pub use data_position::DATA_POSITION_FIELD;
pub use hooks::{DisplayEvent, SolverHook, TestEvent};
pub use snapshot::{RNG_SEED_FIELD, RNG_STREAM_FIELD, RNG_WORD_POS_FIELD};

/// The update rule, from the solver's `type` (its legacy `solver_type` enum
/// is upgraded to the string when the file is read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SolverType {
    Sgd,
    Nesterov,
    AdaGrad,
    RmsProp,
    AdaDelta,
    Adam,
}

impl SolverType {
    pub const NAMES: &'static [&'static str] =
        &["SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam"];

    /// The rule named by a solver's `type` field.
    pub fn from_name(name: &str) -> Result<SolverType> {
        Ok(match name {
            "SGD" => SolverType::Sgd,
            "Nesterov" => SolverType::Nesterov,
            "AdaGrad" => SolverType::AdaGrad,
            "RMSProp" => SolverType::RmsProp,
            "AdaDelta" => SolverType::AdaDelta,
            "Adam" => SolverType::Adam,
            other => {
                return Err(Error::Other(format!(
                    "Unknown solver type: {other} (known types: {})",
                    SolverType::NAMES.join(", ")
                )))
            }
        })
    }

    /// History blobs per learnable parameter: AdaDelta and Adam keep two
    /// (Caffe appends the second set after the first).
    pub fn history_sets(self) -> usize {
        match self {
            SolverType::AdaDelta | SolverType::Adam => 2,
            _ => 1,
        }
    }
}

/// What a signal (or any caller) asks the solver to do between iterations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SolverAction {
    None,
    Stop,
    Snapshot,
}

/// Polled between iterations (and test batches) for a requested action.
pub type ActionFn = Box<dyn FnMut() -> SolverAction>;

/// A solver: the train net, the test nets, the update rule and its history.
pub struct Solver {
    param: SolverParameter,
    kind: SolverType,
    net: Net,
    test_nets: Vec<Net>,
    iter: i32,
    current_step: i32,
    /// One blob per learnable parameter (two sets for AdaDelta and Adam).
    history: Vec<Blob>,
    /// Scratch buffer sized for the largest parameter (no per-step allocation).
    scratch: Vec<f32>,
    losses: Vec<f32>,
    smoothed_loss: f32,
    iterations_last: i32,
    requested_early_exit: bool,
    action: Option<ActionFn>,
    /// Observers called by the loop, in the order they were added.
    hooks: Vec<Box<dyn SolverHook>>,
    /// The rate the last update used.
    last_rate: f32,
    /// Mean of each test net output at the last test, per test net.
    mean_scores: Vec<Vec<f32>>,
    /// False in a data-parallel replica other than the root, which trains
    /// but neither tests, logs progress nor writes snapshots.
    root: bool,
}

impl Solver {
    /// Builds the solver and its nets from `param`, as Caffe's Solver::Init.
    pub fn new(param: &SolverParameter) -> Result<Solver> {
        Solver::with_factory(param, &create_layer)
    }

    /// Like `new`, with the nets' layers made by `factory` (tests, custom layers).
    pub fn with_factory(param: &SolverParameter, factory: LayerFactory) -> Result<Solver> {
        log::info!(
            "Initializing solver from parameters: \n{}",
            crema_proto::text::print(param).trim_end_matches('\n')
        );
        let kind = SolverType::from_name(param.type_())?;
        check_param(param, kind)?;
        snapshot::check_write_permissions(param)?;
        if param.random_seed() >= 0 {
            crate::rng::set_random_seed(param.random_seed() as u64);
        }
        let net = init_train_net(param, factory)?;
        let test_nets = init_test_nets(param, factory)?;
        let mut solver = Solver {
            param: param.clone(),
            kind,
            net,
            mean_scores: vec![Vec::new(); test_nets.len()],
            test_nets,
            iter: 0,
            current_step: 0,
            history: Vec::new(),
            scratch: Vec::new(),
            losses: Vec::new(),
            smoothed_loss: 0.0,
            iterations_last: 0,
            requested_early_exit: false,
            action: None,
            hooks: Vec::new(),
            last_rate: 0.0,
            root: true,
        };
        for w in &param.weights {
            solver.load_weights(w)?;
        }
        solver.init_history();
        log::info!("Solver scaffolding done.");
        Ok(solver)
    }

    /// Zeroed history in Caffe's order: every learnable parameter's shape,
    /// repeated for the second set of AdaDelta/Adam.
    fn init_history(&mut self) {
        let shapes: Vec<Vec<usize>> = self
            .net
            .learnable_params()
            .iter()
            .map(|p| p.borrow().shape().to_vec())
            .collect();
        let largest = shapes
            .iter()
            .map(|s| s.iter().product::<usize>())
            .max()
            .unwrap_or(0);
        self.history.clear();
        for _ in 0..self.kind.history_sets() {
            self.history.extend(shapes.iter().map(|s| Blob::new(s)));
        }
        self.scratch = vec![0.0; largest];
    }

    /// Copies trained layers by name from each `,`-separated `.caffemodel`
    /// into the train net and every test net (Caffe's `weights` / `--weights`).
    pub fn load_weights(&mut self, model_list: &str) -> Result<()> {
        for name in model_list
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            log::info!("Finetuning from {name}");
            let trained = crema_proto::files::read_net_binary(name)?;
            self.net.copy_trained_layers_from(&trained)?;
            for t in &mut self.test_nets {
                t.copy_trained_layers_from(&trained)?;
            }
        }
        Ok(())
    }

    /// Sets the function polled for stop/snapshot requests (signal handlers).
    pub fn set_action_function(&mut self, f: ActionFn) {
        self.action = Some(f);
    }

    /// Makes this solver a non-root data-parallel replica (`false`) or the
    /// root / a lone solver (`true`, the default).
    pub fn set_root(&mut self, root: bool) {
        self.root = root;
    }
    pub fn is_root(&self) -> bool {
        self.root
    }

    /// Adds an observer of the loop (see `hooks`).
    pub fn add_hook(&mut self, hook: Box<dyn SolverHook>) {
        self.hooks.push(hook);
    }

    pub fn param(&self) -> &SolverParameter {
        &self.param
    }
    pub fn solver_type(&self) -> SolverType {
        self.kind
    }
    pub fn net(&self) -> &Net {
        &self.net
    }
    pub fn net_mut(&mut self) -> &mut Net {
        &mut self.net
    }
    pub fn test_nets(&self) -> &[Net] {
        &self.test_nets
    }
    /// The test nets, mutable (pycaffe runs them forward between steps).
    pub fn test_nets_mut(&mut self) -> &mut [Net] {
        &mut self.test_nets
    }
    /// Number of updates applied so far.
    pub fn iter(&self) -> i32 {
        self.iter
    }
    pub fn current_step(&self) -> i32 {
        self.current_step
    }
    /// The history blobs, in the order a `.solverstate` stores them.
    pub fn history(&self) -> &[Blob] {
        &self.history
    }
    pub fn smoothed_loss(&self) -> f32 {
        self.smoothed_loss
    }
    /// Mean outputs of test net `i` at its last test.
    pub fn mean_scores(&self, i: usize) -> &[f32] {
        &self.mean_scores[i]
    }
    /// Whether a Stop request ended the last solve early.
    pub fn requested_early_exit(&self) -> bool {
        self.requested_early_exit
    }
}

/// Caffe's constructor checks, as errors.
fn check_param(param: &SolverParameter, kind: SolverType) -> Result<()> {
    let bad = |m: String| Err(Error::Other(m));
    if param.average_loss() < 1 {
        return bad(format!(
            "average_loss should be positive, got {}",
            param.average_loss()
        ));
    }
    if param.iter_size() < 1 {
        return bad(format!(
            "iter_size should be positive, got {}",
            param.iter_size()
        ));
    }
    lr_policy::validate(param)?;
    if !matches!(param.regularization_type(), "L1" | "L2") {
        return bad(format!(
            "Unknown regularization type: {} (use L1 or L2)",
            param.regularization_type()
        ));
    }
    match kind {
        SolverType::AdaGrad if param.momentum() != 0.0 => {
            bad("Momentum cannot be used with AdaGrad.".into())
        }
        SolverType::RmsProp if param.momentum() != 0.0 => {
            bad("Momentum cannot be used with RMSProp.".into())
        }
        SolverType::RmsProp if !(0.0..1.0).contains(&param.rms_decay()) => bad(format!(
            "rms_decay should lie between 0 and 1, got {}",
            param.rms_decay()
        )),
        _ => Ok(()),
    }
}

/// NetState::MergeFrom: set fields override, stages append.
fn merge_state(into: &mut NetState, from: &NetState) {
    if from.has_phase() {
        into.set_phase(from.phase());
    }
    if from.has_level() {
        into.set_level(from.level());
    }
    into.stage.extend(from.stage.iter().cloned());
}

/// The train net from exactly one of net, net_param, train_net, train_net_param,
/// with the state: TRAIN, then the net's own state, then `train_state`.
fn init_train_net(param: &SolverParameter, factory: LayerFactory) -> Result<Net> {
    let sources = [
        param.has_net(),
        param.net_param.is_some(),
        param.has_train_net(),
        param.train_net_param.is_some(),
    ];
    let count = sources.iter().filter(|&&s| s).count();
    let fields = "net, net_param, train_net, train_net_param";
    if count == 0 {
        return Err(Error::Other(format!(
            "SolverParameter must specify a train net using one of these fields: {fields}"
        )));
    }
    if count > 1 {
        return Err(Error::Other(format!(
            "SolverParameter must not contain more than one of these fields specifying a train_net: {fields}"
        )));
    }
    let mut net_param: NetParameter = if let Some(p) = param.train_net_param.as_ref() {
        log::info!("Creating training net specified in train_net_param.");
        p.clone()
    } else if param.has_train_net() {
        log::info!(
            "Creating training net from train_net file: {}",
            param.train_net()
        );
        crema_proto::files::read_net_text(param.train_net())?
    } else if let Some(p) = param.net_param.as_ref() {
        log::info!("Creating training net specified in net_param.");
        p.clone()
    } else {
        log::info!("Creating training net from net file: {}", param.net());
        crema_proto::files::read_net_text(param.net())?
    };
    let mut state = NetState::new();
    state.set_phase(Phase::TRAIN);
    merge_state(&mut state, net_param.state.get_or_default());
    merge_state(&mut state, param.train_state.get_or_default());
    net_param.state = Some(state).into();
    Net::from_param_with(&net_param, factory)
}

/// The test nets: test_net_param entries, then test_net files, then the
/// generic net (net / net_param) once per remaining test_iter; each in TEST
/// with its own state, then its `test_state`.
fn init_test_nets(param: &SolverParameter, factory: LayerFactory) -> Result<Vec<Net>> {
    let has_generic = param.has_net() || param.net_param.is_some();
    if param.has_net() && param.net_param.is_some() {
        return Err(Error::Other(
            "Both net_param and net_file may not be specified.".into(),
        ));
    }
    let num_specific = param.test_net_param.len() + param.test_net.len();
    let num_iters = param.test_iter.len();
    if (has_generic && num_iters < num_specific) || (!has_generic && num_iters != num_specific) {
        return Err(Error::Other(format!(
            "test_iter must be specified for each test network ({num_specific} test nets, {num_iters} test_iter)"
        )));
    }
    let mut sources: Vec<(String, NetParameter)> = Vec::new();
    for p in &param.test_net_param {
        sources.push(("test_net_param".into(), p.clone()));
    }
    for f in &param.test_net {
        sources.push((
            format!("test_net file: {f}"),
            crema_proto::files::read_net_text(f)?,
        ));
    }
    let remaining = num_iters - num_specific;
    if let Some(p) = param.net_param.as_ref() {
        sources.extend((0..remaining).map(|_| ("net_param".to_string(), p.clone())));
    }
    if param.has_net() && remaining > 0 {
        let p = crema_proto::files::read_net_text(param.net())?;
        sources.extend((0..remaining).map(|_| (format!("net file: {}", param.net()), p.clone())));
    }
    if !param.test_state.is_empty() && param.test_state.len() != sources.len() {
        return Err(Error::Other(format!(
            "test_state must be unspecified or specified once per test net ({} test nets, {} test_state)",
            sources.len(),
            param.test_state.len()
        )));
    }
    if !sources.is_empty() && param.test_interval() <= 0 {
        return Err(Error::Other(format!(
            "test_interval must be positive when there are test nets, got {}",
            param.test_interval()
        )));
    }
    for (i, &n) in param.test_iter.iter().enumerate() {
        if n < 0 {
            return Err(Error::Other(format!("test_iter {i} is negative: {n}")));
        }
    }
    let mut nets = Vec::with_capacity(sources.len());
    for (i, (source, mut net_param)) in sources.into_iter().enumerate() {
        let mut state = NetState::new();
        state.set_phase(Phase::TEST);
        merge_state(&mut state, net_param.state.get_or_default());
        if let Some(s) = param.test_state.get(i) {
            merge_state(&mut state, s);
        }
        net_param.state = Some(state).into();
        log::info!("Creating test net (#{i}) specified by {source}");
        let mut net = Net::from_param_with(&net_param, factory)?;
        net.set_debug_info(param.debug_info());
        nets.push(net);
    }
    Ok(nets)
}
