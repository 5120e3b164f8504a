//! The shared driver of `upgrade_net_proto_text`, `upgrade_net_proto_binary`
//! and `upgrade_solver_proto_text`: read IN as-is, upgrade it when needed,
//! write OUT. Exit status as Caffe's tools: 1 for usage or upgrade errors, 2
//! when IN cannot be read as the expected message.
use std::process::ExitCode;

use crema_proto::Result;

/// One upgrade tool: how it reads, upgrades and writes its message, and the
/// words of its log lines (Caffe's).
pub struct UpgradeTool<M> {
    pub usage: &'static str,
    /// "Failed to parse input text file as NetParameter"
    pub parse_failure: &'static str,
    pub read: fn(&str) -> Result<M>,
    pub needs_upgrade: fn(&M) -> bool,
    pub upgrade: fn(&mut M, &str) -> Result<bool>,
    /// "Encountered error(s) while upgrading prototxt"
    pub upgrade_failure: &'static str,
    pub write: fn(&str, &M) -> Result<()>,
    /// "Wrote upgraded NetParameter text proto to"
    pub wrote: &'static str,
    /// Caffe logs the final line at ERROR in the binary tool; kept for identical logs.
    pub wrote_level: log::Level,
}

impl<M> UpgradeTool<M> {
    /// Runs the tool on the process's arguments.
    pub fn main(&self) -> ExitCode {
        crema::logging::init();
        let args: Vec<String> = std::env::args().collect();
        if args.len() != 3 {
            log::error!("{}", self.usage);
            return ExitCode::from(1);
        }
        let (input, output) = (&args[1], &args[2]);
        let mut msg = match (self.read)(input) {
            Ok(m) => m,
            Err(e) => {
                log::error!("{}: {input}", self.parse_failure);
                log::error!("{}", error_chain(&e));
                return ExitCode::from(2);
            }
        };
        if (self.needs_upgrade)(&msg) {
            if let Err(e) = (self.upgrade)(&mut msg, input) {
                log::error!("{}: {}", self.upgrade_failure, error_chain(&e));
                return ExitCode::from(1);
            }
        } else {
            log::error!("File already in latest proto format: {input}");
        }
        if let Err(e) = (self.write)(output, &msg) {
            log::error!("{}", error_chain(&e));
            return ExitCode::from(1);
        }
        log::log!(self.wrote_level, "{} {output}", self.wrote);
        ExitCode::SUCCESS
    }
}

/// The error and every cause under it, "a: b: c" (a cause the message
/// already quotes is not repeated).
pub fn error_chain(e: &dyn std::error::Error) -> String {
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
