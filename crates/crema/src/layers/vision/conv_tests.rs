//! Convolution tests: numpy fixtures, Caffe's shapes, gradient checks, errors.
use crema_proto::caffe::{ConvolutionParameter, LayerParameter};

use super::testutil::*;
use crate::blob::SharedBlob;
use crate::gradient_check::{fill_uniform, GradientChecker};

fn conv(edit: impl FnOnce(&mut ConvolutionParameter)) -> LayerParameter {
    param("Convolution", |p| {
        let cp = p.convolution_param.mut_or_insert_default();
        let wf = cp.weight_filler.mut_or_insert_default();
        wf.set_type("gaussian".into());
        let bf = cp.bias_filler.mut_or_insert_default();
        bf.set_type("gaussian".into());
        edit(cp)
    })
}

/// conv_a: group 2, kernel 3x2, stride (2,1), pad (1,0), dilation (1,2).
fn conv_a(cp: &mut ConvolutionParameter) {
    cp.set_num_output(6);
    cp.set_group(2);
    cp.set_kernel_h(3);
    cp.set_kernel_w(2);
    cp.set_stride_h(2);
    cp.set_stride_w(1);
    cp.set_pad_h(1);
    cp.set_pad_w(0);
    cp.dilation = vec![1, 2];
}

fn forward_fixture(p: &LayerParameter, case: &str, bias: bool) -> SharedBlob {
    let mut l = layer(p);
    let (b, t) = (fixture_blob(&format!("{case}.x")), empty());
    l.setup(&[b.clone()], &[t.clone()]).unwrap();
    load_param(l.as_ref(), 0, &format!("{case}.w"));
    if bias {
        load_param(l.as_ref(), 1, &format!("{case}.b"));
    }
    l.reshape(&[b.clone()], &[t.clone()]).unwrap();
    l.forward(&[b], &[t.clone()]).unwrap();
    t
}

#[test]
fn conv_matches_numpy_with_group_dilation_pad_and_stride() {
    let t = forward_fixture(&conv(conv_a), "conv_a", true);
    assert_matches(&t, "conv_a.y", 1e-5);
}

#[test]
fn nd_im2col_path_gives_the_same_result() {
    let t = forward_fixture(
        &conv(|cp| {
            conv_a(cp);
            cp.set_force_nd_im2col(true);
        }),
        "conv_a",
        true,
    );
    assert_matches(&t, "conv_a.y", 1e-5);
}

#[test]
fn one_by_one_conv_matches_numpy() {
    let t = forward_fixture(
        &conv(|cp| {
            cp.set_num_output(4);
            cp.kernel_size = vec![1];
        }),
        "conv_1x1",
        true,
    );
    assert_matches(&t, "conv_1x1.y", 1e-5);
}

#[test]
fn three_d_conv_matches_numpy_with_per_axis_params() {
    let t = forward_fixture(
        &conv(|cp| {
            cp.set_num_output(3);
            cp.set_bias_term(false);
            cp.kernel_size = vec![2, 3, 2];
            cp.pad = vec![1, 0, 1];
            cp.stride = vec![1, 2, 1];
        }),
        "conv_3d",
        false,
    );
    assert_matches(&t, "conv_3d.y", 1e-5);
}

