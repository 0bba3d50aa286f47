"""The registry: methods by name with their defaults, metrics and their columns."""

from __future__ import annotations

import pytest
import torch
from captum.attr import LayerGradCam

from captum_contrast._targets import runner_up
from captum_contrast.app.registry import (
    METHODS,
    METRICS,
    column,
    explain,
    explain_func,
    iteration_overrides,
    method_names,
)
from captum_contrast.data.models import small_cnn
from captum_contrast.methods.difference_salience import DifferenceSalience
from captum_contrast.metrics import METRICS as METRIC_CLASSES


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return small_cnn(num_classes=10, width=4).eval()


def test_every_method_explains_one_map_per_example(tiny) -> None:
    images, targets = torch.rand(3, 1, 32, 32), torch.tensor([1, 4, 7])
    for name in METHODS:
        maps = explain(
            name,
            tiny,
            tiny.features,
            images,
            targets,
            **METHODS[name].run_kwargs(2),
        )
        expected = (32, 32) if METHODS[name].cls is None else (8, 8)
        assert maps.shape == (3, 1, *expected), name
        assert not maps.requires_grad and maps.device.type == "cpu"


def test_explain_uses_the_registry_defaults(tiny) -> None:
    images, targets = torch.rand(2, 1, 32, 32), torch.tensor([3, 5])
    grad_cam = LayerGradCam(tiny, tiny.features).attribute(
        images, target=targets, relu_attributions=True
    )
    torch.testing.assert_close(explain("grad-cam", tiny, tiny.features, images, targets), grad_cam)
    # Ten outputs: DifferenceSalience contrasts each target with its runner-up class.
    with torch.no_grad():
        contrast = runner_up(tiny(images), targets)
    expected = DifferenceSalience(tiny, tiny.features).attribute(
        images, target=targets, contrast=contrast
    )
    torch.testing.assert_close(
        explain("difference-salience", tiny, tiny.features, images, targets), expected
    )
    with pytest.raises(ValueError, match="unknown method"):
        explain("score-cam", tiny, tiny.features, images, targets)


def test_vision_transformer_tokens_are_laid_on_their_grid() -> None:
    from torchvision.models import vit_b_16

    from captum_contrast import ContrastGradCAM, vit_reshape_transform
    from captum_contrast.app.evaluation import explain

    torch.manual_seed(0)
    model = vit_b_16(weights=None, image_size=32, num_classes=4).eval()
    torch.nn.init.normal_(model.heads.head.weight, std=0.1)  # torchvision zeroes the head
    layer = model.encoder.layers[-1].ln_1
    images, targets = torch.rand(2, 3, 32, 32), torch.tensor([1, 2])
    maps = explain("contrast-grad-cam", model, layer, images, targets)
    expected = ContrastGradCAM(model, layer, reshape_transform=vit_reshape_transform).attribute(
        images, target=targets, k=1
    )
    torch.testing.assert_close(maps, expected)
    with pytest.raises(ValueError, match="vision-transformer tokens"):
        explain("grad-cam", model, layer, images, targets)


def test_metric_names_and_columns_come_from_the_metric_classes() -> None:
    assert list(METRICS.values()) == list(METRIC_CLASSES)
    assert column("average-drop") == "AD ↓" and column("average-gain") == "AG ↑"
    assert column("ml-retention-others") == "ARO ↓" and column("mass-on-object").endswith("↑")


def test_explain_func_is_the_metrics_adapter_with_the_registry_defaults(tiny) -> None:
    images, targets = torch.rand(2, 1, 32, 32), torch.tensor([3, 5])
    maps = explain_func("grad-cam", tiny, tiny.features)(tiny, images.numpy(), targets.numpy())
    expected = torch.nn.functional.interpolate(
        explain("grad-cam", tiny, tiny.features, images, targets), size=(32, 32), mode="bilinear"
    )
    torch.testing.assert_close(torch.as_tensor(maps), expected)


def test_captum_grad_cam_on_a_channels_last_layer_is_an_error_not_a_non_map() -> None:
    from torch import nn

    from captum_contrast.app.registry import explain

    class ChannelsLast(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 4, stride=4)
            self.layer = nn.Identity()
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            return self.head(self.layer(self.conv(x).permute(0, 2, 3, 1)).mean(dim=(1, 2)))

    torch.manual_seed(0)
    model = ChannelsLast().eval()
    images, targets = torch.rand(2, 3, 16, 16), torch.tensor([0, 2])
    with pytest.raises(ValueError, match=r"returned \(2, 1, 4, 8\), not maps"):
        explain("grad-cam", model, model.layer, images, targets)
    assert explain("minmax-cam", model, model.layer, images, targets).shape == (2, 1, 4, 4)


def test_the_one_registry_feeds_the_cli_and_the_demo() -> None:
    from captum_contrast.app import demo

    assert demo.FIGURE_METHODS == method_names("figure")
    assert demo.TABLE_METHODS == method_names("canvases")
    assert "finer-cam" in method_names("canvases") and "random-cam" in method_names("image-folder")
    assert set(method_names("image-folder")) <= set(METHODS) and method_names() == tuple(METHODS)
    assert iteration_overrides(7) == {"opti-cam": {"n_iter": 7}}
    assert METHODS["opti-cam"].run_kwargs(3, progress=True) == {"n_iter": 3, "show_progress": True}
    assert METHODS["finer-cam"].run_kwargs(3, progress=True) == {}


@pytest.mark.parametrize("name", list(METHODS))
def test_every_registered_method_leaves_the_model_untouched(name: str) -> None:
    import warnings

    from captum_contrast.data.models import small_cnn
    from captum_contrast.methods import LayerContrastAttribution
    from tests.helpers import assert_untouched, model_snapshot

    torch.manual_seed(0)
    # Captum's LayerGradCam runs a train-mode model as it is (BatchNorm statistics move);
    # this package's methods and the baselines leave even a train-mode model untouched.
    ours = METHODS[name].cls is None or issubclass(METHODS[name].cls, LayerContrastAttribution)
    model = small_cnn(num_classes=5, width=4, batch_norm=True).train(ours)
    before = model_snapshot(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "explained in eval mode"
        maps = explain(
            name,
            model,
            model.features,
            torch.rand(3, 1, 32, 32),
            torch.tensor([0, 2, 4]),
            **METHODS[name].run_kwargs(2),
        )
    assert maps.shape[:2] == (3, 1) and torch.isfinite(maps).all()
    assert_untouched(before, model)


def test_finer_cam_entry_is_torchcams_defaults(tiny) -> None:
    from captum_contrast import FinerCAM

    images, targets = torch.rand(2, 1, 32, 32), torch.tensor([3, 5])
    expected = FinerCAM(tiny, tiny.features).attribute(images, targets, k=3, gamma=0.6)
    torch.testing.assert_close(explain("finer-cam", tiny, tiny.features, images, targets), expected)
