"""FinerCAM: hand-computed maps, torchcam's FinerCAM, its guarantees and its bad inputs."""

from __future__ import annotations

import threading
import warnings

import pytest
import torch
from captum.attr import LayerGradCam, NoiseTunnel

from captum_contrast import DifferenceSalience, FinerCAM, normalize
from captum_contrast.methods import ContrastSet, closest_classes, finer_score_weights
from captum_contrast.scores import RegionScores
from tests.helpers import (
    BatchNormDropoutNet,
    LinearHead,
    TwoConvNet,
    assert_untouched,
    model_snapshot,
)

# The CASE test vector's activations (SPEC 5): four 2x2 channels.
ACTIVATIONS = torch.tensor(
    [
        [[1.0, 0.0], [0.0, 0.0]],
        [[0.0, 2.0], [1.0, 0.0]],
        [[0.0, 0.0], [0.0, 3.0]],
        [[0.0, 0.0], [1.0, 0.0]],
    ]
).unsqueeze(0)


def head(class_gradients: list[list[float]]) -> LinearHead:
    """A head whose class ``c`` has the spatially constant gradient ``class_gradients[c] / 4``
    per channel, so its Grad-CAM channel weight (the spatial mean) is ``class_gradients[c] / 4``."""
    gradients = torch.tensor(class_gradients).reshape(len(class_gradients), 4, 1, 1) / 4
    return LinearHead(gradients.expand(-1, -1, 2, 2).contiguous()).eval()


def test_hand_computed_map_on_the_fixed_weight_model() -> None:
    # Class channel weights (spatial means): y0 (1,2,0,-1), y1 (1,0,1,0), y2 (0,1,1,0), y3 (0,0,0,1)
    model = head([[4, 8, 0, -4], [4, 0, 4, 0], [0, 4, 4, 0], [0, 0, 0, 4]])
    # Explicit references {1, 2}, gamma 0.5: w = (1,2,0,-1) - 0.5 * (.5,.5,1,0) = (.75,1.75,-.5,-1)
    # L = .75*A0 + 1.75*A1 - .5*A2 - A3 = [[.75, 3.5], [1.75 - 1, -1.5]] -> ReLU
    expected = torch.tensor([[[[0.75, 3.5], [0.75, 0.0]]]])
    attr, weights = FinerCAM(model, model.layer).attribute(
        ACTIVATIONS, 0, contrast=[1, 2], gamma=0.5, return_weights=True
    )
    torch.testing.assert_close(weights, torch.tensor([[0.75, 1.75, -0.5, -1.0]]))
    torch.testing.assert_close(attr, expected)
    # Unsigned: the -1.5 survives without the ReLU.
    raw = FinerCAM(model, model.layer).attribute(
        ACTIVATIONS, 0, contrast=[1, 2], gamma=0.5, relu_attributions=False
    )
    assert raw[0, 0, 1, 1].item() == pytest.approx(-1.5)


def test_automatic_references_are_the_closest_scores_above_or_below() -> None:
    model = head([[4, 8, 0, -4], [4, 0, 4, 0], [0, 4, 4, 0], [0, 0, 0, 4]])
    with torch.no_grad():
        y = model(ACTIVATIONS)[0]  # y_c = sum_k w_ck * sum_ij A_k = (1*1+2*3+0-1*1, 1+3, 3+3, 1)
    torch.testing.assert_close(y, torch.tensor([6.0, 4.0, 6.0, 1.0]))
    # Target 1 (4): distances (2, -, 2, 3); k=2 picks classes 0 and 2, not 3.
    assert sorted(closest_classes(y[None], torch.tensor([1]), 2)[0].tolist()) == [0, 2]
    # k larger than C - 1 is capped: all three others, Finer-CAM of y1 - g*mean(y0,y2,y3).
    attr = FinerCAM(model, model.layer).attribute(
        ACTIVATIONS, 1, k=10, gamma=1.0, relu_attributions=False
    )
    expected = FinerCAM(model, model.layer).attribute(
        ACTIVATIONS, 1, contrast=[0, 2, 3], gamma=1.0, relu_attributions=False
    )
    torch.testing.assert_close(attr, expected)
    weights = finer_score_weights(y[None], 1, None, 10, 1.0)
    torch.testing.assert_close(weights, torch.tensor([[-1 / 3, 1.0, -1 / 3, -1 / 3]]))


def test_gamma_zero_is_grad_cam_and_one_reference_at_gamma_one_is_difference_salience() -> None:
    torch.manual_seed(0)
    model = TwoConvNet(num_classes=5, inplace=False).eval()
    x = torch.rand(3, 3, 8, 8)
    finer = FinerCAM(model, model.conv2)
    grad_cam = LayerGradCam(model, model.conv2).attribute(x, [0, 2, 4], relu_attributions=True)
    torch.testing.assert_close(finer.attribute(x, [0, 2, 4], gamma=0.0), grad_cam)
    difference = DifferenceSalience(model, model.conv2).attribute(x, [0, 2, 4], contrast=1)
    torch.testing.assert_close(
        finer.attribute(x, [0, 2, 4], contrast=1, gamma=1.0, relu_attributions=False), difference
    )


