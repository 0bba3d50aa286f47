"""DifferenceSalience: the Grad-CAM of the target-minus-contrast logit difference."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from captum.log import log_usage
from torch import Tensor

from captum_contrast._engine import LayerForward, spatial_mean
from captum_contrast._targets import TargetType, as_class_indices, resolve_target, runner_up
from captum_contrast.methods._base import GradientPlan, LayerContrastAttribution
from captum_contrast.scores import ScoresLike

RUNNER_UP = "runner-up"


def difference_score_weights(
    outputs: Tensor, target: TargetType, contrast: TargetType | str
) -> Tensor:
    """Score weights ``e_target - e_contrast`` per example, ``(B, C)``.

    Two outputs: ``contrast`` defaults to the other class. One output (a single logit
    ``z``, class 1 when ``z > 0``): ``+1`` for target 1 and ``-1`` for target 0, since
    ``softmax([0, z]) = sigmoid(z)``. More outputs: ``contrast`` is required; ``"runner-up"``
    picks each example's highest-scoring class other than its target from ``outputs``.

    Example:
        >>> import torch
        >>> from captum_contrast.methods import difference_score_weights
        >>> difference_score_weights(torch.zeros(2, 2), torch.tensor([1, 0]), None)
        tensor([[-1.,  1.],
                [ 1., -1.]])
        >>> difference_score_weights(torch.tensor([[3.0, 1.0, 2.0]]), torch.tensor([0]), "runner-up")
        tensor([[ 1.,  0., -1.]])
    """
    if isinstance(contrast, str) and contrast != RUNNER_UP:
        raise ValueError(f"`contrast` as a string must be {RUNNER_UP!r}, got {contrast!r}")
    batch_size, num_outputs = outputs.shape
    if num_outputs == 1:
        for value, name in ((target, "target"), (contrast, "contrast")):
            if value is not None and not isinstance(value, str):
                classes = as_class_indices(value, name, outputs.device)
                if bool(((classes != 0) & (classes != 1)).any()):
                    raise ValueError(
                        f"`{name}` must be 0 or 1 for a single-logit binary model (class 1 "
                        f"when the logit is > 0), got {classes.unique().tolist()[:5]}"
                    )
        # The equivalent two-class logits [0, z] reuse the two-output rules below.
        pair_logits = torch.cat([torch.zeros_like(outputs), outputs], dim=1)
        targets, contrasts = _resolve_pair(target, contrast, pair_logits)
        return (targets - contrasts).unsqueeze(1).to(outputs.dtype)
    if num_outputs > 2 and contrast is None:
        raise ValueError(
            f"DifferenceSalience compares two classes; the model has {num_outputs} outputs, "
            "so pass `contrast`, the class whose score is subtracted from the target's"
        )
    targets, contrasts = _resolve_pair(target, contrast, outputs)
    return F.one_hot(targets, num_outputs).to(outputs.dtype) - F.one_hot(contrasts, num_outputs).to(
        outputs.dtype
    )


def _resolve_pair(
    target: TargetType, contrast: TargetType | str, outputs: Tensor
) -> tuple[Tensor, Tensor]:
    targets = resolve_target(target, outputs)
    if contrast is None:
        return targets, 1 - targets
    if isinstance(contrast, str):  # RUNNER_UP, checked by the caller
        # Chosen from the same forward pass that is back-propagated: no second forward.
        return targets, runner_up(outputs, targets)
    contrasts = resolve_target(contrast, outputs, name="contrast")
    clashes = contrasts == targets
    if bool(clashes.any()):
        example = int(clashes.nonzero()[0])
        raise ValueError(
            f"`contrast` equals the target class {int(targets[example])} for example {example}; "
            "the difference of a class with itself is zero"
        )
    return targets, contrasts


class DifferenceSalience(LayerContrastAttribution):
    r"""Difference Salience (Piland, Sweet, Czajka): what separates the true class from the other.

    The map is Grad-CAM of the score difference :math:`S_t - S_f`, signed:

    .. math::
        L = \sum_k w_k A^k, \qquad
        w_k = \mathrm{mean}_{ij}\,\frac{\partial (S_t - S_f)}{\partial A^k_{ij}}.

    On a GAP + linear head this is :math:`(CAM_t - CAM_f) / (h w)`, the paper's
    :math:`t - f` up to a constant; the paper's normalised map is
    ``captum_contrast.normalize(attr, "range")``. For a single-logit model ``z`` already is
    the difference (``softmax([0, z]) = sigmoid(z)``): target 1 maps ``z``, target 0 maps
    ``-z``. One forward and one backward of one score per example.

    The CAM identity needs ``layer`` to feed the pooling directly. torchvision's DenseNet
    applies a ReLU after ``model.features``, so there the map is masked by that ReLU and
    differs from the CYBORG-style CAM difference on pre-ReLU features; that one is
    ``captum_contrast.training.class_activation_maps`` on the head's weights.

    Args:
        forward_func: The model, returning ``(B, 2)`` or ``(B, 1)`` logits (or ``(B, C)``
            with an explicit ``contrast`` for a pairwise difference).
        layer: The module whose output is explained (e.g. ``model.features``).
        device_ids: As in Captum, only for ``DataParallel`` forward functions.
        reshape_transform: Keyword-only; ``None`` lays the layer's tensor out automatically
            (channels-first, channels-last or tokens); pass a transform only when that
            is ambiguous (see :class:`captum_contrast.LayerContrastAttribution`).

    Example:
        >>> import torch
        >>> from torchvision.models import resnet18
        >>> from captum_contrast import DifferenceSalience, normalize
        >>> model = resnet18(weights=None, num_classes=2).eval()
        >>> salience = DifferenceSalience(model, model.layer4)
        >>> images = torch.rand(2, 3, 64, 64)
        >>> attr = salience.attribute(images, target=torch.tensor([1, 0]))
        >>> normalize(attr, "range").shape
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
        contrast: TargetType | str = None,
        relu_attributions: bool = False,
        return_weights: bool = False,
        scores: ScoresLike = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        r"""Compute the signed map of ``S_target - S_contrast``.

        Args:
            inputs: Input tensor or tuple of tensors, batch first, as in Captum.
            target: The true class per example (an int, a list of ints, or a ``(B,)``
                tensor). ``None``: the predicted class (for a single logit, 1 when ``z > 0``).
            additional_forward_args: Extra arguments for ``forward_func``, after ``inputs``.
            attribute_to_layer_input: Explain the layer's input rather than its output.
            contrast: The class subtracted. ``None``: the other class of a binary model;
                required when the model has more than two outputs, where ``"runner-up"``
                takes each example's highest-scoring class other than its target.
            relu_attributions: Apply ReLU to the map; off by default, the map is signed.
            return_weights: Also return the channel weights :math:`w` ``(B, K)``.
            scores: How the model's output is read as ``(B, C)`` class scores
                (:mod:`captum_contrast.scores`); ``None``: ``(B, C)`` logits.

        Returns:
            The map ``(B, 1, h, w)`` at layer resolution and raw scale, like
            ``LayerGradCam``. With ``return_weights``, a tuple ``(map, channel_weights)``.
        """
        return self._attribute_by_plan(
            inputs,
            additional_forward_args,
            attribute_to_layer_input,
            scores,
            lambda forward: self.plan(
                forward,
                target,
                contrast=contrast,
                relu_attributions=relu_attributions,
                return_weights=return_weights,
            ),
        )

    def plan(
        self,
        forward: LayerForward,
        target: TargetType = None,
        *,
        contrast: TargetType | str = None,
        relu_attributions: bool = False,
        return_weights: bool = False,
    ) -> GradientPlan:
        """The one score per example (``S_target - S_contrast``) and how to finish the map."""
        score_weights = difference_score_weights(forward.outputs, target, contrast)

        def finish(gradients: Tensor | None) -> Tensor | tuple[Tensor, Tensor]:
            assert gradients is not None
            channel_weights = spatial_mean(gradients[0], forward.spatial_rank)
            return self._weighted_map(
                channel_weights, forward.activations, relu_attributions, return_weights
            )

        return GradientPlan(score_weights.unsqueeze(0), finish)