#[test]
fn alexnet_shapes_conv1_and_grouped_conv2() {
    let p = conv(|cp| {
        cp.set_num_output(96);
        cp.kernel_size = vec![11];
        cp.stride = vec![4];
    });
    let mut l = layer(&p);
    let (b, t) = (crate::Blob::shared(&[1, 3, 227, 227]), empty());
    l.setup(&[b.clone()], &[t.clone()]).unwrap();
    l.reshape(&[b], &[t.clone()]).unwrap();
    assert_eq!(t.borrow().shape(), &[1, 96, 55, 55]);
    assert_eq!(l.blobs()[0].borrow().shape(), &[96, 3, 11, 11]);
    assert_eq!(l.blobs()[1].borrow().shape(), &[96]);

    let p = conv(|cp| {
        cp.set_num_output(256);
        cp.set_group(2);
        cp.kernel_size = vec![5];
        cp.pad = vec![2];
    });
    let mut l = layer(&p);
    let (b, t) = (crate::Blob::shared(&[2, 96, 27, 27]), empty());
    l.setup(&[b.clone()], &[t.clone()]).unwrap();
    l.reshape(&[b], &[t.clone()]).unwrap();
    assert_eq!(t.borrow().shape(), &[2, 256, 27, 27]);
    assert_eq!(l.blobs()[0].borrow().shape(), &[256, 48, 5, 5]);
}

#[test]
fn fillers_default_to_zero_and_follow_the_params() {
    let p = param("Convolution", |p| {
        let cp = p.convolution_param.mut_or_insert_default();
        cp.set_num_output(2);
        cp.kernel_size = vec![2];
        let wf = cp.weight_filler.mut_or_insert_default();
        wf.set_type("constant".into());
        wf.set_value(0.5);
    });
    let mut l = layer(&p);
    let (b, t) = (blob(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]), empty());
    run(l.as_mut(), &[b], &[t.clone()]);
    assert!(l.blobs()[1].borrow().data().iter().all(|&v| v == 0.0));
    assert_eq!(t.borrow().data(), &[5.0, 5.0]);
}

#[test]
fn one_dimensional_conv_on_axis_1_by_hand() {
    // Bottom [1, 1, 5]: a 1-D signal; kernel [1, -1] is a difference filter.
    let p = conv(|cp| {
        cp.set_num_output(1);
        cp.set_bias_term(false);
        cp.kernel_size = vec![2];
    });
    let mut l = layer(&p);
    let (b, t) = (blob(&[1, 1, 5], &[1.0, 3.0, 6.0, 10.0, 15.0]), empty());
    l.setup(&[b.clone()], &[t.clone()]).unwrap();
    l.blobs()[0]
        .borrow_mut()
        .data_mut()
        .copy_from_slice(&[1.0, -1.0]);
    l.reshape(&[b.clone()], &[t.clone()]).unwrap();
    l.forward(&[b], &[t.clone()]).unwrap();
    assert_eq!(t.borrow().data(), &[-2.0, -3.0, -4.0, -5.0]);
}

fn grad_check(p: &LayerParameter, shapes: &[&[usize]]) {
    crate::rng::set_random_seed(1701);
    let bottoms: Vec<SharedBlob> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let b = crate::Blob::shared(s);
            fill_uniform(&b, -1.0, 1.0, 10 + i as u64);
            b
        })
        .collect();
    let tops: Vec<SharedBlob> = shapes.iter().map(|_| empty()).collect();
    let mut l = layer(p);
    GradientChecker::new(1e-2, 1e-3).check_gradient_exhaustive(l.as_mut(), &bottoms, &tops, None);
}

#[test]
fn gradient_grouped_dilated_strided_padded() {
    grad_check(
        &conv(|cp| {
            cp.set_num_output(4);
            cp.set_group(2);
            cp.set_kernel_h(3);
            cp.set_kernel_w(2);
            cp.set_stride_h(2);
            cp.set_pad_w(1);
            cp.set_pad_h(1);
            cp.set_stride_w(1);
            cp.dilation = vec![1, 2];
        }),
        &[&[2, 4, 4, 4]],
    );
}

#[test]
fn gradient_two_bottoms_share_weights() {
    grad_check(
        &conv(|cp| {
            cp.set_num_output(2);
            cp.kernel_size = vec![2];
            cp.stride = vec![1];
        }),
        &[&[2, 2, 3, 3], &[2, 2, 3, 3]],
    );
}

