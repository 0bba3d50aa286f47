"""PaddleOCR's detector and recogniser beyond classification: faithful ports, sensible reads.

The ports are checked against onnxruntime on the wheel's own ONNX files (skipped, with the
reason, where ``rapidocr-onnxruntime`` or ``onnxruntime`` is absent); the readings and maps on
scikit-image's ``page`` scan pin the vendored weights and the preprocessing.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from skimage import data

from captum_contrast._model import resolve_layer
from captum_contrast.data.pretrained import (
    DETECTION_CLASSES,
    BinaryMapLogits,
    convert_ocr_network,
    ctc_greedy_decode,
    page_line,
    source_file,
    text_detection_model,
    text_recognition_model,
)
from captum_contrast.data.pretrained._common import WEIGHTS_DIR
from captum_contrast.data.pretrained.ocr import (
    NETWORKS,
    PAGE_LINES,
    TEXT_DETECTION_ONNX,
    TEXT_RECOGNITION_ONNX,
)

PAGE_TEXT = (
    "Region-based segmentation",
    "Let us first determine markers of the coins and the",
    "background.Thesemarkers are pixels thatwe can label",  # rapidocr reads the same
    "unambiguously as either object or background. Here,",
    "themarkers arefound at the two extreme parts of the",
    "histogramof greyvalues:",
    "ma markers np.zeros_like（coins)",  # ">>> markers = np.zeros_like(coins)", cut by the edge
)


@pytest.fixture(scope="module")
def detector():
    return text_detection_model()


@pytest.fixture(scope="module")
def recogniser():
    return text_recognition_model()


def _onnxruntime_session(onnx_file: str):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime checks the port")
    if importlib.util.find_spec("rapidocr_onnxruntime") is None:
        pytest.skip("rapidocr-onnxruntime (the source of the ONNX files) is not installed")
    return ort.InferenceSession(str(source_file("rapidocr_onnxruntime", onnx_file)))


def _hooked_shape(net, x: torch.Tensor) -> tuple[int, ...]:
    found = {}

    def record(module, inputs, output) -> None:
        found["shape"] = tuple(output.shape)

    handle = resolve_layer(net.model, net.layer).register_forward_hook(record)
    try:
        with torch.no_grad():
            net.model(x)
    finally:
        handle.remove()
    return found["shape"]


def test_detector_port_matches_onnxruntime(detector) -> None:
    session = _onnxruntime_session(TEXT_DETECTION_ONNX)
    random = torch.rand(2, 3, 96, 160, generator=torch.Generator().manual_seed(0)) * 2 - 1
    page = detector.preprocess(data.page())[None]
    for x in (random, page):
        expected = session.run(None, {"x": x.numpy()})[0]  # DB's probability map (B, 1, H, W)
        with torch.no_grad():
            logits = detector.model(x)
        assert logits.shape == (x.shape[0], 2, *x.shape[-2:])
        np.testing.assert_allclose(logits.softmax(1)[:, 1:].numpy(), expected, atol=5e-5)
        assert (logits[:, 0] == 0).all()  # background is the constant reference logit


def test_recogniser_port_matches_onnxruntime_for_any_batch_and_width(recogniser) -> None:
    session = _onnxruntime_session(TEXT_RECOGNITION_ONNX)
    generator = torch.Generator().manual_seed(1)
    wide_line = recogniser.preprocess(page_line(1))[None]  # 768 px wide: 96 steps
    for x in (torch.rand(3, 3, 48, 320, generator=generator) * 2 - 1, wide_line):
        expected = session.run(None, {"x": x.numpy()})[0]  # softmax over the alphabet
        with torch.no_grad():
            logits = recogniser.model(x)
        assert logits.shape == (x.shape[0], x.shape[-1] // 8, len(recogniser.class_names))
        np.testing.assert_allclose(logits.softmax(-1).numpy(), expected, atol=1e-5)
        assert not torch.allclose(logits.softmax(-1), logits)  # logits, not probabilities


@pytest.mark.parametrize("onnx_file", sorted(NETWORKS))
def test_vendored_graphs_equal_a_fresh_conversion_of_the_wheel(onnx_file: str) -> None:
    pytest.importorskip("onnx", reason="converting needs onnx")
    if importlib.util.find_spec("rapidocr_onnxruntime") is None:
        pytest.skip("rapidocr-onnxruntime (the source of the ONNX files) is not installed")
    fresh = convert_ocr_network(onnx_file)
    vendored = torch.load(WEIGHTS_DIR / NETWORKS[onnx_file][0], weights_only=True)
    assert {key: vendored[key] for key in ("inputs", "outputs", "nodes", "metadata")} == {
        key: fresh[key] for key in ("inputs", "outputs", "nodes", "metadata")
    }
    assert vendored["tensors"].keys() == fresh["tensors"].keys()
    assert all(torch.equal(vendored["tensors"][k], fresh["tensors"][k]) for k in fresh["tensors"])


@pytest.mark.parametrize("index", range(len(PAGE_LINES)))
def test_recogniser_reads_the_lines_of_a_scanned_page(recogniser, index: int) -> None:
    line = recogniser.preprocess(page_line(index))[None]
    with torch.no_grad():
        reading = ctc_greedy_decode(recogniser.model(line), recogniser.class_names)[0]
    assert reading.text == PAGE_TEXT[index]
    assert len(reading.steps) == len(reading.text)
    assert list(reading.steps) == sorted(set(reading.steps))


def test_recogniser_alphabet_is_rapidocrs(recogniser) -> None:
    names = recogniser.class_names
    assert len(names) == 6625 and names[0] == "blank" and names[-1] == " "
    assert names.index("L") == 3506 and names.index("e") == 3332  # pinned dictionary order
    assert _hooked_shape(recogniser, torch.zeros(1, 3, 48, 320)) == (1, 480, 3, 80)


def test_detector_finds_the_printed_lines_and_not_the_gaps(detector) -> None:
    image = data.page()  # 191 x 384 -> 192 x 384: rows map one to one (to a pixel)
    x = detector.preprocess(image)[None]
    assert x.shape[-2:] == (192, 384)
    with torch.no_grad():
        text = detector.model(x).softmax(1)[0, 1]
    assert detector.class_names == DETECTION_CLASSES
    line_core = text[56:60, 10:370]  # the middle rows of "Let us first determine ..."
    gap = text[30:50, 10:370]  # between the title and that line
    margin = text[:, 380:]  # right of every line
    assert line_core.mean() > 0.9 and gap.max() < 0.3 and margin.max() < 0.3
    assert _hooked_shape(detector, x) == (1, 96, 48, 96)  # the neck, a quarter of the input


def test_binary_map_logits_refuses_a_multi_channel_map() -> None:
    with pytest.raises(ValueError, match=r"expected a \(B, 1, \.\.\.\) logit map"):
        BinaryMapLogits(torch.nn.Identity())(torch.zeros(1, 2, 3, 3))


def test_ctc_greedy_decode_merges_repeats_and_drops_blanks() -> None:
    alphabet = ("blank", "a", "b")
    # steps: b b - b a a - - a  ->  "b", "b" (blank separates), "a", "a" (blank separates)
    best = torch.tensor([[2, 2, 0, 2, 1, 1, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0, 0, 0]])
    scores = torch.nn.functional.one_hot(best, 3).float() * 5 - 1  # argmax is `best`
    readings = ctc_greedy_decode(scores, alphabet)
    assert readings[0].text == "bbaa" and readings[0].steps == (0, 3, 4, 8)
    assert readings[1].text == "" and readings[1].steps == ()
    with pytest.raises(ValueError, match=r"`logits` must be \(B, T, 3\)"):
        ctc_greedy_decode(scores[0], alphabet)
    with pytest.raises(ValueError, match=r"`logits` must be \(B, T, 4\)"):
        ctc_greedy_decode(scores, ("blank", "a", "b", "c"))


def test_page_line_refuses_an_index_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"`index` must be in 0\.\.6, got 7"):
        page_line(7)
