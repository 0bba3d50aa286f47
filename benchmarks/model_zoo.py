"""Every method on every torchvision classification architecture (and timm / Hugging Face
models when installed), next to Captum's LayerGradCam and pytorch-grad-cam's GradCAM.

Random weights (a zero-initialised head, as torchvision's ViT has, is redrawn so gradients
are not all zero), batch 2, small inputs, OptiCAM with 3 iterations, each at the layer the
command line picks by default (:func:`captum_contrast.layers.default_layer`). A cell is
``ok`` when the method returns a finite ``(B, 1, *grid)`` map whose grid fits the input and
has more than one cell, ``not a map`` when it returns something else, ``error`` when it
raises. ``MinMax = Grad-CAM`` is the largest difference between MinMaxCAM with the target as
its only label and Captum's LayerGradCam (ReLU'd), relative to the map's scale, where Captum
reads the layer as it is (channels-first layers). Neither Captum nor pytorch-grad-cam is
given a reshape_transform: the columns show what each does with no user code.

Run ``nice -n 10 python benchmarks/model_zoo.py`` (add ``--quick`` for one model per family);
writes ``results/model_zoo.md``.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from captum.attr import LayerGradCam
from torch import Tensor, nn

from captum_contrast.app.registry import METHODS as REGISTRY
from captum_contrast.layers import default_layer
from captum_contrast.methods import LayerContrastAttribution
from captum_contrast.scores import ClassScores
from captum_contrast.transforms import grid_fits, infer_layout

HERE = Path(__file__).resolve().parent
# The package's methods, from the registry (one column per entry; Captum's is its own column).
PACKAGE_METHODS = {
    name: method
    for name, method in REGISTRY.items()
    if method.cls is not None and issubclass(method.cls, LayerContrastAttribution)
}
METHODS = tuple(method.title for method in PACKAGE_METHODS.values())
COLUMNS = (*METHODS, "Captum LayerGradCam", "pytorch-grad-cam GradCAM")
FAMILIES = {  # one model per family runs in the test suite
    "ResNet": "resnet18",
    "VGG": "vgg11",
    "DenseNet": "densenet121",
    "EfficientNet": "efficientnet_b0",
    "ConvNeXt": "convnext_tiny",
    "RegNet": "regnet_x_400mf",
    "Inception": "inception_v3",
    "ViT": "vit_b_32",
    "Swin": "swin_t",
    "MaxViT": "maxvit_t",
}


@dataclass
class Entry:
    source: str
    name: str
    build: Callable[[], nn.Module]
    size: int


def input_size(name: str) -> int:
    """Small inputs that every architecture accepts (ViT and MaxViT have fixed sizes)."""
    if name.startswith("vit_h_14"):
        return 98  # 7x7 patches
    if name.startswith("vit_"):
        return 96  # 6x6 (patch 16) or 3x3 (patch 32) patches
    if name.startswith("maxvit"):
        return 224  # partition size 7 at every stage
    if name.startswith("inception"):
        return 160
    return 96 if name.startswith("swin") else 64


def torchvision_entries() -> Iterator[Entry]:
    for name in sorted(torchvision.models.list_models(module=torchvision.models)):
        size = input_size(name)
        kwargs: dict = {"image_size": size} if name.startswith("vit_") else {}
        if name in ("inception_v3", "googlenet"):
            kwargs["init_weights"] = False  # scipy's truncated normal takes seconds

        def build(name: str = name, kwargs: dict = kwargs) -> nn.Module:
            return torchvision.models.get_model(name, weights=None, **kwargs)

        yield Entry("torchvision", name, build, size)


TIMM_MODELS = {
    "resnet18": 64,
    "convnext_atto": 64,
    "efficientnet_b0": 64,
    "vit_tiny_patch16_224": 224,
    "deit_tiny_distilled_patch16_224": 224,
    "vit_base_patch16_reg4_gap_256": 256,
    "swin_tiny_patch4_window7_224": 224,
}


def timm_entries() -> Iterator[Entry]:
    try:
        import timm
    except ImportError:
        return
    for name, size in TIMM_MODELS.items():
        yield Entry("timm", name, lambda name=name: timm.create_model(name, pretrained=False), size)


def hf_entries() -> Iterator[Entry]:
    try:
        import transformers as hf
    except ImportError:
        return
    small = {"num_labels": 10}
    vit = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    configs = {
        "ViT": (hf.ViTConfig, {**vit, "intermediate_size": 128, "image_size": 96}, 96),
        "Swin": (
            hf.SwinConfig,
            {"embed_dim": 32, "depths": [1, 1, 1, 1], "num_heads": [2, 2, 2, 2], "image_size": 224},
            224,
        ),
        "ConvNext": (hf.ConvNextConfig, {"hidden_sizes": [16, 32, 64, 128]}, 64),
        "ResNet": (hf.ResNetConfig, {"hidden_sizes": [16, 32, 64, 128]}, 64),
    }
    for name, (config_class, kwargs, size) in configs.items():

        def build(config_class=config_class, kwargs=kwargs) -> nn.Module:
            config = config_class(**kwargs, **small)
            return hf.AutoModelForImageClassification.from_config(config)

        yield Entry("Hugging Face", f"{name} (from config)", build, size)


def prepare(network: nn.Module) -> nn.Module:
    """Eval mode, and any all-zero linear head redrawn so gradients are not all zero."""
    network.eval()
    for module in network.modules():
        if isinstance(module, nn.Linear) and not bool(module.weight.detach().any()):
            with torch.no_grad():
                module.weight.normal_(0, 0.02)
    return network


def is_map(result: Tensor, batch: int, spatial: tuple[int, ...]) -> bool:
    grid = tuple(result.shape[2:])
    return (
        result.dim() >= 3
        and result.shape[:2] == (batch, 1)
        and grid_fits(grid, spatial)
        and result[0, 0].numel() > 1
        and bool(torch.isfinite(result).all())
    )


def run_methods(network: nn.Module, layer: nn.Module, images: Tensor, opti_iters: int = 3):
    """``{column: result or exception}`` for the package's methods and Captum's Grad-CAM."""
    with torch.no_grad():
        logits = ClassScores()(network(images))
    target = logits.argmax(dim=1)
    labels = F.one_hot(target, logits.shape[1]).bool()
    # MinMax with the target as its only label: it must equal Grad-CAM (minmax_vs_grad_cam).
    extra = {"minmax-cam": {"labels": labels}, "d-minmax-cam": {"labels": labels}}
    calls: dict[str, Callable[[], Tensor]] = {
        method.title: partial(
            lambda m, kwargs: m.cls(network, layer).attribute(images, target, **kwargs),
            method,
            {**method.kwargs, **method.run_kwargs(opti_iters), **extra.get(name, {})},
        )
        for name, method in PACKAGE_METHODS.items()
    }
    calls["Captum LayerGradCam"] = lambda: LayerGradCam(_logits_of(network), layer).attribute(
        images, target, relu_attributions=True
    )
    results: dict[str, Tensor | Exception] = {}
    for column, call in calls.items():
        try:
            results[column] = call()
        except Exception as error:  # a cell of the table: any failure is reported
            results[column] = error
    return results


def _logits_of(network: nn.Module) -> Callable[..., Tensor]:
    return lambda *inputs: ClassScores()(network(*inputs))


def minmax_vs_grad_cam(results: dict) -> float | None:
    minmax, grad_cam = results.get("MinMaxCAM"), results.get("Captum LayerGradCam")
    if not isinstance(minmax, Tensor) or not isinstance(grad_cam, Tensor):
        return None
    if minmax.shape != grad_cam.shape:
        return None
    scale = grad_cam.detach().abs().max().clamp(min=1e-12)
    return float((minmax - grad_cam).detach().abs().max() / scale)


def pytorch_grad_cam_cell(network: nn.Module, layer: nn.Module, images: Tensor, raw) -> str:
    """pytorch-grad-cam's GradCAM with no reshape_transform: it reads dim 1 as channels, so
    on a channels-last or token layer it returns an upsampled non-map."""
    try:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    except ImportError:
        return "not installed"

    class Logits(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network = network

        def forward(self, x: Tensor) -> Tensor:
            return ClassScores()(self.network(x))

    try:
        with torch.no_grad():
            target = ClassScores()(network(images)).argmax(dim=1)
        with GradCAM(model=Logits(), target_layers=[layer]) as cam:
            maps = cam(images, targets=[ClassifierOutputTarget(int(t)) for t in target])
    except Exception as error:
        return _error(error)
    if raw is not None:
        return "not a map"
    return "ok" if maps.shape == (len(images), *images.shape[2:]) else "not a map"


def _error(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"error: {type(error).__name__}: {text[:60]}"


def check(
    entry: Entry, with_grad_cam_library: bool = True, opti_iters: int = 3, batch: int = 2
) -> dict:
    torch.manual_seed(0)
    network = prepare(entry.build())
    images = torch.rand(batch, 3, entry.size, entry.size)
    spatial = (entry.size, entry.size)
    row: dict = {"source": entry.source, "model": entry.name, "size": entry.size}
    try:
        layer_name = default_layer(network, network, images[:1])
    except Exception as error:
        row["layer"] = _error(error)
        return row
    layer = network.get_submodule(layer_name)
    layout = _layout(network, layer, images)
    row["layer"] = f"{layer_name} ({layout})"
    results = run_methods(network, layer, images, opti_iters)
    for column, result in results.items():
        if isinstance(result, Exception):
            row[column] = _error(result)
        else:
            row[column] = "ok" if is_map(result, len(images), spatial) else "not a map"
    if with_grad_cam_library:
        raw = None if layout == "channels-first" else layout
        row["pytorch-grad-cam GradCAM"] = pytorch_grad_cam_cell(network, layer, images, raw)
    row["minmax_gap"] = minmax_vs_grad_cam(results) if layout == "channels-first" else None
    return row


def _layout(network: nn.Module, layer: nn.Module, images: Tensor) -> str:
    shapes: list[tuple[int, ...]] = []

    def hook(module, args, output):
        output = output[0] if isinstance(output, tuple) else output
        shapes.append(tuple(output.shape))

    handle = layer.register_forward_hook(hook)
    try:
        with torch.no_grad():
            network(images[:1])
    finally:
        handle.remove()
    transform = infer_layout(shapes[0], tuple(images.shape[2:]))
    if transform is None:
        return "channels-first"
    if getattr(transform, "func", None) is not None:
        return f"tokens, {transform.keywords['prefix_tokens']} prefix"
    return "channels-last"


def write_table(rows: list[dict], seconds: float, path: Path) -> None:
    lines = [
        "# Model zoo: every method on every architecture",
        "",
        f"torch {torch.__version__}, torchvision {torchvision.__version__}; random weights, "
        f"batch 2, OptiCAM 3 iterations; {seconds / 60:.1f} min on a shared 2-core CPU "
        "(`nice -n 10 python benchmarks/model_zoo.py`). Cells: ok / not a map / error. "
        "`MinMax = Grad-CAM`: max |MinMaxCAM(one label) - LayerGradCam| / max |LayerGradCam| "
        "on channels-first layers.",
        "",
    ]
    by_source: dict[str, list[dict]] = {}
    for row in rows:
        by_source.setdefault(row["source"], []).append(row)
    lines.append("| source | models | " + " | ".join(COLUMNS) + " |")
    lines.append("|---|---:|" + "---:|" * len(COLUMNS))
    for source, group in by_source.items():
        counts = [sum(r.get(c) == "ok" for r in group) for c in COLUMNS]
        lines.append(
            f"| {source} | {len(group)} | " + " | ".join(f"{n}/{len(group)}" for n in counts) + " |"
        )
    gaps = [r["minmax_gap"] for r in rows if r.get("minmax_gap") is not None]
    if gaps:
        lines += [
            "",
            f"MinMax = Grad-CAM on {len(gaps)} channels-first models: largest gap {max(gaps):.1e}.",
        ]
    lines += [
        "",
        "| source | model | input | layer (layout) | "
        + " | ".join(COLUMNS)
        + " | MinMax = Grad-CAM |",
    ]
    lines.append("|---|---|---:|---|" + "---|" * len(COLUMNS) + "---:|")
    for row in rows:
        gap = row.get("minmax_gap")
        cells = [str(row.get(c, "-")) for c in COLUMNS]
        lines.append(
            f"| {row['source']} | {row['model']} | {row['size']} | {row['layer']} | "
            + " | ".join(cells)
            + f" | {'' if gap is None else f'{gap:.1e}'} |"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str]) -> None:
    torch.set_num_threads(2)
    warnings.filterwarnings("ignore")
    entries = list(torchvision_entries()) + list(timm_entries()) + list(hf_entries())
    if "--quick" in argv:
        wanted = set(FAMILIES.values())
        entries = [e for e in entries if e.source != "torchvision" or e.name in wanted]
    # timm, HF, then one torchvision model per family: an interrupted sweep covers them all.
    entries.sort(key=lambda e: (e.source == "torchvision", e.name not in FAMILIES.values()))
    rows, start = [], time.perf_counter()
    out = HERE / "results" / "model_zoo.md"
    for entry in entries:
        began = time.perf_counter()
        rows.append(check(entry))
        cells = [rows[-1].get(c, "-") for c in COLUMNS]
        seconds = time.perf_counter() - began
        print(f"{entry.source} {entry.name}: {cells} ({seconds:.0f} s)", flush=True)
        write_table(rows, time.perf_counter() - start, out)  # the table so far, every model
    print(out)


if __name__ == "__main__":
    main(sys.argv[1:])