#[test]
fn gradient_one_by_one_and_three_d_and_forced_nd() {
    grad_check(
        &conv(|cp| {
            cp.set_num_output(3);
            cp.kernel_size = vec![1];
        }),
        &[&[2, 2, 3, 2]],
    );
    grad_check(
        &conv(|cp| {
            cp.set_num_output(2);
            cp.kernel_size = vec![2, 2, 1];
            cp.pad = vec![0, 1, 0];
        }),
        &[&[1, 2, 3, 2, 2]],
    );
    grad_check(
        &conv(|cp| {
            cp.set_num_output(2);
            cp.kernel_size = vec![2];
            cp.set_force_nd_im2col(true);
            cp.pad = vec![1];
            cp.stride = vec![2];
        }),
        &[&[2, 1, 3, 3]],
    );
}

fn error_of(edit: impl FnOnce(&mut ConvolutionParameter), shape: &[usize]) -> String {
    let mut l = layer(&conv(edit));
    setup_error(l.as_mut(), &[crate::Blob::shared(shape)], &[empty()])
}

#[test]
fn bad_parameters_are_clear_errors() {
    let e = error_of(
        |cp| {
            cp.set_num_output(2);
            cp.kernel_size = vec![3];
            cp.set_kernel_h(3);
            cp.set_kernel_w(3);
        },
        &[1, 2, 5, 5],
    );
    assert!(e.contains("either kernel_size or kernel_h/w"), "{e}");
    let e = error_of(
        |cp| {
            cp.set_num_output(2);
            cp.set_group(3);
            cp.kernel_size = vec![3];
        },
        &[1, 4, 5, 5],
    );
    assert!(e.contains("multiple of group"), "{e}");
    let e = error_of(
        |cp| {
            cp.set_num_output(3);
            cp.set_group(2);
            cp.kernel_size = vec![3];
        },
        &[1, 4, 5, 5],
    );
    assert!(e.contains("multiples of group"), "{e}");
    let e = error_of(
        |cp| {
            cp.set_num_output(2);
            cp.kernel_size = vec![3];
            cp.stride = vec![0];
        },
        &[1, 2, 5, 5],
    );
    assert!(e.contains("stride dimensions must be nonzero"), "{e}");
    let e = error_of(
        |cp| {
            cp.set_num_output(2);
            cp.kernel_size = vec![3, 3, 3];
        },
        &[1, 2, 5, 5],
    );
    assert!(e.contains("specified 3 times; 2 spatial dims"), "{e}");
    let e = error_of(
        |cp| {
            cp.set_num_output(2);
            cp.set_kernel_h(3);
            cp.set_kernel_w(3);
        },
        &[1, 2, 5, 5, 5],
    );
    assert!(e.contains("only be used for 2D"), "{e}");
    let e = error_of(
        |cp| {
            cp.set_num_output(2);
            cp.set_kernel_h(3);
        },
        &[1, 2, 5, 5],
    );
    assert!(e.contains("nonzero"), "{e}");
    let e = error_of(|cp| cp.set_num_output(2), &[1, 2, 5, 5]);
    assert!(e.contains("kernel_size must be specified"), "{e}");
    let e = error_of(
        |cp| {
            cp.set_num_output(2);
            cp.kernel_size = vec![7];
        },
        &[1, 2, 5, 5],
    );
    assert!(e.contains("incompatible with kernel extent 7"), "{e}");
    let e = error_of(
        |cp| {
            cp.set_num_output(2);
            cp.kernel_size = vec![1];
            cp.pad = vec![1];
        },
        &[1, 2, 0, 5],
    );
    assert!(e.contains("spatial axis 0 of size 0"), "{e}");
    let e = error_of(|cp| cp.kernel_size = vec![3], &[1, 2, 5, 5]);
    assert!(e.contains("num_output must be positive"), "{e}");
    let e = error_of(
        |cp| {
            cp.set_num_output(2);
            cp.kernel_size = vec![3];
            cp.weight_filler
                .mut_or_insert_default()
                .set_type("nope".into());
        },
        &[1, 2, 5, 5],
    );
    assert!(e.contains("weight_filler") && e.contains("nope"), "{e}");
    // Reshape: a bottom whose channels changed.
    let mut l = layer(&conv(|cp| {
        cp.set_num_output(2);
        cp.kernel_size = vec![3];
    }));
    let t = empty();
    l.setup(&[crate::Blob::shared(&[1, 2, 5, 5])], &[t.clone()])
        .unwrap();
    let e = l
        .reshape(&[crate::Blob::shared(&[1, 3, 5, 5])], &[t])
        .unwrap_err()
        .to_string();
    assert!(e.contains("incompatible with convolution kernel"), "{e}");
}

