"""The ``captum-contrast`` command line: ``demo``, ``explain`` and ``evaluate``.

This module parses arguments and runs the commands; models and images come from
:mod:`captum_contrast.app.loading`, the names of methods and metrics from
:mod:`captum_contrast.app.registry`, the process group from
:mod:`captum_contrast.app.distributed`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from captum_contrast import __version__
from captum_contrast._targets import runner_up
from captum_contrast.app.distributed import Session, session
from captum_contrast.app.evaluate_options import add_evaluate_options, run_options
from captum_contrast.app.images import image_transform, load_image
from captum_contrast.app.loading import (
    SMALL_CNN,
    CommandError,
    Loaded,
    class_index,
    input_channels,
    load_model,
    resolve_layer,
    segmentation_architectures,
)
from captum_contrast.app.regions import parse_region, probe_scores, region_scores
from captum_contrast.app.registry import (
    METHODS,
    MULTI_LABEL_METRICS,
    SINGLE_LABEL_METRICS,
    explain,
    iteration_overrides,
    method_names,
)
from captum_contrast.layers import default_layer
from captum_contrast.scores import read_scores


def _positive_int(text: str) -> int:
    """An argparse ``type``: an integer >= 1, else a one-line usage error (exit 2)."""
    return _bounded_int(text, 1)


def _class_target(text: str) -> str:
    """An argparse ``type`` for ``--target``: a class index >= 0 or a class name.

    Names are resolved once the weights' category names are known; a negative index is a
    usage error before any work.
    """
    if text.lstrip("-").isdigit():
        _bounded_int(text, 0)
    return text


def _bounded_int(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
    return value


def _output_dir(text: str) -> str:
    """An argparse ``type``: a directory that can be created, checked before any work."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} exists and is not a directory")
    for parent in (path.absolute(), *path.absolute().parents):
        if parent.exists():
            if not parent.is_dir():
                raise argparse.ArgumentTypeError(f"{text!r} lies under {str(parent)!r}, a file")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise argparse.ArgumentTypeError(f"{text!r}: {str(parent)!r} is not writable")
            break
    return text


