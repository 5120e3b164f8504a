//! `caffe`: Caffe's command-line front end on crema.
//!
//! `caffe <action> [flags]` with Caffe's actions and gflags spellings
//! (`-model x`, `--model=x`): train, test, time, device_query.
#[cfg(feature = "mpi")]
mod mpi_comm;
mod progress;
mod test_cmd;
mod time;
mod train;

use crema_cli::{flags, netload};

use flags::{FlagSpec, Flags};

/// Caffe's flags, with Caffe's defaults.
const FLAGS: &[FlagSpec] = &[
    FlagSpec { name: "gpu", boolean: false, default: "", help: "Optional; run in GPU mode on given device IDs separated by ','. Use '-gpu all' to run on all available GPUs." },
    FlagSpec { name: "solver", boolean: false, default: "", help: "The solver definition protocol buffer text file." },
    FlagSpec { name: "model", boolean: false, default: "", help: "The model definition protocol buffer text file." },
    FlagSpec { name: "phase", boolean: false, default: "", help: "Optional; network phase (TRAIN or TEST). Only used for 'time'." },
    FlagSpec { name: "level", boolean: false, default: "0", help: "Optional; network level." },
    FlagSpec { name: "stage", boolean: false, default: "", help: "Optional; network stages (not to be confused with phase), separated by ','." },
    FlagSpec { name: "snapshot", boolean: false, default: "", help: "Optional; the snapshot solver state to resume training." },
    FlagSpec { name: "weights", boolean: false, default: "", help: "Optional; the pretrained weights to initialize finetuning, separated by ','. Cannot be set simultaneously with snapshot." },
    FlagSpec { name: "iterations", boolean: false, default: "50", help: "The number of iterations to run." },
    FlagSpec { name: "sigint_effect", boolean: false, default: "stop", help: "Optional; action to take when a SIGINT signal is received: snapshot, stop or none." },
    FlagSpec { name: "sighup_effect", boolean: false, default: "snapshot", help: "Optional; action to take when a SIGHUP signal is received: snapshot, stop or none." },
    FlagSpec { name: "dashboard", boolean: false, default: "", help: "Optional; serve a live training dashboard, at 127.0.0.1:8080 or at --dashboard=ADDR:PORT." },
    FlagSpec { name: "workers", boolean: false, default: "1", help: "Optional; train data-parallel on this many worker threads (each reads its share of the batches; like iter_size N). Under mpirun, each rank is one worker." },
    FlagSpec { name: "exchange_overlap", boolean: false, default: "auto", help: "Optional; with --workers or mpirun (and iter_size 1), exchange each layer's gradients while the layers below still run backward: true, false, or auto (only when MPI ranks span several machines: on shared cores the exchange thread slows the math more than it hides)." },
    FlagSpec { name: "exchange_timeout", boolean: false, default: "900", help: "Optional; under mpirun, seconds a rank waits in a weight/gradient exchange (or for rank 0's test) before deciding a peer is gone and stopping the job." },
];

const ACTIONS: &str = "commands:\n  train           train or finetune a model\n  test            score a model\n  device_query    show GPU diagnostic information\n  time            benchmark model execution time\n  dashboard       serve the dashboard of a recorded run: caffe dashboard DIR\n  plot            chart a log or event file: caffe plot LOG OUT.svg|OUT.png [--y loss|accuracy|lr]\n";

fn usage() -> String {
    format!(
        "caffe: command line brew\nusage: caffe <command> <args>\n\n{ACTIONS}\n{}",
        flags::usage(FLAGS)
    )
}

fn main() {
    crema::logging::init();
    #[cfg(feature = "python-layer")]
    if let Err(e) = _caffe::register_python_layer() {
        log::error!("{e}");
        std::process::exit(1);
    }
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("plot") {
        std::process::exit(report(crema_cli::plot::run(&args[1..])));
    }
    // `--dashboard` takes its value only after `=`; alone it means the default.
    for a in &mut args {
        if a == "--dashboard" || a == "-dashboard" {
            *a = "--dashboard=true".into();
        }
    }
    let flags = match Flags::parse(&args, FLAGS) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("ERROR: {e}\n\n{}", usage());
            std::process::exit(1);
        }
    };
    let code = match flags.positional.first().map(String::as_str) {
        Some("device_query") => device_query(&flags),
        // The nets run on a pool thread (`pool::run_on_pool`), as in training.
        Some("time") => report(crema::backend::pool::run_on_pool(|| time::run(&flags))),
        Some("train") => report(train::run(&flags)),
        Some("test") => report(crema::backend::pool::run_on_pool(|| test_cmd::run(&flags))),
        Some("dashboard") => report(crema_cli::dashboard::serve_dir(
            flags.positional.get(1).map_or("", String::as_str),
            flags.get("dashboard"),
        )),
        Some(other) => {
            eprintln!("Unknown action: {other}\n\n{}", usage());
            1
        }
        None => {
            eprintln!("{}", usage());
            1
        }
    };
    std::process::exit(code);
}

/// Prints an action's error the way the tools do, and turns it into the exit code.
fn report(result: Result<(), String>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            log::error!("{e}");
            1
        }
    }
}

/// No GPU backend is compiled into this build: say so and fail, as a Caffe
/// built with CPU_ONLY does.
fn device_query(_flags: &Flags) -> i32 {
    log::error!("device_query: this build of crema has no GPU backend (CPU only); there is no device to query.");
    1
}