#[test]
fn conv_on_axis_2_treats_leading_axes_as_batch() {
    // [2, 3, 4, 5] with axis 2: 6 images of 4 channels, 1-D length 5.
    grad_check(
        &conv(|cp| {
            cp.set_axis(2);
            cp.set_num_output(2);
            cp.kernel_size = vec![3];
            cp.pad = vec![1];
        }),
        &[&[2, 3, 4, 5]],
    );
    let mut l = layer(&conv(|cp| {
        cp.set_axis(2);
        cp.set_num_output(2);
        cp.kernel_size = vec![3];
    }));
    let (b, t) = (crate::Blob::shared(&[2, 3, 4, 5]), empty());
    run(l.as_mut(), &[b], &[t.clone()]);
    assert_eq!(t.borrow().shape(), &[2, 3, 2, 3]);
}

#[test]
fn uneven_batch_split_matches_image_by_image() {
    // Batch 3 over the pool's workers must equal three batch-1 passes.
    let p = conv(|cp| {
        cp.set_num_output(4);
        cp.set_group(2);
        cp.kernel_size = vec![3];
        cp.pad = vec![1];
        cp.stride = vec![2];
    });
    matches_image_by_image(&p, [3, 2, 5, 5]);
}

#[test]
fn images_batched_into_one_product_match_image_by_image() {
    // Small outputs put several images side by side in one GEMM (7 images:
    // runs of 4 and 3 on two workers); forward and the bottom diff must be
    // the per-image bits, the weight diff equal to rounding.
    let grouped = |cp: &mut ConvolutionParameter| {
        cp.set_num_output(6);
        cp.set_group(3);
        cp.kernel_size = vec![3];
        cp.pad = vec![1];
        cp.stride = vec![2];
    };
    matches_image_by_image(&conv(grouped), [7, 3, 7, 5]);
    matches_image_by_image(
        &conv(|cp| {
            cp.set_num_output(5);
            cp.kernel_size = vec![1];
        }),
        [7, 4, 3, 3],
    );
    let mut deconv = conv(grouped);
    deconv.set_type("Deconvolution".into());
    matches_image_by_image(&deconv, [7, 3, 4, 3]);
    // Outputs a whole number of kernel tiles wide (8x4, 8x8): the bottom
    // diff's products read each image's output diff rows in place.
    let same = |cp: &mut ConvolutionParameter| {
        cp.set_num_output(6);
        cp.set_group(3);
        cp.kernel_size = vec![3];
        cp.pad = vec![1];
    };
    matches_image_by_image(&conv(same), [7, 3, 8, 4]);
    matches_image_by_image(&conv(same), [5, 6, 8, 8]);
    // Large enough that a batch of one splits im2col/col2im by channel over
    // the pool (the batch-1 side), against whole images per worker.
    let wide = |cp: &mut ConvolutionParameter| {
        cp.set_num_output(4);
        cp.set_group(2);
        cp.kernel_size = vec![3];
        cp.pad = vec![1];
    };
    matches_image_by_image(&conv(wide), [3, 10, 40, 40]);
    // Column buffers too big for L2 are filled and multiplied in slices of
    // output positions (the last one partial) on the workers.
    matches_image_by_image(&conv(wide), [3, 4, 140, 140]);
    let mut wide_deconv = conv(wide);
    wide_deconv.set_type("Deconvolution".into());
    matches_image_by_image(&wide_deconv, [3, 10, 40, 40]);
}

