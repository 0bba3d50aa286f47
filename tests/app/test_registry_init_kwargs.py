"""The registry's constructor extras: ``init_kwargs`` reach the class, or fail by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from captum_contrast import ContrastGradCAM, MinMaxCAM
from captum_contrast.app.registry import constructor_kwargs, explain, explain_func


class Tokens(nn.Module):
    """A conv stem whose 4x4 grid leaves ``layer`` as 16 tokens ``(B, 16, 6)``.

    Six channels on a 16-token sequence: the automatic layout cannot tell it from an image.
    The weights are fixed (seeded), so every map below is a number, not a shape.
    """

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.stem = nn.Conv2d(1, 6, 2, stride=2)
        self.layer = nn.Identity()
        self.head = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.stem(x).flatten(2).transpose(1, 2)  # (B, 16, 6)
        return self.head(torch.relu(self.layer(tokens)).mean(1))


def to_grid(tokens: torch.Tensor) -> torch.Tensor:
    return tokens.transpose(1, 2).reshape(len(tokens), -1, 4, 4)


def test_a_reshape_transform_reaches_the_class_and_gives_its_map() -> None:
    model = Tokens().eval()
    images, targets = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0)), None
    targets = torch.tensor([0, 2, 3])
    extras = {"reshape_transform": to_grid}
    for name, direct in (
        ("contrast-grad-cam", ContrastGradCAM(model, model.layer, **extras).attribute(
            images, target=targets, k=1)),
        ("minmax-cam", MinMaxCAM(model, model.layer, **extras).attribute(
            images, target=targets, variant="minmax")),
    ):  # fmt: skip
        maps = explain(name, model, model.layer, images, targets, init_kwargs=extras)
        assert maps.shape == (3, 1, 4, 4) and float(maps.abs().sum()) > 0
        torch.testing.assert_close(maps, direct.detach())
        # The Quantus path: the same map, upsampled to the 8x8 input.
        quantus_maps = explain_func(name, model, "layer", init_kwargs=extras)(
            model, images.numpy(), targets.numpy()
        )
        expected = nn.functional.interpolate(maps, size=(8, 8), mode="bilinear")
        np.testing.assert_allclose(quantus_maps, expected.numpy(), rtol=1e-5, atol=1e-7)


def test_the_transform_is_used_not_dropped() -> None:
    model = Tokens().eval()
    images, targets = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1)), None
    targets = torch.tensor([1, 3])
    # The same tokens laid out transposed: the map must follow the layout it is given.
    transposed = {"reshape_transform": lambda t: to_grid(t).transpose(2, 3)}
    maps = explain("minmax-cam", model, model.layer, images, targets, init_kwargs=transposed)
    plain = explain(
        "minmax-cam",
        model,
        model.layer,
        images,
        targets,
        init_kwargs={"reshape_transform": to_grid},
    )
    assert not torch.allclose(maps, plain)
    torch.testing.assert_close(maps, plain.transpose(2, 3))


def test_an_identity_transform_on_a_channels_first_layer_equals_no_transform() -> None:
    from captum_contrast.data.models import small_cnn

    torch.manual_seed(0)
    model = small_cnn(num_classes=5, width=4).eval()
    images, targets = torch.rand(2, 1, 16, 16), torch.tensor([0, 4])
    same = {"reshape_transform": lambda activations: activations}
    with_identity = explain("finer-cam", model, model.features, images, targets, init_kwargs=same)
    torch.testing.assert_close(
        with_identity, explain("finer-cam", model, model.features, images, targets)
    )


def test_captum_grad_cam_refuses_a_reshape_transform_by_name() -> None:
    model = Tokens().eval()
    images, targets = torch.rand(2, 1, 8, 8), torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r"init_kwargs\['reshape_transform'\]` is not taken by"):
        explain("grad-cam", model, model.layer, images, targets, init_kwargs={
            "reshape_transform": to_grid})  # fmt: skip
    with pytest.raises(ValueError, match=r"init_kwargs\['reshape_transform'\]"):
        explain_func("grad-cam", model, "layer", init_kwargs={"reshape_transform": to_grid})
    with pytest.raises(ValueError, match=r"`init_kwargs` has \['stride'\].*takes"):
        constructor_kwargs("contrast-grad-cam", model, {"stride": 2})
    # The model-free baselines read no layer: the extras change nothing.
    assert constructor_kwargs("random-cam", model, {"reshape_transform": to_grid}) == {}


def test_a_given_transform_wins_over_the_vision_transformer_default() -> None:
    from torchvision.models import vit_b_16

    from captum_contrast import vit_reshape_transform

    torch.manual_seed(0)
    model = vit_b_16(weights=None, image_size=32, num_classes=4).eval()
    assert constructor_kwargs("minmax-cam", model) == {"reshape_transform": vit_reshape_transform}
    mine = {"reshape_transform": to_grid}
    assert constructor_kwargs("minmax-cam", model, mine) == mine


def test_the_registry_refuses_what_it_would_otherwise_get_wrong() -> None:
    """Found by the probe: each of these returned maps of the wrong batch or rank, ignored an
    override, or changed the model (Captum's class in training mode)."""
    import warnings

    from captum_contrast.app.registry import explain as registry_explain
    from captum_contrast.metrics import random_cam

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3),
    )  # fmt: skip
    images, targets = torch.rand(2, 1, 8, 8), torch.tensor([0, 2])
    model.eval()
    for transform, message in (
        (lambda a: a[:1], "batch axis"),
        (lambda a: torch.cat([a, a]), "batch axis"),
        (lambda a: a.long(), "floating"),
        (lambda a: None, "floating"),
        (lambda a: a.flatten(2), r"\(B, 1, h, w\)"),
    ):
        for name in ("contrast-grad-cam", "minmax-cam", "finer-cam"):
            with pytest.raises(ValueError, match=message):
                registry_explain(
                    name, model, model[2], images, targets,
                    init_kwargs={"reshape_transform": transform},
                )  # fmt: skip
    with pytest.raises(TypeError, match="`init_kwargs` must be a mapping"):
        registry_explain("minmax-cam", model, model[2], images, targets, init_kwargs="abc")
    with pytest.raises(TypeError, match="names are strings"):
        registry_explain(["grad-cam"], model, model[2], images, targets)
    # A baseline's own options reach it; others are refused, not ignored.
    seeded = registry_explain("random-cam", model, model[2], images, targets, seed=5)
    np.testing.assert_array_equal(seeded.numpy(), random_cam(model, images, targets, seed=5))
    assert not torch.equal(seeded, registry_explain("random-cam", model, model[2], images, targets))
    with pytest.raises(ValueError, match="model-free baseline"):
        registry_explain("fake-cam", model, model[2], images, targets, seed=5)
    # Captum's LayerGradCam on a model in training mode: eval mode, a warning, no trace.
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trained = registry_explain("grad-cam", model, model[2], images, targets)
    assert any("training mode" in str(w.message) for w in caught)
    assert model.training and all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    model.eval()
    torch.testing.assert_close(
        trained, registry_explain("grad-cam", model, model[2], images, targets)
    )