@pytest.mark.parametrize("contrast", [None, [1, 3]], ids=["closest", "explicit"])
@pytest.mark.parametrize("gamma", [0.6, 1.0])
def test_equals_torchcam_finer_cam_after_the_same_normalisation(contrast, gamma) -> None:
    torchcam_methods = pytest.importorskip("torchcam.methods")
    if not hasattr(torchcam_methods, "FinerCAM"):  # torchcam < 0.5 (the oldest environment)
        pytest.skip("this torchcam has no FinerCAM to compare with")
    TorchcamFinerCAM = torchcam_methods.FinerCAM  # noqa: N806

    torch.manual_seed(1)
    model = TwoConvNet(num_classes=6, inplace=False).eval()
    x = torch.rand(4, 3, 8, 8)
    targets = [0, 2, 5, 4]
    ours = normalize(
        FinerCAM(model, model.conv2).attribute(x, targets, contrast=contrast, gamma=gamma), "range"
    )
    with TorchcamFinerCAM(model, model.conv2, input_shape=(3, 8, 8), gamma=gamma) as extractor:
        theirs = extractor(targets, model(x), comparison_idx=contrast)[0]
    torch.testing.assert_close(ours[:, 0], theirs, atol=1e-5, rtol=1e-5)


def test_scores_equals_the_wrapped_forward_map() -> None:
    from torch import nn

    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 4, 1)).eval()
    x = torch.rand(2, 3, 8, 8)
    region = torch.zeros(8, 8, dtype=torch.bool)
    region[2:6, 1:5] = True
    scores = RegionScores(region)
    given = FinerCAM(model, model[1]).attribute(x, [1, 3], scores=scores)
    wrapped = FinerCAM(lambda inputs: scores(model(inputs)), model[1]).attribute(x, [1, 3])
    torch.testing.assert_close(given, wrapped)


@pytest.mark.parametrize("rank", [1, 3])
def test_one_and_three_dimensional_grids(rank: int) -> None:
    from tests.methods.test_n_dimensional import GRID, conv_net

    model = conv_net(rank)
    x = torch.rand(2, 2, *GRID[rank])
    attr = FinerCAM(model, model[3]).attribute(x, [0, 1], gamma=0.0)
    grad_cam = LayerGradCam(model, model[3]).attribute(x, [0, 1], relu_attributions=True)
    torch.testing.assert_close(attr, grad_cam)
    assert FinerCAM(model, model[3]).attribute(x, [0, 1]).shape == grad_cam.shape


def test_noise_tunnel_equals_the_hand_rolled_average() -> None:
    from tests.methods.test_noise_tunnel import SAMPLES, STDEV, hand_rolled

    torch.manual_seed(0)
    model = TwoConvNet(num_classes=5, inplace=False).eval()
    images, method = torch.rand(2, 3, 8, 8), FinerCAM(model, model.relu2)
    torch.manual_seed(3)
    smooth = NoiseTunnel(method).attribute(
        images, nt_type="smoothgrad", nt_samples=SAMPLES, stdevs=STDEV, target=[1, 4], k=2
    )
    expected, _ = hand_rolled(method, images, [1, 4], {"k": 2}, seed=3)
    torch.testing.assert_close(smooth, expected)


@pytest.mark.parametrize("train", [False, True])
def test_leaves_the_model_untouched_on_success_and_failure(train: bool) -> None:
    torch.manual_seed(0)
    model = BatchNormDropoutNet().train(train)
    x = torch.rand(2, 3, 8, 8)
    snapshot = model_snapshot(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the train-mode warning
        FinerCAM(model, model.conv2).attribute(x, 1)
        with pytest.raises(ValueError, match="target"):
            FinerCAM(model, model.conv2).attribute(x, 99)
    assert_untouched(snapshot, model)


def test_threads_give_the_sequential_maps() -> None:
    torch.manual_seed(0)
    model = TwoConvNet(num_classes=5, inplace=False).eval()
    batches = [torch.rand(2, 3, 8, 8) for _ in range(4)]
    method = FinerCAM(model, model.conv2)
    sequential = [method.attribute(b, 1) for b in batches]
    results: list = [None] * 4

    def run(i: int) -> None:
        results[i] = method.attribute(batches[i], 1)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for got, want in zip(results, sequential, strict=True):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "`k` must be a positive int"),
        ({"k": 1.5}, "`k` must be a positive int"),
        ({"gamma": -0.1}, "`gamma` must be a finite number >= 0"),
        ({"gamma": float("nan")}, "`gamma` must be a finite number >= 0"),
        ({"gamma": True}, "`gamma` must be a finite number >= 0"),
        ({"contrast": [1, 1]}, "repeats a class"),
        ({"contrast": 0}, "contains the target class"),
        ({"contrast": [7]}, "contrast"),
        ({"contrast": torch.tensor([[1], [2], [3]])}, "batch = 2"),
        ({"contrast": ContrastSet(torch.tensor([[1], [0], [0]]))}, "3 classes but the model has 5"),
    ],
)
def test_bad_arguments_are_clear_errors_naming_the_argument(kwargs, message) -> None:
    torch.manual_seed(0)
    model = TwoConvNet(num_classes=5, inplace=False).eval()
    with pytest.raises(ValueError, match=message):
        FinerCAM(model, model.conv2).attribute(torch.rand(2, 3, 8, 8), 0, **kwargs)


def test_one_output_models_are_refused() -> None:
    from torch import nn

    model = nn.Sequential(
        nn.Conv2d(3, 2, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 1)
    ).eval()
    with pytest.raises(ValueError, match="C >= 2"):
        FinerCAM(model, model[1]).attribute(torch.rand(2, 3, 8, 8), 0)
