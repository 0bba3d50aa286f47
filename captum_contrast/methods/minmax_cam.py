"""MinMaxCAM: multi-label CAM that subtracts the other detected labels (MinMax, D-MinMax)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from captum.log import log_usage
from torch import Tensor, nn

from captum_contrast._engine import LayerForward, ReshapeTransform, spatial_mean
from captum_contrast._targets import TargetType, resolve_target
from captum_contrast.methods._base import GradientPlan, LayerContrastAttribution
from captum_contrast.scores import ScoresLike
from captum_contrast.training.cam import head_weight

Variant = Literal["minmax", "d-minmax"]
VARIANTS: tuple[str, ...] = ("minmax", "d-minmax")


def minmax_score_weights(labels: Tensor, targets: Tensor, variant: Variant = "minmax") -> Tensor:
    r"""The scores whose gradients (or classifier projections) make a MinMax map, ``(T, B, L)``.

    With :math:`N_x = C_x \setminus \{c\}` and :math:`d = \max(|C_x| - 1, 1)`:
    ``"minmax"`` gives one score, :math:`e_c - \frac{1}{d}\sum_{n \in N_x} e_n`;
    ``"d-minmax"`` gives three, :math:`e_c`, :math:`\frac{1}{d}\sum_{n \in N_x} e_n` and
    :math:`\frac{1}{\max(|C_x|, 1)}\sum_{i \in C_x} e_i`. The divisors are folded into the
    scores because ``relu(x / d) = relu(x) / d`` for ``d > 0``. As in the reference code,
    ``d`` counts all of ``C_x`` even when ``c`` is not in it (the sum then covers ``C_x``).

    Args:
        labels: ``(B, L)`` bool label sets :math:`C_x`.
        targets: ``(B,)`` label of interest :math:`c` per example.
        variant: ``"minmax"`` or ``"d-minmax"``.

    Example:
        >>> import torch
        >>> from captum_contrast.methods import minmax_score_weights
        >>> labels, targets = torch.tensor([[True, True, True]]), torch.tensor([0])
        >>> minmax_score_weights(labels, targets)  # e_0 - (e_1 + e_2) / 2
        tensor([[[ 1.0000, -0.5000, -0.5000]]])
        >>> minmax_score_weights(labels, targets, "d-minmax").shape
        torch.Size([3, 1, 3])
    """
    _check_variant(variant)
    if labels.dim() != 2 or targets.shape != labels.shape[:1]:
        raise ValueError(
            f"expected (B, L) labels and (B,) targets, got {tuple(labels.shape)} and "
            f"{tuple(targets.shape)}"
        )
    dtype = torch.get_default_dtype() if not labels.is_floating_point() else labels.dtype
    target_onehot = F.one_hot(targets, labels.shape[1]).to(dtype)
    label_set = labels.to(dtype)
    others = label_set * (1 - target_onehot)
    others = others / (label_set.sum(dim=1, keepdim=True) - 1).clamp(min=1)
    if variant == "minmax":
        return (target_onehot - others).unsqueeze(0)
    all_labels = label_set / label_set.sum(dim=1, keepdim=True).clamp(min=1)
    return torch.stack([target_onehot, others, all_labels])


def combine_scores(per_score: Tensor, variant: Variant = "minmax") -> Tensor:
    """Merge the ``T`` per-score terms ``(T, ...)`` of :func:`minmax_score_weights`.

    ``"minmax"``: the single term. ``"d-minmax"``: ``relu(t0) - relu(t1) + min(0, t2)``,
    element-wise, so on gradients it acts per position before any spatial mean (SPEC eq. 8).
    """
    _check_variant(variant)
    if variant == "minmax":
        return per_score[0]
    return F.relu(per_score[0]) - F.relu(per_score[1]) + per_score[2].clamp(max=0)


def minmax_weights(
    class_weights: Tensor, labels: Tensor, targets: Tensor, variant: Variant = "minmax"
) -> Tensor:
    r"""CAM-form channel weights :math:`\alpha^c` (SPEC eqs. 7 and 9), ``(B, K)``.

    Args:
        class_weights: ``(L, K)`` classifier weights in torch's ``nn.Linear`` layout (the
            transpose of the K x L Keras kernel the paper writes).
        labels: ``(B, L)`` bool label sets.
        targets: ``(B,)`` label of interest per example.
        variant: ``"minmax"`` or ``"d-minmax"``.

    Differentiable in ``class_weights``.

    Example:
        >>> import torch
        >>> from captum_contrast.methods import minmax_weights
        >>> class_weights = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # 3 labels, 2 channels
        >>> minmax_weights(class_weights, torch.tensor([[True, True, True]]), torch.tensor([0]))
        tensor([[ 0.5000, -1.0000]])
    """
    scores = minmax_score_weights(labels, targets, variant).to(class_weights.dtype)
    return combine_scores(scores @ class_weights, variant)


class MinMaxCAM(LayerContrastAttribution):
    r"""MinMax-CAM and D-MinMax-CAM for multi-label models (David, Pedrini, Dias).

    For a label ``c`` of an image with label set :math:`C_x` (by default the model's
    detections, :math:`\sigma(S) > 0.5`), MinMax explains
    :math:`J_c = S_c - \frac{1}{\max(|C_x|-1, 1)}\sum_{n \in C_x, n \neq c} S_n`, keeping
    what supports ``c`` and not the other labels present. D-MinMax clamps per position:

    .. math::
        \alpha_k = \mathrm{mean}_{ij}\Big[\mathrm{relu}(\partial_{ij} S_c)
        - \frac{\mathrm{relu}(\partial_{ij} \sum_{N_x} S_n)}{\max(|C_x|-1, 1)}
        + \frac{\min(0, \partial_{ij} \sum_{C_x} S_i)}{\max(|C_x|, 1)}\Big].

    Channel weights are the spatial *mean* of the gradients, Captum's Grad-CAM convention;
    the reference code sums, which differs by the constant ``h*w``. Every example costs one
    forward and one batched backward of one (MinMax) or three (D-MinMax) scores, whatever
    the number of labels.

    With ``classifier`` (the ``nn.Linear`` fed by the global average pool of ``layer``) the
    CAM forms of SPEC eqs. 7 and 9 are used instead, :math:`\alpha` computed from its weight
    matrix. On a GAP + linear model they equal the gradient forms times ``h*w``. The layer's
    activations and the detections then come from one forward pass with no backward.

    Args:
        forward_func: The model, returning ``(B, L)`` multi-label *logits* (sigmoid is
            applied to find detections).
        layer: The module whose output is explained (e.g. ``model.layer4``).
        classifier: Optional ``nn.Linear`` with weight ``(L, K)`` (its ``effective_weight``
            when it has one, as the kernel-usage-regularised head does), or an ``(L, K)``
            tensor of class weights; read at each call. Selects the CAM forms.
        device_ids: As in Captum, only for ``DataParallel`` forward functions.
        reshape_transform: Keyword-only; ``None`` lays the layer's tensor out automatically
            (channels-first, channels-last or tokens); pass a transform only when that
            is ambiguous (see :class:`captum_contrast.LayerContrastAttribution`).

    Example:
        >>> import torch
        >>> from torchvision.models import resnet18
        >>> from captum_contrast import MinMaxCAM, normalize
        >>> model = resnet18(weights=None, num_classes=20).eval()
        >>> cam = MinMaxCAM(model, model.layer4)
        >>> images = torch.rand(2, 3, 64, 64)
        >>> attr = cam.attribute(images, target=[3, 7], variant="d-minmax")
        >>> attr.shape
        torch.Size([2, 1, 2, 2])
        >>> cam_form = MinMaxCAM(model, model.layer4, classifier=model.fc)
        >>> normalize(cam_form.attribute(images, target=[3, 7]), "range").shape
        torch.Size([2, 1, 2, 2])
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        layer: nn.Module,
        classifier: nn.Linear | Tensor | None = None,
        device_ids: list[int] | None = None,
        *,
        reshape_transform: ReshapeTransform | None = None,
    ) -> None:
        super().__init__(forward_func, layer, device_ids, reshape_transform=reshape_transform)
        if classifier is not None and not isinstance(classifier, (nn.Linear, Tensor)):
            raise TypeError(
                "`classifier` must be None, an nn.Linear or an (L, K) weight tensor, "
                f"got {type(classifier).__name__}"
            )
        if isinstance(classifier, Tensor) and classifier.dim() != 2:
            raise ValueError(f"`classifier` weights must be (L, K), got {tuple(classifier.shape)}")
        self.classifier = classifier

    @log_usage()
    def attribute(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        target: TargetType = None,
        additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False,
        *,
        labels: Tensor | None = None,
        threshold: float = 0.5,
        variant: Variant = "minmax",
        relu_attributions: bool = True,
        return_weights: bool = False,
        scores: ScoresLike = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        r"""Compute the MinMax (or D-MinMax) map of ``target`` against the other labels.

        Args:
            inputs: Input tensor or tuple of tensors, batch first, as in Captum.
            target: The label of interest per example: an int, a list of ints, or a
                ``(B,)`` tensor. ``None``: the highest-scoring label of the label set (of
                all labels when the set is empty). A target outside its label set is
                allowed and follows the reference code: all of :math:`C_x` is subtracted,
                divided by :math:`\max(|C_x| - 1, 1)`.
            labels: ``(B, L)`` bool or 0/1 label sets, e.g. ground truth. ``None``: the
                detections :math:`\sigma(S) >` ``threshold`` of this same forward pass.
            threshold: Detection threshold on the sigmoid outputs, used when ``labels``
                is ``None``.
            variant: ``"minmax"`` (eq. 7 / MinMax-Grad) or ``"d-minmax"`` (eq. 9 / 8).
            relu_attributions: Apply ReLU to the map, as the paper does.
            return_weights: Also return the channel weights :math:`\alpha` ``(B, K)``.
            scores: How the model's output is read as ``(B, C)`` class scores
                (:mod:`captum_contrast.scores`); ``None``: ``(B, C)`` logits. The label
                set is read from what it selects (e.g. the classes present in a region).

        Returns:
            The raw map ``(B, 1, h, w)`` at layer resolution, like ``LayerGradCam``. The
            paper's per-map scaling is ``captum_contrast.normalize(attr, "range")``;
            ``LayerAttribution.interpolate`` brings it to the input size. With
            ``return_weights``, a tuple ``(map, channel_weights)``.
        """
        _check_threshold(threshold)
        _check_variant(variant)
        # The CAM form reads the classifier's weights, not gradients: no graph is kept.
        return self._attribute_by_plan(
            inputs,
            additional_forward_args,
            attribute_to_layer_input,
            scores,
            lambda forward: self.plan(
                forward,
                target,
                labels=labels,
                threshold=threshold,
                variant=variant,
                relu_attributions=relu_attributions,
                return_weights=return_weights,
            ),
            keep_graph=self.classifier is None,
        )

    def plan(
        self,
        forward: LayerForward,
        target: TargetType = None,
        *,
        labels: Tensor | None = None,
        threshold: float = 0.5,
        variant: Variant = "minmax",
        relu_attributions: bool = True,
        return_weights: bool = False,
    ) -> GradientPlan:
        """The label-set scores MinMax needs from ``forward`` and how to finish its map.

        With a ``classifier`` (the CAM form) no gradient is asked for.
        """
        _check_threshold(threshold)
        _check_variant(variant)
        label_sets = _resolve_labels(labels, forward.outputs, threshold)
        targets = _resolve_targets(target, forward.outputs, label_sets)
        score_weights = minmax_score_weights(label_sets, targets, variant).to(forward.outputs.dtype)

        def finish(gradients: Tensor | None) -> Tensor | tuple[Tensor, Tensor]:
            if gradients is None:
                class_weights = self._class_weights(forward.outputs.shape[1], forward.activations)
                channel_weights = combine_scores(score_weights @ class_weights, variant)
            else:
                channel_weights = spatial_mean(
                    combine_scores(gradients, variant), forward.spatial_rank
                )
            return self._weighted_map(
                channel_weights, forward.activations, relu_attributions, return_weights
            )

        return GradientPlan(None if self.classifier is not None else score_weights, finish)

    def _class_weights(self, num_labels: int, activations: Tensor) -> Tensor:
        weight = self.classifier
        assert weight is not None  # the CAM form is chosen only with a classifier
        if isinstance(weight, nn.Linear):
            weight = head_weight(weight)
        expected = (num_labels, activations.shape[1])
        if tuple(weight.shape) != expected:
            raise ValueError(
                f"`classifier` weights must be (labels, channels) = {expected} to map the "
                f"pooled layer to the model's outputs, got {tuple(weight.shape)}"
            )
        return weight.detach().to(device=activations.device, dtype=activations.dtype)


def _check_threshold(threshold: Any) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise TypeError(f"`threshold` must be a number, got {type(threshold).__name__}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"`threshold` must be in [0, 1] (sigmoid outputs), got {threshold}")


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"`variant` must be one of {VARIANTS}, got {variant!r}")


def _resolve_labels(labels: Tensor | None, outputs: Tensor, threshold: float) -> Tensor:
    """The ``(B, L)`` bool label sets: given, or the detections of this forward pass."""
    if labels is None:
        return torch.sigmoid(outputs) > threshold
    if not isinstance(labels, Tensor):
        raise TypeError(f"`labels` must be None or a (B, L) tensor, got {type(labels).__name__}")
    if labels.shape != outputs.shape:
        raise ValueError(
            f"`labels` must be a (batch, labels) tensor of shape {tuple(outputs.shape)} like "
            f"the model output, got {tuple(labels.shape)}"
        )
    if labels.dtype != torch.bool and bool(((labels != 0) & (labels != 1)).any()):
        raise ValueError("`labels` must hold only 0/1 (or bool) values marking each label set")
    return labels.to(device=outputs.device, dtype=torch.bool)


def _resolve_targets(target: TargetType, outputs: Tensor, label_sets: Tensor) -> Tensor:
    if target is not None:
        return resolve_target(target, outputs)
    in_set = outputs.masked_fill(~label_sets, float("-inf")).argmax(dim=1)
    return torch.where(label_sets.any(dim=1), in_set, outputs.argmax(dim=1))
