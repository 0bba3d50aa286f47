"""Quantus's own metrics by name: ``--metric quantus:ROAD``, ``quantus:MPRT``, ...

A name is ``quantus:<Class>`` or ``quantus:<Class>:key=value,key=value`` (values are
Python literals, e.g. ``percentages=[10, 50, 90]``, passed to the metric's constructor), ``<Class>`` a metric class of
``quantus.AVAILABLE_METRICS`` (``ROAD``, ``MPRT``, ``PixelFlipping``, ``Sparseness``, ...).
The metric is called with the method's maps (upsampled to the input) and the method as its
``explain_func`` (through :func:`captum_contrast.metrics.explainer`, the layer given by its
dotted name so that the metrics that explain copies of the model, such as MPRT, find it),
and must give one number per example: the few Quantus metrics that aggregate by default
are asked for their per-example form (below), any other that does not is an error.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import quantus
import torch
import torch.nn.functional as F
from quantus.helpers.enums import ScoreDirection

from captum_contrast.metrics import METRICS as OWN_METRICS
from captum_contrast.metrics import trapezoid

PREFIX = "quantus:"

# Keywords that make these metrics return one score per example instead of an aggregate.
PER_EXAMPLE: dict[str, dict[str, Any]] = {"MPRT": {"return_last_correlation": True}}
# These return one curve per example; its area is computed here as Quantus's own
# `calculate_auc` does (trapezoids, dx=1): its NumPy call no longer exists in NumPy 2.4.
CURVES = ("PixelFlipping", "RegionPerturbation")


@dataclass(frozen=True)
class QuantusMetric:
    """A parsed ``quantus:`` name: the class, its constructor keywords, its table column."""

    name: str
    cls: type
    kwargs: dict[str, Any]

    @property
    def column(self) -> str:
        direction = getattr(self.cls, "score_direction", None)
        arrow = {ScoreDirection.HIGHER: " ↑", ScoreDirection.LOWER: " ↓"}.get(direction, "")
        return f"{self.cls.__name__}{arrow}"

    @property
    def needs_object_masks(self) -> bool:
        category = getattr(self.cls, "evaluation_category", None)
        return getattr(category, "value", None) == "Localisation"


def available() -> dict[str, type]:
    """Quantus's metric classes by class name (the package's own left out)."""
    own = set(OWN_METRICS)
    return {
        cls.__name__: cls
        for group in quantus.AVAILABLE_METRICS.values()
        for cls in group.values()
        if isinstance(cls, type) and cls not in own
    }


def parse(name: str) -> QuantusMetric:
    """The metric a ``quantus:`` name asks for; a ValueError naming what is wrong.

    Example:
        >>> from captum_contrast.app.quantus_metrics import parse
        >>> metric = parse("quantus:ROAD:percentages=[10, 50, 90]")
        >>> metric.cls.__name__, metric.kwargs, metric.column
        ('ROAD', {'percentages': [10, 50, 90]}, 'ROAD ↓')
    """
    if not name.startswith(PREFIX):
        raise ValueError(f"{name!r} is not a quantus: metric name")
    class_name, _, options = name[len(PREFIX) :].partition(":")
    classes = available()
    if class_name not in classes:
        close = difflib.get_close_matches(class_name, classes, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(
            f"--metric {name}: Quantus {quantus.__version__} has no metric class "
            f"{class_name!r}{hint}; it has {', '.join(sorted(classes))}"
        )
    kwargs = dict(PER_EXAMPLE.get(class_name, {}))
    if options:
        try:  # the options as the keywords of a call: key=value, values Python literals
            call = ast.parse(f"f({options})", mode="eval").body
            assert isinstance(call, ast.Call) and not call.args
            kwargs.update({k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg})
        except (SyntaxError, ValueError, AssertionError):
            raise ValueError(
                f"--metric {name}: options must be key=value pairs of Python literals, "
                f"e.g. quantus:ROAD:percentages=[10,50,90], got {options!r}"
            ) from None
    cls = classes[class_name]
    return QuantusMetric(name, road_per_example(cls) if class_name == "ROAD" else cls, kwargs)


def score(
    metric: QuantusMetric,
    model: torch.nn.Module,
    x_batch: np.ndarray,
    y_batch: np.ndarray,
    maps: np.ndarray,
    explain_func: Callable[..., np.ndarray],
    object_masks: np.ndarray | None,
    device: str,
) -> np.ndarray:
    """One score per example from Quantus's metric, or a ValueError saying why not."""
    try:
        instance = metric.cls(disable_warnings=True, **metric.kwargs)
    except TypeError as error:
        raise ValueError(f"--metric {metric.name}: {error}") from None
    maps_at_input = F.interpolate(
        torch.as_tensor(maps, dtype=torch.float32).reshape(len(maps), 1, *maps.shape[-2:]),
        size=x_batch.shape[-2:],
        mode="bilinear",
        align_corners=False,
    ).numpy()
    try:
        result = instance(
            model=model,
            x_batch=x_batch,
            y_batch=y_batch,
            a_batch=maps_at_input,
            s_batch=object_masks,
            explain_func=explain_func,
            device=device,
            batch_size=len(x_batch),
        )
    except Exception as error:  # Quantus's own checks raise assertions, KeyErrors, ...
        raise ValueError(
            f"--metric {metric.name}: Quantus's {metric.cls.__name__} failed on this batch: "
            f"{type(error).__name__}: {error}"
        ) from error
    if metric.cls.__name__ in CURVES and np.ndim(result) == 2:
        curves = np.asarray(result, dtype=np.float64)
        result = trapezoid(curves, np.arange(curves.shape[1], dtype=np.float64))
    if metric.cls.__name__ == "ROAD":
        # ROAD aggregates its per-example curves into one curve; its per-example score is
        # the mean accuracy over the removal percentages, read before that step.
        result = np.asarray(instance.evaluation_scores_per_example).mean(axis=1)
    values = np.asarray(result, dtype=np.float64) if _flat(result) else None
    if values is None or values.shape != (len(x_batch),):
        shape = np.shape(result) if _flat(result) else type(result).__name__
        raise ValueError(
            f"--metric {metric.name}: Quantus's {metric.cls.__name__} returned {shape}, not one "
            f"score per example ({len(x_batch)}); this path cannot tabulate it (an option of "
            "the metric may give per-example scores: quantus:Name:key=value)"
        )
    return values


def _flat(result: Any) -> bool:
    try:
        return np.asarray(result, dtype=np.float64).ndim == 1
    except (TypeError, ValueError):
        return False


def road_per_example(cls: Any) -> type:
    """ROAD keeping each example's curve (Quantus averages them in ``custom_postprocess``)."""

    def custom_postprocess(self: Any, **kwargs: Any) -> None:
        self.evaluation_scores_per_example = np.concatenate(
            [np.asarray(batch, dtype=np.float64) for batch in self.evaluation_scores]
        )
        cls.custom_postprocess(self, **kwargs)

    return type(cls.__name__, (cls,), {"custom_postprocess": custom_postprocess})
