//! `upgrade_solver_proto_text IN OUT`: rewrites a solver prototxt that uses
//! the legacy `solver_type` enum with today's `type` string, as Caffe's tool.
use std::process::ExitCode;

use crema_cli::upgrade_tool::UpgradeTool;
use crema_proto::{files, upgrade};

fn main() -> ExitCode {
    UpgradeTool {
        usage: "Usage: upgrade_solver_proto_text old_solver_proto_file_in solver_proto_file_out",
        parse_failure: "Failed to parse input text file as SolverParameter",
        read: |p| files::read_solver_text_as_is(p),
        needs_upgrade: upgrade::solver_needs_upgrade,
        upgrade: upgrade::upgrade_solver,
        upgrade_failure: "Encountered error(s) while upgrading prototxt",
        write: |p, m| files::write_solver_text(p, m),
        wrote: "Wrote upgraded SolverParameter text proto to",
        wrote_level: log::Level::Info,
    }
    .main()
}
