//! gflags-style command-line flags, as Caffe's tools take them.
//!
//! Caffe users type `-model x`, `--model=x`, `-model=x` and `--model x`
//! interchangeably, and booleans as `-flag`, `--flag=false` or `--noflag`; clap
//! does not take single-dash long names, so this small parser does it.
use std::collections::BTreeMap;

/// What one flag is: its name, whether it takes a value, its default and help.
pub struct FlagSpec {
    pub name: &'static str,
    pub boolean: bool,
    pub default: &'static str,
    pub help: &'static str,
}

/// Parsed flags plus the positional arguments, in order.
#[derive(Debug, Default)]
pub struct Flags {
    values: BTreeMap<&'static str, String>,
    pub positional: Vec<String>,
}

impl Flags {
    /// Parses `args` (without the program name) against `specs`. Unknown flags
    /// and missing values are errors that name the flag.
    pub fn parse(args: &[String], specs: &[FlagSpec]) -> Result<Flags, String> {
        let mut flags = Flags::default();
        let mut i = 0;
        while i < args.len() {
            let arg = &args[i];
            i += 1;
            if arg == "--" {
                flags.positional.extend(args[i..].iter().cloned());
                break;
            }
            let Some(body) = arg
                .strip_prefix("--")
                .or_else(|| arg.strip_prefix('-'))
                .filter(|b| !b.is_empty())
            else {
                flags.positional.push(arg.clone());
                continue;
            };
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let (spec, negated) = match specs.iter().find(|s| s.name == name) {
                Some(s) => (s, false),
                None => match name
                    .strip_prefix("no")
                    .and_then(|n| specs.iter().find(|s| s.boolean && s.name == n))
                {
                    Some(s) if inline.is_none() => (s, true),
                    _ => return Err(format!("unknown command line flag '{name}'")),
                },
            };
            let value = if spec.boolean {
                match inline.as_deref() {
                    None => (!negated).to_string(),
                    Some("true" | "1" | "t" | "yes" | "y") => "true".into(),
                    Some("false" | "0" | "f" | "no" | "n") => "false".into(),
                    Some(v) => {
                        return Err(format!("illegal value '{v}' for boolean flag '{name}'"))
                    }
                }
            } else if let Some(v) = inline {
                v
            } else if i < args.len() {
                i += 1;
                args[i - 1].clone()
            } else {
                return Err(format!("flag '{name}' is missing its argument"));
            };
            flags.values.insert(spec.name, value);
        }
        for s in specs {
            flags
                .values
                .entry(s.name)
                .or_insert_with(|| s.default.to_string());
        }
        Ok(flags)
    }

    /// The flag's value (its default when not given); "" for an unset string.
    pub fn get(&self, name: &str) -> &str {
        self.values.get(name).map(String::as_str).unwrap_or("")
    }

    /// A boolean flag.
    pub fn get_bool(&self, name: &str) -> bool {
        self.get(name) == "true"
    }

    /// An integer flag, with an error naming the flag when it is not a number.
    pub fn get_i64(&self, name: &str) -> Result<i64, String> {
        let v = self.get(name);
        v.parse()
            .map_err(|_| format!("flag '{name}' expects an integer, got '{v}'"))
    }
}

/// The flags section of a usage message.
/// A tool's start: installs the glog logger and parses the command line;
/// on a flag error prints `tool: error` and gives the exit code to return.
pub fn tool_start(tool: &str, specs: &[FlagSpec]) -> Result<Flags, std::process::ExitCode> {
    crema::logging::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    Flags::parse(&args, specs).map_err(|e| {
        eprintln!("{tool}: {e}");
        std::process::ExitCode::from(1)
    })
}

pub fn usage(specs: &[FlagSpec]) -> String {
    let mut s = String::from("  Flags:\n");
    for f in specs {
        let def = if f.boolean {
            f.default.to_string()
        } else {
            format!("\"{}\"", f.default)
        };
        s.push_str(&format!(
            "    -{} ({}) type: {} default: {}\n",
            f.name,
            f.help,
            if f.boolean { "bool" } else { "string" },
            def
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[FlagSpec] = &[
        FlagSpec {
            name: "model",
            boolean: false,
            default: "",
            help: "",
        },
        FlagSpec {
            name: "iterations",
            boolean: false,
            default: "50",
            help: "",
        },
        FlagSpec {
            name: "debug",
            boolean: true,
            default: "false",
            help: "",
        },
    ];

    fn parse(a: &[&str]) -> Result<Flags, String> {
        Flags::parse(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>(), SPECS)
    }

    #[test]
    fn every_caffe_spelling_of_a_flag_is_accepted() {
        for args in [
            ["time", "-model", "x"],
            ["time", "--model", "x"],
            ["time", "-model=x", ""],
            ["time", "--model=x", ""],
        ] {
            let args: Vec<&str> = args.iter().copied().filter(|a| !a.is_empty()).collect();
            let f = parse(&args).unwrap();
            assert_eq!(f.get("model"), "x");
            assert_eq!(f.positional, vec!["time"]);
            assert_eq!(f.get_i64("iterations").unwrap(), 50);
        }
    }

    #[test]
    fn booleans_take_gflags_forms() {
        assert!(parse(&["-debug"]).unwrap().get_bool("debug"));
        assert!(!parse(&["--debug=false"]).unwrap().get_bool("debug"));
        assert!(!parse(&["--nodebug"]).unwrap().get_bool("debug"));
        assert!(parse(&["--debug=maybe"]).is_err());
    }

    #[test]
    fn unknown_or_incomplete_flags_are_errors() {
        assert_eq!(
            parse(&["--modle=x"]).unwrap_err(),
            "unknown command line flag 'modle'"
        );
        assert_eq!(
            parse(&["-model"]).unwrap_err(),
            "flag 'model' is missing its argument"
        );
        assert!(parse(&["-iterations", "ten"])
            .unwrap()
            .get_i64("iterations")
            .is_err());
    }
}