#[test]
fn gradient_with_images_batched_into_one_product() {
    grad_check(
        &conv(|cp| {
            cp.set_num_output(3);
            cp.kernel_size = vec![2];
            cp.stride = vec![1];
        }),
        &[&[5, 2, 3, 3]],
    );
}

#[test]
fn columns_packed_from_the_images_give_the_column_buffers_bits() {
    // The forward packs its GEMM operand straight from the images; the
    // N-D path still writes the column buffer first. Same blocks, same bits:
    // groups, padding, strides, dilation, batched narrow outputs (images
    // meeting inside a packed strip) and AlexNet conv1's stride 4.
    let cases: [(fn(&mut ConvolutionParameter), [usize; 4]); 5] = [
        (conv_a, [3, 4, 9, 8]),
        (
            |cp| {
                cp.set_num_output(7);
                cp.kernel_size = vec![3];
                cp.pad = vec![1];
            },
            [5, 3, 5, 7],
        ),
        (
            |cp| {
                cp.set_num_output(5);
                cp.kernel_size = vec![11];
                cp.stride = vec![4];
                cp.pad = vec![2];
            },
            [2, 3, 63, 59],
        ),
        (
            |cp| {
                cp.set_num_output(6);
                cp.set_group(2);
                cp.kernel_size = vec![5];
                cp.pad = vec![2];
            },
            [1, 4, 27, 27],
        ),
        (
            |cp| {
                cp.set_num_output(3);
                cp.kernel_size = vec![2];
                cp.stride = vec![3];
                cp.dilation = vec![2];
            },
            [9, 2, 6, 5],
        ),
    ];
    for (edit, shape) in cases {
        let implicit = conv(edit);
        let explicit = conv(|cp| {
            edit(cp);
            cp.set_force_nd_im2col(true);
        });
        let b = crate::Blob::shared(&shape);
        fill_uniform(&b, -1.0, 1.0, 3);
        let (mut li, mut le) = (layer(&implicit), layer(&explicit));
        let (ti, te) = (empty(), empty());
        li.setup(&[b.clone()], &[ti.clone()]).unwrap();
        le.setup(&[b.clone()], &[te.clone()]).unwrap();
        for (mine, theirs) in le.blobs().iter().zip(li.blobs()) {
            mine.borrow_mut()
                .data_mut()
                .copy_from_slice(theirs.borrow().data());
        }
        for (l, t) in [(&mut li, &ti), (&mut le, &te)] {
            l.reshape(&[b.clone()], &[t.clone()]).unwrap();
            l.forward(&[b.clone()], &[t.clone()]).unwrap();
        }
        {
            let (ti, te) = (ti.borrow(), te.borrow());
            assert!(
                ti.data()
                    .iter()
                    .zip(te.data())
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "{shape:?}: implicit columns differ from the column buffer's"
            );
        }
        // The weight gradient packs the transposed columns from the images
        // too, or (these few output channels, vertical stride 1) takes dot
        // products over shifted planes. Its sum over positions groups terms
        // differently, so it agrees to rounding, not bits; the packing itself
        // is compared bit for bit in im2col's tests.
        let mut grads = Vec::new();
        for (l, t) in [(&mut li, &ti), (&mut le, &te)] {
            t.borrow_mut()
                .diff_mut()
                .iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = ((i * 7) % 11) as f32 / 5.0 - 1.0);
            l.backward(&[t.clone()], &[true], &[b.clone()]).unwrap();
            grads.push(l.blobs()[0].borrow().diff().to_vec());
        }
        for (i, (x, y)) in grads[0].iter().zip(&grads[1]).enumerate() {
            let tol = 1e-5 * y.abs().max(1.0);
            assert!(
                (x - y).abs() <= tol,
                "{shape:?}: weight diff {i}: implicit {x}, column buffer {y}"
            );
        }
    }
}

