"""Salience-guided training losses for binary GAP + linear classifiers (CYBORG, Divisive Decisions).

Every loss is ``weighted cross-entropy + weighted MSE terms`` between min-max normalised
class activation maps and human-salience maps, at CAM resolution. ``t`` is the CAM of each
example's label ("true class") and ``f`` the CAM of the other class, both computed from the
features and the classifier weights without bias (``class_activation_maps``); ``N`` is
per-example min-max normalisation (``captum_contrast.normalize``; a constant map becomes 0).
Human maps are resized to the CAM resolution with antialiased bilinear interpolation (PIL's
``Resize`` in the CYBORG reference code) and range-normalised. MSEs are means over B*h*w.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from captum_contrast._validation import class_indices, describe_shape
from captum_contrast.normalization import normalize
from captum_contrast.training.cam import class_activation_maps, head_weight

DEFAULT_LAMBDAS = (1 / 3, 1 / 3, 1 / 3)


class SalienceLoss(nn.Module):
    """Base class: checks inputs, builds ``t``, ``f`` and the human map, weights the terms.

    The classifier is referenced, not registered as a submodule, so the loss has no
    parameters and ``loss.to()`` or ``loss.state_dict()`` never touch the model.

    Attributes:
        last_terms: After each call, the unweighted terms and the ``"total"`` as detached
            0-d tensors (no device sync), for logging:
            ``{name: value.item() for name, value in loss.last_terms.items()}``.

    Example:
        >>> import torch
        >>> from captum_contrast.data.models import small_cnn
        >>> from captum_contrast.training import CYBORGLoss, SalienceLoss
        >>> model = small_cnn(num_classes=2, width=4)
        >>> criterion = CYBORGLoss(model.classifier)  # a SalienceLoss with alpha = 0.5
        >>> logits, features = model.forward_with_features(torch.rand(2, 1, 32, 32))
        >>> _ = criterion(logits, features, torch.tensor([1, 0]), torch.rand(2, 32, 32))
        >>> terms = criterion.last_terms
        >>> bool(torch.isclose(terms["total"], 0.5 * terms["cross_entropy"] + 0.5 * terms["true_cam"]))
        True
    """

    term_names: tuple[str, ...] = ()

    def __init__(
        self, classifier: nn.Linear, weights: Sequence[float], use_relu_features: bool
    ) -> None:
        super().__init__()
        weight = head_weight(classifier)
        if weight.shape[0] != 2:
            raise ValueError(
                f"`classifier` must have 2 outputs (a binary task), got {weight.shape[0]}; the "
                "true/false-class losses are defined for binary classifiers only"
            )
        # Stored outside nn.Module's registry on purpose: the model owns its head.
        self.__dict__["_classifier"] = classifier
        self.term_weights = tuple(float(w) for w in weights)
        self.use_relu_features = bool(use_relu_features)
        self.last_terms: dict[str, Tensor] = {}

    @property
    def classifier(self) -> nn.Linear:
        return self.__dict__["_classifier"]

    def terms(
        self, logits: Tensor, labels: Tensor, t: Tensor, f: Tensor, human: Tensor
    ) -> dict[str, Tensor]:
        """The unweighted terms, named as ``term_names``; ``t``, ``f`` raw ``(B, 1, h, w)``
        CAMs, ``human`` the resized, normalised human maps."""
        raise NotImplementedError

    def forward(
        self, logits: Tensor, features: Tensor, labels: Tensor, human_maps: Tensor
    ) -> Tensor:
        """The weighted loss, a scalar tensor.

        Args:
            logits: ``(B, 2)`` classifier outputs for cross-entropy.
            features: ``(B, K, h, w)``, the maps fed to global average pooling.
            labels: ``(B,)`` integer class indices in {0, 1} (floats and bools are refused).
            human_maps: ``(B, H, W)`` or ``(B, 1, H, W)`` human salience, any resolution;
                finite values (NaN or infinity raise a ValueError).

        Raises:
            ValueError: For an empty batch, labels outside {0, 1}, non-finite human maps or
                shapes that do not match.
        """
        if not isinstance(logits, Tensor) or logits.dim() != 2 or logits.shape[1] != 2:
            raise ValueError(f"`logits` must be a (B, 2) tensor, got {describe_shape(logits)}")
        if not isinstance(features, Tensor) or features.dim() != 4 or len(features) != len(logits):
            raise ValueError(
                f"`features` must be (B, K, h, w) with B = {len(logits)}, got {describe_shape(features)}"
            )
        if len(logits) == 0:
            # A mean over no example is NaN, and one NaN step ruins every weight: refuse.
            raise ValueError("the batch is empty: `logits` has no example (shape (0, 2))")
        labels = _check_labels(labels, len(logits)).to(logits.device)
        if self.use_relu_features:
            features = F.relu(features)
        cams = class_activation_maps(
            features, head_weight(self.classifier), torch.stack([labels, 1 - labels], 1)
        )
        t, f = cams[:, :1], cams[:, 1:]
        human = _human_targets(
            human_maps, len(logits), features.shape[-2:], cams.dtype, cams.device
        )
        terms = self.terms(logits, labels, t, f, human)
        total = sum(
            w * terms[name] for w, name in zip(self.term_weights, self.term_names, strict=True)
        )
        self.last_terms = {name: value.detach() for name, value in terms.items()}
        self.last_terms["total"] = total.detach()
        return total


class CYBORGLoss(SalienceLoss):
    r"""CYBORG (Boyd et al.): :math:`\alpha\,CE + (1-\alpha)\,MSE(N(t), h)`.

    Args:
        classifier: The model's ``nn.Linear`` head with 2 outputs (or a
            :class:`KernelUsageRegularizedLinear`, whose effective weight is used).
        alpha: Weight of the cross-entropy; 0.5 as in the reference code.
        use_relu_features: Build CAMs from ``ReLU(features)``. CYBORG uses DenseNet's
            ``features`` before the final ReLU (default ``False``); with the ReLU the CAMs'
            spatial means are exactly the logits minus bias.

    Example:
        >>> import torch
        >>> from captum_contrast.data.models import small_cnn
        >>> from captum_contrast.training import CYBORGLoss
        >>> model = small_cnn(num_classes=2, width=4)
        >>> criterion = CYBORGLoss(model.classifier)
        >>> images, labels, human_maps = torch.rand(3, 1, 32, 32), torch.tensor([0, 1, 1]), torch.rand(3, 32, 32)
        >>> logits, features = model.forward_with_features(images)
        >>> loss = criterion(logits, features, labels, human_maps)
        >>> loss.backward()
        >>> sorted(criterion.last_terms)
        ['cross_entropy', 'total', 'true_cam']
    """

    term_names = ("cross_entropy", "true_cam")

    def __init__(
        self, classifier: nn.Linear, alpha: float = 0.5, use_relu_features: bool = False
    ) -> None:
        super().__init__(classifier, _alpha_weights(alpha), use_relu_features)

    def terms(
        self, logits: Tensor, labels: Tensor, t: Tensor, f: Tensor, human: Tensor
    ) -> dict[str, Tensor]:
        return {
            "cross_entropy": F.cross_entropy(logits, labels),
            "true_cam": F.mse_loss(normalize(t), human),
        }


class DifferenceSalienceLoss(SalienceLoss):
    r"""Difference Salience training: :math:`\alpha\,CE + (1-\alpha)\,MSE(N(t - f), h)`.

    ``t - f`` is the CAM of the logit difference, the quantity that decides a binary
    prediction. The form (CYBORG's with the target swapped) is an assumption of the spec;
    no reference code exists. Arguments as :class:`CYBORGLoss`.

    Example:
        >>> import torch
        >>> from captum_contrast.data.models import small_cnn
        >>> from captum_contrast.training import DifferenceSalienceLoss
        >>> model = small_cnn(num_classes=2, width=4)
        >>> criterion = DifferenceSalienceLoss(model.classifier, alpha=0.25)
        >>> logits, features = model.forward_with_features(torch.rand(2, 1, 32, 32))
        >>> loss = criterion(logits, features, torch.tensor([1, 0]), torch.rand(2, 32, 32))
        >>> terms = criterion.last_terms
        >>> bool(torch.isclose(loss, 0.25 * terms["cross_entropy"] + 0.75 * terms["difference_cam"]))
        True
    """

    term_names = ("cross_entropy", "difference_cam")

    def __init__(
        self, classifier: nn.Linear, alpha: float = 0.5, use_relu_features: bool = False
    ) -> None:
        super().__init__(classifier, _alpha_weights(alpha), use_relu_features)

    def terms(
        self, logits: Tensor, labels: Tensor, t: Tensor, f: Tensor, human: Tensor
    ) -> dict[str, Tensor]:
        return {
            "cross_entropy": F.cross_entropy(logits, labels),
            "difference_cam": F.mse_loss(normalize(t - f), human),
        }


class PerClassSalienceLoss(SalienceLoss):
    r"""Per-class Salience: :math:`\lambda_1 CE + \lambda_2 MSE(N(t), h) + \lambda_3 MSE(N(f), 1 - h)`.

    Args:
        classifier: As :class:`CYBORGLoss`.
        lambdas: ``(lambda_1, lambda_2, lambda_3)``. The paper says "equal weights (0.3 for
            three-component losses)"; the default reads that as 1/3 each. Pass
            ``(0.3, 0.3, 0.3)`` for the literal reading (the same minimiser, 0.9x the loss).
        use_relu_features: As :class:`CYBORGLoss`.

    Example:
        >>> import torch
        >>> from captum_contrast.data.models import small_cnn
        >>> from captum_contrast.training import PerClassSalienceLoss
        >>> model = small_cnn(num_classes=2, width=4)
        >>> criterion = PerClassSalienceLoss(model.classifier, lambdas=(0.5, 0.25, 0.25))
        >>> logits, features = model.forward_with_features(torch.rand(2, 1, 32, 32))
        >>> loss = criterion(logits, features, torch.tensor([1, 0]), torch.rand(2, 32, 32))
        >>> t = criterion.last_terms
        >>> bool(torch.isclose(loss, 0.5 * t["cross_entropy"] + 0.25 * t["true_cam"] + 0.25 * t["false_cam"]))
        True
    """

    term_names = ("cross_entropy", "true_cam", "false_cam")

    def __init__(
        self,
        classifier: nn.Linear,
        lambdas: Sequence[float] = DEFAULT_LAMBDAS,
        use_relu_features: bool = False,
    ) -> None:
        super().__init__(classifier, _lambda_weights(lambdas), use_relu_features)

    def terms(
        self, logits: Tensor, labels: Tensor, t: Tensor, f: Tensor, human: Tensor
    ) -> dict[str, Tensor]:
        return {
            "cross_entropy": F.cross_entropy(logits, labels),
            "true_cam": F.mse_loss(normalize(t), human),
            "false_cam": F.mse_loss(normalize(f), 1 - human),
        }


class ContrastSalienceLoss(SalienceLoss):
    r"""Contrast Salience: :math:`\lambda_1 CE + \lambda_2 MSE(N(t), h) + \lambda_3 MSE(N(f), 1 - N(t))`.

    The false-class CAM is pushed away from the model's own normalised true-class CAM, a
    target that moves with training, rather than from the human map.

    Args:
        classifier: As :class:`CYBORGLoss`.
        lambdas: As :class:`PerClassSalienceLoss` (default 1/3 each; the paper's "0.3").
        detach_contrast_target: Stop the gradient through ``1 - N(t)`` in the third term, so
            it only moves ``f``. The paper does not say; the default ``False`` follows the
            lab's code, which detaches nothing.
        use_relu_features: As :class:`CYBORGLoss`.

    Example:
        >>> import torch
        >>> from captum_contrast.data.models import small_cnn
        >>> from captum_contrast.training import ContrastSalienceLoss
        >>> model = small_cnn(num_classes=2, width=4)
        >>> criterion = ContrastSalienceLoss(model.classifier)
        >>> logits, features = model.forward_with_features(torch.rand(2, 1, 32, 32))
        >>> loss = criterion(logits, features, torch.tensor([1, 0]), torch.rand(2, 1, 16, 16))
        >>> loss.dim(), sorted(criterion.last_terms)
        (0, ['cross_entropy', 'false_cam', 'total', 'true_cam'])
    """

    term_names = ("cross_entropy", "true_cam", "false_cam")

    def __init__(
        self,
        classifier: nn.Linear,
        lambdas: Sequence[float] = DEFAULT_LAMBDAS,
        detach_contrast_target: bool = False,
        use_relu_features: bool = False,
    ) -> None:
        super().__init__(classifier, _lambda_weights(lambdas), use_relu_features)
        self.detach_contrast_target = bool(detach_contrast_target)

    def terms(
        self, logits: Tensor, labels: Tensor, t: Tensor, f: Tensor, human: Tensor
    ) -> dict[str, Tensor]:
        true_map = normalize(t)
        contrast_target = 1 - (true_map.detach() if self.detach_contrast_target else true_map)
        return {
            "cross_entropy": F.cross_entropy(logits, labels),
            "true_cam": F.mse_loss(true_map, human),
            "false_cam": F.mse_loss(normalize(f), contrast_target),
        }


def _alpha_weights(alpha: float) -> tuple[float, float]:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"`alpha` must be a number in [0, 1], got {alpha!r}")
    return float(alpha), 1 - float(alpha)


def _lambda_weights(lambdas: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(lambdas) if isinstance(lambdas, Sequence) else ()
    if len(values) != 3 or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
        for v in values
    ):
        raise ValueError(f"`lambdas` must be three finite non-negative numbers, got {lambdas!r}")
    return float(values[0]), float(values[1]), float(values[2])


def _check_labels(labels: Tensor, batch_size: int) -> Tensor:
    if isinstance(labels, Tensor):  # the one check of class indices: no float, no bool
        labels = class_indices(labels, "labels", labels.device)
    if not isinstance(labels, Tensor) or labels.dim() != 1 or len(labels) != batch_size:
        raise ValueError(f"`labels` must be a ({batch_size},) tensor, got {describe_shape(labels)}")
    if labels.numel() and not bool(((labels == 0) | (labels == 1)).all()):
        raise ValueError(
            f"`labels` must be in {{0, 1}} (a binary task), got values {labels.unique().tolist()[:5]}"
        )
    return labels.long()


def _human_targets(
    human_maps: Tensor, batch_size: int, size: torch.Size, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """``(B, 1, h, w)`` human maps at CAM resolution, range-normalised per example."""
    if isinstance(human_maps, Tensor) and human_maps.dim() == 3:
        human_maps = human_maps.unsqueeze(1)
    if (
        not isinstance(human_maps, Tensor)
        or human_maps.dim() != 4
        or human_maps.shape[:2] != (batch_size, 1)
        or human_maps.is_complex()
    ):
        raise ValueError(
            f"`human_maps` must be a real (B, H, W) or (B, 1, H, W) tensor with B = {batch_size}, "
            f"got {describe_shape(human_maps)}"
        )
    non_finite = ~torch.isfinite(human_maps).flatten(1).all(dim=1)
    if bool(non_finite.any()):
        # Labels are checked; maps must be too: one NaN pixel makes every weight NaN in a step.
        raise ValueError(
            "`human_maps` holds NaN or infinite values in examples "
            f"{non_finite.nonzero().flatten().tolist()[:5]}; clean or drop them"
        )
    human_maps = human_maps.to(device=device, dtype=dtype)
    if human_maps.shape[-2:] != size:
        human_maps = F.interpolate(
            human_maps, size=tuple(size), mode="bilinear", align_corners=False, antialias=True
        )
    return normalize(human_maps, "range")
