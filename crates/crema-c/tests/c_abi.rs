//! The C ABI called as a C host calls it: status codes, last-error messages,
//! stale handles, size mismatches, and LeNet's shapes against the fixture.
use std::ffi::{c_char, CStr, CString};
use std::path::PathBuf;

use crema_c::blob::*;
use crema_c::net::*;
use crema_c::solver::*;
use crema_c::*;

fn cs(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn last_error() -> String {
    unsafe { CStr::from_ptr(crema_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn ok(status: i32) {
    assert_eq!(status, CREMA_OK, "crema call failed: {}", last_error());
}

fn string(p: *const c_char) -> String {
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn lenet_dir() -> Option<PathBuf> {
    let dir = crema_proto::testdata::shared_data()?.join("models/lenet_summerlife");
    dir.is_dir().then_some(dir)
}

fn lenet(weights: bool) -> Option<Handle> {
    let Some(dir) = lenet_dir() else {
        eprintln!("skipped: shared/data not found");
        return None;
    };
    let mut net = 0;
    let model = cs(dir.join("lenet.prototxt").to_str().unwrap());
    ok(crema_net_new(model.as_ptr(), cs("test").as_ptr(), &mut net));
    if weights {
        let w = cs(dir.join("lenet_iter_10000.caffemodel").to_str().unwrap());
        ok(crema_net_copy_from(net, w.as_ptr()));
    }
    Some(net)
}

fn blob_shape(blob: Handle) -> Vec<usize> {
    let mut dims = [0usize; 32];
    let mut n = 0;
    ok(crema_blob_shape(
        blob,
        dims.as_mut_ptr(),
        dims.len(),
        &mut n,
    ));
    dims[..n].to_vec()
}

fn blob_named(net: Handle, name: &str) -> Handle {
    let mut b = 0;
    ok(crema_net_blob_by_name(net, cs(name).as_ptr(), &mut b));
    b
}

/// (kind, name, param index, dims) lines of the shape fixture.
fn fixture() -> Vec<(String, String, usize, Vec<usize>)> {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lenet_shapes.txt"),
    )
    .unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let nums = |s: &[&str]| s.iter().map(|x| x.parse().unwrap()).collect::<Vec<usize>>();
            match f[0] {
                "blob" => ("blob".into(), f[1].into(), 0, nums(&f[2..])),
                "param" => (
                    "param".into(),
                    f[1].into(),
                    f[2].parse().unwrap(),
                    nums(&f[3..]),
                ),
                k => panic!("unknown fixture line kind {k}"),
            }
        })
        .collect()
}

#[test]
fn lenet_blob_and_param_shapes_match_the_fixture() {
    let Some(net) = lenet(false) else { return };
    let lines = fixture();
    assert_eq!(lines.len(), 16);
    let mut nblobs = 0;
    ok(crema_net_blob_count(net, &mut nblobs));
    assert_eq!(nblobs, lines.iter().filter(|l| l.0 == "blob").count());
    for (kind, name, index, dims) in &lines {
        let blob = if kind == "blob" {
            blob_named(net, name)
        } else {
            let mut nl = 0;
            ok(crema_net_layer_count(net, &mut nl));
            let li = (0..nl)
                .find(|&i| {
                    let mut p = std::ptr::null();
                    ok(crema_net_layer_name(net, i, &mut p));
                    string(p) == *name
                })
                .unwrap_or_else(|| panic!("no layer {name}"));
            let (mut layer, mut b) = (0, 0);
            ok(crema_net_layer(net, li, &mut layer));
            ok(crema_layer_blob(layer, *index, &mut b));
            b
        };
        assert_eq!(&blob_shape(blob), dims, "{kind} {name} {index}");
    }
    ok(crema_net_delete(net));
}

#[test]
fn lenet_classifies_a_constant_image_the_same_after_save_and_reload() {
    let Some(net) = lenet(true) else { return };
    let data = blob_named(net, "data");
    let mut count = 0;
    ok(crema_blob_count(data, &mut count));
    // A deterministic pattern: each image a different diagonal stripe.
    let input: Vec<f32> = (0..count)
        .map(|i| ((i % 28 + i / 784) % 7) as f32 / 7.0)
        .collect();
    ok(crema_blob_set_data(data, input.as_ptr(), count));
    ok(crema_net_forward(net, std::ptr::null_mut()));
    let prob = blob_named(net, "prob");
    let mut p1 = vec![0f32; 640];
    ok(crema_blob_get_data(prob, p1.as_mut_ptr(), 640));
    for row in p1.chunks(10) {
        let s: f32 = row.iter().sum();
        assert!((s - 1.0).abs() < 1e-4, "softmax row sums to {s}");
    }

    let dir = tempfile::tempdir().unwrap();
    let saved = cs(dir.path().join("saved.caffemodel").to_str().unwrap());
    ok(crema_net_save(net, saved.as_ptr()));
    let fresh = lenet(false).unwrap();
    ok(crema_net_copy_from(fresh, saved.as_ptr()));
    ok(crema_blob_set_data(
        blob_named(fresh, "data"),
        input.as_ptr(),
        count,
    ));
    ok(crema_net_forward(fresh, std::ptr::null_mut()));
    let mut p2 = vec![0f32; 640];
    ok(crema_blob_get_data(
        blob_named(fresh, "prob"),
        p2.as_mut_ptr(),
        640,
    ));
    assert_eq!(p1, p2);
    ok(crema_net_delete(net));
    ok(crema_net_delete(fresh));
}

#[test]
fn wrong_sizes_unknown_names_and_null_pointers_are_errors_with_messages() {
    let Some(net) = lenet(false) else { return };
    let data = blob_named(net, "data");
    let few = [0f32; 100];
    assert_eq!(
        crema_blob_set_data(data, few.as_ptr(), few.len()),
        CREMA_ERR_INVALID_ARGUMENT
    );
    let msg = last_error();
    assert!(
        msg.contains("crema_blob_set_data") && msg.contains("64 1 28 28") && msg.contains("100"),
        "{msg}"
    );

    let mut b = 0;
    assert_eq!(
        crema_net_blob_by_name(net, cs("nope").as_ptr(), &mut b),
        CREMA_ERR_INVALID_ARGUMENT
    );
    assert!(
        last_error().contains("no blob named 'nope'"),
        "{}",
        last_error()
    );

    assert_eq!(
        crema_net_blob_by_name(net, std::ptr::null(), &mut b),
        CREMA_ERR_INVALID_ARGUMENT
    );
    assert!(last_error().contains("name is NULL"));

    let mut layer = 0;
    assert_eq!(
        crema_net_layer(net, 99, &mut layer),
        CREMA_ERR_INVALID_ARGUMENT
    );
    assert!(
        last_error().contains("layer index 99 is out of range (there are 9)"),
        "{}",
        last_error()
    );

    // A blob handle where a net is wanted.
    assert_eq!(
        crema_net_forward(data, std::ptr::null_mut()),
        CREMA_ERR_INVALID_HANDLE
    );
    assert!(
        last_error().contains("is a blob, not a net"),
        "{}",
        last_error()
    );

    let mut h = 0;
    assert_eq!(
        crema_net_new(
            cs("/no/such.prototxt").as_ptr(),
            cs("test").as_ptr(),
            &mut h
        ),
        CREMA_ERR_FILE
    );
    assert!(last_error().contains("Could not open file /no/such.prototxt"));
    let model = lenet_dir().unwrap().join("lenet.prototxt");
    assert_eq!(
        crema_net_new(
            cs(model.to_str().unwrap()).as_ptr(),
            cs("val").as_ptr(),
            &mut h
        ),
        CREMA_ERR_INVALID_ARGUMENT
    );
    assert!(last_error().contains("unknown phase 'val'"));

    // A reshape past Caffe's axis limit is refused, not a panic.
    let dims = [1usize; 33];
    assert_eq!(
        crema_blob_reshape(data, dims.as_ptr(), 33),
        CREMA_ERR_INVALID_ARGUMENT
    );
    ok(crema_net_delete(net));
}

#[test]
fn deleted_and_reset_handles_are_reported_not_dereferenced() {
    let Some(net) = lenet(false) else { return };
    let data = blob_named(net, "data");
    let mut layer = 0;
    ok(crema_net_layer(net, 1, &mut layer));
    ok(crema_net_delete(net));
    let mut n = 0;
    assert_eq!(crema_blob_count(data, &mut n), CREMA_ERR_INVALID_HANDLE);
    assert!(last_error().contains("is not valid"), "{}", last_error());
    let mut t = std::ptr::null();
    assert_eq!(crema_layer_type(layer, &mut t), CREMA_ERR_INVALID_HANDLE);
    assert_eq!(crema_net_delete(net), CREMA_ERR_INVALID_HANDLE);
    assert_eq!(
        crema_net_forward(0, std::ptr::null_mut()),
        CREMA_ERR_INVALID_HANDLE
    );

    let net2 = lenet(false).unwrap();
    let mut key1 = 0.0;
    ok(crema_init_key(&mut key1));
    let (mut solvers, mut nets) = (9, 9);
    ok(crema_reset(&mut solvers, &mut nets));
    assert_eq!((solvers, nets), (0, 1));
    let mut key2 = 0.0;
    ok(crema_init_key(&mut key2));
    assert_ne!(key1, key2);
    assert_eq!(crema_net_reshape(net2), CREMA_ERR_INVALID_HANDLE);
}

#[test]
fn standalone_blobs_round_trip_through_a_mean_file() {
    let dims = [1usize, 3, 2, 4];
    let mut b = 0;
    ok(crema_blob_new(dims.as_ptr(), 4, &mut b));
    let values: Vec<f32> = (0..24).map(|i| i as f32 * 0.5).collect();
    ok(crema_blob_set_data(b, values.as_ptr(), 24));
    ok(crema_blob_set_diff(b, values.as_ptr(), 24));
    let mut diff = vec![0f32; 24];
    ok(crema_blob_get_diff(b, diff.as_mut_ptr(), 24));
    assert_eq!(diff, values);
    let dir = tempfile::tempdir().unwrap();
    let path = cs(dir.path().join("mean.binaryproto").to_str().unwrap());
    ok(crema_blob_write_proto(b, path.as_ptr()));
    ok(crema_blob_delete(b));
    let mut r = 0;
    ok(crema_blob_read_proto(path.as_ptr(), &mut r));
    assert_eq!(blob_shape(r), dims);
    let mut back = vec![0f32; 24];
    ok(crema_blob_get_data(r, back.as_mut_ptr(), 24));
    assert_eq!(back, values);
    ok(crema_blob_delete(r));
    assert_eq!(crema_blob_delete(r), CREMA_ERR_INVALID_HANDLE);
}

#[test]
fn solver_nets_share_the_solvers_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    let net_file = dir.path().join("net.prototxt");
    std::fs::write(
        &net_file,
        r#"name: "tiny"
layer { name: "x" type: "Input" top: "x" top: "y"
  input_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 1 } } }
layer { name: "fc" type: "InnerProduct" bottom: "x" top: "fc"
  inner_product_param { num_output: 1 weight_filler { type: "constant" value: 0 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "fc" bottom: "y" top: "loss" }
"#,
    )
    .unwrap();
    let solver_file = dir.path().join("solver.prototxt");
    std::fs::write(
        &solver_file,
        format!(
            "net: \"{}\"\nbase_lr: 0.1\nlr_policy: \"fixed\"\nmax_iter: 50\ndisplay: 0\nsnapshot_after_train: false\nsnapshot_prefix: \"{}/tiny\"\n",
            net_file.display(),
            dir.path().display()
        ),
    )
    .unwrap();
    let mut s = 0;
    ok(crema_solver_new(
        cs(solver_file.to_str().unwrap()).as_ptr(),
        &mut s,
    ));
    let (mut net, mut again) = (0, 0);
    ok(crema_solver_net(s, &mut net));
    ok(crema_solver_net(s, &mut again));
    assert_eq!(net, again, "one handle per solver net");
    let x: Vec<f32> = (0..12).map(|i| (i % 3) as f32).collect();
    let y = [1f32, 2.0, 3.0, 4.0];
    ok(crema_blob_set_data(blob_named(net, "x"), x.as_ptr(), 12));
    ok(crema_blob_set_data(blob_named(net, "y"), y.as_ptr(), 4));
    let loss = blob_named(net, "loss");
    let mut l0 = 0f32;
    ok(crema_solver_step(s, 1));
    ok(crema_blob_get_data(loss, &mut l0, 1));
    ok(crema_solver_step(s, 20));
    let mut l1 = 0f32;
    ok(crema_blob_get_data(loss, &mut l1, 1));
    assert!(l1 < l0 * 0.5, "loss {l0} -> {l1}");
    let mut iter = 0;
    ok(crema_solver_iter(s, &mut iter));
    assert_eq!(iter, 21);
    assert_eq!(crema_solver_step(s, -1), CREMA_ERR_INVALID_ARGUMENT);
    // Deleting a solver's net is a no-op; deleting the solver frees both.
    ok(crema_net_delete(net));
    ok(crema_blob_count(loss, &mut 0));
    ok(crema_solver_delete(s));
    assert_eq!(crema_blob_count(loss, &mut 0), CREMA_ERR_INVALID_HANDLE);
    assert_eq!(crema_solver_iter(s, &mut iter), CREMA_ERR_INVALID_HANDLE);
}

#[test]
fn gpu_requests_are_recorded_and_run_on_the_cpu() {
    ok(crema_set_mode_gpu());
    assert_eq!(crema_mode(), 1);
    assert_eq!(crema_gpu_available(), 0);
    ok(crema_set_mode_cpu());
    assert_eq!(crema_mode(), 0);
    ok(crema_set_device(0));
    assert_eq!(crema_set_device(-1), CREMA_ERR_INVALID_ARGUMENT);
    assert!(last_error().contains("invalid device id -1"));
    assert_eq!(string(crema_version()), env!("CARGO_PKG_VERSION"));
}
