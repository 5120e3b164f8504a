//! Caffe's text format: every shared prototxt parses and round-trips, errors
//! name the file, line and column, and the printer writes C++ TextFormat's bytes.
use crema_proto::caffe::{Datum, NetParameter, SolverParameter};
use crema_proto::testdata::{files_with_suffix, shared_data};
use crema_proto::text::{
    c_escape, format_g, merge, parse, print, read_text_file, simple_dtoa, simple_ftoa,
    write_text_file,
};
use crema_proto::{Message, MessageFull, ProtoError};
use protobuf::descriptor::DescriptorProto;

fn roundtrip<M: MessageFull>(path: &std::path::Path) -> usize {
    let msg: M = read_text_file(path).unwrap_or_else(|e| panic!("{e}"));
    let text = print(&msg);
    let again: M = parse(&text, "printed")
        .unwrap_or_else(|e| panic!("{}: reparse: {e}\n{text}", path.display()));
    assert!(
        again == msg,
        "{}: print then parse changed the message",
        path.display()
    );
    assert_eq!(
        print(&again),
        text,
        "{}: printing is not stable",
        path.display()
    );
    text.len()
}

#[test]
fn every_shared_prototxt_parses_and_round_trips() {
    let Some(data) = shared_data() else {
        eprintln!("skipped: ../shared/data is absent");
        return;
    };
    let files = files_with_suffix(&data, &[".prototxt"]);
    assert!(
        files.len() >= 60,
        "expected the shared prototxts, found {}",
        files.len()
    );
    for p in &files {
        let name = p.file_name().unwrap().to_string_lossy();
        if name.contains("solver") {
            roundtrip::<SolverParameter>(p);
        } else {
            roundtrip::<NetParameter>(p);
        }
    }
}

#[test]
fn shared_nets_hold_what_their_text_says() {
    let Some(data) = shared_data() else {
        eprintln!("skipped: ../shared/data is absent");
        return;
    };
    let net: NetParameter =
        read_text_file(&data.join("models/bvlc_examples/mnist/lenet_train_test.prototxt")).unwrap();
    assert_eq!(net.name(), "LeNet");
    let conv1 = net.layer.iter().find(|l| l.name() == "conv1").unwrap();
    assert_eq!(conv1.type_(), "Convolution");
    assert_eq!(conv1.param.len(), 2);
    assert_eq!(conv1.param[1].lr_mult(), 2.0);
    assert_eq!(conv1.convolution_param.kernel_size, vec![5]);
    assert_eq!(conv1.convolution_param.weight_filler.type_(), "xavier");

    let v1: NetParameter =
        read_text_file(&data.join("models/lenet_v1_everpeace/lenet_train_test.prototxt")).unwrap();
    assert!(
        v1.layer.is_empty() && !v1.layers.is_empty(),
        "`layers {{` is the V1 field"
    );

    let solver: SolverParameter =
        read_text_file(&data.join("models/bvlc_examples/mnist/lenet_consolidated_solver.prototxt"))
            .unwrap();
    assert_eq!(solver.base_lr(), 0.01);
    assert_eq!(solver.test_iter, vec![100, 600]);
    assert_eq!(solver.test_state[1].stage, vec!["test-on-train-set"]);
    assert_eq!(
        solver.net_param.layers[0].transform_param.scale(),
        0.00390625
    );
}

#[test]
fn a_solver_given_as_a_net_names_the_file_and_the_first_unknown_field() {
    let Some(data) = shared_data() else {
        eprintln!("skipped: ../shared/data is absent");
        return;
    };
    let path = data.join("models/bvlc_examples/mnist/lenet_solver.prototxt");
    let err = read_text_file::<NetParameter>(&path)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!("{}:2:1: no field \"net\" in NetParameter", path.display())
    );
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let path = std::path::Path::new("/nonexistent/crema/deploy.prototxt");
    let err = read_text_file::<NetParameter>(path).unwrap_err();
    assert!(matches!(err, ProtoError::Io { .. }));
    assert!(
        err.to_string()
            .starts_with("/nonexistent/crema/deploy.prototxt: "),
        "{err}"
    );
}

