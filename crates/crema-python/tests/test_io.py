"""caffe.io: array <-> BlobProto/Datum conversions, oversample, Transformer."""
import numpy as np
import pytest

import caffe
from caffe.proto import caffe_pb2



def test_blobproto_round_trip_through_serialized_bytes():
    arr = np.random.RandomState(0).randn(2, 3, 4).astype(np.float32)
    diff = -arr
    msg = caffe_pb2.BlobProto.FromString(caffe.io.array_to_blobproto(arr, diff).SerializeToString())
    assert list(msg.shape.dim) == [2, 3, 4]
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(msg), arr)
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(msg, return_diff=True), diff)
    with pytest.raises(ValueError):
        caffe.io.array_to_blobproto(arr, diff[:1])


def test_legacy_blobproto_uses_num_channels_height_width():
    blob = caffe_pb2.BlobProto(num=1, channels=2, height=1, width=3, data=[1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(blob), np.arange(1, 7).reshape(1, 2, 1, 3))


def test_blobprotovector_round_trip():
    arrays = [np.ones((2, 2)), np.arange(5.0)]
    back = caffe.io.blobprotovector_str_to_arraylist(caffe.io.arraylist_to_blobprotovector_str(arrays))
    assert len(back) == 2
    for a, b in zip(arrays, back):
        np.testing.assert_array_equal(a, b)


def test_caffemodel_blob_reads_as_the_net_param(lenet):
    model = caffe_pb2.NetParameter.FromString(lenet[1].read_bytes())
    conv1 = next(l for l in model.layer if l.name == "conv1")
    net = caffe.Net(str(lenet[0]), caffe.TEST, weights=str(lenet[1]))
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(conv1.blobs[0]).reshape(20, 1, 5, 5),
                                  net.params["conv1"][0].data)


def test_datum_uint8_and_float():
    img = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    datum = caffe.io.array_to_datum(img, label=7)
    assert datum.data == img.tobytes() and (datum.channels, datum.height, datum.width, datum.label) == (2, 3, 4, 7)
    np.testing.assert_array_equal(caffe.io.datum_to_array(caffe_pb2.Datum.FromString(datum.SerializeToString())), img)
    fimg = img.astype(np.float32) / 3
    fdatum = caffe.io.array_to_datum(fimg)
    assert len(fdatum.data) == 0 and not fdatum.HasField("label")
    np.testing.assert_allclose(caffe.io.datum_to_array(fdatum), fimg, rtol=1e-6)
    with pytest.raises(ValueError):
        caffe.io.array_to_datum(np.zeros((2, 2)))


def test_oversample_corners_center_and_mirrors():
    im = np.arange(5 * 6 * 2, dtype=np.float32).reshape(5, 6, 2)
    crops = caffe.io.oversample([im], (3, 4))
    assert crops.shape == (10, 3, 4, 2)
    expected = [im[0:3, 0:4], im[0:3, 2:6], im[2:5, 0:4], im[2:5, 2:6], im[1:4, 1:5]]
    for i, e in enumerate(expected):
        np.testing.assert_array_equal(crops[i], e)
        np.testing.assert_array_equal(crops[5 + i], e[:, ::-1])


def test_transformer_preprocess_and_deprocess():
    t = caffe.io.Transformer({"data": (1, 3, 4, 5)})
    t.set_transpose("data", (2, 0, 1))
    t.set_channel_swap("data", (2, 1, 0))
    t.set_raw_scale("data", 255)
    mean = np.array([10.0, 20.0, 30.0])
    t.set_mean("data", mean)
    t.set_input_scale("data", 0.5)
    im = np.random.RandomState(1).rand(4, 5, 3).astype(np.float32)
    out = t.preprocess("data", im)
    expected = (im.transpose(2, 0, 1)[::-1] * 255 - mean[:, None, None]) * 0.5
    assert out.dtype == np.float32 and out.shape == (3, 4, 5)
    np.testing.assert_allclose(out, expected, rtol=1e-5)
    np.testing.assert_allclose(t.deprocess("data", out), im, rtol=1e-5, atol=1e-6)
    # Another size is resized first (bilinear, pixel centres): an 8 x 10 image
    # halves to the input's 4 x 5 by averaging 2 x 2 blocks.
    big = np.random.RandomState(2).rand(8, 10, 3).astype(np.float32)
    halved = big.reshape(4, 2, 5, 2, 3).mean(axis=(1, 3))
    expected_big = (halved.transpose(2, 0, 1)[::-1] * 255 - mean[:, None, None]) * 0.5
    np.testing.assert_allclose(t.preprocess("data", big), expected_big, rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="one H x W x K image"):
        t.preprocess("data", np.zeros((2, 4, 5, 3)))
    with pytest.raises(ValueError):
        t.set_mean("data", np.zeros(4))
    with pytest.raises(ValueError):
        t.set_channel_swap("data", (1, 0))
    with pytest.raises(KeyError):
        t.preprocess("label", im)


def test_transformer_mean_image():
    t = caffe.io.Transformer({"data": (1, 1, 2, 2)})
    t.set_transpose("data", (2, 0, 1))
    t.set_mean("data", np.array([[1.0, 2.0], [3.0, 4.0]]))
    np.testing.assert_array_equal(t.preprocess("data", np.ones((2, 2, 1))), np.array([[[0, -1], [-2, -3]]]))


def test_load_image_png_equals_the_cifar_record():
    from conftest import need
    png = need("cifar10", "png_sources", "foolbox_test_first20", "cifar10_00_3.png")
    record = need("cifar10", "test_batch_first20.bin").read_bytes()[:3073]
    assert record[0] == 3  # the label in the file name
    rgb = np.frombuffer(record[1:], dtype=np.uint8).reshape(3, 32, 32).transpose(1, 2, 0)
    img = caffe.io.load_image(str(png))
    assert img.shape == (32, 32, 3) and img.dtype == np.float32
    np.testing.assert_allclose(img, rgb / 255.0, atol=1e-7)
    gray = caffe.io.load_image(str(png), color=False)
    assert gray.shape == (32, 32, 1)
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    luma = (r * 4899 + g * 9617 + b * 1868 + (1 << 13)) >> 14  # BT.601 in 14-bit fixed point
    np.testing.assert_allclose(gray[..., 0], luma / 255.0, atol=1e-7)


def test_load_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        caffe.io.load_image(str(tmp_path / "absent.png"))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(caffe.CaffeError, match="bad.png"):
        caffe.io.load_image(str(bad))


def test_resize_bilinear_is_exact_on_a_linear_ramp():
    h, w, nh, nw = 6, 8, 9, 5
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    im = np.stack([2 * yy + 3 * xx + 1, -yy], axis=-1)
    out = caffe.io.resize_image(im, (nh, nw))
    sy = np.clip((np.arange(nh) + 0.5) * h / nh - 0.5, 0, h - 1)[:, None]
    sx = np.clip((np.arange(nw) + 0.5) * w / nw - 0.5, 0, w - 1)[None, :]
    np.testing.assert_allclose(out[..., 0], 2 * sy + 3 * sx + 1, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[..., 1], -sy + 0 * sx, atol=1e-5)


def test_resize_nearest_upsamples_by_repeating():
    im = np.arange(12, dtype=np.float32).reshape(3, 4, 1)
    out = caffe.io.resize_image(im, (6, 12), interp_order=0)
    np.testing.assert_array_equal(out, np.repeat(np.repeat(im, 2, axis=0), 3, axis=1))
    with pytest.raises(ValueError):
        caffe.io.resize_image(im, (5, 5), interp_order=3)
