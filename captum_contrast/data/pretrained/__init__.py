"""Real pretrained networks that ship inside packages, ported to torch, and real photos.

Nothing is downloaded, and nothing beyond torch is needed to load them: every network's
weights are vendored under ``captum_contrast/data/weights/`` next to their upstream licences.

Classifiers (``(B, C)`` logits):

- :func:`emotion_model`: the facial-expression mini-Xception (Arriaga et al., 2017) shipped
  by ``fer`` as Keras weights (MIT): 64x64 grey faces, 7 emotions.
- :func:`face_model`: MTCNN's output network ONet (Zhang et al., 2016) shipped by
  ``facenet-pytorch`` (MIT): a binary face / non-face classifier on 48x48 RGB crops.
- :func:`text_direction_model`: PaddleOCR's text-direction classifier (0 vs 180 degrees)
  shipped as ONNX by ``rapidocr-onnxruntime`` (Apache-2.0).

Beyond classification (from the same ``rapidocr-onnxruntime`` wheel):

- :func:`text_detection_model`: PP-OCRv4's DB text detector, a **dense** output: ``(B, 2, H,
  W)`` logits for (background, text) at every pixel; explain a region of it with
  ``captum_contrast.scores.RegionScores``.
- :func:`text_recognition_model`: PP-OCRv4's CRNN-style recogniser with a CTC head, a
  **sequence** output: ``(B, T, 6625)`` logits over characters at each time step; explain one
  step with ``captum_contrast.scores.StepScores`` and read it with :func:`ctc_greedy_decode`.

Each loader returns a :class:`PretrainedModel`: the eval-mode model (logits out), its
``preprocess`` (one ``uint8`` image as scikit-image gives it -> a model-ready ``(C, H, W)``
tensor), its class names and the dotted name of the layer to explain. The ports are checked
against their source runtimes in ``tests/data/``; the converters that made the vendored files
(:func:`convert_fer_weights`, :func:`convert_ocr_network`) need the ``[examples]`` extra.

Example:
    >>> net = text_recognition_model()
    >>> line = net.preprocess(page_line())
    >>> ctc_greedy_decode(net.model(line[None]), net.class_names)[0].text
    'Let us first determine markers of the coins and the'
"""

from captum_contrast.data.pretrained._common import WEIGHTS_DIR, PretrainedModel, source_file
from captum_contrast.data.pretrained.emotions import (
    EMOTIONS,
    MiniXception,
    convert_fer_weights,
    emotion_model,
    emotion_preprocess,
)
from captum_contrast.data.pretrained.faces import (
    FACE_CLASSES,
    ONet,
    astronaut_face,
    face_model,
    face_preprocess,
)
from captum_contrast.data.pretrained.ocr import (
    DETECTION_CLASSES,
    PAGE_LINES,
    TEXT_DIRECTIONS,
    BinaryMapLogits,
    Reading,
    convert_ocr_network,
    ctc_greedy_decode,
    page_line,
    text_detection_model,
    text_detection_preprocess,
    text_direction_model,
    text_direction_preprocess,
    text_recognition_model,
    text_recognition_preprocess,
)

__all__ = [
    "DETECTION_CLASSES",
    "EMOTIONS",
    "FACE_CLASSES",
    "PAGE_LINES",
    "TEXT_DIRECTIONS",
    "WEIGHTS_DIR",
    "BinaryMapLogits",
    "MiniXception",
    "ONet",
    "PretrainedModel",
    "Reading",
    "astronaut_face",
    "convert_fer_weights",
    "convert_ocr_network",
    "ctc_greedy_decode",
    "emotion_model",
    "emotion_preprocess",
    "face_model",
    "face_preprocess",
    "page_line",
    "source_file",
    "text_detection_model",
    "text_detection_preprocess",
    "text_direction_model",
    "text_direction_preprocess",
    "text_recognition_model",
    "text_recognition_preprocess",
]
