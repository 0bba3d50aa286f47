"""PresenceScores on arbitrary sequences: the definition, checked against a plain loop."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from captum_contrast.scores import PresenceScores

finite = st.floats(-30, 30, allow_nan=False, width=32)
special = st.sampled_from([math.nan, math.inf, -math.inf])


@st.composite
def sequences(draw):
    """(B, T, V) float32 logits, some entries NaN or +-inf."""
    b, t, v = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(2, 4))
    values = draw(st.lists(st.one_of(finite, finite, finite, special), min_size=b * t * v,
                           max_size=b * t * v))  # fmt: skip
    return torch.tensor(values, dtype=torch.float32).reshape(b, t, v)


def _by_loop(sequence: torch.Tensor) -> torch.Tensor:
    """Each symbol's logit at the step where its softmax probability is highest (the first
    on ties, padded all -inf steps skipped); NaN for an example holding NaN or +inf."""
    b, t, v = sequence.shape
    out = torch.empty(b, v)
    for i in range(b):
        if sequence[i].isnan().any() or (sequence[i] == math.inf).any():
            out[i] = math.nan
            continue
        chances = sequence[i].softmax(dim=1)
        for symbol in range(v):
            best, best_step = -1.0, 0
            for step in range(t):
                p = float(chances[step, symbol])
                if not math.isnan(p) and p > best:
                    best, best_step = p, step
            out[i, symbol] = sequence[i, best_step, symbol]
    return out


@settings(max_examples=150, deadline=None)
@given(sequences())
def test_presence_is_the_logit_at_the_most_probable_step(sequence) -> None:
    expected = _by_loop(sequence)
    torch.testing.assert_close(PresenceScores()(sequence), expected, equal_nan=True)
    # Time-first input gives the same reading.
    time_first = PresenceScores(time_axis=0)(sequence.transpose(0, 1).contiguous())
    torch.testing.assert_close(time_first, expected, equal_nan=True)
