//! Any input to the prototxt parser (as a net and as a solver) returns Ok or a
//! located error; what parses prints, re-parses to the same message, and
//! survives the upgrade chain. Findings are panics, OOMs and timeouts.
#![no_main]
use crema_proto::caffe::{NetParameter, SolverParameter};
use crema_proto::{text, upgrade};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else { return };
    if let Ok(mut net) = text::parse::<NetParameter>(src, "fuzz.prototxt") {
        let printed = text::print(&net);
        let again: NetParameter = text::parse(&printed, "printed.prototxt").expect("printed text must parse");
        assert_eq!(again, net, "print/parse must round-trip");
        let _ = upgrade::upgrade_net(&mut net, "fuzz.prototxt");
    }
    if let Ok(mut solver) = text::parse::<SolverParameter>(src, "fuzz_solver.prototxt") {
        let printed = text::print(&solver);
        let again: SolverParameter = text::parse(&printed, "printed.prototxt").expect("printed text must parse");
        assert_eq!(again, solver, "print/parse must round-trip");
        let _ = upgrade::upgrade_solver(&mut solver, "fuzz_solver.prototxt");
    }
});
