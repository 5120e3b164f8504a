//! `upgrade_net_proto_text IN OUT`: rewrites a V0/V1 (or otherwise outdated)
//! net prototxt in the current format, as Caffe's tool of the same name.
//! Exit status as Caffe's: 1 for usage or upgrade errors, 2 when IN cannot be
//! read as a NetParameter.
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
        log::error!("Usage: upgrade_net_proto_text v0_net_proto_file_in net_proto_file_out");
        return ExitCode::from(1);
    }
    let (input, output) = (&args[1], &args[2]);
    let mut net = match files::read_net_text_as_is(input) {
        Ok(n) => n,
        Err(e) => {
            log::error!("Failed to parse input text file as NetParameter: {input}");
            log::error!("{}", chain(&e));
            return ExitCode::from(2);
        }
    };
    if upgrade::needs_upgrade(&net) {
        if let Err(e) = upgrade::upgrade_net(&mut net, input) {
            log::error!(
                "Encountered error(s) while upgrading prototxt: {}",
                chain(&e)
            );
            return ExitCode::from(1);
        }
    } else {
        log::error!("File already in latest proto format: {input}");
    }
    if let Err(e) = files::write_net_text(output, &net) {
        log::error!("{}", chain(&e));
        return ExitCode::from(1);
    }
    log::info!("Wrote upgraded NetParameter text proto to {output}");
    ExitCode::SUCCESS
}
