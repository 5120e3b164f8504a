//! Data-parallel `caffe train` on Caffe's LeNet and MNIST t10k: 2 worker
//! threads (`--workers 2`) and 2 MPI ranks (`mpirun -np 2`, when this build
//! has the mpi feature and mpirun is installed) each end 20 iterations with
//! weights equal, within 1e-5 of their norm, to one process with iter_size 2
//! (later a near-tie in a max or a ReLU flips on a rounding difference and
//! the runs drift apart by chance);
//! a snapshot of 2 ranks resumes in one process; killing a rank ends the
//! job, naming it, in bounded time, and leaves the last snapshot resumable.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crema_proto::testdata::shared_data;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("crema-parallel-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// An LMDB of MNIST t10k, made by our convert_mnist_data, and Caffe's LeNet
/// pointed at it. None (test skipped) without ../shared/data.
fn lenet(d: &Path) -> Option<PathBuf> {
    let mnist = shared_data()?.join("mnist");
    let db = d.join("mnist_lmdb");
    let ok = Command::new(env!("CARGO_BIN_EXE_convert_mnist_data"))
        .arg(mnist.join("t10k-images-idx3-ubyte"))
        .arg(mnist.join("t10k-labels-idx1-ubyte"))
        .arg(&db)
        .arg("--backend=lmdb")
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "convert_mnist_data failed");
    let net = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/mnist/lenet_train_test.prototxt"),
    )
    .unwrap();
    let net = net
        .replace("examples/mnist/data/mnist_train_lmdb", db.to_str().unwrap())
        .replace("examples/mnist/data/mnist_test_lmdb", db.to_str().unwrap());
    let path = d.join("lenet_train_test.prototxt");
    std::fs::write(&path, net).unwrap();
    Some(path)
}

fn solver(d: &Path, net: &Path, name: &str, iter_size: u32, max_iter: u32) -> PathBuf {
    let text = format!(
        "net: \"{}\"\ntest_iter: 5\ntest_interval: 50\nbase_lr: 0.01\nmomentum: 0.9\n\
         weight_decay: 0.0005\nlr_policy: \"inv\"\ngamma: 0.0001\npower: 0.75\ndisplay: 10\n\
         max_iter: {max_iter}\nsnapshot: 10\nsnapshot_prefix: \"{}\"\nrandom_seed: 1701\n\
         iter_size: {iter_size}\n",
        net.display(),
        d.join(name).display()
    );
    let path = d.join(format!("{name}_solver.prototxt"));
    std::fs::write(&path, text).unwrap();
    path
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let log =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{cmd:?} failed:\n{log}");
    log
}

fn caffe(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_caffe"));
    c.args(args);
    c
}

/// Every weight of a .caffemodel, in layer order.
fn weights(model: &Path) -> Vec<f32> {
    let net = crema_proto::files::read_net_binary(model).unwrap();
    net.layer
        .iter()
        .flat_map(|l| l.blobs.iter().flat_map(|b| b.data.clone()))
        .collect()
}

fn assert_close(got: &Path, want: &Path, rel: f64) {
    let (g, w) = (weights(got), weights(want));
    assert_eq!(g.len(), w.len());
    assert!(!w.is_empty());
    let sq = |it: &mut dyn Iterator<Item = f64>| it.map(|v| v * v).sum::<f64>().sqrt();
    let diff = sq(&mut g.iter().zip(&w).map(|(a, b)| f64::from(a - b)));
    let norm = sq(&mut w.iter().map(|&v| f64::from(v)));
    assert!(
        diff <= rel * norm,
        "{} vs {}: |difference| {diff:e} exceeds {rel:e} x {norm:e}",
        got.display(),
        want.display()
    );
}

#[test]
fn two_worker_threads_train_lenet_as_iter_size_two() {
    let d = dir("workers");
    let Some(net) = lenet(&d) else {
        eprintln!("skipped: shared/data not found");
        return;
    };
    let s1 = solver(&d, &net, "single", 2, 20);
    let s2 = solver(&d, &net, "workers", 1, 20);
    run(&mut caffe(&[
        "train",
        &format!("--solver={}", s1.display()),
    ]));
    let log = run(&mut caffe(&[
        "train",
        "--workers",
        "2",
        &format!("--solver={}", s2.display()),
    ]));
    assert!(
        log.contains("Training data-parallel on 2 worker threads"),
        "{log}"
    );
    // Only the root logs progress: one line per display, not two.
    assert_eq!(log.matches("] Iteration 10 (").count(), 1, "{log}");
    assert_close(
        &d.join("workers_iter_20.caffemodel"),
        &d.join("single_iter_20.caffemodel"),
        1e-5,
    );
}

