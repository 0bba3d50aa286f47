"""active_channels (CASE eq. 10) on a model whose layer activations are set by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from captum_contrast.methods.analysis import active_channels


class SumHead(nn.Module):
    """``layer`` is the identity on the input; logits are sums of channel means per class."""

    def __init__(self, num_outputs: int = 2) -> None:
        super().__init__()
        self.layer = nn.Identity()
        self.dropout = nn.Dropout(0.5)  # would randomise logits if eval mode were not used
        # Class 0 reads channels 0 and 1, class 1 channels 2 and 3; class 2 (if any) nothing.
        weight = torch.zeros(num_outputs, 4)
        weight[0, :2] = 1
        weight[1, 2:] = 1
        self.head = nn.Linear(4, num_outputs, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.layer(x).mean((2, 3))))


def _example(channel_means: list[float]) -> torch.Tensor:
    # Each channel's 2x2 map puts all its mass on one pixel, so spatial pooling matters:
    # a per-pixel maximum would see 4x the mean.
    maps = torch.zeros(4, 2, 2)
    for channel, mean in enumerate(channel_means):
        maps[channel, channel % 2, (channel // 2) % 2] = 4 * mean
    return maps


# Channel means, label, and (predicted, active count with tau = 1e-3):
EXAMPLES = [
    ([1.0, 0.5, 0.0, 0.0], 0),  # logits (1.5, 0): correct, 2 active
    ([2.0, 0.0, 0.0, 0.0005], 0),  # correct, 1 active (0.0005 < tau)
    ([0.0, 0.0, 1.0, 0.0], 0),  # predicted 1: wrong, excluded
    ([0.2, 0.0, 1.0, 1.0], 1),  # logits (0.2, 2): correct, 3 active
    ([0.0009, 0.0, 0.5, -0.3], 1),  # logits (0.0009, 0.2): correct, 1 active
]


def _loader(batch_size: int = 2) -> DataLoader:
    inputs = torch.stack([_example(means) for means, _ in EXAMPLES])
    labels = torch.tensor([label for _, label in EXAMPLES])
    return DataLoader(TensorDataset(inputs, labels), batch_size=batch_size)


def test_counts_by_hand() -> None:
    model = SumHead()
    result = active_channels(model, model.layer, _loader())
    assert result.dtype == torch.float64
    assert result.tolist() == [1.5, 2.0]  # class 0: (2 + 1) / 2; class 1: (3 + 1) / 2
    # tau = 0.5 (strict: a mean of exactly 0.5 is inactive): class 0 counts (1, 1), class 1
    # counts (2, 0); one batch of all five gives the same as batches of two.
    assert active_channels(model, model.layer, _loader(5), tau=0.5).tolist() == [1.0, 1.0]


def test_classes_without_correct_predictions_are_nan() -> None:
    model = SumHead()
    result = active_channels(model, model.layer, _loader(), num_classes=3)
    assert result[:2].tolist() == [1.5, 2.0] and math.isnan(result[2])


def test_model_left_untouched() -> None:
    model = SumHead()
    model.train()
    model.head.eval()  # a mixed state must come back exactly
    before = {name: module.training for name, module in model.named_modules()}
    with pytest.warns(UserWarning, match="explained in eval mode"):
        active_channels(model, model.layer, _loader())
    assert {name: module.training for name, module in model.named_modules()} == before
    assert not model.layer._forward_hooks
    assert all(p.grad is None for p in model.parameters())


def test_threads_sharing_the_model_get_their_own_counts() -> None:
    # Each call's hook records only its own thread's forwards: the counts of concurrent
    # calls on one model equal the sequential ones.
    import threading

    model = SumHead().eval()
    expected = {tau: active_channels(model, model.layer, _loader(), tau=tau) for tau in (1e-3, 0.5)}
    results: dict[tuple[float, int], torch.Tensor] = {}

    def run(tau: float, index: int) -> None:
        for repeat in range(20):
            results[(tau, index * 20 + repeat)] = active_channels(
                model, model.layer, _loader(1), tau=tau
            )

    threads = [threading.Thread(target=run, args=(tau, i)) for i, tau in enumerate((1e-3, 0.5) * 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 80
    for (tau, _), counts in results.items():
        assert counts.tolist() == expected[tau].tolist()
    assert not model.layer._forward_hooks


def test_hook_removed_on_error() -> None:
    model = SumHead()
    bad = DataLoader(TensorDataset(torch.zeros(2, 4, 2, 2), torch.tensor([0, 5])), batch_size=2)
    with pytest.raises(ValueError, match="labels"):
        active_channels(model, model.layer, bad)
    assert not model.layer._forward_hooks and model.training


def test_errors() -> None:
    model = SumHead()
    with pytest.raises(ValueError, match="submodule"):
        active_channels(model, nn.Identity(), _loader())
    with pytest.raises(ValueError, match="tau"):
        active_channels(model, model.layer, _loader(), tau=float("nan"))
    with pytest.raises(ValueError, match="no batches"):
        active_channels(model, model.layer, [])
    with pytest.raises(ValueError, match="inputs, labels"):
        active_channels(model, model.layer, [torch.zeros(1, 4, 2, 2)])
