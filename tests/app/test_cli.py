"""The command line: version, explain (outputs and error messages), evaluate, demo."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models import resnet18

from captum_contrast import __version__
from captum_contrast.app.cli import main
from captum_contrast.app.loading import IMAGENET_MEAN, IMAGENET_STD, build_model
from captum_contrast.data.trained import QUICK_CONFIG, DemoConfig, cache_dir


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """A resnet18 state dict with 5 classes, two small images and a file that is no image."""
    root = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    torch.save(resnet18(weights=None, num_classes=5).state_dict(), root / "r18.pth")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(root / "cat.png")
    Image.fromarray(rng.integers(0, 255, (36, 36), dtype=np.uint8)).save(root / "dog.jpg")
    (root / "notes.png").write_text("not an image")
    return {name: str(root / name) for name in ("r18.pth", "cat.png", "dog.jpg", "notes.png")} | {
        "root": str(root)
    }


def explain_args(files: dict[str, str], *extra: str) -> list[str]:
    return [
        "explain",
        "--arch",
        "resnet18",
        "--weights",
        files["r18.pth"],
        "--layer",
        "layer4",
        "--resize",
        "32",
        "--crop",
        "32",
        *extra,
    ]


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"captum-contrast {__version__}"


def test_build_model_infers_the_classes_and_puts_normalisation_first(files) -> None:
    model, network = build_model("resnet18", files["r18.pth"])
    assert network.fc.out_features == 5
    images = torch.rand(2, 3, 32, 32)
    mean = torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(images), network((images - mean) / std))
    assert not model.training and not network.training


def test_explain_writes_one_overlay_per_image_and_method(files, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    code = main(
        explain_args(
            files,
            "--method",
            "contrast-grad-cam",
            "--method",
            "opti-cam",
            "--opti-iters",
            "2",
            "--target",
            "3",
            "--out",
            str(out),
            files["cat.png"],
            files["dog.jpg"],
        )
    )
    assert code == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == [
        "cat_contrast-grad-cam.png",
        "cat_opti-cam.png",
        "dog_contrast-grad-cam.png",
        "dog_opti-cam.png",
    ]
    assert str(out / "cat_opti-cam.png") in capsys.readouterr().out
    for name in written:
        with Image.open(out / name) as png:
            assert png.size == (480, 400)
            assert len(set(png.convert("RGB").getdata())) > 100


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--arch": "resnet19"}, "unknown --arch 'resnet19'; did you mean resnet18"),
        (
            {"--layer": "layer5"},
            "--layer 'layer5' is not a module of ResNet; did you mean layer4",
        ),
        ({"--arch": "resnet34"}, "does not match --arch resnet34 (missing keys: layer1.2."),
        ({"--num-classes": "7"}, "shape mismatches: fc.weight (5, 512) vs (7, 512)"),
        ({"--weights": "notes.png"}, "not a tensor-only PyTorch checkpoint"),
        ({"--weights": "missing.pth"}, "does not exist"),
        ({"image": "notes.png"}, "cannot read image"),
        ({"image": "missing.png"}, "cannot read image"),
        ({"--target": "5"}, "--target 5 is not a class of a model with 5 outputs"),
    ],
)
def test_explain_errors_are_messages_with_exit_code_2(
    files, tmp_path, capsys, change, message
) -> None:
    options = {"--arch": "resnet18", "--weights": files["r18.pth"], "--layer": "layer4"}
    for key, value in change.items():
        options[key] = (
            files.get(value, str(tmp_path / value)) if key in ("--weights", "image") else value
        )
    image = options.pop("image", files["cat.png"])
    argv = [
        "explain",
        *[part for pair in options.items() for part in pair],
        "--out",
        str(tmp_path),
        image,
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("captum-contrast explain: error: ")
    assert message in err
    assert "Traceback" not in err


def test_unknown_method_is_an_argparse_error(files, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(explain_args(files, "--method", "score-cam", files["cat.png"]))
    assert exit_info.value.code == 2
    assert "invalid choice: 'score-cam'" in capsys.readouterr().err


def test_evaluate_on_an_image_folder(files, tmp_path, capsys) -> None:
    for folder, count in (("a", 2), ("b", 1)):
        (tmp_path / "data" / folder).mkdir(parents=True)
        for index in range(count):
            Image.open(files["cat.png"]).rotate(90 * index).save(
                tmp_path / "data" / folder / f"{index}.png"
            )
    out = tmp_path / "table"
    code = main(
        [
            "evaluate",
            "--data",
            str(tmp_path / "data"),
            "--arch",
            "resnet18",
            "--weights",
            files["r18.pth"],
            "--layer",
            "layer4",
            "--resize",
            "32",
            "--crop",
            "32",
            "--method",
            "grad-cam",
            "--method",
            "fake-cam",
            "--metric",
            "average-drop",
            "--metric",
            "average-increase",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    lines = (out / "metrics.md").read_text().split("\n\n")[0].splitlines()  # the table
    assert lines[0] == "| method | examples | AD ↓ | AI ↑ |"
    assert [line.split(" | ")[:2] for line in lines[2:]] == [
        ["| Grad-CAM (Captum)", "3"],
        ["| Fake-CAM", "3"],
    ]
    with (out / "metrics.csv").open() as handle:
        fake_cam_drop = float(list(csv.reader(handle))[2][2])
    assert 0 <= fake_cam_drop < 5  # keeps all but one pixel: the class barely drops
    # Object masks exist only for the canvases.
    assert (
        main(
            [
                "evaluate",
                "--data",
                str(tmp_path / "data"),
                "--arch",
                "resnet18",
                "--weights",
                files["r18.pth"],
                "--layer",
                "layer4",
                "--resize",
                "32",
                "--crop",
                "32",
                "--metric",
                "mass-on-object",
            ]
        )
        == 2
    )
    assert "need a dataset whose items carry object masks" in capsys.readouterr().err


def test_evaluate_needs_a_model_for_an_image_folder(tmp_path, capsys) -> None:
    assert main(["evaluate", "--data", str(tmp_path)]) == 2
    assert "--arch (and its --weights) is required" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(tmp_path / "nowhere")]) == 2
    assert "neither 'canvases' nor a directory" in capsys.readouterr().err


def test_cache_directory_and_config_keys(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "captum_contrast"
    assert DemoConfig().key() == DemoConfig().key() != QUICK_CONFIG.key()
    assert DemoConfig(seed=1).key() != DemoConfig().key()


def test_quick_demo_writes_figure_and_table_and_caches_the_model(
    monkeypatch, tmp_path, capsys
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    first = capsys.readouterr().out
    assert "trained and cached" in first
    cached = tmp_path / "cache" / "captum_contrast" / f"demo-{QUICK_CONFIG.key()}.pt"
    assert cached.is_file()
    assert f"figure:  {(out / 'demo.png').resolve()}" in first
    with Image.open(out / "demo.png") as png:
        assert png.size[0] > 1000 and png.size[1] > 500
    table = (out / "metrics.md").read_text().split("\n\n")[0].splitlines()  # the table
    assert table[0].startswith("| method | examples | IC ↑ | AD ↓ | ADO ↑ | AR ↑ | ARO ↓ |")
    assert [row.split(" | ")[0] for row in table[2:]] == [
        "| Grad-CAM (Captum)",
        "| ContrastGradCAM",
        "| FinerCAM",
        "| MinMaxCAM",
        "| OptiCAM",
        "| DifferenceSalience",
        "| Fake-CAM",
        "| Random map (seed 0)",
    ]
    before = cached.stat().st_mtime_ns
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    assert "loaded from cache" in capsys.readouterr().out
    assert cached.stat().st_mtime_ns == before


def test_a_layer_without_feature_maps_is_a_message(files, tmp_path, capsys) -> None:
    assert main(explain_args(files, "--layer", "fc", "--out", str(tmp_path), files["cat.png"])) == 2
    err = capsys.readouterr().err
    assert "out as maps (B, K, *grid)" in err and "Traceback" not in err


def test_no_command_prints_help(capsys) -> None:
    assert main([]) == 0
    assert "{demo,explain,evaluate}" in capsys.readouterr().out


def test_evaluate_canvases_defaults_to_the_demo_model(monkeypatch, tmp_path) -> None:
    import captum_contrast.data.trained as demo

    torch.manual_seed(0)
    tiny = demo.demo_model(width=4).eval()
    monkeypatch.setattr(demo, "trained_model", lambda *args, **kwargs: (tiny, None, True))
    out = tmp_path / "canvases"
    assert (
        main(
            [
                "evaluate",
                "--canvases",
                "8",
                "--targets",
                "predicted",
                "--method",
                "grad-cam",
                "--method",
                "minmax-cam",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    lines = (out / "metrics.md").read_text().split("\n\n")[0].splitlines()  # the table
    assert lines[0] == (
        "| method | examples | IC ↑ | AD ↓ | ADO ↑ | AR ↑ | ARO ↓ | "
        "Mass on object % ↑ | F1- ↓ | F1+ ↑ |"
    )
    assert [line.split(" | ")[:2] for line in lines[2:]] == [
        ["| Grad-CAM (Captum)", "8"],
        ["| MinMaxCAM", "8"],
    ]


def test_a_damaged_cache_file_is_retrained(tmp_path) -> None:
    from captum_contrast.data.trained import trained_model

    path = tmp_path / f"demo-{QUICK_CONFIG.key()}.pt"
    path.write_bytes(b"half a file")
    model, written, cached = trained_model(QUICK_CONFIG, cache=tmp_path, progress=False)
    assert (written, cached) == (path, False)
    assert set(torch.load(path, weights_only=True)) == set(model.state_dict())
    assert trained_model(QUICK_CONFIG, cache=tmp_path, progress=False)[2] is True
