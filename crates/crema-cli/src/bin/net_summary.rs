//! `net_summary NET OUT.caffemodel [SEED]`: builds a net (TEST phase) from its
//! prototxt, fills its weights with the layers' fillers from a fixed seed,
//! saves them as a caffemodel and prints each layer's name, type, top shapes
//! and weight-blob shapes. The caffemodel re-reads into the same net.
use crema::proto::caffe::Phase;
use crema::proto::files;
use crema::Net;

fn main() {
    crema::logging::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 || args.len() > 3 {
        eprintln!("usage: net_summary NET.prototxt OUT.caffemodel [SEED]");
        std::process::exit(1);
    }
    if let Err(e) = run(&args[0], &args[1], args.get(2).map(String::as_str)) {
        eprintln!("net_summary: {e}");
        std::process::exit(1);
    }
}

fn run(model: &str, out: &str, seed: Option<&str>) -> Result<(), String> {
    let seed: u64 = seed
        .unwrap_or("1701")
        .parse()
        .map_err(|_| format!("seed must be an integer, got {seed:?}"))?;
    crema::rng::set_random_seed(seed);
    let mut param = files::read_net_text(model).map_err(|e| e.to_string())?;
    param.state.mut_or_insert_default().set_phase(Phase::TEST);
    let mut net = Net::from_param(&param).map_err(|e| e.to_string())?;
    net.forward().map_err(|e| e.to_string())?;
    net.save(out).map_err(|e| e.to_string())?;

    println!(
        "net \"{}\" ({} layers), weights written to {out}",
        net.name(),
        net.layers().len()
    );
    println!(
        "{:<12} {:<14} {:<22} weights",
        "layer", "type", "top shapes"
    );
    let mut total = 0usize;
    for (i, name) in net.layer_names().iter().enumerate() {
        let tops: Vec<String> = net.top_vecs()[i]
            .iter()
            .map(|b| fmt_shape(b.borrow().shape()))
            .collect();
        let weights: Vec<String> = net.layers()[i]
            .blobs()
            .iter()
            .map(|b| {
                total += b.borrow().count();
                fmt_shape(b.borrow().shape())
            })
            .collect();
        println!(
            "{:<12} {:<14} {:<22} {}",
            name,
            net.layers()[i].type_name(),
            tops.join(" "),
            weights.join(" ")
        );
    }
    println!("{total} learnable values");

    // The file must read back into the same net.
    let mut again = Net::from_param(&param).map_err(|e| e.to_string())?;
    again
        .copy_trained_layers_from_file(out)
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn fmt_shape(shape: &[usize]) -> String {
    shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("x")
}
