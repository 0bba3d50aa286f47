"""Regressions of the independent probe's findings (``tools/probe`` on branch issue-probe).

Each test failed before its fix: a silent wrong answer or an obscure error became a result
that is right, NaN with a warning, or a clear error naming the argument.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from captum_contrast import (
    ContrastGradCAM,
    ContrastSet,
    DifferenceSalience,
    MinMaxCAM,
    OptiCAM,
    normalize,
)
from captum_contrast.app.cli import main
from captum_contrast.data.models import fit_classifier
from captum_contrast.metrics import (
    AverageDrop,
    detections,
    drop_scores,
    gain_scores,
    harmonic_mean,
    increase_scores,
    masking_scores,
    paired_ttest,
    top_k_agreement,
    trapezoid,
    wilcoxon_below,
)
from tests.helpers import LinearHead, TwoConvNet

X = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
METHODS: dict[str, tuple[type, dict[str, Any]]] = {
    "ContrastGradCAM": (ContrastGradCAM, {}),
    "MinMaxCAM": (MinMaxCAM, {}),
    "DifferenceSalience": (DifferenceSalience, {"contrast": 1}),
    "OptiCAM": (OptiCAM, {"n_iter": 1}),
}


def _net() -> TwoConvNet:
    torch.manual_seed(0)
    return TwoConvNet(inplace=False).eval()


class _NanForExample1(nn.Module):
    """TwoConvNet whose scores are NaN for example 1 only."""

    def __init__(self) -> None:
        super().__init__()
        self.net = _net()

    def forward(self, x: Tensor) -> Tensor:
        scale = torch.ones(len(x), 1)
        scale[1] = float("nan")
        return self.net(x) * scale


# ---- NaN scores: a RuntimeWarning naming the examples (S6)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_nan_scores_warn_naming_the_examples(name: str) -> None:
    method, kwargs = METHODS[name]
    model = _NanForExample1().eval()
    with pytest.warns(RuntimeWarning, match=re.escape("NaN for examples [1] (of 3)")):
        method(model, model.net.conv2).attribute(X, target=[0, 2, 4], **kwargs)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_finite_scores_do_not_warn(name: str) -> None:
    method, kwargs = METHODS[name]
    model = _net()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        maps = method(model, model.conv2).attribute(X, target=[0, 2, 4], **kwargs)
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert maps.shape[0] == 3 and bool(torch.isfinite(maps).all())


# ---- wrongly typed flags and constructor arguments (S11, obscure errors)

BAD_FLAGS = {
    "relu_attributions": "no",
    "return_weights": "yes",
    "attribute_to_layer_input": 1,
}


FLAG_CASES = [
    (name, flag)
    for name in sorted(METHODS)
    for flag in sorted(BAD_FLAGS)
    if not (name == "OptiCAM" and flag == "relu_attributions")  # OptiCAM has no ReLU flag
]


@pytest.mark.parametrize("name,flag", FLAG_CASES)
def test_a_flag_that_is_not_a_bool_is_a_type_error(name: str, flag: str) -> None:
    method, kwargs = METHODS[name]
    model = _net()
    with pytest.raises(TypeError, match=f"`{flag}` must be True or False"):
        method(model, model.conv2).attribute(
            X, target=[0, 2, 4], **kwargs, **{flag: BAD_FLAGS[flag]}
        )


def test_a_bool_flag_from_numpy_is_accepted() -> None:
    model = _net()
    cam = ContrastGradCAM(model, model.conv2)
    expected = cam.attribute(X, target=[0, 2, 4], relu_attributions=False)
    got = cam.attribute(X, target=[0, 2, 4], relu_attributions=np.False_)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_plan_checks_its_flags_too() -> None:
    from captum_contrast._engine import forward_layer
    from captum_contrast.methods import run_plans

    model = _net()
    forward = forward_layer(model, model.conv2, X)
    plan = ContrastGradCAM(model, model.conv2).plan(forward, 0, relu_attributions="no")
    with pytest.raises(TypeError, match="`relu_attributions` must be True or False"):
        run_plans(forward, [plan])


BAD_CONSTRUCTORS: dict[str, tuple[Callable[[type, nn.Module], Any], str]] = {
    "forward_func=3": (
        lambda M, m: M(3, m.conv2),
        "`forward_func` must be the model or a callable",
    ),
    "reshape_transform=5": (
        lambda M, m: M(m, m.conv2, reshape_transform=5),
        "`reshape_transform` must be None or a callable",
    ),
    "device_ids='0'": (
        lambda M, m: M(m, m.conv2, device_ids="0"),
        "`device_ids` must be None or a list of ints",
    ),
    "device_ids=[True]": (
        lambda M, m: M(m, m.conv2, device_ids=[True]),
        "`device_ids` must be None or a list of ints",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONSTRUCTORS))
@pytest.mark.parametrize("name", sorted(METHODS))
def test_bad_constructor_arguments_are_named(name: str, case: str) -> None:
    build, message = BAD_CONSTRUCTORS[case]
    with pytest.raises(TypeError, match=re.escape(message)):
        build(METHODS[name][0], _net())


def test_torchscript_models_are_refused_up_front() -> None:
    model = _net()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script's deprecation notice
        scripted = torch.jit.script(model)
    with pytest.raises(TypeError, match="`forward_func` is a TorchScript .*not supported on"):
        ContrastGradCAM(scripted, scripted.conv2)


# ---- OptiCAM (S10 and its preprocess)


def test_opti_cam_without_steps_warns_that_the_map_is_the_start() -> None:
    model = _net()
    with pytest.warns(UserWarning, match=r"OptiCAM ran no search \(n_iter=0\)"):
        _, weights = OptiCAM(model, model.conv2).attribute(X, 1, n_iter=0, return_weights=True)
    torch.testing.assert_close(weights, torch.full((3, 6), 1 / 6))


def test_opti_cam_refuses_a_preprocess_that_changes_the_shape() -> None:
    model = _net()
    with pytest.raises(ValueError, match=r"`preprocess` must return a tensor of the inputs' shape"):
        OptiCAM(model, model.conv2).attribute(X, 1, n_iter=1, preprocess=lambda t: t[:, :1])


# ---- ContrastSet (S7)

CONTRAST_SETS: dict[str, tuple[Callable[[], Any], type, str]] = {
    "negative counts": (
        lambda: ContrastSet.from_confusion_matrix(-torch.ones(3, 3), k=1),
        ValueError,
        "finite non-negative",
    ),
    "NaN counts": (
        lambda: ContrastSet.from_confusion_matrix(torch.full((3, 3), float("nan")), k=1),
        ValueError,
        "finite non-negative",
    ),
    "negative target": (
        lambda: ContrastSet(torch.tensor([[1], [2], [0]]))(torch.tensor([-1])),
        ValueError,
        "`target` holds class indices [-1] outside [0, 2]",
    ),
    "float target": (
        lambda: ContrastSet(torch.tensor([[1], [2], [0]]))(torch.tensor([0.0])),
        TypeError,
        "`target` must hold integer class indices",
    ),
}


@pytest.mark.parametrize("case", sorted(CONTRAST_SETS))
def test_contrast_set_refuses_nonsense(case: str) -> None:
    call, error, message = CONTRAST_SETS[case]
    with pytest.raises(error, match=re.escape(message)):
        call()


def test_contrast_set_still_reads_rates_and_targets() -> None:
    rates = torch.tensor([[0.8, 0.2, 0.0], [0.1, 0.7, 0.2], [0.0, 0.5, 0.5]])
    contrast_set = ContrastSet.from_confusion_matrix(rates, k=1)
    assert contrast_set(torch.tensor([2, 0, 1])).flatten().tolist() == [1, 1, 2]


# ---- the command line (S9)


@pytest.fixture(scope="module")
def weights_and_image(tmp_path_factory) -> tuple[str, str]:
    from PIL import Image
    from torchvision.models import resnet18

    root = tmp_path_factory.mktemp("probe_cli")
    torch.manual_seed(0)
    torch.save(resnet18(weights=None, num_classes=5).state_dict(), root / "r18.pth")
    Image.fromarray(np.zeros((40, 48, 3), dtype=np.uint8)).save(root / "cat.png")
    return str(root / "r18.pth"), str(root / "cat.png")


def _explain(weights: str, image: str, out: str, *extra: str) -> list[str]:
    argv = ["explain", "--arch", "resnet18", "--weights", weights, "--layer", "layer4"]
    return argv + ["--method", "opti-cam", "--out", out, *extra, image]


def test_command_line_refuses_a_crop_larger_than_the_resize(
    weights_and_image, tmp_path, capsys
) -> None:
    argv = _explain(*weights_and_image, str(tmp_path), "--resize", "32", "--crop", "64")
    assert main(argv) == 2
    assert "--crop 64 is larger than --resize 32" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png"))


def test_command_line_refuses_zero_opti_cam_steps(weights_and_image, tmp_path, capsys) -> None:
    argv = _explain(*weights_and_image, str(tmp_path), "--resize", "32", "--opti-iters", "0")
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "--opti-iters: must be an integer >= 1, got 0" in capsys.readouterr().err


# ---- metrics: complex maps (S12) and channel_first


def test_metrics_refuse_complex_maps() -> None:
    model = _net()
    x = X.numpy()
    y = np.array([0, 1, 2])
    maps = np.ones((3, 1, 8, 8)) * 1j
    with pytest.raises(TypeError, match="`a_batch` must hold real maps, got complex128"):
        AverageDrop(disable_warnings=True)(model, x, y, maps)


def test_misread_channel_first_is_named() -> None:
    with pytest.raises(ValueError, match="pass `channel_first`"):
        masking_scores(
            _net(), X.numpy(), np.array([0, 1, 2]), np.ones((3, 1, 4, 4)), channel_first=False
        )


# ---- normalize (S13)


def _normalized(maps: Tensor, method: str) -> tuple[Tensor, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = normalize(maps, method)  # type: ignore[arg-type]
    return result, [str(w.message) for w in caught if w.category is RuntimeWarning]


def test_max_normalisation_of_a_map_without_positive_value_is_nan() -> None:
    maps = torch.tensor([[[[-1.0, -3.0]]], [[[1.0, 4.0]]], [[[0.0, 0.0]]]])
    result, messages = _normalized(maps, "max")
    assert torch.isnan(result[0]).all()
    assert result[1].flatten().tolist() == [0.25, 1.0]  # S / max, unchanged
    assert result[2].flatten().tolist() == [0.0, 0.0]  # all zero stays zero, as documented
    assert len(messages) == 1 and "examples [0] have no positive value" in messages[0]


@pytest.mark.parametrize("method", ["range", "max"])
@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_normalising_a_non_finite_map_gives_nan_with_a_warning(method: str, bad: float) -> None:
    maps = torch.tensor([[[[1.0, bad]]], [[[1.0, 3.0]]]], requires_grad=True)
    result, messages = _normalized(maps, method)
    assert torch.isnan(result[0]).all()
    expected = {"range": [0.0, 1.0], "max": [1 / 3, 1.0]}[method]
    torch.testing.assert_close(result[1].flatten(), torch.tensor(expected))
    assert any("examples [0] hold inf or NaN" in message for message in messages)
    result[1].sum().backward()  # the finite example's gradient stays finite
    assert torch.isfinite(maps.grad[1]).all()


@pytest.mark.parametrize("value", [np.ones((1, 2)), torch.ones(1, 2, dtype=torch.complex64)])
def test_normalize_refuses_numpy_and_complex(value: Any) -> None:
    with pytest.raises(TypeError, match="`attributions` must be a real torch.Tensor"):
        normalize(value)


# ---- score helpers and statistics (S14-S16, obscure errors)

BAD_SCORES: dict[str, tuple[Callable[[], Any], type, str]] = {
    "trapezoid lengths": (
        lambda: trapezoid(np.array([0.0, 1.0, 1.0]), np.array([0.0, 1.0])),
        ValueError,
        "`positions` must be 1-D with one entry per value",
    ),
    "trapezoid unsorted": (
        lambda: trapezoid(np.array([0.0, 1.0, 1.0]), np.array([0.0, 1.0, 0.5])),
        ValueError,
        "`positions` must be sorted",
    ),
    "gain shapes": (
        lambda: gain_scores(np.array([0.5, 0.2]), np.array([0.6])),
        ValueError,
        "`p` and `o` must hold one probability per example",
    ),
    "drop p > 1": (
        lambda: drop_scores(np.array([1.5]), np.array([0.5])),
        ValueError,
        "`p` must hold probabilities in [0, 1]",
    ),
    "drop p < 0": (
        lambda: drop_scores(np.array([-0.5]), np.array([0.5])),
        ValueError,
        "`p` must hold probabilities in [0, 1]",
    ),
    "increase o > 1": (
        lambda: increase_scores(np.array([0.5]), np.array([2.0])),
        ValueError,
        "`o` must hold probabilities in [0, 1]",
    ),
    "harmonic mean negative": (
        lambda: harmonic_mean(np.array([-1.0]), np.array([1.0])),
        ValueError,
        "`first` must be non-negative",
    ),
    "harmonic mean shapes": (
        lambda: harmonic_mean(np.array([1.0, 2.0]), np.array([1.0])),
        ValueError,
        "`first` and `second` must have the same shape",
    ),
    "top_k over 100": (
        lambda: top_k_agreement(np.ones((1, 4, 4)), np.ones((1, 4, 4)), top_k=150),
        ValueError,
        "`top_k` must be a percentage in (0, 100]",
    ),
    "top_k zero": (
        lambda: top_k_agreement(np.ones((1, 4, 4)), np.ones((1, 4, 4)), top_k=0),
        ValueError,
        "`top_k` must be a percentage in (0, 100]",
    ),
    "wilcoxon threshold NaN": (
        lambda: wilcoxon_below([10.0, 20.0, 30.0], threshold=float("nan")),
        ValueError,
        "`threshold` must be finite",
    ),
    "detections threshold 2": (
        lambda: detections(_net(), X.numpy(), threshold=2.0),
        ValueError,
        "`threshold` must be a probability in [0, 1)",
    ),
    "detections threshold NaN": (
        lambda: detections(_net(), X.numpy(), threshold=float("nan")),
        ValueError,
        "`threshold` must be a probability in [0, 1)",
    ),
    "ttest alternative": (
        lambda: paired_ttest([1, 2, 3.0], [2, 3, 1.0], alternative="up"),
        ValueError,
        "`alternative` must be 'two-sided', 'less' or 'greater'",
    ),
    "ttest strings": (
        lambda: paired_ttest(["a", "b"], ["c", "d"]),
        TypeError,
        "`scores` must hold numbers",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SCORES))
def test_score_helpers_refuse_impossible_input(case: str) -> None:
    call, error, message = BAD_SCORES[case]
    with pytest.raises(error, match=re.escape(message)):
        call()


def test_score_helpers_keep_their_hand_values() -> None:
    # AD = 100 (0.8 - 0.2) / 0.8 = 75; AG = 100 (0.6 - 0.2) / (1 - 0.2 + 0) = 50; AI strict.
    np.testing.assert_allclose(drop_scores(np.array([0.8]), np.array([0.2])), [75.0])
    np.testing.assert_allclose(gain_scores(np.array([0.2]), np.array([0.6]), eps=0.0), [50.0])
    assert increase_scores(np.array([0.2, 0.6]), np.array([0.6, 0.6])).tolist() == [100.0, 0.0]
    assert float(trapezoid(np.array([0.0, 1.0, 1.0]), np.array([0.0, 0.5, 1.0]))) == 0.75
    assert np.isnan(drop_scores(np.array([np.nan]), np.array([0.5]))[0])  # NaN passes through


def test_fit_classifier_names_labels_out_of_range() -> None:
    model = LinearHead(torch.zeros(2, 1, 2, 2))
    images, labels = torch.rand(4, 1, 2, 2), torch.tensor([0, 1, 5, 1])
    with pytest.raises(
        ValueError, match=re.escape("`labels` holds class indices [5] outside [0, 1]")
    ):
        fit_classifier(model, images, labels, epochs=1)
    assert torch.equal(model.weight, torch.zeros(2, 1, 2, 2))  # refused before any step


# ---- valid input: numpy integer targets (issue-22's class-index validator accepts them)


@pytest.mark.parametrize(
    "target,plain",
    [(np.int64(2), 2), (np.array([0, 2, 4]), [0, 2, 4]), ([np.int64(0), np.int32(2)], [0, 2])],
    ids=["np.int64", "np.array", "list of numpy ints"],
)
def test_numpy_integer_targets_equal_int_targets(target: Any, plain: Any) -> None:
    model = _net()
    x = X[: len(plain)] if isinstance(plain, list) else X
    cam = ContrastGradCAM(model, model.conv2)
    torch.testing.assert_close(cam.attribute(x, target=target), cam.attribute(x, target=plain))


def test_meta_tensor_targets_and_non_iterable_loaders_are_named() -> None:
    from captum_contrast._validation import class_indices
    from captum_contrast.methods import confusion_matrix

    with pytest.raises(ValueError, match="`target` is a meta tensor"):
        class_indices(torch.empty(3, device="meta", dtype=torch.long), "target")
    with pytest.raises(TypeError, match="`data_loader` must be an iterable"):
        confusion_matrix(torch.nn.Linear(2, 3), 5, num_classes=3)