/// Runs `p` on a batch of `shape` and checks every image against a batch-1
/// layer with the same weights.
fn matches_image_by_image(p: &LayerParameter, shape: [usize; 4]) {
    matches_image_by_image_within(p, shape, false)
}

/// `matches_image_by_image`, where `winograd` says the batch runs as
/// Winograd and single images directly (too few for its lanes): outputs
/// and bottom diffs then agree within 1e-5 of the largest magnitude, the
/// weight diff within 1e-5 relative.
fn matches_image_by_image_within(p: &LayerParameter, shape: [usize; 4], winograd: bool) {
    let near = |x: &[f32], y: &[f32], what: &str| {
        if !winograd {
            return assert_eq!(x, y, "{what}");
        }
        let scale = y.iter().fold(1f32, |m, v| m.max(v.abs()));
        for (i, (a, b)) in x.iter().zip(y).enumerate() {
            assert!((a - b).abs() <= 1e-5 * scale, "{what}[{i}]: {a} vs {b}");
        }
    };
    let wdiff_tol = if winograd { 1e-5 } else { 1e-6 };
    let num = shape[0];
    let (b, t) = (crate::Blob::shared(&shape), empty());
    fill_uniform(&b, -1.0, 1.0, 8);
    let mut whole = layer(p);
    run(
        whole.as_mut(),
        std::slice::from_ref(&b),
        std::slice::from_ref(&t),
    );
    t.borrow_mut()
        .diff_mut()
        .iter_mut()
        .enumerate()
        .for_each(|(i, v)| *v = (i % 5) as f32 - 2.0);
    whole
        .backward(std::slice::from_ref(&t), &[true], std::slice::from_ref(&b))
        .unwrap();

    let mut single = layer(p);
    let (bottom_dim, top_dim) = (b.borrow().count() / num, t.borrow().count() / num);
    let (b1, t1) = (
        crate::Blob::shared(&[1, shape[1], shape[2], shape[3]]),
        empty(),
    );
    single
        .setup(std::slice::from_ref(&b1), std::slice::from_ref(&t1))
        .unwrap();
    for (mine, theirs) in single.blobs().iter().zip(whole.blobs()) {
        mine.borrow_mut()
            .data_mut()
            .copy_from_slice(theirs.borrow().data());
    }
    let mut wdiff_sum = vec![0.0; whole.blobs()[0].borrow().count()];
    for n in 0..num {
        b1.borrow_mut()
            .data_mut()
            .copy_from_slice(&b.borrow().data()[n * bottom_dim..(n + 1) * bottom_dim]);
        single
            .reshape(std::slice::from_ref(&b1), std::slice::from_ref(&t1))
            .unwrap();
        single
            .forward(std::slice::from_ref(&b1), std::slice::from_ref(&t1))
            .unwrap();
        near(
            t1.borrow().data(),
            &t.borrow().data()[n * top_dim..(n + 1) * top_dim],
            "output",
        );
        t1.borrow_mut()
            .diff_mut()
            .copy_from_slice(&t.borrow().diff()[n * top_dim..(n + 1) * top_dim]);
        single.blobs()[0].borrow_mut().diff_mut().fill(0.0);
        single
            .backward(
                std::slice::from_ref(&t1),
                &[true],
                std::slice::from_ref(&b1),
            )
            .unwrap();
        for (s, d) in wdiff_sum.iter_mut().zip(single.blobs()[0].borrow().diff()) {
            *s += d;
        }
        let whole_b = b.borrow();
        let bd = &whole_b.diff()[n * bottom_dim..(n + 1) * bottom_dim];
        near(b1.borrow().diff(), bd, "bottom diff");
    }
    // Sums of thousands of terms in another order (some cancelling): equal
    // to f32 rounding, as a relative error over the whole diff.
    let whole_diff = whole.blobs()[0].borrow().diff().to_vec();
    let (mut err, mut norm) = (0f64, 0f64);
    for (x, y) in wdiff_sum.iter().zip(&whole_diff) {
        err += ((x - y) as f64).powi(2);
        norm += (*y as f64).powi(2);
    }
    assert!(
        (err / norm).sqrt() < wdiff_tol,
        "relative error {}",
        (err / norm).sqrt()
    );
}

