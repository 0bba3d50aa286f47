"""The options of ``captum-contrast evaluate`` added for long runs and papers.

``--metric`` (the package's metrics and ``quantus:<Class>``), ``--resume``, ``--baseline``,
``--save-maps`` and ``--gallery-metric``; and :func:`run_settings`, what a resumed run must
share with the run it continues.
"""

from __future__ import annotations

import argparse
from typing import Any

from captum_contrast.app.registry import METHODS, METRICS


def add_evaluate_options(parser: argparse.ArgumentParser) -> None:
    """Add the options to the ``evaluate`` sub-parser.

    Example:
        >>> import argparse
        >>> from captum_contrast.app.evaluate_options import add_evaluate_options
        >>> parser = argparse.ArgumentParser()
        >>> add_evaluate_options(parser)
        >>> args = parser.parse_args(["--metric", "quantus:ROAD", "--resume", "--save-maps"])
        >>> args.metric, args.resume, args.save_maps, args.baseline
        (['quantus:ROAD'], True, True, None)
    """
    parser.add_argument(
        "--metric",
        action="append",
        type=_metric_name,
        help=f"repeatable: {', '.join(sorted(METRICS))}, or any Quantus metric as "
        "quantus:<Class> (e.g. quantus:ROAD, quantus:MPRT) or quantus:<Class>:key=value,...",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run whose checkpoint is in --out (same settings); finished "
        "batches are read, not recomputed, and the tables are those of an uninterrupted run",
    )
    parser.add_argument(
        "--baseline",
        choices=sorted(METHODS),
        help="method every other one is tested against, per metric (default: the first)",
    )
    parser.add_argument(
        "--save-maps",
        action="store_true",
        help="also write maps.npz: every map at layer resolution with its example and class",
    )
    parser.add_argument(
        "--gallery-metric",
        type=_metric_name,
        help="metric that ranks the best and worst examples in report.html (default: the first)",
    )


def _metric_name(text: str) -> str:
    """An argparse ``type`` for ``--metric``: a package metric, or ``quantus:<Class>[:k=v,...]``."""
    if text.startswith("quantus:"):
        from captum_contrast.app.quantus_metrics import parse

        try:
            parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return text
    if text not in METRICS:
        raise argparse.ArgumentTypeError(
            f"unknown metric {text!r}; choose from {', '.join(sorted(METRICS))} or quantus:<Class>"
        )
    return text


def run_settings(args: argparse.Namespace) -> dict[str, Any]:
    """What the numbers depend on besides methods and metrics: checked by --resume."""
    names = ("data", "canvases", "arch", "weights", "layer", "num_classes", "resize", "crop")
    settings = {name: getattr(args, name) for name in names}
    settings["normalize"] = not args.no_normalize
    return settings


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keywords of :func:`captum_contrast.app.evaluation.run_evaluation` these options set."""
    return {
        "resume": args.resume,
        "baseline": args.baseline,
        "save_maps": args.save_maps,
        "gallery_metric": args.gallery_metric,
        "settings": run_settings(args),
    }
