"""CASE's Table I and Opti-CAM's Table 1 rows from torchvision ImageNet weights and a val folder.

Two ``captum-contrast evaluate`` runs over an ImageNet validation folder in ImageFolder
layout (one sub-folder per synset, ``n01440764/...``; sorted synsets give torchvision's class
order):

- ``case/``: CASE's class-sensitivity test (median top-5% agreement of the maps of each
  image's top two classes, Table I) and its confidence drop, for the predicted class;
- ``opti_cam/``: Opti-CAM's AD / AG / AI and insertion / deletion (Table 1), for the
  ground-truth class.

Single process::

    python benchmarks/imagenet_tables.py --data /data/imagenet/val --arch resnet50 \\
        --weights ~/.cache/torch/hub/checkpoints/resnet50-0676ba61.pth --out imagenet_tables

On N GPUs or CPU processes (batches are sharded; rank 0 writes the same tables), one launch
per table, since one launch cannot create its process group twice::

    torchrun --nproc_per_node=N benchmarks/imagenet_tables.py --table case --data ... \\
        --arch ... --weights ... --out imagenet_tables
    torchrun --nproc_per_node=N benchmarks/imagenet_tables.py --table opti_cam ...

``--weights`` is any local state dict of the architecture, e.g. an ImageNet checkpoint file
already in torchvision's hub cache. Nothing is downloaded. Extra arguments after
``--`` reach both runs (e.g. ``-- --batch-size 32 --opti-iters 100``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from captum_contrast.app.cli import main as cli_main

LAYERS = {"resnet50": "layer4", "resnet18": "layer4", "vgg16": "features.29"}
"""The layer each paper explains, for the architectures they report."""

CASE_METHODS = ("grad-cam", "contrast-grad-cam", "opti-cam")
CASE_METRICS = ("class-sensitivity", "confidence-drop")
OPTI_CAM_METHODS = ("grad-cam", "contrast-grad-cam", "opti-cam", "fake-cam")
OPTI_CAM_METRICS = ("average-drop", "average-gain", "average-increase", "insertion", "deletion")


def evaluate_arguments(
    data: str, arch: str, weights: str, out: str, layer: str | None = None, extra: tuple = ()
) -> dict[str, list[str]]:
    """The two ``captum-contrast evaluate`` argument lists, by output sub-folder."""
    common = ["evaluate", "--data", data, "--arch", arch, "--weights", weights]
    common += ["--layer", layer or LAYERS.get(arch, "layer4")]

    def run(name: str, targets: str, methods: tuple, metrics: tuple) -> list[str]:
        args = [*common, "--targets", targets, "--out", str(Path(out) / name)]
        args += [arg for m in methods for arg in ("--method", m)]
        args += [arg for m in metrics for arg in ("--metric", m)]
        return args + list(extra)

    return {
        "case": run("case", "predicted", CASE_METHODS, CASE_METRICS),
        "opti_cam": run("opti_cam", "label", OPTI_CAM_METHODS, OPTI_CAM_METRICS),
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="ImageNet val folder (ImageFolder layout)")
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--weights", required=True, help="local state dict of --arch")
    parser.add_argument("--layer", help="default: the papers' layer for --arch")
    parser.add_argument("--out", default="imagenet_tables")
    parser.add_argument("--table", choices=("case", "opti_cam", "both"), default="both")
    args = parser.parse_args(argv)
    if args.table == "both" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        parser.error("under torchrun, launch once per --table (case, then opti_cam)")
    runs = evaluate_arguments(
        args.data, args.arch, args.weights, args.out, args.layer, tuple(extra)
    )
    for name, arguments in runs.items():
        if args.table not in ("both", name):
            continue
        code = cli_main(arguments)
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
