//! `upgrade_net_proto_binary IN OUT`: rewrites a V0/V1 caffemodel in the
//! current format (weights kept), as Caffe's tool of the same name.
use std::process::ExitCode;

use crema_cli::upgrade_tool::UpgradeTool;
use crema_proto::{files, upgrade};

fn main() -> ExitCode {
    UpgradeTool {
        usage: "Usage: upgrade_net_proto_binary v0_net_proto_file_in net_proto_file_out",
        parse_failure: "Failed to parse input binary file as NetParameter",
        read: |p| files::read_net_binary_as_is(p),
        needs_upgrade: upgrade::needs_upgrade,
        upgrade: upgrade::upgrade_net,
        upgrade_failure: "Encountered error(s) while upgrading binary proto",
        write: |p, m| files::write_net_binary(p, m),
        wrote: "Wrote upgraded NetParameter binary proto to",
        wrote_level: log::Level::Error,
    }
    .main()
}
