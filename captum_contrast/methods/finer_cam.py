"""FinerCAM: Grad-CAM of the target's score minus ``gamma`` times its references' mean score."""

from __future__ import annotations

import math
from typing import Any

import torch.nn.functional as F
from captum.log import log_usage
from torch import Tensor

from captum_contrast._engine import LayerForward, spatial_mean
from captum_contrast._targets import TargetType, resolve_target
from captum_contrast.methods._base import GradientPlan, LayerContrastAttribution
from captum_contrast.methods.contrast_sets import ContrastSet, ContrastType, resolve_contrast
from captum_contrast.scores import ScoresLike


def closest_classes(outputs: Tensor, targets: Tensor, k: int) -> Tensor:
    """The ``min(k, C - 1)`` classes whose scores are closest to the target's, ``(B, k')``.

    "Closest" is torchcam's definition: the smallest ``|y_d - y_c|``, from above or below
    the target, the target itself excluded; ties are broken as ``torch.topk`` breaks them.

    Example:
        >>> import torch
        >>> from captum_contrast.methods import closest_classes
        >>> scores = torch.tensor([[5.0, 4.5, 1.0, 6.0]])   # target 0: 4.5 and 6.0 are closest
        >>> closest_classes(scores, torch.tensor([0]), k=2).sort(dim=1).values
        tensor([[1, 3]])
    """
    count = min(k, outputs.shape[1] - 1)
    distances = (outputs.detach() - outputs.detach().gather(1, targets.unsqueeze(1))).abs()
    distances = distances.scatter(1, targets.unsqueeze(1), float("inf"))
    return distances.topk(count, dim=1, largest=False).indices


def finer_score_weights(
    outputs: Tensor, target: TargetType, contrast: ContrastType, k: int, gamma: float
) -> Tensor:
    """``e_target - gamma * mean_d e_d`` per example, ``(B, C)``: Finer-CAM's one score.

    ``contrast=None`` takes the ``k`` classes closest in score (:func:`closest_classes`);
    the other forms are ContrastGradCAM's (``resolve_contrast`` in ``methods/contrast_sets.py``).

    Example:
        >>> import torch
        >>> from captum_contrast.methods import finer_score_weights
        >>> finer_score_weights(torch.tensor([[3.0, 2.0, 0.0]]), torch.tensor([0]), None, k=1, gamma=0.5)
        tensor([[ 1.0000, -0.5000,  0.0000]])
    """
    batch_size, num_classes = _check_outputs(outputs)
    targets = resolve_target(target, outputs)
    if contrast is None:
        references = closest_classes(outputs, targets, k)
    else:
        # A ContrastSet carries its own k; the lists and tensors name their classes.
        set_k = contrast.k if isinstance(contrast, ContrastSet) else 1
        references = resolve_contrast(contrast, set_k, targets, outputs)
    dtype = outputs.dtype
    reference_mean = F.one_hot(references, num_classes).to(dtype).mean(dim=1)
    return F.one_hot(targets, num_classes).to(dtype) - gamma * reference_mean


