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


def cifar_records():
    """The 200 CIFAR-10 train records: labels and H x W x 3 RGB images in
    [0, 1], and the per-pixel mean of the records (C x H x W, 0..255), which
    is how the reference count of Caffe was made."""
    raw = np.frombuffer(need("cifar10", "data_batch_1_first200.bin").read_bytes(), dtype=np.uint8)
    records = raw.reshape(200, 1 + 3072)
    labels = records[:, 0]
    planes = records[:, 1:].reshape(200, 3, 32, 32).astype(np.float64)
    return labels, planes.transpose(0, 2, 3, 1) / 255.0, planes.mean(axis=0)


def test_cifar10_quick_classifies_the_train_records_like_caffe():
    models = ("models", "cifar10_quick_v1_everpeace")
    labels, images, mean = cifar_records()
    clf = caffe.Classifier(str(need(*models, "cifar10_quick.prototxt")),
                           str(need(*models, "cifar10_quick_iter_4000.caffemodel")),
                           image_dims=(32, 32), mean=mean, raw_scale=255.0)
    scores = clf.predict(list(images), oversample=False)
    correct = int((scores.argmax(axis=1) == labels).sum())
    # BVLC Caffe scores 142 of these 200 records with this model.
    assert abs(correct - 142) <= 2, correct
