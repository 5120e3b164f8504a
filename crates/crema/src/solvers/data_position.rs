//! Where each data layer is in its dataset, kept in crema's solverstate so a
//! resume reads on from the same record with the same crops and mirrors.
//! Caffe's SolverState has no such field: this one is an extension numbered
//! from 1000 (like the generator state), which Caffe's reader skips. One
//! entry per data layer: `<net index>\t<layer name>\t<records read>`, net 0
//! being the train net and 1.. the test nets.
use std::path::Path;

use crema_proto::caffe::SolverState;
use protobuf::UnknownValueRef;

use crate::error::{Error, Result};
use crate::net::Net;

/// Field number of the data-position entries.
pub const DATA_POSITION_FIELD: u32 = 1003;

/// Appends the position of every data layer of `nets` to `state`.
pub(super) fn save(state: &mut SolverState, nets: &[&Net]) {
    let unknown = state.special_fields.mut_unknown_fields();
    for (n, net) in nets.iter().enumerate() {
        for (layer, name) in net.layers().iter().zip(net.layer_names()) {
            if let Some(records) = layer.data_position() {
                let entry = format!("{n}\t{name}\t{records}");
                unknown.add_length_delimited(DATA_POSITION_FIELD, entry.into_bytes());
            }
        }
    }
}

/// Moves each data layer named in `state` to its saved position. A file
/// without entries (one Caffe wrote) leaves the layers at their start, and
/// the log says so, as the data then restarts from the first record.
pub(super) fn restore(state: &SolverState, nets: &mut [&mut Net], path: &Path) -> Result<()> {
    let bad = |what: String| {
        Error::Other(format!(
            "{}: crema's data position (field {DATA_POSITION_FIELD}) is malformed: {what}",
            path.display()
        ))
    };
    let mut restored = 0;
    for value in state
        .special_fields
        .unknown_fields()
        .iter()
        .filter(|(f, _)| *f == DATA_POSITION_FIELD)
        .map(|(_, v)| v)
    {
        let UnknownValueRef::LengthDelimited(bytes) = value else {
            return Err(bad("not a string".into()));
        };
        let entry = std::str::from_utf8(bytes).map_err(|e| bad(e.to_string()))?;
        let mut parts = entry.split('\t');
        let (Some(n), Some(name), Some(records), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad(format!("{entry:?}")));
        };
        let n: usize = n.parse().map_err(|_| bad(format!("{entry:?}")))?;
        let records: u64 = records.parse().map_err(|_| bad(format!("{entry:?}")))?;
        let Some(net) = nets.get_mut(n) else {
            log::warn!("{}: no net #{n} for the data position of layer {name}", path.display());
            continue;
        };
        let Some(i) = net.layer_index(name) else {
            log::warn!("{}: net #{n} has no layer {name}; its data position is not restored", path.display());
            continue;
        };
        net.layers_mut()[i].seek_data(records)?;
        log::info!("Restored data layer {name} (net #{n}) to record {records}");
        restored += 1;
    }
    if restored == 0 && nets.iter().any(|net| net.layers().iter().any(|l| l.data_position().is_some())) {
        log::info!(
            "{}: no data positions stored (a Caffe solverstate); data layers start from their first record, as in Caffe",
            path.display()
        );
    }
    Ok(())
}
