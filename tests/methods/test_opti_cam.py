"""OptiCAM: hand-computed losses and Adam steps, gradients, batch independence, early stops."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from captum.attr import LayerAttribution
from torch import Tensor, nn
from torchvision.models import vit_b_16

from captum_contrast.methods.opti_cam import (
    PRESETS,
    OptiCAM,
    OptiCAMLoss,
    cosine_lr,
    grad_cam_start,
    objective_loss,
    optimise_u,
    resolve_recipe,
)
from captum_contrast.normalization import normalize
from captum_contrast.transforms import vit_reshape_transform
from tests.helpers import assert_untouched, model_snapshot

OBJECTIVES = ["mask", "diff", "iomask", "iodiff"]
NORMALIZATIONS = ["range", "max", "sigmoid"]


class TinyNet(nn.Module):
    """8x8 input -> ``features`` (4 channels at 4x4) -> 3 logits, so upsampling is exercised."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Sequential(
            nn.Conv2d(4, 4, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4, 3),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


@pytest.fixture
def tiny() -> TinyNet:
    torch.manual_seed(0)
    model = TinyNet().double().eval()
    with torch.no_grad():  # biases that keep most units active, so the objective is not flat
        model.features[0].bias.fill_(0.2)
        model.head[0].bias.fill_(0.2)
    return model


def _images(batch: int = 2, seed: int = 1) -> Tensor:
    torch.manual_seed(seed)
    return torch.rand(batch, 3, 8, 8, dtype=torch.float64)


def _loss_fn(model: TinyNet, images: Tensor, objective: str, normalization: str) -> OptiCAMLoss:
    with torch.no_grad():
        logits = model(images)
        activations = model.features(images)
    targets = logits.argmax(1)
    return OptiCAMLoss(
        model,
        images,
        activations,
        targets,
        logits.gather(1, targets[:, None])[:, 0],
        objective,
        normalization,
    )


# ---- independent numpy reference ---------------------------------------------------------


