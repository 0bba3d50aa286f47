"""Models a user brings to the command line: torchvision named weights from the hub cache,
class names as targets, default layers, timm and Hugging Face models (when installed)."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torchvision.models import ResNet18_Weights, resnet18

from captum_contrast.app.cli import main
from captum_contrast.app.loading import (
    CommandError,
    class_index,
    hub_checkpoint,
    load_model,
)
from captum_contrast.layers import default_layer


@pytest.fixture
def image(tmp_path) -> str:
    path = tmp_path / "photo.png"
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(path)
    return str(path)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub under a temporary TORCH_HOME; any download attempt fails."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_named_weights_load_from_the_hub_cache_with_torchvision_preprocessing(hub) -> None:
    path = hub_checkpoint(ResNet18_Weights.IMAGENET1K_V1)
    assert path == hub / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    state = resnet18(weights=None).state_dict()
    torch.save(state, path)
    loaded = load_model("resnet18", "DEFAULT")
    torch.testing.assert_close(loaded.network.conv1.weight, state["conv1.weight"])
    assert (loaded.resize, loaded.crop) == (256, 224)  # ResNet18_Weights.transforms()
    assert loaded.categories[1] == "goldfish" and len(loaded.categories) == 1000
    assert class_index("Goldfish", loaded.categories, 1000) == 1
    with pytest.raises(CommandError, match="did you mean goldfish"):
        class_index("goldfsh", loaded.categories, 1000)
    with pytest.raises(CommandError, match="IMAGENET1K_V1, DEFAULT"):
        load_model("resnet18", "IMAGENET1K_V9")


def test_offline_named_weights_say_where_to_place_the_file(hub, image, tmp_path, capsys) -> None:
    argv = ["explain", "--arch", "resnet18", "--weights", "DEFAULT", "--layer", "layer4", image]
    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"place it at {hub / 'resnet18-f37072fd.pth'}" in err and "Traceback" not in err


def test_explain_with_a_class_name_and_the_default_layer(hub, image, tmp_path, capsys) -> None:
    hub.mkdir(parents=True)
    torch.save(resnet18(weights=None).state_dict(), hub / "resnet18-f37072fd.pth")
    argv = ["explain", "--arch", "resnet18", "--weights", "IMAGENET1K_V1", "--target", "tench"]
    argv += ["--crop", "32", "--resize", "32", "--method", "grad-cam", "--out", str(tmp_path)]
    assert main([*argv, image]) == 0
    out = capsys.readouterr().out
    assert "--layer layer4 (the default for resnet18" in out
    assert (tmp_path / "photo_grad-cam.png").is_file()


@pytest.mark.parametrize(
    ("arch", "expected"),
    [
        ("resnet18", "layer4"),
        ("vgg11", "features"),
        ("mobilenet_v3_small", "features"),
        ("shufflenet_v2_x0_5", "conv5"),
    ],
)
def test_default_layers(arch: str, expected: str) -> None:
    torch.manual_seed(0)
    network = torchvision.models.get_model(arch, weights=None).eval()
    assert default_layer(network, network, torch.rand(1, 3, 64, 64)) == expected


def test_default_layer_of_a_class_token_transformer_is_the_last_attention_input() -> None:
    torch.manual_seed(0)
    vit = torchvision.models.VisionTransformer(64, 16, 2, 2, 16, 32, num_classes=3).eval()
    torch.nn.init.normal_(vit.heads.head.weight)  # torchvision zero-initialises the head
    # After ln_1, only the class token reaches the head: later layers get no patch gradient.
    assert (
        default_layer(vit, vit, torch.rand(1, 3, 64, 64)) == "encoder.layers.encoder_layer_1.ln_1"
    )


def test_timm_models(tmp_path, image, capsys) -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    network = timm.create_model("resnet18", pretrained=False, num_classes=3)
    torch.save(network.state_dict(), tmp_path / "timm.pth")
    argv = ["explain", "--arch", "timm:resnet18", "--weights", str(tmp_path / "timm.pth")]
    argv += ["--crop", "32", "--resize", "32", "--out", str(tmp_path), image]
    assert main(argv) == 0
    assert "--layer layer4" in capsys.readouterr().out
    assert main(["explain", "--arch", "timm:resnet19", "--weights", "x.pth", image]) == 2
    assert "did you mean" in capsys.readouterr().err


def test_hugging_face_model_directories(tmp_path, image, capsys) -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=3,
        id2label={0: "cat", 1: "dog", 2: "fox"},
        label2id={"cat": 0, "dog": 1, "fox": 2},
    )
    transformers.ViTForImageClassification(config).save_pretrained(tmp_path / "vit")
    argv = ["explain", "--arch", f"hf:{tmp_path / 'vit'}", "--target", "dog", "--crop", "32"]
    argv += ["--resize", "32", "--method", "minmax-cam", "--out", str(tmp_path), image]
    assert main(argv) == 0
    assert "layernorm_before (the default for hf:" in capsys.readouterr().out
    assert (tmp_path / "photo_minmax-cam.png").is_file()
