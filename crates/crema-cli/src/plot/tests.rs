use super::*;

const LOG: &str = "\
I1128 11:00:00.000000  1234 solver.cpp:1] Iteration 0, Testing net (#0)
I1128 11:00:00.100000  1234 solver.cpp:2]     Test net output #0: accuracy = 0.1
I1128 11:00:00.100000  1234 solver.cpp:2]     Test net output #1: loss = 2.3 (* 1 = 2.3 loss)
I1128 11:00:00.200000  1234 solver.cpp:3] Iteration 0 (0 iter/s, 0.1s/100 iters), loss = 2.4
I1128 11:00:00.200000  1234 solver.cpp:4]     Train net output #0: loss = 2.4 (* 1 = 2.4 loss)
I1128 11:00:00.200000  1234 sgd_solver.cpp:5] Iteration 0, lr = 0.01
I1128 11:00:01.200000  1234 solver.cpp:3] Iteration 100 (100 iter/s, 1s/100 iters), loss = 0.3
I1128 11:00:01.200000  1234 solver.cpp:4]     Train net output #0: loss = 0.25 (* 1 = 0.25 loss)
I1128 11:00:01.200000  1234 sgd_solver.cpp:5] Iteration 100, lr = 0.00992565
I1128 11:00:02.000000  1234 solver.cpp:1] Iteration 200, Testing net (#0)
I1128 11:00:02.100000  1234 solver.cpp:2]     Test net output #0: accuracy = 0.95
I1128 11:00:02.100000  1234 solver.cpp:2]     Test net output #1: loss = 0.15 (* 1 = 0.15 loss)
I1128 11:00:02.200000  1234 solver.cpp:6] Iteration 200, loss = 0.2
";

const EVENTS: &str = r#"{"event":"start","iter":0,"net":{"name":"x","nodes":[],"edges":[]}}
{"event":"test","iter":0,"net":0,"outputs":[{"name":"accuracy","value":0.1},{"name":"loss","value":2.3}]}
{"event":"display","iter":0,"loss":2.4,"smoothed_loss":2.4,"lr":0.01,"outputs":[{"name":"loss","value":2.4}]}
{"event":"display","iter":100,"loss":0.25,"smoothed_loss":0.3,"lr":0.0099,"outputs":[{"name":"loss","value":0.25}]}
{"event":"test","iter":200,"net":0,"outputs":[{"name":"accuracy","value":0.95},{"name":"loss","value":0.15}]}
"#;

#[test]
fn a_caffe_log_gives_losses_rates_and_test_outputs() {
    let h = History::from_log(LOG);
    assert_eq!(
        h.smoothed_loss,
        vec![(0.0, 2.4), (100.0, 0.3), (200.0, 0.2)]
    );
    assert_eq!(h.lr, vec![(0.0, 0.01), (100.0, 0.00992565)]);
    assert_eq!(
        h.train_outputs,
        vec![
            (0.0, "loss".to_string(), 2.4),
            (100.0, "loss".to_string(), 0.25)
        ]
    );
    assert_eq!(h.test_outputs.len(), 4);
    assert_eq!(h.test_outputs[2], (200.0, 0, "accuracy".to_string(), 0.95));
    let acc = h.series("accuracy");
    assert_eq!(acc.len(), 1);
    assert_eq!(acc[0].name, "test #0 accuracy");
    assert_eq!(acc[0].points, vec![(0.0, 0.1), (200.0, 0.95)]);
    let loss: Vec<String> = h.series("loss").into_iter().map(|s| s.name).collect();
    assert_eq!(
        loss,
        vec!["train loss (smoothed)", "train loss", "test #0 loss"]
    );
}

#[test]
fn an_event_record_gives_the_same_series() {
    let h = History::from_events(EVENTS).unwrap();
    assert_eq!(h.raw_loss, vec![(0.0, 2.4), (100.0, 0.25)]);
    assert_eq!(h.smoothed_loss, vec![(0.0, 2.4), (100.0, 0.3)]);
    let loss: Vec<String> = h.series("loss").into_iter().map(|s| s.name).collect();
    assert_eq!(
        loss,
        vec!["train loss", "train loss (smoothed)", "test #0 loss"]
    );
    assert_eq!(
        h.series("accuracy")[0].points,
        vec![(0.0, 0.1), (200.0, 0.95)]
    );
    assert!(History::from_events("{\"event\":\"display\"}\nnot json\n")
        .unwrap_err()
        .contains("line 2"));
}

#[test]
fn svg_has_one_line_per_series_and_png_has_the_charts_size() {
    let h = History::from_events(EVENTS).unwrap();
    let ys = vec!["loss".to_string(), "accuracy".to_string()];
    let svg = render(&h, &ys).unwrap();
    // Three loss series, one accuracy series, each drawn and in a legend.
    assert!(svg.matches("<polyline").count() >= 4 * 2, "{svg}");
    assert!(svg.contains("test #0 accuracy"));
    let png = crate::raster::svg_to_png(&svg).unwrap();
    let img = resvg::tiny_skia::Pixmap::decode_png(&png).unwrap();
    assert_eq!((img.width(), img.height()), (CHART_W, 2 * CHART_H));
    // The first series' blue is drawn.
    let blue = img
        .pixels()
        .iter()
        .filter(|p| (p.red(), p.green(), p.blue()) == (31, 119, 180))
        .count();
    assert!(blue > 100, "only {blue} pixels of the first line");
}

#[test]
fn asking_for_a_missing_series_is_an_error() {
    let h = History::from_events(EVENTS).unwrap();
    assert!(render(&h, &["top5".to_string()])
        .unwrap_err()
        .contains("--y top5"));
}
