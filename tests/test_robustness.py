"""No silent wrong answer: bad inputs give a clear error naming the mistake (a table across
the API, the metrics, the losses and the command line), and the edge cases that used to
give plausible numbers give the right answer or NaN with a warning."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest
import torch
from captum.attr import LayerGradCam
from torch import nn
from torch.utils.checkpoint import checkpoint

from captum_contrast import ContrastGradCAM, DifferenceSalience, FinerCAM, MinMaxCAM, OptiCAM
from captum_contrast.app.cli import main
from captum_contrast.metrics import (
    AverageDrop,
    AverageDropOfOthers,
    AverageGain,
    AverageIncrease,
    AverageRetention,
    AverageRetentionOfOthers,
    ConfidenceDrop,
    Deletion,
    Insertion,
    MassOnObject,
    MultiLabelAverageDrop,
    MultiLabelIncreaseInConfidence,
)
from captum_contrast.training import (
    ContrastSalienceLoss,
    CYBORGLoss,
    DifferenceSalienceLoss,
    PerClassSalienceLoss,
)
from tests.helpers import TwoConvNet

torch.manual_seed(0)
NET = TwoConvNet(inplace=False).eval()
X = torch.rand(3, 3, 8, 8)
RNG = np.random.default_rng(0)
XB, YB, AB = (
    RNG.random((3, 3, 8, 8), dtype=np.float32),
    np.array([0, 1, 2]),
    RNG.random((3, 1, 4, 4)),
)
HEAD = nn.Linear(4, 2)
LOGITS, FEATURES, LABELS = torch.randn(3, 2), torch.rand(3, 4, 4, 4), torch.tensor([0, 1, 1])
HUMAN = torch.rand(3, 8, 8)


def _with(tensor: torch.Tensor, value: float) -> torch.Tensor:
    changed = tensor.clone()
    changed.view(-1)[5] = value
    return changed


class DictModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = TwoConvNet(inplace=False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.net(x)}


def _inference_mode_call() -> None:
    with torch.inference_mode():
        ContrastGradCAM(NET, NET.conv2).attribute(X, 1)


# (call, exception type, message fragment)
BAD_INPUTS: dict[str, tuple[Callable[[], object], type[Exception], str]] = {
    # the API
    "inf input": (
        lambda: ContrastGradCAM(NET, NET.conv2).attribute(_with(X, np.inf), 1),
        ValueError,
        "infinite",
    ),
    "-inf input": (
        lambda: MinMaxCAM(NET, NET.conv2).attribute(_with(X, -np.inf), 1),
        ValueError,
        "infinite",
    ),
    "nan input": (
        lambda: OptiCAM(NET, NET.conv2).attribute(_with(X, np.nan), 1),
        ValueError,
        "NaN",
    ),
    "inf input opti": (
        lambda: OptiCAM(NET, NET.conv2).attribute(_with(X, np.inf), 1),
        ValueError,
        "infinite",
    ),
    "target out of range": (
        lambda: DifferenceSalience(NET, NET.conv2).attribute(X, 7, contrast=1),
        ValueError,
        "target",
    ),
    "nan input finer": (
        lambda: FinerCAM(NET, NET.conv2).attribute(_with(X, np.nan), 1),
        ValueError,
        "NaN",
    ),
    "finer target out of range": (
        lambda: FinerCAM(NET, NET.conv2).attribute(X, 7),
        ValueError,
        "target",
    ),
    "finer negative gamma": (
        lambda: FinerCAM(NET, NET.conv2).attribute(X, 1, gamma=-1.0),
        ValueError,
        "`gamma`",
    ),
    "inference_mode": (
        _inference_mode_call,
        RuntimeError,
        "gradients are disabled: this call runs under torch.inference_mode",
    ),
    "opti inference_mode": (
        lambda: _under_inference(lambda: OptiCAM(NET, NET.conv2).attribute(X, 1, n_iter=2)),
        RuntimeError,
        "inference_mode",
    ),
    "layer not in model": (
        lambda: ContrastGradCAM(NET, nn.Conv2d(3, 3, 1)),
        ValueError,
        "not a submodule",
    ),
    "opti lr": (lambda: OptiCAM(NET, NET.conv2).attribute(X, 1, lr=0.0), ValueError, "`lr`"),
    # the metrics
    "metric string y_batch": (
        lambda: AverageDrop()(NET, XB, np.array(["a", "b", "c"]), a_batch=AB),
        ValueError,
        "`y_batch` must hold integer class indices",
    ),
    "metric nan y_batch": (
        lambda: AverageDrop()(NET, XB, np.array([0, 1, np.nan]), a_batch=AB),
        ValueError,
        "`y_batch`",
    ),
    "metric empty batch": (
        lambda: AverageGain()(NET, XB[:0], YB[:0], a_batch=AB[:0]),
        ValueError,
        "`x_batch` must hold at least one image",
    ),
    "metric batch_size=0": (
        lambda: Insertion()(NET, XB, YB, a_batch=AB, batch_size=0),
        ValueError,
        "`batch_size` must be a positive int",
    ),
    "metric batch_size=-1": (
        lambda: ConfidenceDrop()(NET, XB, YB, a_batch=AB, batch_size=-1),
        ValueError,
        "`batch_size`",
    ),
    "metric batch_size=1.5": (
        lambda: Deletion()(NET, XB, YB, a_batch=AB, batch_size=1.5),
        ValueError,
        "`batch_size`",
    ),
    "metric dict model": (
        lambda: MultiLabelAverageDrop()(DictModel().eval(), XB, YB, a_batch=AB),
        ValueError,
        "the model must return (batch, classes) scores",
    ),
    "metric model is a function": (
        lambda: AverageDrop()(lambda x: x, XB, YB, a_batch=AB),
        TypeError,
        "`model` must be a torch.nn.Module",
    ),
    "metric string x_batch": (
        lambda: AverageDrop()(NET, np.full((3, 3, 8, 8), "a"), YB, a_batch=AB),
        ValueError,
        "`x_batch`",
    ),
    # the losses
    "loss nan human map": (
        lambda: CYBORGLoss(HEAD)(LOGITS, FEATURES, LABELS, _with(HUMAN, np.nan)),
        ValueError,
        "`human_maps` holds NaN or infinite",
    ),
    "loss inf human map": (
        lambda: PerClassSalienceLoss(HEAD)(LOGITS, FEATURES, LABELS, _with(HUMAN, np.inf)),
        ValueError,
        "`human_maps` holds NaN or infinite",
    ),
    "loss -inf human map": (
        lambda: ContrastSalienceLoss(HEAD)(LOGITS, FEATURES, LABELS, _with(HUMAN, -np.inf)),
        ValueError,
        "`human_maps`",
    ),
    "loss empty batch": (
        lambda: DifferenceSalienceLoss(HEAD)(LOGITS[:0], FEATURES[:0], LABELS[:0], HUMAN[:0]),
        ValueError,
        "the batch is empty",
    ),
}


def _under_inference(call: Callable[[], object]) -> object:
    with torch.inference_mode():
        return call()


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gives_a_clear_error(case: str) -> None:
    call, error, fragment = BAD_INPUTS[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error, match=_escaped(fragment)):
            call()


def _escaped(fragment: str) -> str:
    import re

    return re.escape(fragment)


# Every numeric option of the command line, and --out, checked by argparse before any work.
CLI_CASES = {
    "evaluate --batch-size -1": (
        ["evaluate", "--batch-size", "-1"],
        "--batch-size: must be an integer >= 1, got -1",
    ),
    "evaluate --batch-size 0": (
        ["evaluate", "--batch-size", "0"],
        "--batch-size: must be an integer >= 1, got 0",
    ),
    "evaluate --canvases 0": (
        ["evaluate", "--canvases", "0"],
        "--canvases: must be an integer >= 1",
    ),
    "evaluate --opti-iters -2": (
        ["evaluate", "--opti-iters", "-2"],
        "--opti-iters: must be an integer >= 1",
    ),
    "evaluate --resize 0": (["evaluate", "--resize", "0"], "--resize: must be an integer >= 1"),
    "evaluate --crop x": (["evaluate", "--crop", "x"], "--crop: expected an integer, got 'x'"),
    "evaluate --num-classes 0": (["evaluate", "--num-classes", "0"], "--num-classes: must be"),
    "explain --target -1": (
        ["explain", "--arch", "a", "--weights", "w", "--layer", "l", "--target", "-1", "i.png"],
        "--target: must be an integer >= 0",
    ),
    "explain --out under a file": (
        [
            "explain",
            "--arch",
            "a",
            "--weights",
            "w",
            "--layer",
            "l",
            "--out",
            "{file}/sub",
            "i.png",
        ],
        "a file",
    ),
    "evaluate --out is a file": (["evaluate", "--out", "{file}"], "is not a directory"),
    "demo --out under a file": (["demo", "--out", "{file}/x/y"], "a file"),
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_command_line_refuses_bad_numbers_and_outputs_up_front(
    case, tmp_path, capsys, monkeypatch
) -> None:
    regular = tmp_path / "file.txt"
    regular.write_text("x")
    argv, fragment = CLI_CASES[case]
    # Anything past argument parsing would be work done before the check: make it fail loudly.
    monkeypatch.setattr("captum_contrast.app.cli.run_evaluate", _no_work)
    monkeypatch.setattr("captum_contrast.app.cli.run_explain", _no_work)
    with pytest.raises(SystemExit) as exit_info:
        main([part.replace("{file}", str(regular)) for part in argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and fragment in err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1


def _no_work(args: object) -> int:
    raise AssertionError("the command started its work before checking its arguments")


# --- item 3: NaN probabilities never score as perfect ---------------------------------

SINGLE_LABEL = [AverageDrop, AverageIncrease, AverageGain, ConfidenceDrop, Insertion, Deletion]
MULTI_LABEL = [
    MultiLabelIncreaseInConfidence,
    MultiLabelAverageDrop,
    AverageDropOfOthers,
    AverageRetention,
    AverageRetentionOfOthers,
]


@pytest.mark.parametrize("value", [np.nan, np.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("metric", SINGLE_LABEL + MULTI_LABEL, ids=lambda m: m.__name__)
def test_non_finite_probabilities_score_nan_with_a_warning(metric: type, value: float) -> None:
    x = XB.copy()
    x[1, 0, 2, 2] = value  # the model's logits for example 1 become NaN
    with pytest.warns(RuntimeWarning, match="NaN or infinite logits for 1 of 3"):
        scores = metric()(NET, x, YB, a_batch=AB)
    assert np.isnan(scores[1])
    clean = metric()(NET, XB, YB, a_batch=AB)
    np.testing.assert_allclose([scores[0], scores[2]], [clean[0], clean[2]])


def test_mass_on_object_needs_no_forward_and_stays_finite() -> None:
    masks = (RNG.random((3, 1, 8, 8)) > 0.5).astype(np.float32)
    x = XB.copy()
    x[1, 0, 2, 2] = np.nan
    assert np.isfinite(MassOnObject()(NET, x, YB, a_batch=AB, s_batch=masks)).all()


# --- item 5: float16, bfloat16 and float64 models --------------------------------------

LABEL_SETS = torch.tensor([[0, 1, 1, 0, 0], [1, 1, 0, 0, 1], [0, 1, 0, 1, 1]], dtype=torch.bool)
CALLS = {
    "contrast-grad-cam": lambda m, x: ContrastGradCAM(m, m.conv2).attribute(x, 1, k=2),
    # Fixed label sets: the detections (sigmoid > 0.5) may differ between precisions.
    "d-minmax-cam": lambda m, x: MinMaxCAM(m, m.conv2).attribute(
        x, 1, labels=LABEL_SETS, variant="d-minmax"
    ),
    # No step: the uniform starting weights, so the map is comparable across precisions
    # (the optimisation's path itself depends on the precision).
    "opti-cam-start": lambda m, x: OptiCAM(m, m.conv2).attribute(x, 1, n_iter=0),
    "difference-salience": lambda m, x: DifferenceSalience(m, m.conv2).attribute(x, 1, contrast=2),
    # Fixed references: the closest scores may differ between precisions.
    "finer-cam": lambda m, x: FinerCAM(m, m.conv2).attribute(x, 1, contrast=[2, 3]),
}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64], ids=str)
@pytest.mark.parametrize("name", sorted(CALLS))
def test_every_method_works_in_low_and_high_precision(name: str, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    model = TwoConvNet(inplace=False).eval()
    reference = CALLS[name](model, X)
    attribution = CALLS[name](model.to(dtype), X.to(dtype))
    assert attribution.dtype == dtype and bool(torch.isfinite(attribution).all())
    # Same map up to the precision of the dtype (relative to the map's scale).
    scale = reference.abs().max()
    tolerance = {torch.float16: 0.03, torch.bfloat16: 0.06, torch.float64: 1e-5}[dtype]
    assert float((attribution.double() - reference.double()).abs().max()) <= tolerance * scale


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_opti_cam_optimises_in_low_precision(dtype: torch.dtype) -> None:
    """Adam's eps is 0 in float16: u is optimised in float32 and the map stays finite."""
    torch.manual_seed(0)
    model = TwoConvNet(inplace=False).eval().to(dtype)
    cam = OptiCAM(model, model.conv2)
    attribution, weights = cam.attribute(X.to(dtype), 1, n_iter=10, return_weights=True)
    assert attribution.dtype == weights.dtype == dtype
    assert bool(torch.isfinite(attribution).all()) and bool(torch.isfinite(weights).all())
    torch.testing.assert_close(weights.float().sum(1), torch.ones(3), rtol=0, atol=1e-2)
    start = cam.attribute(X.to(dtype), 1, n_iter=0, return_weights=True)[1]
    assert float((weights.float() - start.float()).abs().max()) > 1e-3  # it did move


