//! Training Caffe's LeNet on real MNIST with the solver: lenet_solver's
//! settings (SGD, momentum 0.9, weight decay 5e-4, the inv policy) on
//! lenet_train_test.prototxt, its Data layers reading LMDBs written from the
//! IDX files. A short run must already classify held-out digits well, and
//! the test phase must report what the test net computes.
mod solver_support;

use crema::proto::caffe::SolverParameter;
use crema::proto::files;
use crema::Solver;
use crema_proto::testdata::shared_data;

#[test]
fn lenet_learns_mnist_in_a_few_hundred_iterations() {
    let Some(data) = shared_data() else {
        eprintln!("skipped: shared/data not found");
        return;
    };
    let dir = solver_support::scratch_dir("lenet");
    let mnist = data.join("mnist");
    let (train_db, test_db) = (dir.join("mnist_train_lmdb"), dir.join("mnist_test_lmdb"));
    solver_support::write_mnist_lmdb(
        &mnist.join("train-images-idx3-ubyte"),
        &mnist.join("train-labels-idx1-ubyte"),
        19200,
        &train_db,
    );
    solver_support::write_mnist_lmdb(
        &mnist.join("t10k-images-idx3-ubyte"),
        &mnist.join("t10k-labels-idx1-ubyte"),
        1000,
        &test_db,
    );

    let models = data.join("models/bvlc_examples/mnist");
    let mut net = files::read_net_text(models.join("lenet_train_test.prototxt")).unwrap();
    for l in net.layer.iter_mut().filter(|l| l.type_() == "Data") {
        let train = l
            .include
            .iter()
            .any(|r| r.phase() == crema::proto::caffe::Phase::TRAIN);
        let db = if train { &train_db } else { &test_db };
        l.data_param
            .mut_or_insert_default()
            .set_source(db.to_string_lossy().into_owned());
    }
    let mut param: SolverParameter =
        files::read_solver_text(models.join("lenet_solver.prototxt")).unwrap();
    param.clear_net();
    param.net_param = Some(net).into();
    param.test_iter = vec![10];
    param.set_test_interval(300);
    param.set_test_initialization(false);
    param.set_max_iter(300);
    param.set_display(100);
    param.set_snapshot(0);
    param.set_snapshot_prefix(dir.join("lenet").to_string_lossy().into_owned());
    param.set_random_seed(1701);

    let mut solver = Solver::new(&param).unwrap();
    solver.solve(None).unwrap();
    assert_eq!(solver.iter(), 300);
    // Test outputs are (accuracy, loss), sorted by name as Caffe lists them.
    let scores = solver.mean_scores(0).to_vec();
    assert_eq!(scores.len(), 2);
    let (accuracy, loss) = (scores[0], scores[1]);
    assert!(accuracy > 0.9, "accuracy {accuracy} after 300 iterations");
    assert!(loss < 0.4, "test loss {loss}");

    // The final snapshot holds the trained weights: the test net loaded from
    // it scores exactly what the solver's test phase reported.
    let mut test = crema::Net::from_param(&{
        let mut p = param.net_param.clone().unwrap();
        p.state
            .mut_or_insert_default()
            .set_phase(crema::proto::caffe::Phase::TEST);
        p
    })
    .unwrap();
    test.copy_trained_layers_from_file(dir.join("lenet_iter_300.caffemodel"))
        .unwrap();
    let mut acc = 0.0f32;
    for _ in 0..10 {
        test.forward().unwrap();
        acc += test.blob_by_name("accuracy").unwrap().borrow().data()[0];
    }
    assert_eq!(acc / 10.0, accuracy);
    let _ = std::fs::remove_dir_all(&dir);
}
