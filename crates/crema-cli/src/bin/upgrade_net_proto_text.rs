//! `upgrade_net_proto_text IN OUT`: rewrites a V0/V1 (or otherwise outdated)
//! net prototxt in the current format, as Caffe's tool of the same name.
use std::process::ExitCode;

use crema_cli::upgrade_tool::UpgradeTool;
use crema_proto::{files, upgrade};

fn main() -> ExitCode {
    UpgradeTool {
        usage: "Usage: upgrade_net_proto_text v0_net_proto_file_in net_proto_file_out",
        parse_failure: "Failed to parse input text file as NetParameter",
        read: |p| files::read_net_text_as_is(p),
        needs_upgrade: upgrade::needs_upgrade,
        upgrade: upgrade::upgrade_net,
        upgrade_failure: "Encountered error(s) while upgrading prototxt",
        write: |p, m| files::write_net_text(p, m),
        wrote: "Wrote upgraded NetParameter text proto to",
        wrote_level: log::Level::Info,
    }
    .main()
}