# --- item 9: the fallback for backward ops with no batching rule -----------------------


class NumpyReLU(torch.autograd.Function):
    """ReLU whose backward goes through numpy, which vmap cannot batch."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return torch.from_numpy(grad.numpy() * (x.numpy() > 0))


class FailingBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x * 1

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("the model's own backward failed (marker 7f3a)")


class CustomOpNet(TwoConvNet):
    def __init__(self, op: type[torch.autograd.Function]) -> None:
        super().__init__(inplace=False)
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.op.apply(self.conv2(self.relu1(self.conv1(x))))
        return self.fc(self.pool(features).flatten(1))


def test_unbatchable_backward_falls_back_to_one_backward_per_score() -> None:
    torch.manual_seed(0)
    model = CustomOpNet(NumpyReLU).eval()
    plain = TwoConvNet(inplace=False).eval()  # the same function with a batchable ReLU
    plain.load_state_dict(model.state_dict())
    # One score: Grad-CAM(1) - Grad-CAM(2), by linearity, against Captum.
    grad_cam = LayerGradCam(model, model.conv2)
    torch.testing.assert_close(
        DifferenceSalience(model, model.conv2).attribute(X, 1, contrast=2),
        grad_cam.attribute(X, 1) - grad_cam.attribute(X, 2),
    )
    # Two (CASE) and three (D-MinMax) scores in one backward: the path that used to fail.
    for explain in (
        lambda m: ContrastGradCAM(m, m.conv2).attribute(X, 1, contrast=[2, 3]),
        lambda m: MinMaxCAM(m, m.conv2).attribute(X, 1, variant="d-minmax"),
    ):
        torch.testing.assert_close(explain(model), explain(plain))


def test_the_models_own_backward_error_is_not_hidden() -> None:
    model = CustomOpNet(FailingBackward).eval()
    with pytest.raises(RuntimeError, match="marker 7f3a"):
        ContrastGradCAM(model, model.conv2).attribute(X, 1, k=2)


# --- item 10: gradients disabled inside the model ---------------------------------------


class NoGradInside(TwoConvNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return super().forward(x)


class ReentrantCheckpoint(TwoConvNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = checkpoint(
            lambda t: self.relu2(self.conv2(self.relu1(self.conv1(t)))),
            x if x.requires_grad else x.clone().requires_grad_(True),
            use_reentrant=True,
        )
        return self.fc(self.pool(features).flatten(1))


@pytest.mark.parametrize("model_class", [NoGradInside, ReentrantCheckpoint])
def test_gradients_disabled_at_the_layer_are_named(model_class: type) -> None:
    model = model_class(inplace=False).eval()
    with pytest.raises(
        RuntimeError, match="gradients are disabled where `layer` \\(Conv2d\\) runs"
    ):
        ContrastGradCAM(model, model.conv2).attribute(X, 1)


def test_opti_cam_names_gradients_disabled_in_the_forward() -> None:
    model = NoGradInside(inplace=False).eval()
    with pytest.raises(RuntimeError, match="gradients are disabled in the model's forward"):
        OptiCAM(model, model.conv2).attribute(X, 1, n_iter=2)


def test_no_grad_around_a_call_is_fine() -> None:
    with torch.no_grad():
        inside = ContrastGradCAM(NET, NET.conv2).attribute(X, 1)
    torch.testing.assert_close(inside, ContrastGradCAM(NET, NET.conv2).attribute(X, 1))
