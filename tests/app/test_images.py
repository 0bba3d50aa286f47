"""The command line's one image loader (issue 22): bit depth scaled, EXIF orientation
applied, every mode converted, size limits and unreadable files named; CLI errors are one
line with exit status 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models import resnet18

from captum_contrast.app import images
from captum_contrast.app.cli import main
from captum_contrast.app.images import image_transform, load_image
from captum_contrast.app.loading import CommandError


def test_a_16_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    # Issue 22: a 0-65535 ramp became 98% white (clipped at 255).
    ramp = np.linspace(0, 65535, 64 * 64).round().astype(np.uint16).reshape(64, 64)
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    decoded = np.asarray(load_image(tmp_path / "ramp.png"), dtype=np.float64)
    np.testing.assert_allclose(decoded, ramp / 65535 * 255, atol=0.5)
    assert (decoded == 255).mean() < 0.01
    tensor = image_transform(64, 64, 3)(load_image(tmp_path / "ramp.png"))
    assert tensor.shape == (3, 64, 64)
    assert abs(float(tensor.mean()) - 0.5) < 0.01


def test_the_exif_orientation_is_applied(tmp_path: Path) -> None:
    # Issue 22: a JPEG with an orientation tag was explained sideways. Orientation 6: the
    # stored pixels are rotated 90 degrees clockwise for display.
    stored = np.zeros((20, 40, 3), dtype=np.uint8)
    stored[:, :20] = 255  # white on the stored left half
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    shown = np.asarray(load_image(tmp_path / "phone.jpg"))
    assert shown.shape == (40, 20, 3)  # portrait, as a viewer shows it
    assert shown[:18].mean() > 240 and shown[22:].mean() < 15  # the white half on top


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("P", "RGB"), ("RGBA", "RGB"), ("LA", "L"), ("CMYK", "RGB"), ("1", "L"), ("I;16", "L")],
)
def test_every_mode_becomes_8_bit_rgb_or_grey(tmp_path: Path, mode: str, expected: str) -> None:
    source = Image.fromarray(np.full((6, 6, 3), (200, 40, 10), dtype=np.uint8))
    converted = source.convert("L" if mode in ("LA", "I;16") else "RGB").convert(mode)
    path = tmp_path / ("image.jpg" if mode == "CMYK" else "image.png")
    converted.save(path)
    image = load_image(path)
    assert image.mode == expected
    # Pillow's own conversion of what was saved; a 16-bit 84 is 84 / 65535 of white: black.
    expected_grey = 0.0 if mode == "I;16" else np.asarray(converted.convert("L"), float).mean()
    value = np.asarray(image.convert("L"), dtype=np.float64).mean()
    assert abs(value - expected_grey) < (6 if mode == "CMYK" else 1), value


def test_a_palette_with_a_transparent_colour_is_composited(tmp_path: Path) -> None:
    palette = Image.fromarray(np.array([[0, 1]], dtype=np.uint8), mode="P")
    palette.putpalette([0, 0, 0, 10, 20, 30])
    palette.save(tmp_path / "p.png", transparency=0)
    assert np.asarray(load_image(tmp_path / "p.png")).tolist() == [[[255] * 3, [10, 20, 30]]]


def test_transparency_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)  # black, fully transparent
    rgba[:2, :, 3] = 255  # the top half opaque black
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "alpha.png")
    pixels = np.asarray(load_image(tmp_path / "alpha.png"))
    assert (pixels[:2] == 0).all() and (pixels[2:] == 255).all()


def test_a_decompression_bomb_is_refused_unread(tmp_path: Path, monkeypatch) -> None:
    Image.new("L", (200, 100)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 10_000)
    with pytest.raises(CommandError, match=r"bomb\.png is 200x100 = 20000 pixels, over"):
        load_image(tmp_path / "bomb.png")


@pytest.mark.parametrize("content", [b"not an image", b"\x89PNG\r\n\x1a\n" + b"\0" * 30])
def test_an_unreadable_file_is_named(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "broken.png").write_bytes(content)
    with pytest.raises(CommandError, match=r"cannot read image .*broken\.png"):
        load_image(tmp_path / "broken.png")


def test_a_truncated_file_is_named(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(CommandError, match=r"cannot read image .*cut\.png"):
        load_image(tmp_path / "cut.png")


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("images") / "r18.pth"
    torch.manual_seed(0)
    torch.save(resnet18(weights=None, num_classes=5).state_dict(), path)
    return str(path)


def _explain(weights: str, image: str, out: str) -> list[str]:
    return [
        "explain", "--arch", "resnet18", "--weights", weights, "--layer", "layer4",
        "--resize", "32", "--crop", "32", "--out", out, image,
    ]  # fmt: skip


def _one_line_error(capsys, fragment: str) -> None:
    err = capsys.readouterr().err
    assert "Traceback" not in err and fragment in err
    assert len(err.strip().splitlines()) == 1


def test_the_command_line_names_a_bomb_in_one_line(weights, tmp_path, capsys, monkeypatch):
    Image.new("L", (200, 100)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 10_000)
    assert main(_explain(weights, str(tmp_path / "bomb.png"), str(tmp_path / "out"))) == 2
    _one_line_error(capsys, "bomb.png is 200x100 = 20000 pixels")


def test_the_command_line_names_an_unwritable_out(weights, tmp_path, capsys, monkeypatch):
    Image.new("RGB", (40, 40)).save(tmp_path / "cat.png")

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(tmp_path / "out" / "cat.png"))

    # Running as root, no directory is unwritable: the save itself is made to fail.
    monkeypatch.setattr("captum_contrast.viz.save_overlay", refuse)
    assert main(_explain(weights, str(tmp_path / "cat.png"), str(tmp_path / "out"))) == 2
    _one_line_error(capsys, "Permission denied")


@pytest.mark.parametrize("config", ["{not json", '{"model_type": "no-such-model"}'])
def test_the_command_line_names_a_broken_hf_directory(tmp_path, capsys, config) -> None:
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text(config)
    Image.new("RGB", (40, 40)).save(tmp_path / "cat.png")
    argv = ["explain", "--arch", f"hf:{tmp_path / 'hf'}", "--layer", "x"]
    assert main([*argv, "--out", str(tmp_path / "out"), str(tmp_path / "cat.png")]) == 2
    _one_line_error(capsys, "cannot load the model")
