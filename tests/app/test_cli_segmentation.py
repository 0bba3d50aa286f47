"""``explain --region``: a torchvision segmentation network explained for a region, no wrapper."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models.segmentation import lraspp_mobilenet_v3_large

from captum_contrast import ContrastGradCAM
from captum_contrast.app.cli import main
from captum_contrast.app.loading import load_model
from captum_contrast.app.regions import region_scores


@pytest.fixture(scope="module")
def segmentation_files(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("segmentation")
    torch.manual_seed(0)
    network = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=3)
    torch.save(network.state_dict(), root / "lraspp.pth")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(root / "street.png")
    return {"weights": str(root / "lraspp.pth"), "image": str(root / "street.png")}


def _args(files: dict[str, str], *extra: str) -> list[str]:
    return [
        "explain",
        "--arch",
        "lraspp_mobilenet_v3_large",
        "--weights",
        files["weights"],
        "--resize",
        "64",
        "--crop",
        "64",
        "--layer",
        "backbone.16",
        *extra,
        files["image"],
    ]


def test_explain_a_region_writes_maps_and_says_what_it_did(
    segmentation_files, tmp_path, capsys
) -> None:
    out = tmp_path / "out"
    code = main(
        _args(
            segmentation_files,
            "--region",
            "8,16,40,48",
            "--target",
            "2",
            "--out",
            str(out),
            "--method",
            "contrast-grad-cam",
            "--method",
            "grad-cam",
        )
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "explaining region 8,16,40,48 of the 64x64 input (1024 output cells)" in printed
    assert "targets [2]" in printed
    assert (out / "street_contrast-grad-cam.png").exists() and (
        out / "street_grad-cam.png"
    ).exists()


def test_region_scores_map_input_pixels_to_output_cells() -> None:
    images = torch.zeros(1, 3, 64, 64)
    scores = region_scores((8, 16, 40, 48), images, {"out": torch.zeros(1, 3, 16, 16)})
    expected = torch.zeros(16, 16, dtype=torch.bool)
    expected[4:12, 2:10] = True  # output cells of 4x4 input pixels
    assert torch.equal(scores.mask, expected)


def test_the_cli_map_is_the_library_map(segmentation_files) -> None:
    loaded = load_model("lraspp_mobilenet_v3_large", segmentation_files["weights"])
    layer = loaded.network.get_submodule("backbone.16")
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        outputs = loaded.model(images)
    scores = region_scores((8, 16, 40, 48), images, outputs)
    got = ContrastGradCAM(loaded.model, layer).attribute(images, 2, scores=scores)
    wrapped = ContrastGradCAM(lambda x: scores(loaded.model(x)["out"]), layer).attribute(images, 2)
    torch.testing.assert_close(got, wrapped)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ((), "is a segmentation network: pass --region"),
        (("--region", "0,0,80,10"), "outside the 64x64 model input"),
    ],
)
def test_region_errors_are_messages(segmentation_files, capsys, extra, message) -> None:
    assert main(_args(segmentation_files, *extra)) == 2
    assert message in capsys.readouterr().err


def test_a_malformed_region_is_an_argparse_error(segmentation_files, capsys) -> None:
    with pytest.raises(SystemExit):
        main(_args(segmentation_files, "--region", "5,5,1,1"))
    assert "x2 > x1" in capsys.readouterr().err
