"""caffe.Detector on a net whose output is each channel's mean of the input,
so every prediction can be recomputed with numpy from the image pixels."""
import numpy as np
import pytest

import caffe

from conftest import need

# Global average pooling over an 8x8 input: prediction[c] = mean of channel c.
DEPLOY = """
name: "channel_means"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 4 dim: 3 dim: 8 dim: 8 } } }
layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" pooling_param { pool: AVE kernel_size: 8 } }
layer { name: "flat" type: "Flatten" bottom: "pool" top: "means" }
"""

MEAN = np.array([100.0, 110.0, 120.0], dtype=np.float32)  # BGR, in [0, 255] space


@pytest.fixture
def detector(tmp_path):
    model = tmp_path / "deploy.prototxt"
    model.write_text(DEPLOY)
    return caffe.Detector(str(model), None, mean=MEAN, raw_scale=255, channel_swap=(2, 1, 0))


def reference(image, window):
    """The prediction computed by hand: crop, 2x2 box average when the crop is
    16x16 (pixel-centre bilinear halving), RGB->BGR, x255, minus the mean."""
    y0, x0, y1, x1 = window
    crop = image[y0:y1, x0:x1].astype(np.float64)
    if crop.shape[:2] == (16, 16):
        crop = crop.reshape(8, 2, 8, 2, 3).mean(axis=(1, 3))
    assert crop.shape[:2] == (8, 8)
    return (crop[:, :, ::-1] * 255).mean(axis=(0, 1)) - MEAN


def test_detect_windows_predicts_each_window(detector):
    cat = str(need("images", "cat.jpg"))
    image = caffe.io.load_image(cat)
    windows = [(0, 0, 8, 8), (100, 120, 108, 128), (40, 60, 56, 76), (10, 10, 18, 18), (200, 100, 216, 116)]
    detections = detector.detect_windows([(cat, windows[:3]), (cat, windows[3:])])
    assert [d["filename"] for d in detections] == [cat] * 5
    assert [tuple(d["window"]) for d in detections] == windows
    for d, w in zip(detections, windows):
        np.testing.assert_allclose(d["prediction"], reference(image, w), rtol=1e-4, atol=1e-3)


def test_crop_without_context_is_the_window(detector):
    im = np.arange(20 * 20 * 3, dtype=np.float32).reshape(20, 20, 3)
    np.testing.assert_array_equal(detector.crop(im, np.array([2, 3, 9, 12])), im[2:9, 3:12])


def test_context_pad_enlarges_the_box_and_fills_outside_with_the_mean(detector):
    detector.configure_crop(2)
    assert list(detector.crop_dims) == [8, 8, 3]
    # The mean back in image space: channel order undone, raw scale divided out.
    np.testing.assert_allclose(detector.crop_mean.reshape(3), MEAN[::-1] / 255)
    im = np.random.RandomState(0).rand(32, 32, 3).astype(np.float32)
    # By hand: scale = 8 / (8 - 2*2) = 2; window 10..13 has half size 2 and
    # centre 12, so the box is 12 -+ 4 = 8..16, 9 pixels seen as 8: the crop
    # is im[8:16, 8:16] unresized.
    np.testing.assert_allclose(detector.crop(im, np.array([10, 10, 13, 13])), im[8:16, 8:16], atol=1e-6)
    # At the corner: box -2..6 reaches 2 rows/cols out (round(2 * 8/9) = 2 of
    # padding), the clipped 7 pixels keep round(7 * 8/9) = 6: im[0:6, 0:6]
    # lands at [2:8, 2:8] and the rest is the mean.
    out = detector.crop(im, np.array([0, 0, 3, 3]))
    np.testing.assert_allclose(out[2:8, 2:8], im[0:6, 0:6], atol=1e-6)
    np.testing.assert_allclose(out[:2], np.broadcast_to(MEAN[::-1] / 255, (2, 8, 3)), rtol=1e-6)
    np.testing.assert_allclose(out[:, :2], np.broadcast_to(MEAN[::-1] / 255, (8, 2, 3)), rtol=1e-6)
    detector.configure_crop(None)
    assert detector.context_pad is None


def test_selective_search_without_its_package_raises_a_clear_error(detector):
    with pytest.raises(ImportError, match="selective_search_ijcv_with_python"):
        detector.detect_selective_search(["cat.jpg"])
