//! `extract_features PRETRAINED_NET_PARAM FEATURE_EXTRACTION_PROTO
//! BLOB1[,BLOB2...] DB1[,DB2...] NUM_MINI_BATCHES DB_TYPE [CPU|GPU]
//! [DEVICE_ID]`, as Caffe's tool: runs the TEST net NUM_MINI_BATCHES times and
//! stores each image's values of each named blob as a Datum (channels, height
//! and width of the blob's legacy shape, the values in float_data) under keys
//! `%010d` counting images, one database per blob.
use std::path::Path;
use std::process::ExitCode;

use crema::data::{Backend, DbWriter};
use crema::proto::caffe::{Datum, Phase};
use crema_cli::netload::load_net;
use crema_cli::record_progress::RecordProgress;

const COMMIT_EVERY: u64 = 1000;

fn main() -> ExitCode {
    crema::logging::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 6 {
        eprintln!(
            "This program takes in a trained network and an input data layer, and then \
             extract features of the input data produced by the net.\n\
             Usage: extract_features  pretrained_net_param  feature_extraction_proto_file  \
             extract_feature_blob_name1[,name2,...]  save_feature_dataset_name1[,name2,...]  \
             num_mini_batches  db_type  [CPU/GPU] [DEVICE_ID=0]\n\
             Note: you can extract multiple features in one pass by specifying multiple \
             feature blob names and dataset names separated by ','. The names cannot contain \
             white space characters and the number of blobs and datasets must be equal."
        );
        return ExitCode::from(1);
    }
    match extract(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(1)
        }
    }
}

fn extract(args: &[String]) -> Result<(), String> {
    let (weights, proto) = (&args[0], &args[1]);
    let blob_names: Vec<&str> = args[2].split(',').collect();
    let db_names: Vec<&str> = args[3].split(',').collect();
    let batches: usize = args[4].parse().map_err(|_| {
        format!(
            "num_mini_batches must be a non-negative integer, got '{}'",
            args[4]
        )
    })?;
    let backend = Backend::parse(&args[5]).map_err(|e| e.to_string())?;
    if args.get(6).map(String::as_str) == Some("GPU") {
        log::warn!("This build of crema has no GPU backend; extracting on the CPU.");
    } else {
        log::info!("Using CPU");
    }
    if blob_names.len() != db_names.len() {
        return Err(format!(
            "the number of blob names ({}) and dataset names ({}) must be equal",
            blob_names.len(),
            db_names.len()
        ));
    }
    let err = |e: crema::Error| e.to_string();
    let mut net = load_net(proto, Phase::TEST, 0, &[]).map_err(err)?;
    net.copy_trained_layers_from_file(weights).map_err(err)?;
    for name in &blob_names {
        if !net.has_blob(name) {
            return Err(format!(
                "Unknown feature blob name {name} in the network {proto}"
            ));
        }
    }
    let mut outputs: Vec<(DbWriter, RecordProgress)> = Vec::new();
    for (db, blob) in db_names.iter().zip(&blob_names) {
        log::info!("Opening dataset {db}");
        let writer = backend.create_writer(Path::new(db)).map_err(err)?;
        let blob = blob.to_string();
        let line =
            move |n| format!("Extracted features of {n} query images for feature blob {blob}");
        // One bar on a terminal, for the first blob; the others only log.
        let progress = if outputs.is_empty() {
            RecordProgress::new(None, COMMIT_EVERY, line)
        } else {
            RecordProgress::log_only(COMMIT_EVERY, line)
        };
        outputs.push((writer, progress));
    }

    log::info!("Extracting Features");
    let mut datum = Datum::new();
    for _ in 0..batches {
        net.forward().map_err(err)?;
        for (name, (writer, progress)) in blob_names.iter().zip(outputs.iter_mut()) {
            let blob = net.blob_by_name(name).expect("checked above");
            let blob = blob.borrow();
            let shape = blob.shape().to_vec();
            if shape.is_empty() || shape.len() > 4 || shape[0] == 0 {
                return Err(format!(
                    "feature blob {name} has shape {shape:?}; extract_features needs 1 to 4 axes, \
                     images first"
                ));
            }
            let dim = blob.count() / shape[0];
            let legacy = |i: usize| shape.get(i).copied().unwrap_or(1) as i32;
            datum.set_channels(legacy(1));
            datum.set_height(legacy(2));
            datum.set_width(legacy(3));
            for image in blob.data().chunks_exact(dim) {
                datum.float_data = image.to_vec();
                let value = crema::proto::binary::encode(&datum).map_err(|e| e.to_string())?;
                writer.put(format!("{:010}", progress.count()), value);
                progress.inc();
                if progress.count() % COMMIT_EVERY == 0 {
                    writer.commit().map_err(err)?;
                }
            }
        }
    }
    for (writer, progress) in outputs {
        writer.finish().map_err(err)?;
        progress.finish();
    }
    log::info!("Successfully extracted the features!");
    Ok(())
}