def _add_model_arguments(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument(
        "--arch",
        required=required,
        help="torchvision architecture (e.g. resnet50), small-cnn, timm:<name> or "
        "hf:<local model directory>",
    )
    parser.add_argument(
        "--weights",
        help="local state dict (.pth), or a torchvision weights name (DEFAULT, IMAGENET1K_V2: "
        "downloaded into the torch hub cache if not there)",
    )
    parser.add_argument(
        "--layer",
        help="dotted name of the explained module, e.g. layer4 (default: the last module "
        "whose maps receive gradient, printed)",
    )
    parser.add_argument(
        "--num-classes", type=_positive_int, help="outputs of the model (default: inferred)"
    )
    parser.add_argument(
        "--resize",
        type=_positive_int,
        help="resize the shorter side (default 256; 32 for small-cnn)",
    )
    parser.add_argument(
        "--crop", type=_positive_int, help="center crop (default 224; 32 for small-cnn)"
    )
    parser.add_argument(
        "--no-normalize",
        action="store_true",
        help="feed [0, 1] pixels without the ImageNet mean/std step",
    )
    parser.add_argument(
        "--opti-iters", type=_positive_int, default=100, help="OptiCAM Adam steps (100)"
    )
    parser.add_argument("--out", type=_output_dir, help="output directory")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="captum-contrast",
        description="Contrastive CAM explanations for Captum, evaluated with Quantus.",
    )
    parser.add_argument("--version", action="version", version=f"captum-contrast {__version__}")
    commands = parser.add_subparsers(dest="command")
    demo = commands.add_parser("demo", help="train a small CNN offline, explain and evaluate it")
    demo.add_argument(
        "--out", type=_output_dir, default="./captum_contrast_demo", help="output directory"
    )
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
    explain.add_argument(
        "--target",
        type=_class_target,
        help="class index, or name with named weights (default: predicted)",
    )
    explain.add_argument(
        "--region",
        type=parse_region,
        help="x1,y1,x2,y2 in pixels of the model input (after --resize/--crop): explain the "
        "class scores of this region of a segmentation network's output (torchvision "
        "fcn_*, deeplabv3_*, lraspp_*)",
    )
    explain.add_argument("images", nargs="+", help="image files")

    evaluate = commands.add_parser("evaluate", help="score methods with metrics over a dataset")
    evaluate.add_argument(
        "--data",
        default="canvases",
        help="an ImageFolder directory, or 'canvases' (offline digit canvases)",
    )
    _add_model_arguments(evaluate, required=False)
    evaluate.add_argument("--method", action="append", choices=sorted(METHODS), help="repeatable")
    evaluate.add_argument(
        "--targets",
        choices=("label", "predicted", "detections"),
        help="classes explained (default: detections for canvases, else predicted)",
    )
    evaluate.add_argument(
        "--canvases",
        type=_positive_int,
        default=64,
        help="number of canvases with --data canvases (64)",
    )
    evaluate.add_argument("--batch-size", type=_positive_int, default=16)
    evaluate.add_argument("--no-progress", action="store_true")
    add_evaluate_options(evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``captum-contrast`` with ``argv`` (``sys.argv[1:]`` by default); the exit status.

    Errors in the user's input (a missing file, a layer name the model lacks, an argument the
    library rejects) print one line naming it and return 2; no traceback.

    Example:
        >>> from captum_contrast.app.cli import main
        >>> main([])  # no command: the help, and status 0  # doctest: +ELLIPSIS
        usage: captum-contrast [-h] [--version] {demo,explain,evaluate} ...
        0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command == "demo":
            from captum_contrast.app.demo import run_demo
            from captum_contrast.data.trained import QUICK_CONFIG

            if args.quick:
                return run_demo(args.out, QUICK_CONFIG, eval_canvases=16, opti_iters=10)
            return run_demo(args.out)
        if args.command == "explain":
            return run_explain(args)
        return run_evaluate(args)
    except (CommandError, ValueError) as error:  # ValueError: the library rejected an input
        print(f"captum-contrast {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except OSError as error:  # an unwritable --out, a full disk: the path is in the message
        print(f"captum-contrast {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 2


def _one_line(error: BaseException) -> str:
    """The error's message on one line (the first of several; a long one cut at 300 chars)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


PROBE_SIZE = 224


def _load(
    args: argparse.Namespace, scores: Any = None
) -> tuple[nn.Module, nn.Module, Callable, Loaded]:
    loaded = load_model(args.arch, args.weights, args.num_classes, not args.no_normalize)
    small = args.arch == SMALL_CNN
    crop = args.crop or (32 if small else loaded.crop)
    resize = args.resize or (32 if small else loaded.resize)
    if crop > resize:  # the crop would be zero-padded around the resized image
        raise CommandError(f"--crop {crop} is larger than --resize {resize}")
    channels = input_channels(loaded.network)
    transform = image_transform(resize, crop, channels, loaded.interpolation)
    name = args.layer
    if name is None:
        # Probed at 224 at least: at a small crop the last stage may be a single cell.
        side = crop if small or loaded.fixed_size else max(crop, PROBE_SIZE)
        probe = torch.rand(1, channels, side, side)
        try:
            name = default_layer(loaded.model, loaded.network, probe, probe_scores(scores, side))
        except ValueError as error:
            raise CommandError(f"{error} (--layer)") from None
        print(f"--layer {name} (the default for {args.arch}; pass --layer to choose)")
    return loaded.model, resolve_layer(loaded.network, name), transform, loaded


def run_explain(args: argparse.Namespace) -> int:
    """One overlay PNG per image and method in ``--out``."""
    from captum_contrast.viz import save_overlay

    segmentation = args.arch in segmentation_architectures()
    if segmentation and args.region is None:
        raise CommandError(
            f"--arch {args.arch} is a segmentation network: pass --region x1,y1,x2,y2"
        )
    model, layer, transform, loaded = _load(args, scores="region" if args.region else None)
    methods = args.method or ["contrast-grad-cam"]
    pictures = [(Path(path), transform(load_image(path))) for path in args.images]
    out = Path(args.out or "./captum_contrast_explain")
    images = torch.stack([picture for _, picture in pictures])
    with torch.no_grad():
        outputs = model(images)
    scores = region_scores(args.region, images, outputs) if args.region else None
    logits = read_scores(scores, outputs)
    probabilities = torch.softmax(logits, dim=1)
    targets = (
        torch.full((len(images),), class_index(args.target, loaded.categories, logits.shape[1]))
        if args.target is not None
        else probabilities.argmax(dim=1)
    )
    contrasts = runner_up(logits, targets) if logits.shape[1] > 2 else 1 - targets
    if scores is not None:
        cells = int(scores.mask.sum())
        print(
            f"explaining region {','.join(map(str, args.region))} of the "
            f"{images.shape[-1]}x{images.shape[-2]} input ({cells} output cells): the class "
            "scores are the region's mean logits, targets "
            f"{targets.tolist()} (p={[round(float(probabilities[i, t]), 3) for i, t in enumerate(targets)]})"
        )
    stems: set[str] = set()
    for name in methods:
        kwargs = METHODS[name].run_kwargs(args.opti_iters, progress=True)
        if scores is not None:
            kwargs["scores"] = scores
        maps = explain(name, model, layer, images, targets, **kwargs)
        for row, (path, picture) in enumerate(pictures):
            stem = _unique(path.stem, name, stems)
            target = int(targets[row])
            label = loaded.categories[target] if loaded.categories else f"class {target}"
            title = f"{METHODS[name].title}\n{label} (p={probabilities[row, target]:.2f})"
            sign = "positive"
            if METHODS[name].signed:  # red for the target, blue for the contrast
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
    from captum_contrast.app.evaluation import run_evaluation

    canvases = args.data == "canvases"
    if not canvases and not Path(args.data).is_dir():
        raise CommandError(f"--data {args.data!r} is neither 'canvases' nor a directory")
    if not canvases and not args.arch:
        raise CommandError("--arch (and its --weights) is required with an ImageFolder --data")
    metrics = args.metric or list(
        MULTI_LABEL_METRICS + ("mass-on-object",) if canvases else SINGLE_LABEL_METRICS
    )
    methods = args.method or list(method_names("canvases" if canvases else "image-folder"))
    with session() as run:
        if canvases and not args.arch:
            model, layer, transform = _demo_model_on_rank(run)
        else:
            model, layer, transform, _ = _load(args)
        paths = run_evaluation(
            model,
            layer,
            _dataset(args, transform),
            methods,
            metrics,
            args.out or "./captum_contrast_evaluation",
            targets=args.targets or ("detections" if canvases else "predicted"),
            batch_size=args.batch_size,
            method_kwargs=iteration_overrides(args.opti_iters),
            progress=not args.no_progress,
            session=run,
            **run_options(args),
        )
    for path in paths:
        print(path)
    if paths:
        print(paths[0].read_text(encoding="utf-8"))
    return 0


def _demo_model_on_rank(run: Session) -> tuple[nn.Module, nn.Module, Callable]:
    """The cached demo model; rank 0 trains it if needed while the others wait."""
    from captum_contrast.data.trained import trained_model

    if run.is_main:
        model, _, _ = trained_model()
    run.barrier()
    if not run.is_main:
        model, _, _ = trained_model(progress=False)
    return model, model.features, image_transform(32, 32, 1)


def _dataset(args: argparse.Namespace, transform: Callable) -> Any:
    if args.data == "canvases":
        from captum_contrast.data.canvases import MultiDigitCanvases

        return MultiDigitCanvases(n=args.canvases, split="test", size=32, seed=1)
    from torchvision.datasets import ImageFolder

    try:
        return ImageFolder(args.data, transform=transform, loader=load_image)
    except (FileNotFoundError, OSError) as error:
        raise CommandError(f"--data {args.data}: {error}") from None


if __name__ == "__main__":
    sys.exit(main())
