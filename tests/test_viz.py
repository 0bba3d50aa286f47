"""Figures: image layouts, map scaling, what the overlay actually draws, files written."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from captum_contrast.viz import (
    attribution_grid,
    display_maps,
    overlay,
    save_overlay,
    to_display_image,
)


def test_display_image_accepts_torch_numpy_gray_and_255_ranges() -> None:
    rgb = torch.rand(3, 5, 7)
    np.testing.assert_allclose(to_display_image(rgb), rgb.permute(1, 2, 0).numpy())
    gray = torch.rand(1, 5, 7)
    assert to_display_image(gray).shape == (5, 7, 1)
    pixels = np.full((4, 6, 3), 255, dtype=np.uint8)
    np.testing.assert_allclose(to_display_image(pixels), 1.0)
    assert to_display_image(np.zeros((4, 6))).shape == (4, 6, 1)
    with pytest.raises(ValueError, match="image"):
        to_display_image(torch.rand(2, 5, 7))


def test_display_maps_upsamples_bilinearly_then_normalises_per_map() -> None:
    maps = torch.tensor([[[[0.0, 2.0], [4.0, 8.0]]], [[[1.0, 1.0], [1.0, 3.0]]]])
    shown = display_maps(maps, (6, 6))
    expected = F.interpolate(maps, size=(6, 6), mode="bilinear", align_corners=False)
    lows = expected.flatten(1).min(1).values.reshape(-1, 1, 1, 1)
    highs = expected.flatten(1).max(1).values.reshape(-1, 1, 1, 1)
    torch.testing.assert_close(shown, (expected - lows) / (highs - lows))
    assert shown.flatten(1).max(1).values.tolist() == [1.0, 1.0]


def test_display_maps_signed_keeps_sign_and_scales_by_largest_magnitude() -> None:
    maps = torch.tensor([[[[-4.0, 2.0], [1.0, 0.0]]]])
    torch.testing.assert_close(
        display_maps(maps, (2, 2), sign="all"), torch.tensor([[[[-1.0, 0.5], [0.25, 0.0]]]])
    )
    assert float(display_maps(torch.zeros(1, 1, 2, 2), (4, 4)).abs().max()) == 0.0
    with pytest.raises(ValueError, match="sign"):
        display_maps(maps, (2, 2), sign="absolute_value")


def test_overlay_draws_the_scaled_map_over_the_grayscale_image() -> None:
    image = torch.rand(3, 8, 8)
    attribution = torch.tensor([[[0.0, 1.0], [2.0, 3.0]]])
    _, ax = overlay(image, attribution, title="CAM")
    background, heat = ax.get_images()[:2]
    np.testing.assert_allclose(
        background.get_array(),
        np.clip((image.permute(1, 2, 0).numpy() * 255).astype(int), 0, 255).mean(axis=2),
    )
    expected = display_maps(attribution[None], (8, 8))[0, 0].numpy()
    np.testing.assert_allclose(np.asarray(heat.get_array()), expected, rtol=1e-6)
    assert heat.get_clim() == (0, 1)
    assert ax.get_title() == "CAM"


def test_overlay_of_an_all_zero_map_draws_zeros_instead_of_failing() -> None:
    _, ax = overlay(np.random.rand(6, 6), np.zeros((3, 3)), mask=np.eye(6, dtype=bool))
    heat = ax.get_images()[1]
    assert float(np.abs(np.asarray(heat.get_array())).max()) == 0.0
    assert len(ax.get_images()) == 3  # image, heat map, mask outline


def test_grid_layout_titles_and_png(tmp_path) -> None:
    images = torch.rand(3, 1, 16, 16)
    maps = {"Grad-CAM": torch.rand(3, 1, 4, 4), "signed": torch.randn(3, 1, 4, 4)}
    masks = torch.rand(3, 16, 16) > 0.5
    path = tmp_path / "sub" / "grid.png"
    figure = attribution_grid(
        images,
        maps,
        masks=masks,
        row_titles=["a", "b", "c"],
        path=path,
        signs={"signed": "all"},
        suptitle="demo",
    )
    panels = [ax for ax in figure.axes if ax.get_title() or ax.get_ylabel() or ax.images]
    titles = [ax.get_title() for ax in figure.axes[:4]]
    assert titles == ["image", "ground truth", "Grad-CAM", "signed"]
    assert [figure.axes[4 * row].get_ylabel() for row in range(3)] == ["a", "b", "c"]
    assert len(figure.axes) == 3 * 4 + 2  # the panels and two colour bars (0..1 and -1..1)
    assert len(panels) >= 12
    with Image.open(path) as png:
        assert png.size[0] > 400 and png.size[1] > 300
        assert len(set(png.convert("L").getdata())) > 50  # real content, not a blank canvas


def test_grid_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="maps"):
        attribution_grid(torch.rand(2, 3, 8, 8), {"m": torch.rand(3, 1, 2, 2)})
    with pytest.raises(ValueError, match="row_titles"):
        attribution_grid(torch.rand(2, 3, 8, 8), {"m": torch.rand(2, 1, 2, 2)}, row_titles=["x"])


def test_save_overlay_writes_a_png(tmp_path) -> None:
    path = save_overlay(torch.rand(3, 20, 20), torch.rand(1, 5, 5), tmp_path / "one.png", "t")
    with Image.open(path) as png:
        assert png.format == "PNG"
        assert len(set(png.convert("RGB").getdata())) > 100
