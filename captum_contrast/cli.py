"""The ``captum-contrast`` command line: ``demo``, ``explain`` and ``evaluate``.

Models are torchvision architectures built with ``weights=None`` and loaded from a local
state dict (nothing is downloaded), or ``small-cnn``, the package's canvas CNN. Images are
preprocessed ImageNet-style (resize 256, center crop 224) into [0, 1]; the mean/std step is
the model's first module, so masks multiply pixels and 0 means black, as in Opti-CAM.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import Tensor, nn

from captum_contrast import __version__
from captum_contrast.evaluate import METHODS, METRICS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SMALL_CNN = "small-cnn"


class CommandError(Exception):
    """A user error: printed without a traceback, exit status 2."""


class Normalized(nn.Module):
    """``model((x - mean) / std)``: inputs stay [0, 1] images, so a mask of 0 means black."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean).reshape(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).reshape(1, -1, 1, 1))

    def forward(self, inputs: Tensor) -> Tensor:
        return self.model((inputs - self.mean) / self.std)


def architectures() -> list[str]:
    """Every torchvision classification architecture, and ``small-cnn``."""
    return sorted(torchvision.models.list_models(module=torchvision.models)) + [SMALL_CNN]


def load_state_dict(path: str | Path) -> dict[str, Tensor]:
    """A state dict from ``path`` (``weights_only``), unwrapping ``{"state_dict": ...}``."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CommandError(f"weights file {path} does not exist") from None
    except Exception as error:  # torch raises many types for a file that is not a checkpoint
        raise CommandError(
            f"cannot read weights file {path}: not a tensor-only PyTorch "
            f"checkpoint (torch.load(weights_only=True) raised "
            f"{type(error).__name__})"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CommandError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return {key.removeprefix("module."): value for key, value in state.items()}


def build_model(
    arch: str, weights: str | Path, num_classes: int | None = None, normalize: bool = True
) -> tuple[nn.Module, nn.Module]:
    """``(model, network)``: ``network`` is the architecture with the weights loaded (layer
    names refer to it); ``model`` adds the input normalisation, in eval mode."""
    if arch not in architectures():
        close = difflib.get_close_matches(arch, architectures(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see --help for the list"
        raise CommandError(f"unknown --arch {arch!r}{hint}")
    state = load_state_dict(weights)
    if arch == SMALL_CNN:
        network = _small_cnn_for(state)
    else:
        builder = torchvision.models.get_model_builder(arch)
        network = builder(weights=None, **({"num_classes": num_classes} if num_classes else {}))
        head = _head_size(network.state_dict(), state) if num_classes is None else None
        if head is not None:
            network = builder(weights=None, num_classes=head)
    _load_checked(network, state, arch, weights)
    network.eval()
    if arch == SMALL_CNN or not normalize:
        return network, network
    return Normalized(network, IMAGENET_MEAN, IMAGENET_STD).eval(), network


def _head_size(expected: dict[str, Tensor], state: dict[str, Tensor]) -> int | None:
    """The number of classes of a checkpoint whose only difference is the classifier size."""
    different = [k for k in state if k in expected and state[k].shape != expected[k].shape]
    sizes = {state[k].shape[0] for k in different}
    same_rest = all(state[k].shape[1:] == expected[k].shape[1:] for k in different)
    return sizes.pop() if different and len(sizes) == 1 and same_rest else None


def _small_cnn_for(state: dict[str, Tensor]) -> nn.Module:
    from captum_contrast.models import small_cnn

    if "features.0.weight" not in state or "classifier.weight" not in state:
        raise CommandError(
            "--weights does not match --arch small-cnn: no features.0.weight or classifier.weight"
        )
    width, in_channels = state["features.0.weight"].shape[:2]
    batch_norm = "features.1.running_mean" in state
    return small_cnn(state["classifier.weight"].shape[0], int(in_channels), int(width), batch_norm)


def _load_checked(network: nn.Module, state: dict[str, Tensor], arch: str, path: Any) -> None:
    expected = network.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in state
        if k in expected and state[k].shape != expected[k].shape
    ]
    if missing or unexpected or shapes:
        parts = [
            f"{label}: {', '.join(items[:3])}{' ...' if len(items) > 3 else ''}"
            for label, items in (
                ("missing keys", missing),
                ("unexpected keys", unexpected),
                ("shape mismatches", shapes),
            )
            if items
        ]
        raise CommandError(f"weights file {path} does not match --arch {arch} ({'; '.join(parts)})")
    network.load_state_dict(state)


def resolve_layer(network: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name`` (dotted, e.g. ``layer4`` or ``features.28``)."""
    names = [n for n, _ in network.named_modules() if n]
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3)
        top = [n for n, _ in network.named_children()]
        hint = (
            f"did you mean {', '.join(close)}?" if close else f"top-level modules: {', '.join(top)}"
        )
        raise CommandError(f"--layer {name!r} is not a module of the model; {hint}")
    return network.get_submodule(name)