def _bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Rows: output pixels; align_corners=False, the source coordinate clamped at 0."""
    matrix = np.zeros((n_out, n_in))
    for i in range(n_out):
        source = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
        low = min(int(np.floor(source)), n_in - 1)
        high = min(low + 1, n_in - 1)
        matrix[i, low] += 1 - (source - low)
        matrix[i, high] += source - low
    return matrix


def _hand_losses(
    model: TinyNet, images: Tensor, u: np.ndarray, objective: str, normalization: str
) -> np.ndarray:
    with torch.no_grad():
        acts = model.features(images).numpy()
        original_logits = model(images).numpy()
    target = original_logits.argmax(1)
    weights = np.exp(u) / np.exp(u).sum(1, keepdims=True)
    rows, cols = _bilinear_matrix(acts.shape[2], 8), _bilinear_matrix(acts.shape[3], 8)
    losses = []
    for b in range(images.shape[0]):
        sal = rows @ np.tensordot(weights[b], acts[b], axes=1) @ cols.T
        if normalization == "range":
            mask = (sal - sal.min()) / (sal.max() - sal.min())
        elif normalization == "max":
            mask = sal / sal.max()
        else:
            mask = 1 / (1 + np.exp(-sal))
        x = images[b].numpy()
        with torch.no_grad():
            kept = model(torch.from_numpy(x * mask)[None])[0, target[b]].item()
            removed = model(torch.from_numpy(x * (1 - mask))[None])[0, target[b]].item()
        original = original_logits[b, target[b]]
        losses.append(
            {
                "mask": original - kept,
                "diff": abs(original - kept),
                "iomask": -(kept - removed),
                "iodiff": abs(original - kept) - abs(original - removed),
            }[objective]
        )
    return np.array(losses)


def _hand_adam(model, images, objective, normalization, steps, lr=0.1) -> np.ndarray:
    """Adam as in Kingma & Ba, with central finite-difference gradients of the hand loss."""
    u = np.full((images.shape[0], 4), 0.5)
    first, second = np.zeros_like(u), np.zeros_like(u)
    for t in range(1, steps + 1):
        grad = np.zeros_like(u)
        for k in range(u.shape[1]):  # column k of every example at once: losses are per example
            step = np.zeros_like(u)
            step[:, k] = 1e-6
            up = _hand_losses(model, images, u + step, objective, normalization)
            down = _hand_losses(model, images, u - step, objective, normalization)
            grad[:, k] = (up - down) / 2e-6
        first = 0.9 * first + 0.1 * grad
        second = 0.999 * second + 0.001 * grad**2
        u = u - lr * (first / (1 - 0.9**t)) / (np.sqrt(second / (1 - 0.999**t)) + 1e-8)
    return u


@pytest.mark.parametrize("objective,normalization", itertools.product(OBJECTIVES, NORMALIZATIONS))
def test_loss_and_adam_steps_match_hand_computation(
    tiny: TinyNet, objective: str, normalization: str
) -> None:
    images = _images()
    u = np.random.default_rng(0).normal(0.5, 1.0, size=(2, 4))
    loss_fn = _loss_fn(tiny, images, objective, normalization)
    np.testing.assert_allclose(
        loss_fn(torch.from_numpy(u)).detach().numpy(),
        _hand_losses(tiny, images, u, objective, normalization),
        rtol=1e-10,
        atol=1e-12,
    )

    cam = OptiCAM(tiny, tiny.features)
    attr, weights = cam.attribute(
        images,
        objective=objective,
        normalization=normalization,
        n_iter=3,
        early_stop=None,
        return_weights=True,
    )
    u_hand = _hand_adam(tiny, images, objective, normalization, steps=3)
    expected = np.exp(u_hand) / np.exp(u_hand).sum(1, keepdims=True)
    np.testing.assert_allclose(weights.numpy(), expected, atol=1e-7, rtol=0)
    with torch.no_grad():
        acts = tiny.features(images)
    torch.testing.assert_close(attr, (weights[:, :, None, None] * acts).sum(1, keepdim=True))


def test_objective_loss_formulas() -> None:
    original, kept, removed = (
        torch.tensor([5.0, 1.0]),
        torch.tensor([3.0, 2.0]),
        torch.tensor([4.0, -1.0]),
    )
    torch.testing.assert_close(objective_loss("mask", original, kept), torch.tensor([2.0, -1.0]))
    torch.testing.assert_close(objective_loss("diff", original, kept), torch.tensor([2.0, 1.0]))
    torch.testing.assert_close(
        objective_loss("iomask", original, kept, removed), torch.tensor([1.0, -3.0])
    )
    torch.testing.assert_close(
        objective_loss("iodiff", original, kept, removed), torch.tensor([1.0, -1.0])
    )


@pytest.mark.parametrize("objective,normalization", itertools.product(OBJECTIVES, NORMALIZATIONS))
def test_gradient_matches_finite_differences(
    tiny: TinyNet, objective: str, normalization: str
) -> None:
    loss_fn = _loss_fn(tiny, _images(), objective, normalization)
    u = torch.randn(2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) + 0.5
    assert torch.autograd.gradcheck(loss_fn, (u.requires_grad_(),), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_n_iter_zero_is_the_channel_mean(tiny: TinyNet) -> None:
    images = _images(3)
    attr, weights = OptiCAM(tiny, tiny.features).attribute(images, n_iter=0, return_weights=True)
    with torch.no_grad():
        expected = tiny.features(images).mean(1, keepdim=True)
    torch.testing.assert_close(attr, expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(weights, torch.full((3, 4), 0.25, dtype=torch.float64))


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_optimisation_beats_the_start_for_every_example(tiny: TinyNet, objective: str) -> None:
    images = _images(4, seed=2)
    cam = OptiCAM(tiny, tiny.features)
    attr, weights = cam.attribute(
        images, objective=objective, n_iter=30, early_stop=None, return_weights=True
    )
    loss_fn = _loss_fn(tiny, images, objective, "range")
    start = loss_fn(torch.full((4, 4), 0.5, dtype=torch.float64))
    end = loss_fn(weights.log())  # softmax is shift-invariant, so log(weights) stands for u*
    assert bool((end < start - 1e-3).all()), (start, end)
    # The returned map, upsampled and normalised, is exactly the optimised mask.
    mask = normalize(LayerAttribution.interpolate(attr, (8, 8), "bilinear"), "range")
    torch.testing.assert_close(mask, loss_fn.mask(weights.log()))


@pytest.mark.parametrize("early_stop", ["paper", None])
@pytest.mark.parametrize("objective", ["mask", "iodiff"])
def test_example_alone_and_in_a_batch_agree(
    tiny: TinyNet, early_stop: str | None, objective: str
) -> None:
    images = _images(3, seed=4)
    cam = OptiCAM(tiny, tiny.features)
    batched = cam.attribute(
        images, target=[0, 2, 1], objective=objective, n_iter=15, early_stop=early_stop
    )
    for b, target in enumerate([0, 2, 1]):
        alone = cam.attribute(
            images[b : b + 1], target=target, objective=objective, n_iter=15, early_stop=early_stop
        )
        torch.testing.assert_close(alone, batched[b : b + 1], rtol=1e-9, atol=1e-12)


def test_target_none_is_the_prediction(tiny: TinyNet) -> None:
    images = _images(3)
    cam = OptiCAM(tiny, tiny.features)
    with torch.no_grad():
        predicted = tiny(images).argmax(1)
    torch.testing.assert_close(
        cam.attribute(images, n_iter=4), cam.attribute(images, target=predicted, n_iter=4)
    )
    assert not torch.allclose(
        cam.attribute(images, target=(predicted + 1) % 3, n_iter=4), cam.attribute(images, n_iter=4)
    )


# ---- early stops, on synthetic losses -------------------------------------------------------


def _straight_through_round(value: Tensor) -> Tensor:
    return value + (torch.round(value) - value).detach()


def test_paper_early_stop_freezes_each_example_on_its_own() -> None:
    calls = []

    def loss_fn(u: Tensor) -> Tensor:
        calls.append(1)
        # Example 0: its value never changes (rounded) but its gradient is non-zero.
        flat = _straight_through_round(1e-3 * u[0].sum())
        moving = ((u[1] - torch.tensor([2.0, -1.0])) ** 2).sum()
        return torch.stack([flat, moving])

    start = torch.full((2, 2), 0.5)
    result = optimise_u(loss_fn, start, n_iter=20, lr=0.1, early_stop="paper")
    one_step = optimise_u(loss_fn, start, n_iter=1, lr=0.1, early_stop=None)
    second_alone = optimise_u(
        lambda u: ((u - torch.tensor([2.0, -1.0])) ** 2).sum(1),
        start[1:],
        n_iter=20,
        lr=0.1,
        early_stop="paper",
    )
    torch.testing.assert_close(result[0], one_step[0])  # frozen at step 1: loss unchanged
    torch.testing.assert_close(result[1:], second_alone)
    assert not torch.allclose(optimise_u(loss_fn, start, 20, 0.1, None)[0], result[0])

    def all_flat(u: Tensor) -> Tensor:
        calls.append(1)
        return _straight_through_round(1e-3 * u.sum(1))

    calls.clear()
    optimise_u(all_flat, start, 20, 0.1)
    assert len(calls) == 2  # step 1 sees no change for any example and ends the loop


def _reference_official_loop(loss_fn, u: Tensor, max_iter: int, lr: float) -> tuple[Tensor, int]:
    """The reference code's loop, written out: check every max_iter // 10 steps from step 0."""
    u = u.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([u], lr=lr)
    prev = 1e10
    for i in range(max_iter):
        loss = loss_fn(u).sum()
        if i % (max_iter // 10) == 0:
            if loss.item() > prev:
                return u.detach(), i
            prev = loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return u.detach(), max_iter


def test_official_early_stop_follows_the_reference_loop() -> None:
    def loss_fn(
        u: Tensor,
    ) -> Tensor:  # Adam at lr 0.3 overshoots the minimum at 0 and the loss rises
        return (u**2).sum(1)

    start = torch.tensor([[0.5, -0.2], [1.0, 0.3]])
    expected, stopped_at = _reference_official_loop(loss_fn, start, 40, 0.3)
    assert 0 < stopped_at < 40
    torch.testing.assert_close(optimise_u(loss_fn, start, 40, 0.3, "official"), expected)
    full, _ = _reference_official_loop(lambda u: -u.sum(1), start, 40, 0.3)  # never rises
    torch.testing.assert_close(optimise_u(lambda u: -u.sum(1), start, 40, 0.3, "official"), full)


# ---- the model and its inputs ----------------------------------------------------------------


def test_leaves_the_model_untouched(tiny: TinyNet) -> None:
    tiny.head[0].weight.requires_grad_(False)  # mixed flags must come back as they were
    tiny.head[2].train()
    before = model_snapshot(tiny)
    cam = OptiCAM(tiny, tiny.features)
    for objective in OBJECTIVES:
        cam.attribute(_images(), objective=objective, n_iter=2)
    with torch.no_grad():
        cam.attribute(_images(), n_iter=2)
    cam.attribute(_images(), preset="fast", n_iter=2)  # its Grad-CAM backward writes no .grad
    assert_untouched(before, tiny)

    def failing(x: Tensor) -> Tensor:
        if failing.calls == 2:
            raise RuntimeError("boom")
        failing.calls += 1
        return x

    failing.calls = 0
    with pytest.raises(RuntimeError, match="boom"):
        cam.attribute(_images(), n_iter=5, preprocess=failing)
    assert_untouched(before, tiny)


@pytest.mark.parametrize("objective", ["mask", "iomask"])
def test_preprocess_is_applied_once_per_forward(tiny: TinyNet, objective: str) -> None:
    mean, std = torch.tensor([0.4, 0.5, 0.6]).double(), torch.tensor([0.2, 0.3, 0.25]).double()
    calls: list[int] = []

    def preprocess(x: Tensor) -> Tensor:
        calls.append(x.shape[0])
        # OptiCAM never flips the model's flags (gradients are taken w.r.t. u alone).
        assert all(p.requires_grad for p in tiny.parameters())
        return (x - mean[:, None, None]) / std[:, None, None]

    with_first_layer = nn.Sequential()
    with_first_layer.add_module("pre", _Lambda(preprocess))
    with_first_layer.add_module("net", tiny)
    images = _images(3)
    cam = OptiCAM(tiny, tiny.features)
    attr = cam.attribute(
        images, objective=objective, n_iter=5, early_stop=None, preprocess=preprocess
    )
    copies = 2 if objective == "iomask" else 1
    assert calls == [3] + [3 * copies] * 5  # A's forward, then one per iteration
    expected = OptiCAM(with_first_layer, tiny.features).attribute(
        images, objective=objective, n_iter=5, early_stop=None
    )
    torch.testing.assert_close(attr, expected, rtol=0, atol=0)
    assert all(p.grad is None for p in tiny.parameters())


class _Lambda(nn.Module):
    def __init__(self, function) -> None:
        super().__init__()
        self.function = function

    def forward(self, x: Tensor) -> Tensor:
        return self.function(x)


class _Scaled(nn.Module):
    """``net(x) * scale[:, None]``: a per-example extra argument."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor, scale: Tensor, offset: float) -> Tensor:
        return self.net(x) * scale[:, None] + offset


@pytest.mark.parametrize("objective", ["diff", "iomask"])
def test_additional_forward_args_follow_the_batch(tiny: TinyNet, objective: str) -> None:
    images, scale = _images(2), torch.tensor([2.0, 0.5], dtype=torch.float64)
    scaled = _Scaled(tiny)
    attr = OptiCAM(scaled, tiny.features).attribute(
        images, additional_forward_args=(scale, 1.0), objective=objective, n_iter=4
    )
    for b in range(2):
        fixed = nn.Sequential(tiny, _Lambda(lambda y, s=scale[b]: y * s + 1.0))
        alone = OptiCAM(fixed, tiny.features).attribute(
            images[b : b + 1], objective=objective, n_iter=4
        )
        torch.testing.assert_close(attr[b : b + 1], alone, rtol=1e-9, atol=1e-12)


def test_vision_transformer_through_reshape_transform() -> None:
    torch.manual_seed(0)
    vit = vit_b_16(weights=None, image_size=32).eval()
    nn.init.normal_(vit.heads.head.weight, std=0.02)  # torchvision zero-initialises the head
    images = torch.rand(2, 3, 32, 32)
    layer = vit.encoder.layers[-1].ln_1
    cam = OptiCAM(vit, layer, reshape_transform=vit_reshape_transform)
    captured = []
    handle = layer.register_forward_hook(lambda m, i, o: captured.append(o.detach()))
    try:
        start = cam.attribute(images, n_iter=0)
    finally:
        handle.remove()
    torch.testing.assert_close(start, vit_reshape_transform(captured[0]).mean(1, keepdim=True))
    attr, weights = cam.attribute(images, n_iter=2, early_stop=None, return_weights=True)
    assert attr.shape == (2, 1, 2, 2) and weights.shape == (2, 768)
    torch.testing.assert_close(weights.sum(1), torch.ones(2))
    assert not torch.allclose(weights, torch.full_like(weights, 1 / 768))
    assert (start < 0).any()  # LayerNorm outputs stay signed: no ReLU is applied to A


def test_show_progress(tiny: TinyNet, capsys: pytest.CaptureFixture[str]) -> None:
    OptiCAM(tiny, tiny.features).attribute(_images(), n_iter=3, early_stop=None, show_progress=True)
    assert "3/3" in capsys.readouterr().err
    OptiCAM(tiny, tiny.features).attribute(_images(), n_iter=3, early_stop=None)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        ({"objective": "logit"}, ValueError, "objective"),
        ({"normalization": "minmax"}, ValueError, "normalization"),
        ({"early_stop": "always"}, ValueError, "early_stop"),
        ({"n_iter": -1}, ValueError, "n_iter"),
        ({"n_iter": 2.0}, ValueError, "n_iter"),
        ({"n_iter": True}, ValueError, "n_iter"),
        ({"lr": 0}, ValueError, "lr"),
        ({"lr": -0.1}, ValueError, "lr"),
        ({"lr": float("nan")}, ValueError, "lr"),
        ({"preprocess": "imagenet"}, TypeError, "preprocess"),
        ({"target": 7}, ValueError, "target"),
    ],
)
def test_bad_arguments(tiny: TinyNet, kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        OptiCAM(tiny, tiny.features).attribute(_images(), **kwargs)


def test_bad_inputs(tiny: TinyNet) -> None:
    cam = OptiCAM(tiny, tiny.features)
    with pytest.raises(ValueError, match="inputs"):
        cam.attribute(_images()[0, 0])  # no grid axis
    with pytest.raises(ValueError, match="inputs"):
        cam.attribute((_images(), _images()))
    single = cam.attribute((_images(),), n_iter=1)
    torch.testing.assert_close(single, cam.attribute(_images(), n_iter=1))


# ---- presets -------------------------------------------------------------------------------

# softmax(u*) of the paper's search on the tiny net, recorded before presets existed.
PAPER_WEIGHTS = [
    [3.57379528639456656e-01, 4.53224853553899944e-03, 8.41774108695870493e-02, 5.53910811955417359e-01],
    [3.08442962662350316e-03, 5.72787592199663353e-01, 4.16996681909118705e-01, 7.13129626459449266e-03],
    [1.07570971073878011e-03, 9.65914127173036929e-01, 6.98858484665331207e-04, 3.23113046315590194e-02],
]  # fmt: skip


def test_paper_preset_gives_the_numbers_of_before(tiny: TinyNet) -> None:
    cam, images = OptiCAM(tiny, tiny.features), _images(3, seed=4)
    default = cam.attribute(images, target=[0, 2, 1], return_weights=True)[1]
    paper = cam.attribute(images, target=[0, 2, 1], preset="paper", return_weights=True)[1]
    expected = torch.tensor(PAPER_WEIGHTS, dtype=torch.float64)
    torch.testing.assert_close(default, expected, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(paper, default, rtol=0, atol=0)


def _grad_cam_alpha(model: TinyNet, images: Tensor, targets: Tensor) -> Tensor:
    activations = model.features(images).detach().requires_grad_(True)
    logits = model.head(activations)
    (grads,) = torch.autograd.grad(logits[torch.arange(len(targets)), targets].sum(), activations)
    return grads.mean(dim=(2, 3))


def test_fast_preset_starts_from_the_grad_cam_weights(tiny: TinyNet) -> None:
    images, targets = _images(3, seed=4), torch.tensor([0, 2, 1])
    weights = OptiCAM(tiny, tiny.features).attribute(
        images, target=targets, preset="fast", n_iter=0, return_weights=True
    )[1]
    alpha = _grad_cam_alpha(tiny, images, targets)
    z = (alpha - alpha.mean(1, keepdim=True)) / alpha.std(1, unbiased=False, keepdim=True)
    torch.testing.assert_close(weights, torch.softmax(z, dim=1))  # GRAD_CAM_SCALE = 1
    # A constant alpha has no order to keep: the paper's flat start.
    assert grad_cam_start(torch.full((2, 5), 3.0)).abs().max() == 0
    torch.testing.assert_close(
        grad_cam_start(torch.tensor([[0.0, 2.0]]), 3.0), torch.tensor([[-3.0, 3.0]])
    )


def test_fast_preset_returns_each_examples_best_iterate(tiny: TinyNet) -> None:
    images, targets = _images(4, seed=2), torch.tensor([0, 1, 2, 0])
    cam = OptiCAM(tiny, tiny.features)
    weights = cam.attribute(images, target=targets, preset="fast", return_weights=True)[1]
    loss_fn = _loss_fn(tiny, images, "mask", "range")
    loss_fn = OptiCAMLoss(
        tiny, images, loss_fn.activations, targets,
        tiny(images).detach()[torch.arange(4), targets],
    )  # fmt: skip
    start = grad_cam_start(_grad_cam_alpha(tiny, images, targets))
    seen = []
    recording = lambda u: seen.append(loss_fn(u).detach()) or loss_fn(u)  # noqa: E731
    optimise_u(recording, start, 18, 1.0, None, schedule="cosine")
    best = torch.stack(seen).min(dim=0).values
    torch.testing.assert_close(loss_fn(weights.log()).detach(), best)
    assert bool((best <= seen[0]).all()) and bool((best < seen[-1]).any())


def test_cosine_schedule() -> None:
    assert cosine_lr(2.0, 0, 10) == 2.0
    assert cosine_lr(2.0, 5, 10) == pytest.approx(1.0)
    assert cosine_lr(2.0, 9, 10) == pytest.approx(1.0 + np.cos(0.9 * np.pi))
    # Adam's first step moves every coordinate by lr; the cosine sets the second step's size.
    loss = lambda u: (u * torch.tensor([1.0, -1.0])).sum(1)  # noqa: E731
    start = torch.zeros(1, 2)
    one = optimise_u(loss, start, 1, 0.5, None, schedule="cosine")
    two = optimise_u(loss, start, 2, 0.5, None, schedule="cosine")
    torch.testing.assert_close(one, torch.tensor([[-0.5, 0.5]]))
    torch.testing.assert_close(two, torch.tensor([[-0.75, 0.75]]))  # 0.5 + cosine_lr(0.5, 1, 2)


def test_explicit_keywords_override_the_preset() -> None:
    assert resolve_recipe("paper") == PRESETS["paper"]
    assert PRESETS["paper"].n_iter == 100 and PRESETS["paper"].lr == 0.1
    assert PRESETS["paper"].early_stop == "paper" and PRESETS["paper"].init == "constant"
    custom = resolve_recipe("fast", n_iter=7, lr=0.2, early_stop="paper", init="constant")
    assert (custom.n_iter, custom.lr, custom.early_stop, custom.init) == (
        7,
        0.2,
        "paper",
        "constant",
    )
    assert (custom.schedule, custom.keep_best) == ("cosine", True)  # the preset's own
    assert resolve_recipe("fast", early_stop=None).early_stop is None
    assert resolve_recipe("paper", early_stop=None).early_stop is None


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"preset": "slow"}, "preset"),
        ({"preset": None}, "preset"),
        ({"init": "zero"}, "init"),
        ({"preset": "fast", "lr": 0}, "lr"),
    ],
)
def test_bad_presets(tiny: TinyNet, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OptiCAM(tiny, tiny.features).attribute(_images(), **kwargs)
