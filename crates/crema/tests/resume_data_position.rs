//! A resume reads on from the same record: a net fed by a Data layer (LMDB,
//! rand_skip, random crops and mirrors, a test net with its own cursor)
//! trained 7 iterations, snapshotted and resumed for 6 more equals 13
//! uninterrupted iterations bit for bit; a solverstate without positions
//! (as Caffe writes them) restarts the data from the first record.
mod solver_support;

use std::path::Path;

use crema::proto::caffe::SolverParameter;
use crema::Solver;
use solver_support::scratch_dir;

fn solver_param(db: &Path, max_iter: i32, prefix: &Path) -> SolverParameter {
    let text = format!(
        r#"net_param {{ name: "fed"
             layer {{ name: "data" type: "Data" top: "data" top: "label"
                     transform_param {{ crop_size: 4 mirror: true scale: 0.01 }}
                     data_param {{ source: "{db}" backend: LMDB batch_size: 4 rand_skip: 9 }} }}
             layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
                     inner_product_param {{ num_output: 3 weight_filler {{ type: "gaussian" std: 0.1 }} }} }}
             layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }} }}
           base_lr: 0.1 momentum: 0.9 lr_policy: "fixed" max_iter: {max_iter} random_seed: 77
           test_iter: 2 test_interval: 5 display: 1 snapshot_prefix: "{prefix}""#,
        db = db.display(),
        prefix = prefix.display()
    );
    crema::proto::text::parse(&text, "resume test solver").unwrap()
}

fn weights(s: &Solver) -> Vec<u32> {
    s.net()
        .learnable_params()
        .iter()
        .flat_map(|p| p.borrow().data().to_vec())
        .map(f32::to_bits)
        .collect()
}

/// The train net's current batch, as bits.
fn batch(s: &Solver) -> Vec<u32> {
    let b = s.net().blob_by_name("data").unwrap();
    let v = b.borrow().data().iter().map(|x| x.to_bits()).collect();
    v
}

#[test]
fn resume_reads_on_from_the_saved_record_with_the_same_crops() {
    let dir = scratch_dir("data-position");
    let db = dir.join("db");
    solver_support::write_small_db(&db);

    let mut full = Solver::new(&solver_param(&db, 13, &dir.join("full"))).unwrap();
    full.solve(None).unwrap();

    let mut first = Solver::new(&solver_param(&db, 7, &dir.join("half"))).unwrap();
    first.solve(None).unwrap();
    let state = dir.join("half_iter_7.solverstate");

    let mut resumed = Solver::new(&solver_param(&db, 13, &dir.join("resumed"))).unwrap();
    resumed.solve(Some(&state)).unwrap();
    assert_eq!(resumed.iter(), 13);
    assert_eq!(weights(&full), weights(&resumed));
    assert_eq!(batch(&full), batch(&resumed));
    assert_eq!(full.mean_scores(0), resumed.mean_scores(0));

    // Without the positions (strip crema's extension fields, as in a file
    // Caffe wrote) the data restarts from record 0, and the run differs.
    let mut raw = crema::proto::files::read_solver_state(&state).unwrap();
    raw.special_fields.mut_unknown_fields().clear();
    let caffe_like = dir.join("caffe_like.solverstate");
    crema::proto::binary::write_binary(&caffe_like, &raw).unwrap();
    let mut restarted = Solver::new(&solver_param(&db, 13, &dir.join("restarted"))).unwrap();
    restarted.solve(Some(&caffe_like)).unwrap();
    assert_ne!(weights(&full), weights(&restarted));
}
