//! `caffe`: Caffe's command-line front end on crema.
fn main() {
    eprintln!("caffe: no action given; this build knows: (being written)");
    std::process::exit(1);
}