#[test]
fn weights_written_between_passes_are_packed_again() {
    // Packed weights are kept while the weight blob's data is unchanged;
    // any write through data_mut must be seen by the next pass.
    let p = conv(|cp| {
        cp.set_num_output(3);
        cp.kernel_size = vec![2];
        cp.set_bias_term(false);
    });
    let (b, t) = (crate::Blob::shared(&[2, 2, 4, 4]), empty());
    fill_uniform(&b, -1.0, 1.0, 21);
    let mut l = layer(&p);
    run(
        l.as_mut(),
        std::slice::from_ref(&b),
        std::slice::from_ref(&t),
    );
    let first = t.borrow().data().to_vec();
    l.forward(std::slice::from_ref(&b), std::slice::from_ref(&t))
        .unwrap();
    assert_eq!(t.borrow().data(), &first[..]);
    l.blobs()[0]
        .borrow_mut()
        .data_mut()
        .iter_mut()
        .for_each(|w| *w *= 2.0);
    l.forward(std::slice::from_ref(&b), std::slice::from_ref(&t))
        .unwrap();
    for (x, y) in t.borrow().data().iter().zip(&first) {
        assert_eq!(*x, 2.0 * y);
    }
}

#[test]
fn winograd_convolutions_pass_the_gradient_check_and_match_direct_images() {
    // 5×5 kernels with 8 or more channels on each side run as Winograd
    // F(4×4, 5×5) (`ConvGemm::winograd`); its own tests compare it with the
    // direct sums, these check the layer around it: padding, partial edge
    // tiles, 19 images (chunks of 16 and 3 over the workers, or 16 in one
    // worker's lanes) against one image at a time (run directly).
    // Weights of a trained net's scale (xavier): the transforms' rounding
    // (~3e-6 of the largest output) stays below what the numeric gradient
    // resolves; with N(0, 1) weights and 200 taps it does not.
    let p = conv(|cp| {
        cp.set_num_output(9);
        cp.kernel_size = vec![5];
        cp.pad = vec![2];
        cp.weight_filler
            .mut_or_insert_default()
            .set_type("xavier".into());
    });
    let geom = crate::backend::ConvGeometry {
        channels: 8,
        input: vec![9, 6],
        kernel: vec![5, 5],
        pad: vec![2, 2],
        stride: vec![1, 1],
        dilation: vec![1, 1],
    };
    let gemm = super::conv_base::ConvGemm {
        geom,
        group: 1,
        out_channels: 9,
        kernel_dim: 8 * 25,
        out_spatial: 9 * 6,
        is_1x1: false,
        force_nd: false,
    };
    if std::env::var("CREMA_WINOGRAD").as_deref() != Ok("0") {
        assert!(
            gemm.winograd().is_some(),
            "this geometry should run as Winograd"
        );
    }
    // The output is linear in each input and weight, so ½Σtop² is
    // quadratic and its central difference exact at any step: a step of
    // 0.25 keeps the transforms' f32 rounding out of the numeric gradient.
    crate::rng::set_random_seed(1701);
    let (b, t) = (crate::Blob::shared(&[2, 8, 6, 7]), empty());
    fill_uniform(&b, -1.0, 1.0, 10);
    GradientChecker::new(0.25, 1e-3).check_gradient(layer(&p).as_mut(), &[b], &[t], None);
    matches_image_by_image_within(&p, [19, 8, 9, 6], true);
}
