//! Compiles tests/host.c with the system C compiler against include/crema.h
//! and libcrema_c.so, and runs it on LeNet: the ABI as a C program sees it.
use std::path::PathBuf;
use std::process::Command;

#[test]
fn a_c_program_drives_lenet_and_gets_error_codes() {
    let Some(data) = crema_proto::testdata::shared_data() else {
        eprintln!("skipped: shared/data not found");
        return;
    };
    if Command::new("cc").arg("--version").output().is_err() {
        eprintln!("skipped: no C compiler (cc) found");
        return;
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // Integration tests run from target/<profile>/deps, where cargo also puts
    // this crate's cdylib.
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    assert!(
        deps.join("libcrema_c.so").is_file(),
        "libcrema_c.so not found in {}",
        deps.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("host");
    let out = Command::new("cc")
        .arg(manifest.join("tests/host.c"))
        .arg("-I")
        .arg(manifest.join("include"))
        .arg(format!("-L{}", deps.display()))
        .arg("-lcrema_c")
        .arg("-lm")
        .arg(format!("-Wl,-rpath,{}", deps.display()))
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lenet = data.join("models/lenet_summerlife");
    let run = Command::new(&exe)
        .arg(lenet.join("lenet.prototxt"))
        .arg(lenet.join("lenet_iter_10000.caffemodel"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "host failed:\n{stdout}");
    assert!(stdout.contains("c host: 20 passed, 0 failed"), "{stdout}");
}
