"""The base class of the package's Quantus metrics: :class:`CAMMetric` and its preprocessing.

The computations the metrics share (masks, probabilities, ranks, argument checks) are in
:mod:`captum_contrast.metrics._helpers`. Every metric evaluates a batch with one batched
forward per input variant (the original, the masked, ...), through Quantus's
``ModelInterface.predict``; no metric loops over examples in Python.

Two things differ from ``quantus.Metric``'s preprocessing, both on purpose:

* A map may be at a lower resolution than the input (a CAM at layer resolution). It is
  upsampled bilinearly (``align_corners=False``) when a metric uses it.
* Quantus asserts that a batch of maps is not all zero, all one or uniform. For CAMs such
  maps are legitimate answers (ReLU can zero a whole batch's maps on a weak model), so each
  metric states what a constant map means instead, and an evaluation never stops half way.
  Masking metrics read a constant map as "nothing is salient" (range normalisation turns it
  into an all-zero mask); ranking metrics give ``NaN`` for it, because it ranks nothing.
  A map holding NaN or infinity scores ``NaN`` (class sensitivity instead follows CASE and
  reads NaN as 0); mass on object gives ``NaN`` for a constant map, which has no mass.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
from quantus.helpers import utils
from quantus.helpers.enums import DataType, ModelType
from quantus.helpers.model.model_interface import ModelInterface
from quantus.metrics.base import Metric
from torch import Tensor

from captum_contrast._model import explained_in_eval_mode, model_device
from captum_contrast.metrics._helpers import check_labels
from captum_contrast.scores import ScoresLike, resolve_scores, subset_scores

# Quantus's a_axes for a (B, 1, H, W) map over (B, C, H, W) inputs: the two spatial axes.
_SPATIAL_AXES = np.array([1, 2])


class CAMMetric(Metric[list[float]]):
    """Base of the package's metrics: a ``quantus.Metric`` for one saliency map per image.

    Maps may be ``(B, h, w)``, ``(B, 1, h, w)`` or ``(B, h, w, 1)`` with ``h <= H`` and
    ``w <= W``; the model must return logits, since each metric applies its own softmax or
    sigmoid. Keyword arguments are Quantus's (``abs``, ``normalise``, ``normalise_func``,
    ``normalise_func_kwargs``, ``return_aggregate``, ``aggregate_func``,
    ``default_plot_func``, ``disable_warnings``, ``display_progressbar``); ``abs`` and
    ``normalise`` default to ``False`` because each metric normalises maps its own way.

    The contract for a new metric. A subclass implements ``evaluate_batch(model, x_batch,
    y_batch, a_batch, s_batch, **kwargs) -> list[float]`` (one score per example, ``NaN``
    where the map cannot be scored; maps arrive as ``(B, 1, h, w)`` float64, inputs
    channel-first) and may implement ``custom_preprocess`` to check or add inputs. It sets
    Quantus's class attributes ``name`` (its key in ``quantus.AVAILABLE_METRICS``),
    ``score_direction`` and ``evaluation_category``, and these, from which the command line
    builds its metric choices and tables:

    * ``cli_name`` (str, required): the metric's name on the command line, e.g.
      ``"average-drop"``; unique across :data:`captum_contrast.metrics.METRICS`.
    * ``short_name`` (str, required): its table column without the arrow, e.g. ``"AD"``;
      the arrow comes from ``score_direction``.
    * ``multilabel`` (bool, default ``False``): scores are aggregated per class with
      MinMax-CAM's macro protocol, :func:`captum_contrast.metrics.multilabel_macro_scores`,
      keyed by ``short_name``.
    * ``needs_explain_func`` (bool, default ``False``): the metric calls ``explain_func``
      itself (class sensitivity re-explains the second class), so it must be passed.
    * ``needs_object_masks`` (bool, default ``False``): the metric reads ground-truth
      object masks from ``s_batch`` (mass on object).

    Finally add the class to :data:`captum_contrast.metrics.METRICS`, which registers it
    with Quantus.

    Example:
        >>> from captum_contrast.metrics import METRICS, AverageDrop, CAMMetric
        >>> all(issubclass(metric, CAMMetric) for metric in METRICS)
        True
        >>> AverageDrop.cli_name, AverageDrop.short_name, AverageDrop.score_direction.name
        ('average-drop', 'AD', 'LOWER')
    """

    data_applicability = {DataType.IMAGE}
    model_applicability = {ModelType.TORCH}

    cli_name: ClassVar[str]
    """The command-line name, e.g. ``"average-drop"``."""
    short_name: ClassVar[str]
    """The table column without the arrow, e.g. ``"AD"``."""
    multilabel: ClassVar[bool] = False
    """Aggregated per class with MinMax-CAM's macro protocol, keyed by ``short_name``."""
    needs_explain_func: ClassVar[bool] = False
    """The metric calls ``explain_func`` itself."""
    needs_object_masks: ClassVar[bool] = False
    """The metric reads ground-truth object masks from ``s_batch``."""

    def __init__(
        self,
        abs: bool = False,
        normalise: bool = False,
        normalise_func: Callable[[np.ndarray], np.ndarray] | None = None,
        normalise_func_kwargs: dict[str, Any] | None = None,
        return_aggregate: bool = False,
        aggregate_func: Callable[[Any], Any] | None = None,
        default_plot_func: Callable[..., Any] | None = None,
        disable_warnings: bool = False,
        display_progressbar: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            abs=abs,
            normalise=normalise,
            normalise_func=normalise_func,
            normalise_func_kwargs=normalise_func_kwargs,
            return_aggregate=return_aggregate,
            aggregate_func=aggregate_func,
            default_plot_func=default_plot_func,
            disable_warnings=disable_warnings,
            display_progressbar=display_progressbar,
            **kwargs,
        )

    def __call__(
        self,
        model: torch.nn.Module,
        x_batch: np.ndarray,
        y_batch: np.ndarray,
        a_batch: np.ndarray | None = None,
        s_batch: np.ndarray | None = None,
        channel_first: bool | None = None,
        explain_func: Callable[..., Any] | None = None,
        explain_func_kwargs: dict[str, Any] | None = None,
        model_predict_kwargs: dict[str, Any] | None = None,
        softmax: bool | None = None,
        device: str | None = None,
        batch_size: int = 64,
        scores: ScoresLike = None,
        **kwargs: Any,
    ) -> list[float]:
        """Score each example; Quantus's call signature.

        Args:
            model: A torch model returning logits ``(B, classes)``; one in training mode is
                scored in eval mode, with a warning, and its modes are restored afterwards.
            x_batch: Images ``(B, C, H, W)`` (or channel-last, see ``channel_first``).
            y_batch: One class index per example: the class each map explains.
            a_batch: Maps ``(B, 1, h, w)`` or ``(B, h, w)``; ``None`` computes them with
                ``explain_func`` one Quantus batch at a time.
            s_batch: Ground-truth object masks ``(B, 1, H, W)`` for the metrics with
                ``needs_object_masks``; unused by the others, accepted for Quantus.
            channel_first: Layout of ``x_batch``; inferred when ``None``.
            explain_func: ``explain_func(model, inputs, targets, **kwargs) -> maps``, e.g.
                :func:`captum_contrast.metrics.explainer`.
            explain_func_kwargs: Extra keyword arguments for ``explain_func``.
            model_predict_kwargs: Extra keyword arguments for the model's forward.
            softmax: Ignored: each metric's probability (softmax or sigmoid) is part of
                its definition, so the model is always read as returning logits.
            device: Where Quantus puts the inputs, e.g. ``"cpu"`` or ``"cuda:0"``.
            batch_size: Examples per evaluated batch (one forward per variant per batch).
            scores: How the model's output is read as ``(B, C)`` class scores
                (:mod:`captum_contrast.scores`): the metric scores what it selects (a
                region, a step, a box), and ``explain_func`` receives it as ``scores=``.
                A per-example selection (one mask, step or box per example) follows
                Quantus's batches through ``custom_batch``, which holds the example
                indices. ``None``: ``(B, C)`` logits.

        Returns:
            One score per example (or their aggregate with ``return_aggregate``).
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}")
        if softmax:
            warnings.warn(
                f"{type(self).__name__} ignores softmax=True: it applies its own "
                "probability to the model's logits",
                stacklevel=2,
            )
        if model is None:
            raise ValueError(f"{type(self).__name__} needs `model`; got None")
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
        self.scores = resolve_scores(scores) if scores is not None else None
        self.batch_scores = self.scores
        # A per-example selection follows the batches: custom_batch holds example indices.
        indices = np.arange(len(x_batch)) if getattr(scores, "per_example", False) else None
        # A training-mode forward would update BatchNorm statistics: scored in eval mode.
        with explained_in_eval_mode(model, type(self).__name__):
            return super().__call__(
                model=model,
                x_batch=x_batch,
                y_batch=y_batch,
                a_batch=a_batch,
                s_batch=s_batch,
                custom_batch=indices,
                channel_first=channel_first,
                explain_func=explain_func,
                explain_func_kwargs=explain_func_kwargs,
                model_predict_kwargs=model_predict_kwargs,
                softmax=False,
                device=device,
                batch_size=batch_size,
                **kwargs,
            )

    def general_preprocess(  # type: ignore[override]
        self,
        model: torch.nn.Module,
        x_batch: np.ndarray,
        y_batch: np.ndarray,
        a_batch: np.ndarray | None,
        s_batch: np.ndarray | None,
        channel_first: bool | None,
        explain_func: Callable[..., Any] | None,
        explain_func_kwargs: dict[str, Any] | None,
        model_predict_kwargs: dict[str, Any] | None,
        softmax: bool | None,
        device: str | None,
        custom_batch: Any,
    ) -> dict[str, Any]:
        # Quantus's own version asserts maps at input resolution and rejects constant
        # batches; see the module docstring for why these metrics handle both themselves.
        if model is None:
            raise ValueError(f"{type(self).__name__} needs `model`; got None")
        x_batch = np.asarray(x_batch)
        if x_batch.ndim != 4 or len(x_batch) == 0 or x_batch.dtype.kind not in "iuf":
            raise ValueError(
                "`x_batch` must hold at least one image (B, C, H, W) or (B, H, W, C) of numbers, "
                f"got shape {x_batch.shape} and dtype {x_batch.dtype}"
            )
        if not isinstance(channel_first, bool):
            try:
                channel_first = utils.infer_channel_first(x_batch)
            except ValueError:  # Quantus's own message points into its code: say it here
                raise ValueError(
                    f"`x_batch` of shape {x_batch.shape} could be channel-first or "
                    "channel-last; pass `channel_first=True` or `channel_first=False`"
                ) from None
        x_batch = utils.make_channel_first(x_batch, channel_first)
        y_batch = check_labels(y_batch, len(x_batch))
        # The inputs are channel-first from here on, which is what a torch model takes, and
        # go where the model is unless `device` says otherwise.
        wrapped = utils.get_wrapped_model(
            model=model,
            channel_first=True,
            softmax=False,
            device=device if device is not None else model_device(model),
            model_predict_kwargs=model_predict_kwargs,
        )
        self.explain_func = explain_func
        self.explain_func_kwargs = dict(explain_func_kwargs or {})
        if device is not None:
            self.explain_func_kwargs.setdefault("device", device)
        self.a_axes = _SPATIAL_AXES
        if a_batch is not None:
            a_batch = self._prepare_maps(a_batch, x_batch)
        elif explain_func is None:
            raise ValueError(f"{type(self).__name__} needs `a_batch` or `explain_func`")
        data: dict[str, Any] = {
            "model": wrapped,
            "x_batch": x_batch,
            "y_batch": y_batch,
            "a_batch": a_batch,
            "s_batch": s_batch,
            "custom_batch": custom_batch,
        }
        extra = self.custom_preprocess(**data)
        if extra is not None:
            data.update(extra)
        if data["custom_batch"] is None:
            del data["custom_batch"]
        return data

    def batch_preprocess(self, data_batch: dict[str, Any]) -> dict[str, Any]:
        """Follow a per-example ``scores`` to this batch's examples, then Quantus's step."""
        self.batch_scores = subset_scores(
            getattr(self, "scores", None), data_batch.get("custom_batch", ())
        )
        return super().batch_preprocess(data_batch)

    def explain_batch(  # type: ignore[override]
        self,
        model: ModelInterface | torch.nn.Module,
        x_batch: np.ndarray,
        y_batch: np.ndarray,
        scores: ScoresLike = None,
    ) -> np.ndarray:
        """Maps from ``explain_func`` for ``(x_batch, y_batch)``, checked like ``a_batch``.

        ``scores`` (default: this batch's) is handed to ``explain_func`` as ``scores=``;
        pass the subset when explaining a subset of the batch's examples.
        """
        if self.explain_func is None:
            raise ValueError(f"{type(self).__name__} needs `explain_func` to compute maps")
        if isinstance(model, ModelInterface):
            x_batch = model.shape_input(x_batch, x_batch.shape, channel_first=True, batched=True)
            model = model.get_model()
        extra = dict(self.explain_func_kwargs)
        scores = scores if scores is not None else getattr(self, "batch_scores", None)
        if scores is not None:
            extra["scores"] = scores
        maps = self.explain_func(model=model, inputs=x_batch, targets=y_batch, **extra)
        return self._prepare_maps(maps, x_batch)

    def _prepare_maps(self, a_batch: Any, x_batch: np.ndarray) -> np.ndarray:
        if isinstance(a_batch, Tensor):
            a_batch = a_batch.detach().cpu().numpy()
        if np.iscomplexobj(a_batch):  # casting would silently drop the imaginary part
            raise TypeError(f"`a_batch` must hold real maps, got {np.asarray(a_batch).dtype}")
        maps = np.asarray(a_batch, dtype=np.float64)
        if maps.ndim == 3:
            maps = maps[:, None]
        elif maps.ndim == 4 and maps.shape[1] != 1 and maps.shape[3] == 1:
            maps = np.moveaxis(maps, 3, 1)  # channel-last (B, h, w, 1)
        height, width = x_batch.shape[-2:]
        if (
            maps.ndim != 4
            or maps.shape[0] != len(x_batch)
            or maps.shape[1] != 1
            or maps.shape[2] > height
            or maps.shape[3] > width
        ):
            raise ValueError(
                "`a_batch` (or what `explain_func` returned) must hold maps, one per example, "
                f"(B, 1, h, w) or (B, h, w) with B = {len(x_batch)}, "
                f"h <= {height}, w <= {width}; got shape {maps.shape}. Reduce per-channel "
                "attributions first, e.g. a.sum(axis=1, keepdims=True). `x_batch` was read as "
                f"channel-first {x_batch.shape}: pass `channel_first` if that is wrong"
            )
        if self.normalise:
            maps = self.normalise_func(maps)
        if self.abs:
            maps = np.abs(maps)
        return maps