class FinerCAM(LayerContrastAttribution):
    r"""Finer-CAM (Zhang et al., CVPR 2025): Grad-CAM of the target against its look-alikes.

    Grad-CAM of one score per example, the target's logit minus ``gamma`` times the mean
    logit of ``T`` reference classes :math:`d_t`:

    .. math::
        s = y_c - \gamma\,\frac{1}{T}\sum_{t=1}^{T} y_{d_t}, \qquad
        w_k = \mathrm{mean}_{ij}\,\frac{\partial s}{\partial A^k_{ij}}, \qquad
        L = \mathrm{ReLU}\Big(\sum_k w_k A^k\Big).

    The automatic references are the ``k`` classes whose scores are closest to the
    target's, ``|y_d - y_c|`` smallest (above or below it), the target excluded, ``k``
    capped at ``C - 1``: torchcam's ``FinerCAM`` definition, whose map this equals after
    the same min-max normalisation. ``gamma = 0`` is Grad-CAM; ``gamma = 1`` with one
    reference is :class:`DifferenceSalience` with the ReLU. One forward and one backward of
    one score per example, whatever ``k``.

    **pytorch-grad-cam's ``FinerCAM`` is another map.** It explains
    ``sum_d p_d (y_c - alpha y_d) / sum_d p_d`` (``FinerWeightedTarget``): the references'
    logits are weighted by their softmax probabilities :math:`p_d`, the weights are not
    detached (so the gradient also flows through the softmax), ``alpha`` defaults to 1,
    and its references are positions 1-3 of the classes sorted by distance to the
    *predicted* class's logit. The two agree only when the references' probabilities are
    equal and their gradient through the softmax vanishes; ``benchmarks/contrastive.py``
    measures how far apart they are on real networks.

    Args:
        forward_func: The model, or any function of the inputs; its output is read by
            ``scores`` (``(batch, classes)`` logits by default, at least two classes).
        layer: The module whose output is explained (e.g. ``model.layer4``).
        device_ids: As in Captum, only for ``DataParallel`` forward functions.
        reshape_transform: Keyword-only; ``None`` lays the layer's tensor out automatically
            (see :class:`captum_contrast.LayerContrastAttribution`).

    Example:
        >>> import torch
        >>> from torchvision.models import resnet18
        >>> from captum_contrast import FinerCAM
        >>> model = resnet18(weights=None, num_classes=10).eval()
        >>> cam = FinerCAM(model, model.layer4)
        >>> images = torch.rand(2, 3, 64, 64)
        >>> cam.attribute(images, target=[3, 7]).shape                 # 3 closest references
        torch.Size([2, 1, 2, 2])
        >>> cam.attribute(images, target=[3, 7], contrast=[1, 2], gamma=1.0).shape
        torch.Size([2, 1, 2, 2])
    """

    @log_usage()
    def attribute(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        target: TargetType = None,
        additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False,
        *,
        contrast: ContrastType = None,
        k: int = 3,
        gamma: float = 0.6,
        relu_attributions: bool = True,
        return_weights: bool = False,
        scores: ScoresLike = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        r"""Compute the Finer-CAM map of ``target`` against its reference classes.

        Args:
            inputs: Input tensor or tuple of tensors, batch first, as in Captum.
            target: One class per example: an int, a list of ints, or a ``(B,)`` tensor.
                ``None`` explains each example's highest-scoring class.
            additional_forward_args: Extra arguments for ``forward_func``, after ``inputs``.
            attribute_to_layer_input: Explain the layer's input rather than its output.
            contrast: The reference classes, in ContrastGradCAM's forms. ``None``: the
                ``k`` classes closest in score to the target, per example. An int or a list
                of ints: the same classes for every example. A ``(B, T)`` LongTensor: per
                example. A :class:`ContrastSet`: each target's most confused classes.
            k: Number of automatic references when ``contrast`` is ``None`` (the paper's
                ``T = 3``), capped at the number of classes minus one.
            gamma: Strength of the comparison, a finite number ``>= 0`` (the paper's 0.6).
            relu_attributions: Apply ReLU to the map, as the paper and torchcam do.
            return_weights: Also return the channel weights ``(B, K)``.
            scores: How the model's output is read as ``(B, C)`` class scores
                (:mod:`captum_contrast.scores`); ``None``: ``(B, C)`` logits.

        Returns:
            The map ``(B, 1, *grid)`` at layer resolution and raw scale, like
            ``LayerGradCam``. With ``return_weights``, a tuple ``(map, channel_weights)``.
        """
        _check_arguments(k, gamma)
        return self._attribute_by_plan(
            inputs,
            additional_forward_args,
            attribute_to_layer_input,
            scores,
            lambda forward: self.plan(
                forward,
                target,
                contrast=contrast,
                k=k,
                gamma=gamma,
                relu_attributions=relu_attributions,
                return_weights=return_weights,
            ),
        )

    def plan(
        self,
        forward: LayerForward,
        target: TargetType = None,
        *,
        contrast: ContrastType = None,
        k: int = 3,
        gamma: float = 0.6,
        relu_attributions: bool = True,
        return_weights: bool = False,
    ) -> GradientPlan:
        """The one score per example Finer-CAM needs from ``forward``, and how to finish it.

        The keywords mean what they mean in :meth:`attribute`; see
        :func:`captum_contrast.methods.run_plans` to share one backward between methods.
        """
        _check_arguments(k, gamma)
        score_weights = finer_score_weights(forward.outputs, target, contrast, k, float(gamma))

        def finish(gradients: Tensor | None) -> Tensor | tuple[Tensor, Tensor]:
            assert gradients is not None
            channel_weights = spatial_mean(gradients[0], forward.spatial_rank)
            return self._weighted_map(
                channel_weights, forward.activations, relu_attributions, return_weights
            )

        return GradientPlan(score_weights.unsqueeze(0), finish)


def _check_arguments(k: Any, gamma: Any) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"`k` must be a positive int, got {k!r}")
    real = isinstance(gamma, (int, float)) and not isinstance(gamma, bool)
    if not real or not math.isfinite(gamma) or gamma < 0:
        raise ValueError(f"`gamma` must be a finite number >= 0, got {gamma!r}")


def _check_outputs(outputs: Tensor) -> tuple[int, int]:
    if outputs.dim() != 2 or outputs.shape[1] < 2:
        raise ValueError(
            "FinerCAM compares the target with other classes: the scores must be (B, C) with "
            f"C >= 2, got shape {tuple(outputs.shape)}"
        )
    batch_size, num_classes = outputs.shape
    return batch_size, num_classes