/// mpirun with what Open MPI needs as root and in containers.
fn mpirun(np: usize) -> Option<Command> {
    if !cfg!(feature = "mpi") {
        eprintln!("skipped: this build has no mpi feature");
        return None;
    }
    if Command::new("mpirun").arg("--version").output().is_err() {
        eprintln!("skipped: mpirun is not installed");
        return None;
    }
    let mut c = Command::new("mpirun");
    c.args(["-np", &np.to_string(), "--oversubscribe"])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .arg(env!("CARGO_BIN_EXE_caffe"));
    Some(c)
}

#[test]
fn two_mpi_ranks_train_lenet_as_iter_size_two_and_resume_on_one() {
    let d = dir("mpi");
    let Some(mut mpi) = mpirun(2) else { return };
    let Some(net) = lenet(&d) else {
        eprintln!("skipped: shared/data not found");
        return;
    };
    let s1 = solver(&d, &net, "single", 2, 20);
    let s2 = solver(&d, &net, "ranks", 1, 20);
    run(&mut caffe(&[
        "train",
        &format!("--solver={}", s1.display()),
    ]));
    // The overlapped exchange (off by default on one machine): MPI calls
    // then come from the exchange thread.
    let log = run(mpi.args([
        "train",
        "--exchange_overlap=true",
        &format!("--solver={}", s2.display()),
    ]));
    assert!(log.contains("MPI: 2 ranks"), "{log}");
    assert_eq!(log.matches("] Iteration 10 (").count(), 1, "{log}");
    assert_close(
        &d.join("ranks_iter_20.caffemodel"),
        &d.join("single_iter_20.caffemodel"),
        1e-5,
    );

    // The ranks' snapshot at 10 resumes in one process (iter_size 2) and
    // continues to where the one-process run went.
    let s3 = solver(&d, &net, "resumed", 2, 20);
    let state = d.join("ranks_iter_10.solverstate");
    let log = run(&mut caffe(&[
        "train",
        &format!("--solver={}", s3.display()),
        &format!("--snapshot={}", state.display()),
    ]));
    // 10 iterations of 2 ranks x 64 records.
    assert!(
        log.contains("Restored data layer mnist (net #0) to record 1280"),
        "{log}"
    );
    assert_close(
        &d.join("resumed_iter_20.caffemodel"),
        &d.join("single_iter_20.caffemodel"),
        1e-5,
    );
}

/// The pid of the rank-`rank` process started by mpirun `parent`.
fn rank_pid(parent: u32, rank: usize) -> Option<u32> {
    let want = format!("OMPI_COMM_WORLD_RANK={rank}");
    std::fs::read_dir("/proc").ok()?.find_map(|e| {
        let e = e.ok()?;
        let pid = e.file_name().to_string_lossy().parse::<u32>().ok()?;
        let env = std::fs::read(e.path().join("environ")).ok()?;
        let has_rank = env.split(|&b| b == 0).any(|v| v == want.as_bytes());
        (has_rank && is_descendant(pid, parent)).then_some(pid)
    })
}

/// A process's parent, from field 4 of /proc/PID/stat (after the name).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn is_descendant(mut pid: u32, ancestor: u32) -> bool {
    for _ in 0..8 {
        match parent_of(pid) {
            Some(p) if p == ancestor => return true,
            Some(p) if p > 1 => pid = p,
            _ => return false,
        }
    }
    false
}