fn net_error(text: &str) -> String {
    parse::<NetParameter>(text, "net.prototxt")
        .unwrap_err()
        .to_string()
}

fn solver_error(text: &str) -> String {
    parse::<SolverParameter>(text, "solver.prototxt")
        .unwrap_err()
        .to_string()
}

#[test]
fn errors_point_at_the_offending_token() {
    let cases: &[(&str, &str)] = &[
        (
            "layer {\n  name: \"c\"\n  convolution_param {\n    kernal_size: 3\n  }\n}\n",
            "net.prototxt:4:5: no field \"kernal_size\" in ConvolutionParameter",
        ),
        (
            "layer { pooling_param { pool: MAXX } }",
            "net.prototxt:1:31: \"MAXX\" is not a value of enum PoolingParameter.PoolMethod",
        ),
        (
            "layer { pooling_param { pool: 7 } }",
            "net.prototxt:1:31: 7 is not a value of enum PoolingParameter.PoolMethod",
        ),
        (
            "layer { convolution_param { num_output: 4294967296 } }",
            "net.prototxt:1:41: value 4294967296 out of range for field num_output (uint32)",
        ),
        (
            "layer { convolution_param { num_output: -1 } }",
            "net.prototxt:1:41: value -1 out of range for field num_output (uint32)",
        ),
        ("input_dim: 2147483648", "net.prototxt:1:12: value 2147483648 out of range for field input_dim (int32)"),
        (
            "input_dim: 99999999999999999999",
            "net.prototxt:1:12: value 99999999999999999999 out of range for field input_dim (int32)",
        ),
        ("name: \"abc", "net.prototxt:1:7: unterminated string: end of file before the closing quote"),
        ("name: 'abc\n'", "net.prototxt:1:7: unterminated string: a string cannot span lines"),
        (
            "layer {\n  name: \"a\"\n",
            "net.prototxt:3:1: unexpected end of file: \"{\" opened at 1:7 for layer is not closed",
        ),
        ("name: \"a\"\n}", "net.prototxt:2:1: unbalanced \"}\": no message is open here"),
        ("layer { name: \"a\" >", "net.prototxt:1:19: expected \"}\" to close \"{\" opened at 1:7, found \">\""),
        (
            "name: \"a\"\nname: \"b\"",
            "net.prototxt:2:1: field \"name\" is given more than once, but it is not repeated",
        ),
        ("state { }\nstate { }", "net.prototxt:2:1: field \"state\" is given more than once, but it is not repeated"),
        ("name \"a\"", "net.prototxt:1:6: expected \":\" after field name, found a string"),
        (
            "force_backward: yes",
            "net.prototxt:1:17: expected true or false for field force_backward (bool), found \"yes\"",
        ),
        ("force_backward: 2", "net.prototxt:1:17: expected true or false for field force_backward (bool), found \"2\""),
        ("name: \"a\\qb\"", "net.prototxt:1:9: invalid escape \"\\q\" in string"),
        ("name: \"\\x\"", "net.prototxt:1:8: \"\\x\" must be followed by hex digits"),
        ("name: 5", "net.prototxt:1:7: expected a quoted string for field name (string), found \"5\""),
        ("name: \"\\xff\"", "net.prototxt:1:7: the value of string field name is not valid UTF-8"),
        ("layer {\n  clip_param { min: 0 }\n}", "net.prototxt:2:3: required field \"max\" is missing in ClipParameter"),
        ("input_dim: 08", "net.prototxt:1:12: \"08\": a number starting with 0 is octal"),
        ("input_dim: 1x", "net.prototxt:1:12: a number must be followed by a space or a symbol, not a letter"),
        ("input_dim: 1.2.3", "net.prototxt:1:12: a number cannot have a second \".\" or a \".\" after its exponent"),
        ("input_dim: 0x", "net.prototxt:1:12: \"0x\" must be followed by hex digits"),
        ("input_dim: 1e", "net.prototxt:1:12: an exponent \"e\" must be followed by digits"),
        ("name: \"a\" @", "net.prototxt:1:11: expected a field name, found \"@\""),
        ("  é: 1", "net.prototxt:1:3: expected a field name, found \"é\""),
        ("name: \"é\" \u{1}", "net.prototxt:1:11: unexpected control character 0x01"),
        ("[caffe.ext]: 1", "net.prototxt:1:1: expected a field name, found \"[\""),
        ("name: [\"a\"]", "net.prototxt:1:7: field name (string) is not repeated, so it cannot take a [list]"),
        ("input_dim: [1 2]", "net.prototxt:1:15: expected \",\" or \"]\" in a list, found \"2\""),
        ("layer 5", "net.prototxt:1:7: expected \"{\" to open message field layer, found \"5\""),
        ("input_dim: 1.5", "net.prototxt:1:12: expected an integer for field input_dim (int32), found \"1.5\""),
        (
            "layer { pooling_param { pool: \"MAX\" } }",
            "net.prototxt:1:31: expected an enum value for field pool (PoolingParameter.PoolMethod), found a string",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(&net_error(text), want, "for {text:?}");
    }
    let solver_cases: &[(&str, &str)] = &[
        ("base_lr: abc", "solver.prototxt:1:10: expected a number for field base_lr (float), found \"abc\""),
        ("base_lr: 0x10", "solver.prototxt:1:10: expected a decimal number for field base_lr (float), found \"0x10\""),
        ("base_lr:", "solver.prototxt:1:9: expected a number for field base_lr (float), found end of file"),
        ("display: 1.5", "solver.prototxt:1:10: expected an integer for field display (int32), found \"1.5\""),
        (
            "random_seed: -9223372036854775809",
            "solver.prototxt:1:14: value -9223372036854775809 out of range for field random_seed (int64)",
        ),
        ("solver_mode: GPUU", "solver.prototxt:1:14: \"GPUU\" is not a value of enum SolverParameter.SolverMode"),
    ];
    for (text, want) in solver_cases {
        assert_eq!(&solver_error(text), want, "for {text:?}");
    }
}

#[test]
fn error_is_the_text_variant_with_its_location() {
    match parse::<NetParameter>("\n\n   bogus: 1", "x.prototxt") {
        Err(ProtoError::Text {
            file,
            line,
            column,
            message,
        }) => {
            assert_eq!((file.as_str(), line, column), ("x.prototxt", 3, 4));
            assert_eq!(message, "no field \"bogus\" in NetParameter");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn syntax_variants_parse_to_the_expected_values() {
    let text = r#"
# a comment, and one after a value
name: 'single' "double"   # adjacent literals concatenate
input_dim: [1, 3, 0x10, 010] ; input_dim: -2147483648,
force_backward: True ;
debug_info: t,
layer < name: "angle" type: "Pooling" pooling_param: { pool: 1 kernel_size: 3 } >
layer: {
  name: "list"
  include { phase: TRAIN }
  loss_weight: [1., .5, 1e-4, 1E-4, 2, -inf, nan, 1.0f, -3.5e+2, Infinity, 1f]
  propagate_down: [true, false, 1, 0, t, f, True, False]
  bottom: []
}
layers { name: "v1" type: CONVOLUTION }
input_shape [ { dim: [1, 2] }, < dim: -1 > ]
state { phase: TEST stage: "a" stage: "b" }
"#;
    let net: NetParameter = parse(text, "variants").unwrap();
    assert_eq!(net.name(), "singledouble");
    assert_eq!(net.input_dim, vec![1, 3, 16, 8, i32::MIN]);
    assert!(net.force_backward() && net.has_force_backward());
    assert!(net.debug_info());
    assert_eq!(net.layer.len(), 2);
    let pool = &net.layer[0].pooling_param;
    assert_eq!(
        pool.pool(),
        crema_proto::caffe::pooling_parameter::PoolMethod::AVE
    );
    assert_eq!(pool.kernel_size(), 3);
    let lw = &net.layer[1].loss_weight;
    assert_eq!(lw[..6], [1.0, 0.5, 1e-4, 1e-4, 2.0, f32::NEG_INFINITY]);
    assert!(lw[6].is_nan());
    assert_eq!(lw[7..], [1.0, -350.0, f32::INFINITY, 1.0]);
    assert_eq!(
        net.layer[1].propagate_down,
        vec![true, false, true, false, true, false, true, false]
    );
    assert!(net.layer[1].bottom.is_empty());
    assert_eq!(
        net.layer[1].include[0].phase(),
        crema_proto::caffe::Phase::TRAIN
    );
    assert_eq!(net.layers[0].name(), "v1");
    assert_eq!(
        net.layers[0].type_(),
        crema_proto::caffe::v1layer_parameter::LayerType::CONVOLUTION
    );
    assert_eq!(net.input_shape.len(), 2);
    assert_eq!(net.input_shape[0].dim, vec![1, 2]);
    assert_eq!(net.input_shape[1].dim, vec![-1]);
    assert_eq!(net.state.stage, vec!["a", "b"]);
}

#[test]
fn strings_take_c_escapes_and_unicode() {
    let net: NetParameter = parse(
        r#"name: "\n\t\\\"\'\x41\101\a\b\f\v\r\?\u00e9é\0""#,
        "escapes",
    )
    .unwrap();
    assert_eq!(net.name(), "\n\t\\\"'AA\x07\x08\x0c\x0b\r?éé\0");
    let datum: Datum = parse(r#"data: "\xff\000\377" channels: 3"#, "datum").unwrap();
    assert_eq!(datum.data(), &[0xFF, 0x00, 0xFF]);
    assert_eq!(print(&datum), "channels: 3\ndata: \"\\377\\000\\377\"\n");
}

#[test]
fn numbers_cover_every_integer_form_and_float_spelling() {
    let s: SolverParameter = parse(
        "random_seed: -9223372036854775808 device_id: 0x7fffffff max_iter: 017 base_lr: 1e-4",
        "n",
    )
    .unwrap();
    assert_eq!(s.random_seed(), i64::MIN);
    assert_eq!(s.device_id(), i32::MAX);
    assert_eq!(s.max_iter(), 15);
    // C++ reads the double 1e-4 and narrows it, which is the nearest float here.
    assert_eq!(s.base_lr(), 1e-4f32);
    let s: SolverParameter = parse("solver_mode: 0 momentum: -NaN gamma: -INF", "n").unwrap();
    assert_eq!(
        s.solver_mode(),
        crema_proto::caffe::solver_parameter::SolverMode::CPU
    );
    assert!(s.momentum().is_nan());
    assert_eq!(s.gamma(), f32::NEG_INFINITY);
}

#[test]
fn merge_keeps_what_the_message_holds_and_overwrites_singular_fields() {
    let mut net = NetParameter::new();
    merge(
        "name: \"a\" input: \"x\" state { level: 1 }",
        "m1",
        &mut net,
    )
    .unwrap();
    merge(
        "name: \"b\" name: \"c\" input: \"y\" state { stage: \"s\" }",
        "m2",
        &mut net,
    )
    .unwrap();
    assert_eq!(net.name(), "c");
    assert_eq!(net.input, vec!["x", "y"]);
    assert_eq!(net.state.level(), 1);
    assert_eq!(net.state.stage, vec!["s"]);
    let err = merge("bogus: 1", "m3", &mut net).unwrap_err().to_string();
    assert_eq!(err, "m3:1:1: no field \"bogus\" in NetParameter");
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let open = format!("layer {}", "{".repeat(10_000));
    assert_eq!(
        net_error(&open),
        "net.prototxt:1:8: expected a field name, found \"{\""
    );
    // DescriptorProto nests itself, so it can reach the depth limit.
    let deep = "nested_type {".repeat(10_000);
    let err = parse::<DescriptorProto>(&deep, "deep")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "deep:1:{}: messages are nested more than 100 levels deep",
            100 * 13 + 13
        )
    );
    let ok = format!("{}{}", "nested_type {".repeat(100), "}".repeat(100));
    let d: DescriptorProto = parse(&ok, "ok").unwrap();
    assert_eq!(d.nested_type.len(), 1);
}

#[test]
fn printer_matches_cpp_text_format() {
    let text = r#"
test_iter: 100
test_iter: 200
base_lr: 0.001
gamma: 100
power: -0.25
momentum: 0.9
weight_decay: 0.0005
snapshot_prefix: "quote\" tab\t nl\n apos\' back\\ bell\007 é"
solver_mode: CPU
random_seed: -1
net_param {
  name: "LeNet"
  force_backward: false
  layer {
    name: "conv1"
    type: "Convolution"
    bottom: "data"
    top: "conv1"
    param {
      lr_mult: 1
    }
    param {
      lr_mult: 2
      decay_mult: 0
    }
    convolution_param {
      num_output: 20
      kernel_size: 5
      kernel_size: 3
      weight_filler {
        type: "gaussian"
        std: 0.01
      }
    }
  }
  layer {
    name: "pool1"
    pooling_param {
      pool: MAX
      stride: 2
    }
  }
}
delta: 1e-05
clip_gradients: 1.5e+10
type: "Adam"
"#;
    let mut solver: SolverParameter = parse(text, "golden").unwrap();
    // Fields set to their defaults are printed: presence is what counts.
    assert!(
        solver.net_param.has_force_backward() && solver.net_param.layer[1].pooling_param.has_pool()
    );
    let fields = solver.mut_unknown_fields();
    fields.add_varint(1000, 5);
    fields.add_length_delimited(1001, b"hi\n".to_vec());
    fields.add_length_delimited(1002, vec![0x08, 0x96, 0x01, 0x12, 0x01, b'x']);
    fields.add_fixed32(1003, 0x3f80_0000);
    fields.add_fixed64(1004, 1);
    fields.add_length_delimited(1005, Vec::new());
    let mut want = text.trim_start().replace("\\007 é", "\\007 \\303\\251");
    want.push_str(
        "1000: 5\n1001: \"hi\\n\"\n1002 {\n  1: 150\n  2: \"x\"\n}\n1003: 0x3f800000\n1004: 0x0000000000000001\n1005: \"\"\n",
    );
    assert_eq!(print(&solver), want);
}

#[test]
fn unknown_fields_print_after_known_ones_at_every_level() {
    let mut net: NetParameter = parse("name: \"n\" layer { name: \"l\" }", "u").unwrap();
    net.layer[0].mut_unknown_fields().add_varint(7000, 1);
    net.mut_unknown_fields().add_varint(9999, 9);
    assert_eq!(
        print(&net),
        "name: \"n\"\nlayer {\n  name: \"l\"\n  7000: 1\n}\n9999: 9\n"
    );
    // An unknown field number cannot be written by name, so it does not parse back.
    assert!(parse::<NetParameter>("7000: 1", "u").is_err());
}

#[test]
fn empty_message_prints_nothing_and_parses_from_nothing() {
    assert_eq!(print(&NetParameter::new()), "");
    let net: NetParameter = parse("  # only a comment\n", "empty").unwrap();
    assert_eq!(net, NetParameter::new());
}

#[test]
fn floats_print_like_simple_ftoa_and_doubles_like_simple_dtoa() {
    let floats: &[(f32, &str)] = &[
        (0.001, "0.001"),
        (1e-05, "1e-05"),
        (0.9, "0.9"),
        (1.5e10, "1.5e+10"),
        (100.0, "100"),
        (-0.25, "-0.25"),
        (0.01, "0.01"),
        (0.1, "0.1"),
        (1e6, "1e+06"),
        (123456.0, "123456"),
        (1234567.0, "1234567"),
        (0.0001, "0.0001"),
        (0.0, "0"),
        (-0.0, "-0"),
        (1.0 / 3.0, "0.333333343"),
        (16777217.0, "16777216"),
        (f32::MAX, "3.40282347e+38"),
        (f32::from_bits(1), "1.4013e-45"),
        (f32::INFINITY, "inf"),
        (f32::NEG_INFINITY, "-inf"),
        (f32::NAN, "nan"),
    ];
    for &(v, want) in floats {
        assert_eq!(simple_ftoa(v), want, "for {v:e}");
    }
    let doubles: &[(f64, &str)] = &[
        (0.1, "0.1"),
        (1.0 / 3.0, "0.33333333333333331"),
        (1e100, "1e+100"),
        (1e-300, "1e-300"),
        (123456789012345.0, "123456789012345"),
        (1234567890123456.0, "1234567890123456"),
        (0.1f32 as f64, "0.10000000149011612"),
    ];
    for &(v, want) in doubles {
        assert_eq!(simple_dtoa(v), want, "for {v:e}");
    }
}

#[test]
fn format_g_chooses_notation_like_printf() {
    let cases: &[(f64, usize, &str)] = &[
        (0.0001, 6, "0.0001"),
        (0.00001, 6, "1e-05"),
        (123456.0, 6, "123456"),
        (1234567.0, 6, "1.23457e+06"),
        (999999.5, 6, "1e+06"),
        (9.9999996, 6, "10"),
        (0.5, 1, "0.5"),
        (2.5, 1, "2"),
        (25.0, 1, "2e+01"),
        (1.0, 0, "1"),
        (-1.5e-10, 3, "-1.5e-10"),
        (1e300, 6, "1e+300"),
        (100.0, 3, "100"),
        (1000.0, 3, "1e+03"),
    ];
    for &(v, p, want) in cases {
        assert_eq!(format_g(v, p), want, "%.{p}g of {v:e}");
    }
}

#[test]
fn c_escape_matches_cpp() {
    assert_eq!(
        c_escape(b"a\"b'c\\d\ne\rf\tg\x00\x7f\x80\xff ~"),
        "a\\\"b\\'c\\\\d\\ne\\rf\\tg\\000\\177\\200\\377 ~"
    );
}

#[test]
fn printed_text_round_trips_unusual_values() {
    let mut s = SolverParameter::new();
    s.set_base_lr(f32::from_bits(1));
    s.set_gamma(f32::MAX);
    s.set_momentum(f32::NEG_INFINITY);
    s.set_snapshot_prefix("\u{1}\u{7f}é\"'\\".to_string());
    s.set_random_seed(i64::MIN);
    let again: SolverParameter = parse(&print(&s), "p").unwrap();
    assert_eq!(again, s);
}

#[test]
fn write_text_file_then_read_text_file_gives_the_same_message() {
    let dir = std::env::temp_dir().join(format!("crema_text_format_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("net.prototxt");
    let net: NetParameter = parse("name: \"w\" layer { name: \"a\" type: \"ReLU\" }", "w").unwrap();
    write_text_file(&path, &net).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), print(&net));
    assert_eq!(read_text_file::<NetParameter>(&path).unwrap(), net);
    std::fs::write(&path, b"name: \"a\"\n  \xff").unwrap();
    let err = read_text_file::<NetParameter>(&path)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!("{}:2:3: the file is not valid UTF-8", path.display())
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A cheap deterministic fuzzer: random edits of a real net never panic the
/// parser, and whatever parses also prints and re-parses.
#[test]
fn mangled_prototxt_never_panics() {
    let base = "name: \"LeNet\"\nlayer {\n  name: \"conv1\" type: \"Convolution\" bottom: \"data\" top: \"conv1\"\n  \
                param { lr_mult: 1 }\n  convolution_param { num_output: 20 kernel_size: [5, 3] stride: 1\n    \
                weight_filler { type: \"xavier\" std: 1e-2 } }\n  include < phase: TRAIN >\n}\ninput_dim: 0x10\n";
    let alphabet: Vec<char> = "{}<>[]:;,-.\"'\\#\n 0123456789xefEnaibtTF_é\u{0}"
        .chars()
        .collect();
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut rand = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut parsed = 0;
    for _ in 0..3000 {
        let mut chars: Vec<char> = base.chars().collect();
        for _ in 0..1 + rand(4) {
            let at = rand(chars.len() + 1);
            match rand(3) {
                0 if at < chars.len() => {
                    chars.remove(at);
                }
                1 if at < chars.len() => chars[at] = alphabet[rand(alphabet.len())],
                _ => chars.insert(at, alphabet[rand(alphabet.len())]),
            }
        }
        let text: String = chars.into_iter().collect();
        if let Ok(net) = parse::<NetParameter>(&text, "fuzz") {
            parsed += 1;
            let again: NetParameter = parse(&print(&net), "fuzz-printed").unwrap();
            assert_eq!(print(&again), print(&net));
        }
    }
    assert!(
        parsed > 100,
        "the mutations should leave some files valid ({parsed})"
    );
}

/// Caffe's schema has no maps; protobuf's Struct stands in to show that maps
/// print as C++ prints them (entries sorted by key) and are refused on input.
#[test]
fn map_fields_print_sorted_and_are_refused_by_the_parser() {
    use protobuf::well_known_types::struct_::{Struct, Value};
    let mut s = Struct::new();
    for key in ["b", "a", "c"] {
        let mut v = Value::new();
        v.set_bool_value(key == "a");
        s.fields.insert(key.to_string(), v);
    }
    let want = "fields {\n  key: \"a\"\n  value {\n    bool_value: true\n  }\n}\n\
                fields {\n  key: \"b\"\n  value {\n    bool_value: false\n  }\n}\n\
                fields {\n  key: \"c\"\n  value {\n    bool_value: false\n  }\n}\n";
    assert_eq!(print(&s), want);
    let err = parse::<Struct>("fields { key: \"a\" }", "map")
        .unwrap_err()
        .to_string();
    assert_eq!(err, "map:1:1: map field \"fields\" is not supported");
}

#[test]
fn unknown_bytes_holding_groups_or_deep_messages_print_like_cpp() {
    let mut net = NetParameter::new();
    // A group (field 1) holding varint field 2, then a group closed by the wrong number.
    net.mut_unknown_fields()
        .add_length_delimited(1000, vec![0x0B, 0x10, 0x05, 0x0C]);
    net.mut_unknown_fields()
        .add_length_delimited(1001, vec![0x0B, 0x10, 0x05, 0x14]);
    assert_eq!(
        print(&net),
        "1000 {\n  1 {\n    2: 5\n  }\n}\n1001: \"\\013\\020\\005\\024\"\n"
    );

    // Twelve messages nested in bytes: C++ tries ten levels, then prints a string.
    let mut bytes = vec![0x08, 0x01];
    for _ in 0..11 {
        let mut outer = vec![0x12, bytes.len() as u8];
        outer.extend_from_slice(&bytes);
        bytes = outer;
    }
    let mut net = NetParameter::new();
    net.mut_unknown_fields().add_length_delimited(1000, bytes);
    let text = print(&net);
    assert_eq!(text.matches(" {\n").count(), 10, "{text}");
    let string_line = text.lines().find(|l| l.contains(": \"")).unwrap();
    assert_eq!(
        string_line,
        format!("{}2: \"\\022\\002\\010\\001\"", "  ".repeat(10))
    );
}
