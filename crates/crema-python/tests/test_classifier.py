"""caffe.Classifier on the trained LeNet with MNIST digits."""
import numpy as np

import caffe

from conftest import need, read_idx


def test_classifier_scores_equal_the_net_on_the_same_inputs(lenet):
    images = read_idx(need("mnist", "t10k-images-idx3-ubyte"))[:40].astype(np.float32)
    labels = read_idx(need("mnist", "t10k-labels-idx1-ubyte"))[:40]
    clf = caffe.Classifier(str(lenet[0]), str(lenet[1]), raw_scale=255.0, input_scale=0.00390625)
    inputs = [im[:, :, None] / 255.0 for im in images]  # load_image's [0, 1] floats
    ref = caffe.Net(str(lenet[0]), caffe.TEST, weights=str(lenet[1]))
    ref.blobs["data"].reshape(40, 1, 28, 28)
    ref.reshape()
    plain = ref.forward(data=images[:, None] * 0.00390625)["prob"].copy()
    mirrored = ref.forward(data=images[:, None, :, ::-1] * 0.00390625)["prob"].copy()

    center = clf.predict(inputs, oversample=False)
    assert center.shape == (40, 10)
    np.testing.assert_allclose(center, plain, rtol=1e-4, atol=1e-6)
    assert (center.argmax(1) == labels).mean() >= 0.95
    # 28x28 crops of a 28x28 image: five are the image, five its mirror.
    np.testing.assert_allclose(clf.predict(inputs), (plain + mirrored) / 2, rtol=1e-4, atol=1e-6)


def test_classifier_resizes_to_image_dims(lenet):
    clf = caffe.Classifier(str(lenet[0]), str(lenet[1]), image_dims=(56, 56))
    assert list(clf.image_dims) == [56, 56] and list(clf.crop_dims) == [28, 28]
    digit = read_idx(need("mnist", "t10k-images-idx3-ubyte"))[0].astype(np.float32) / 256
    big = np.repeat(np.repeat(digit, 2, axis=0), 2, axis=1)[:, :, None]
    scores = clf.predict([big], oversample=False)
    expected = clf.forward(data=caffe.io.resize_image(big, (56, 56))[14:42, 14:42].transpose(2, 0, 1)[None]
                           .repeat(64, axis=0))["prob"][0]
    np.testing.assert_allclose(scores[0], expected, rtol=1e-4, atol=1e-6)