#[test]
fn killing_one_rank_ends_the_job_naming_it_and_the_snapshot_resumes() {
    let d = dir("kill");
    let Some(mut mpi) = mpirun(2) else { return };
    let Some(net) = lenet(&d) else {
        eprintln!("skipped: shared/data not found");
        return;
    };
    let s = solver(&d, &net, "long", 1, 1_000_000);
    let log_path = d.join("mpirun.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let mut child = mpi
        .args([
            "train",
            &format!("--solver={}", s.display()),
            "--exchange_timeout=20",
        ])
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .unwrap();
    // Wait for a snapshot, then kill rank 1 outright.
    let started = Instant::now();
    while !d.join("long_iter_20.solverstate").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no snapshot after 120 s"
        );
        assert!(child.try_wait().unwrap().is_none(), "the job ended early");
        std::thread::sleep(Duration::from_millis(200));
    }
    let victim = rank_pid(child.id(), 1).expect("rank 1's process");
    Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status()
        .unwrap();
    let killed = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if killed.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("the job still ran 90 s after rank 1 was killed");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(!status.success(), "{log}");
    assert!(
        log.contains("rank 1"),
        "the job's end does not name rank 1:\n{log}"
    );
    eprintln!(
        "the job ended {:.1} s after rank 1 was killed",
        killed.elapsed().as_secs_f64()
    );

    // Every snapshot written is whole: the last one resumes in one process.
    let last = (1..)
        .map(|k| k * 10)
        .take_while(|i| d.join(format!("long_iter_{i}.solverstate")).exists())
        .last()
        .unwrap();
    let s2 = solver(&d, &net, "after", 2, last + 10);
    let log = run(&mut caffe(&[
        "train",
        &format!("--solver={}", s2.display()),
        &format!(
            "--snapshot={}",
            d.join(format!("long_iter_{last}.solverstate")).display()
        ),
    ]));
    assert!(log.contains("Optimization Done."), "{log}");
    assert!(d
        .join(format!("after_iter_{}.caffemodel", last + 10))
        .exists());
}

#[test]
fn parallel_flag_errors_say_what_is_wrong() {
    let d = dir("flags");
    let s = d.join("solver.prototxt");
    std::fs::write(
        &s,
        "net: \"none.prototxt\"\nbase_lr: 0.01\nlr_policy: \"fixed\"\n",
    )
    .unwrap();
    let solver = format!("--solver={}", s.display());
    let fails = |args: &[&str], envs: &[(&str, &str)], needle: &str| {
        let out = caffe(args).envs(envs.iter().copied()).output().unwrap();
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success() && log.contains(needle),
            "{args:?}: {log}"
        );
    };
    fails(
        &["train", "--workers", "0", &solver],
        &[],
        "--workers must be at least 1, got 0",
    );
    fails(
        &["train", "--exchange_overlap=maybe", &solver],
        &[],
        "Invalid --exchange_overlap \"maybe\"",
    );
    if !cfg!(feature = "mpi") {
        fails(
            &["train", &solver],
            &[("OMPI_COMM_WORLD_SIZE", "2")],
            "built without MPI support",
        );
    }
}

/// Rank 0 takes the signals for the job: SIGHUP to it snapshots (every rank
/// carries on), SIGINT to it stops every rank at the same iteration, with
/// the stop's snapshot, and mpirun ends cleanly.
#[test]
fn signals_to_rank_zero_snapshot_and_stop_every_rank() {
    let d = dir("signals");
    let Some(mut mpi) = mpirun(2) else { return };
    let Some(net) = lenet(&d) else {
        eprintln!("skipped: shared/data not found");
        return;
    };
    // No periodic snapshots: every file comes from a signal or the stop.
    let s = solver(&d, &net, "sig", 1, 1_000_000);
    let text = std::fs::read_to_string(&s)
        .unwrap()
        .replace("snapshot: 10\n", "");
    std::fs::write(&s, text).unwrap();
    let log_path = d.join("mpirun.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let mut child = mpi
        .args(["train", &format!("--solver={}", s.display())])
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .unwrap();
    let wait_for = |needle: &str, child: &mut std::process::Child| {
        let started = Instant::now();
        loop {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if log.contains(needle) {
                return log;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "the job ended early:\n{log}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "no {needle:?} after 120 s:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for("] Iteration 20 (", &mut child);
    let root = rank_pid(child.id(), 0).expect("rank 0's process");
    Command::new("kill")
        .args(["-HUP", &root.to_string()])
        .status()
        .unwrap();
    wait_for("Snapshotting solver state", &mut child);
    let log = wait_for("] Iteration 60 (", &mut child);
    assert!(
        log.contains("] Iteration 50 ("),
        "training did not carry on after SIGHUP:\n{log}"
    );
    Command::new("kill")
        .args(["-INT", &root.to_string()])
        .status()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the job ran on 60 s after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(status.success(), "{log}");
    assert!(log.contains("Optimization stopped early."), "{log}");
    // Two snapshots, SIGHUP's and the stop's, by rank 0 alone.
    let states: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".solverstate"))
        .collect();
    assert_eq!(states.len(), 2, "{states:?}\n{log}");
    assert_eq!(log.matches("Snapshotting solver state").count(), 2, "{log}");
}
