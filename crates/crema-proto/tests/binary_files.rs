//! Every binary Caffe file under ../shared/data decodes, and re-encodes to the
//! same bytes (C++ protobuf's field order); damaged files fail with a clear error.
use crema_proto::binary::{decode, encode, read_binary, read_blob};
use crema_proto::caffe::{BlobProto, NetParameter, SolverState};
use crema_proto::testdata::{files_with_suffix, shared_data};
use crema_proto::{Message, MessageFull};
use std::path::Path;

fn roundtrip<M: MessageFull>(path: &Path, expected: &str) -> M {
    let bytes = std::fs::read(path).unwrap();
    let msg: M = decode(&bytes, path, expected).unwrap_or_else(|e| panic!("{e}"));
    let again = encode(&msg).unwrap();
    assert!(
        again == bytes,
        "{}: re-encoding changed the bytes ({} -> {})",
        path.display(),
        bytes.len(),
        again.len()
    );
    msg
}

#[test]
fn every_shared_binary_file_decodes_and_reencodes_byte_for_byte() {
    let Some(data) = shared_data() else {
        eprintln!("skipped: ../shared/data is absent");
        return;
    };
    let mut n = 0;
    for p in files_with_suffix(&data, &[".caffemodel"]) {
        let net: NetParameter = roundtrip(&p, "caffemodel (NetParameter)");
        assert!(
            net.layer.len() + net.layers.len() > 0,
            "{}: no layers",
            p.display()
        );
        n += 1;
    }
    for p in files_with_suffix(&data, &[".solverstate"]) {
        let st: SolverState = roundtrip(&p, "solverstate (SolverState)");
        assert!(st.has_iter(), "{}", p.display());
        n += 1;
    }
    for p in files_with_suffix(&data, &[".binaryproto"]) {
        let b: BlobProto = roundtrip(&p, "binaryproto (BlobProto)");
        read_blob(&p).unwrap();
        assert!(!b.data.is_empty());
        n += 1;
    }
    assert!(n >= 14, "expected the shared models, found {n} files");
}

#[test]
fn unknown_fields_survive_a_read_write_cycle() {
    // A LayerParameter with an SSD-style field 204 (detection_output_param in
    // that fork) and a top-level field 999, written in C++'s order.
    let mut net = NetParameter::new();
    net.set_name("ssd".into());
    let mut l = crema_proto::caffe::LayerParameter::new();
    l.set_name("det".into());
    l.set_type("DetectionOutput".into());
    l.mut_unknown_fields()
        .add_length_delimited(204, vec![0x08, 21]);
    net.layer.push(l);
    net.mut_unknown_fields().add_varint(999, 7);
    let bytes = net.write_to_bytes().unwrap();
    let back: NetParameter = decode(&bytes, Path::new("mem"), "net").unwrap();
    assert_eq!(back.write_to_bytes().unwrap(), bytes);
    assert!(
        matches!(back.layer[0].unknown_fields().get(204), Some(protobuf::UnknownValueRef::LengthDelimited(b)) if b == [0x08, 21])
    );
}

#[test]
fn truncated_caffemodel_is_a_clear_error() {
    let Some(data) = shared_data() else {
        eprintln!("skipped: ../shared/data is absent");
        return;
    };
    let p = data.join("models/lenet_summerlife/lenet_iter_10000.caffemodel");
    let bytes = std::fs::read(&p).unwrap();
    let cut = &bytes[..bytes.len() / 2];
    let e = decode::<NetParameter>(cut, &p, "caffemodel (NetParameter)")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("lenet_iter_10000.caffemodel") && e.contains("not a valid caffemodel"),
        "{e}"
    );
}

#[test]
fn wrong_kind_of_file_is_refused() {
    let Some(data) = shared_data() else {
        eprintln!("skipped: ../shared/data is absent");
        return;
    };
    // A JPEG and a prototxt given where a caffemodel is expected.
    for p in [
        data.join("images/cat.jpg"),
        data.join("models/bvlc_examples/mnist/lenet.prototxt"),
    ] {
        let e = read_binary::<NetParameter>(&p, "caffemodel (NetParameter)")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a valid caffemodel"), "{e}");
    }
    // A solverstate given as a caffemodel: field 1 is a varint where
    // NetParameter.name is a string.
    let p = data.join("models/lenet_summerlife/lenet_iter_5000.solverstate");
    let e = read_binary::<NetParameter>(&p, "caffemodel (NetParameter)")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("lenet_iter_5000.solverstate: not a valid caffemodel"),
        "{e}"
    );
}

#[test]
fn corrupt_length_does_not_allocate_the_claimed_size() {
    // Field 5 (data), packed, claiming 2^40 bytes with 3 present.
    let mut bytes = vec![0x2a];
    let mut len: u64 = 1 << 40;
    while len >= 0x80 {
        bytes.push((len as u8) | 0x80);
        len >>= 7;
    }
    bytes.push(len as u8);
    bytes.extend([1, 2, 3]);
    assert!(decode::<BlobProto>(&bytes, Path::new("x.binaryproto"), "binaryproto").is_err());
}

#[test]
fn binaryproto_whose_shape_disagrees_with_its_data_is_refused() {
    let mut b = BlobProto::new();
    b.set_num(1);
    b.set_channels(3);
    b.set_height(2);
    b.set_width(2);
    b.data = vec![0.0; 11];
    let dir = std::env::temp_dir().join(format!("crema-bp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("mean.binaryproto");
    crema_proto::binary::write_binary(&p, &b).unwrap();
    let e = read_blob(&p).unwrap_err().to_string();
    assert!(
        e.contains("mean.binaryproto") && e.contains("holds 12 values but its data has 11"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