def image_transform(resize: int, crop: int, channels: int) -> Callable[[Any], Tensor]:
    """PIL image -> ``(channels, crop, crop)`` float tensor in [0, 1]."""
    from torchvision import transforms

    mode = "L" if channels == 1 else "RGB"
    return transforms.Compose(
        [
            transforms.Lambda(lambda image: image.convert(mode)),
            transforms.Resize(resize),
            transforms.CenterCrop(crop),
            transforms.ToTensor(),
        ]
    )


def load_image(path: str | Path) -> Any:
    """A PIL image, or a :class:`CommandError` naming the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (OSError, UnidentifiedImageError) as error:
        raise CommandError(f"cannot read image {path}: {error}") from None


def input_channels(network: nn.Module) -> int:
    first = next((m for m in network.modules() if isinstance(m, nn.Conv2d)), None)
    return first.in_channels if first is not None else 3


def _add_model_arguments(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument(
        "--arch", required=required, help="torchvision architecture (e.g. resnet50) or small-cnn"
    )
    parser.add_argument("--weights", required=required, help="local state dict (.pth)")
    parser.add_argument(
        "--layer", required=required, help="dotted name of the explained module, e.g. layer4"
    )
    parser.add_argument("--num-classes", type=int, help="outputs of the model (default: inferred)")
    parser.add_argument(
        "--resize", type=int, help="resize the shorter side (default 256; 32 for small-cnn)"
    )
    parser.add_argument("--crop", type=int, help="center crop (default 224; 32 for small-cnn)")
    parser.add_argument(
        "--no-normalize",
        action="store_true",
        help="feed [0, 1] pixels without the ImageNet mean/std step",
    )
    parser.add_argument("--opti-iters", type=int, default=100, help="OptiCAM Adam steps (100)")
    parser.add_argument("--out", help="output directory")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="captum-contrast",
        description="Contrastive CAM explanations for Captum, evaluated with Quantus.",
    )
    parser.add_argument("--version", action="version", version=f"captum-contrast {__version__}")
    commands = parser.add_subparsers(dest="command")
    demo = commands.add_parser("demo", help="train a small CNN offline, explain and evaluate it")
    demo.add_argument("--out", default="./captum_contrast_demo", help="output directory")
    demo.add_argument(
        "--quick",
        action="store_true",
        help="seconds-long smoke run: tiny model, 16 canvases, 10 OptiCAM steps",
    )

    explain = commands.add_parser("explain", help="overlay PNGs for your model and images")
    _add_model_arguments(explain, required=True)
    explain.add_argument(
        "--method",
        action="append",
        choices=sorted(METHODS),
        help="repeatable (default: contrast-grad-cam)",
    )
    explain.add_argument("--target", type=int, help="class to explain (default: predicted)")
    explain.add_argument("images", nargs="+", help="image files")

    evaluate = commands.add_parser("evaluate", help="score methods with metrics over a dataset")
    evaluate.add_argument(
        "--data",
        default="canvases",
        help="an ImageFolder directory, or 'canvases' (offline digit canvases)",
    )
    _add_model_arguments(evaluate, required=False)
    evaluate.add_argument("--method", action="append", choices=sorted(METHODS), help="repeatable")
    evaluate.add_argument("--metric", action="append", choices=sorted(METRICS), help="repeatable")
    evaluate.add_argument(
        "--targets",
        choices=("label", "predicted", "detections"),
        help="classes explained (default: detections for canvases, else predicted)",
    )
    evaluate.add_argument(
        "--canvases", type=int, default=64, help="number of canvases with --data canvases (64)"
    )
    evaluate.add_argument("--batch-size", type=int, default=16)
    evaluate.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command == "demo":
            from captum_contrast.demo import QUICK_CONFIG, run_demo

            if args.quick:
                return run_demo(args.out, QUICK_CONFIG, eval_canvases=16, opti_iters=10)
            return run_demo(args.out)
        if args.command == "explain":
            return run_explain(args)
        return run_evaluate(args)
    except (CommandError, ValueError) as error:  # ValueError: the library rejected an input
        print(f"captum-contrast {args.command}: error: {error}", file=sys.stderr)
        return 2


def _model_and_transform(args: argparse.Namespace) -> tuple[nn.Module, nn.Module, Callable]:
    model, network = build_model(args.arch, args.weights, args.num_classes, not args.no_normalize)
    layer = resolve_layer(network, args.layer)
    small = args.arch == SMALL_CNN
    transform = image_transform(
        args.resize or (32 if small else 256),
        args.crop or (32 if small else 224),
        input_channels(network),
    )
    return model, layer, transform


def run_explain(args: argparse.Namespace) -> int:
    """One overlay PNG per image and method in ``--out``."""
    from captum_contrast.evaluate import explain, runner_up
    from captum_contrast.viz import save_overlay

    model, layer, transform = _model_and_transform(args)
    methods = args.method or ["contrast-grad-cam"]
    pictures = [(Path(path), transform(load_image(path))) for path in args.images]
    out = Path(args.out or "./captum_contrast_explain")
    images = torch.stack([picture for _, picture in pictures])
    with torch.no_grad():
        logits = model(images)
    probabilities = torch.softmax(logits, dim=1)
    if args.target is not None and not 0 <= args.target < probabilities.shape[1]:
        raise CommandError(
            f"--target {args.target} is not a class of a model with "
            f"{probabilities.shape[1]} outputs"
        )
    targets = (
        torch.full((len(images),), args.target)
        if args.target is not None
        else probabilities.argmax(dim=1)
    )
    contrasts = runner_up(logits, targets) if logits.shape[1] > 2 else 1 - targets
    stems: set[str] = set()
    for name in methods:
        kwargs = {"n_iter": args.opti_iters, "show_progress": True} if name == "opti-cam" else {}
        maps = explain(name, model, layer, images, targets, **kwargs)
        for row, (path, picture) in enumerate(pictures):
            stem = _unique(path.stem, name, stems)
            target = int(targets[row])
            title = f"{METHODS[name].title}\nclass {target} (p={probabilities[row, target]:.2f})"
            sign = "positive"
            if name == "difference-salience":  # signed: red for the target, blue for the contrast
                title += f" vs {int(contrasts[row])}"
                sign = "all"
            written = save_overlay(picture, maps[row], out / f"{stem}_{name}.png", title, sign=sign)
            print(written)
    return 0


def _unique(stem: str, method: str, seen: set[str]) -> str:
    candidate, number = stem, 1
    while f"{candidate}_{method}" in seen:
        number += 1
        candidate = f"{stem}-{number}"
    seen.add(f"{candidate}_{method}")
    return candidate


def run_evaluate(args: argparse.Namespace) -> int:
    """Tables of per-method scores in ``--out``; shards over ranks under ``torchrun``."""
    import torch.distributed as dist

    from captum_contrast.evaluate import (
        MULTI_LABEL_METRICS,
        SINGLE_LABEL_METRICS,
        distributed_setup,
        run_evaluation,
    )

    canvases = args.data == "canvases"
    if not canvases and not Path(args.data).is_dir():
        raise CommandError(f"--data {args.data!r} is neither 'canvases' nor a directory")
    if not canvases and not (args.arch and args.weights and args.layer):
        raise CommandError("--arch, --weights and --layer are required with an ImageFolder --data")
    rank, _, _, initialised_here = distributed_setup()
    try:
        if canvases and not args.arch:
            model, layer, transform = _demo_model_on_rank(rank)
        else:
            model, layer, transform = _model_and_transform(args)
        dataset = _dataset(args, transform)
        metrics = args.metric or list(
            MULTI_LABEL_METRICS + ("mass-on-object",) if canvases else SINGLE_LABEL_METRICS
        )
        methods = args.method or (
            [
                "grad-cam",
                "contrast-grad-cam",
                "minmax-cam",
                "opti-cam",
                "difference-salience",
                "fake-cam",
            ]
            if canvases
            else ["grad-cam", "contrast-grad-cam", "opti-cam", "fake-cam"]
        )
        paths = run_evaluation(
            model,
            layer,
            dataset,
            methods,
            metrics,
            args.out or "./captum_contrast_evaluation",
            targets=args.targets or ("detections" if canvases else "predicted"),
            batch_size=args.batch_size,
            method_kwargs={"opti-cam": {"n_iter": args.opti_iters}},
            progress=not args.no_progress,
        )
        for path in paths:
            print(path)
        if paths:
            print(paths[0].read_text(encoding="utf-8"))
        return 0
    finally:
        if initialised_here:
            dist.barrier()
            dist.destroy_process_group()


def _demo_model_on_rank(rank: int) -> tuple[nn.Module, nn.Module, Callable]:
    """The cached demo model; rank 0 trains it if needed while the others wait."""
    import torch.distributed as dist

    from captum_contrast.demo import trained_model

    if rank == 0:
        model, _, _ = trained_model()
    if dist.is_initialized():
        dist.barrier()
    if rank != 0:
        model, _, _ = trained_model(progress=False)
    return model, model.features, image_transform(32, 32, 1)


def _dataset(args: argparse.Namespace, transform: Callable) -> Any:
    if args.data == "canvases":
        from captum_contrast.datasets import MultiDigitCanvases

        return MultiDigitCanvases(n=args.canvases, split="test", size=32, seed=1)
    from torchvision.datasets import ImageFolder

    try:
        return ImageFolder(args.data, transform=transform, loader=load_image)
    except (FileNotFoundError, OSError) as error:
        raise CommandError(f"--data {args.data}: {error}") from None


if __name__ == "__main__":
    sys.exit(main())
