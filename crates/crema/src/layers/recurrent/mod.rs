//! Recurrent layers: RNN and LSTM (Caffe's RecurrentLayer family, unrolled over
//! the time axis of their input) and LSTMUnit, the single LSTM step.
use super::LayerCtor;

pub mod lstm;
pub mod lstm_unit;
#[allow(clippy::module_inception)]
pub mod recurrent;
pub mod rnn;

#[cfg(test)]
mod tests;

/// Type names and constructors of this group's layers.
pub const REGISTRY: &[(&str, LayerCtor)] = &[
    ("LSTM", lstm::LSTMLayer::create),
    ("LSTMUnit", lstm_unit::LSTMUnitLayer::create),
    ("RNN", rnn::RNNLayer::create),
];
