//! `upgrade_solver_proto_text IN OUT`: rewrites a solver prototxt that uses
//! the deprecated `solver_type` enum with the `type` string, as Caffe's tool.
//! Exit status as Caffe's: 1 for usage or upgrade errors, 2 when IN cannot be
//! read as a SolverParameter.
use std::process::ExitCode;

use crema_proto::{files, upgrade};

/// The error and every cause under it, "a: b: c" (a cause the message
/// already quotes is not repeated).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let c_text = c.to_string();
        if !s.contains(&c_text) {
            s.push_str(&format!(": {c_text}"));
        }
        cur = c.source();
    }
    s
}

fn main() -> ExitCode {
    crema::logging::init();
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        log::error!(
            "Usage: upgrade_solver_proto_text old_solver_proto_file_in solver_proto_file_out"
        );
        return ExitCode::from(1);
    }
    let (input, output) = (&args[1], &args[2]);
    let mut solver = match files::read_solver_text_as_is(input) {
        Ok(n) => n,
        Err(e) => {
            log::error!("Failed to parse input text file as SolverParameter: {input}");
            log::error!("{}", chain(&e));
            return ExitCode::from(2);
        }
    };
    if upgrade::solver_needs_upgrade(&solver) {
        if let Err(e) = upgrade::upgrade_solver(&mut solver, input) {
            log::error!(
                "Encountered error(s) while upgrading prototxt: {}",
                chain(&e)
            );
            return ExitCode::from(1);
        }
    } else {
        log::error!("File already in latest proto format: {input}");
    }
    if let Err(e) = files::write_solver_text(output, &solver) {
        log::error!("{}", chain(&e));
        return ExitCode::from(1);
    }
    log::info!("Wrote upgraded SolverParameter text proto to {output}");
    ExitCode::SUCCESS
}
