"""Three analyses beside the head-to-head (``contrastive.py``), on the same networks and data.

1. **CASE's projection cosine.** ``cos(gamma_top1, gamma_top2)`` per image
   (``ContrastGradCAM.cosine``): where it is negative the paper's projection (``"full"``) adds
   the other class's evidence and ``"shared"`` is Grad-CAM. The top-5% agreement of the top-1
   and top-2 maps of Grad-CAM, CASE full and CASE shared (each class against the other), split
   by the sign of the cosine, with the one-sided paired Wilcoxon "agrees more than Grad-CAM".
2. **The binary networks** (face / non-face, text direction): Difference Salience ``t - f``
   against the Grad-CAM of each class: the identity ``t - f = GradCAM_t - GradCAM_f``, the
   correlation of ``t`` and ``f`` (``-1``: mirror images, so ``t - f = 2t``), what CASE's
   projection leaves, and AD / AG / AI of ``t``, ``f`` and ``t - f``.
3. **The package's metrics against torchcam's** ``ClassificationMetric`` and
   ``DeletionInsertionMetric`` on the very same maps, on the softmax networks.

Every map comes from the package's registry (``explain_func``). Run
``python benchmarks/analyses.py [--images N]`` (``--quick``: 8 images, nothing written); it
writes ``benchmarks/results/analyses.md``.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from contextlib import nullcontext
from functools import partial
from pathlib import Path

import numpy as np
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Network, digit_networks, pretrained_networks, with_ci, write_result  # noqa: E402

from captum_contrast import ContrastGradCAM, normalize  # noqa: E402
from captum_contrast.app.registry import explain_func  # noqa: E402
from captum_contrast.metrics import (  # noqa: E402
    AverageDrop,
    AverageIncrease,
    Deletion,
    Insertion,
    masking_scores,
    top_k_agreement,
)

CURVE_STEPS = 20  # torchcam's default number of insertion / deletion steps


def maps(network: Network, name: str, targets: np.ndarray, **kwargs: object) -> np.ndarray:
    """Input-resolution maps of registry method ``name`` (Captum's Grad-CAM without extras)."""
    extras = {} if name == "grad-cam" else network.init_kwargs
    explain = explain_func(name, network.model, network.layer, init_kwargs=extras)
    return explain(network.model, network.images, targets, **kwargs)


def top2(network: Network) -> tuple[np.ndarray, np.ndarray]:
    order = network.logits().argsort(dim=1, descending=True).numpy()
    return order[:, 0], order[:, 1]


def paired_above(values: np.ndarray, reference: np.ndarray) -> float:
    """One-sided Wilcoxon p for "``values`` agree more than ``reference``" (paired, NaN out)."""
    difference = values - reference
    difference = difference[np.isfinite(difference) & (difference != 0)]
    if difference.size == 0:
        return float("nan")  # identical on every image: nothing to test
    return float(stats.wilcoxon(difference, alternative="greater").pvalue)


def median(values: np.ndarray) -> str:
    finite = values[np.isfinite(values)]
    return f"{np.median(finite):.1f}" if finite.size else "n/a"


# --- 1. CASE's projection cosine ------------------------------------------------------------


def projection(network: Network) -> list[str]:
    c, d = top2(network)
    cam = ContrastGradCAM(network.model, network.layer_module, **network.init_kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # undefined angles are counted
        cosine = cam.cosine(network.images, target=torch.as_tensor(c), contrast=d[:, None])
    cosine = cosine.detach().numpy()
    rows = {
        "Grad-CAM": ("grad-cam", {}),
        "CASE full": ("contrast-grad-cam", {"projection": "full"}),
        "CASE shared": ("contrast-grad-cam", {"projection": "shared"}),
    }
    agreement = {}
    for label, (name, kwargs) in rows.items():
        first = maps(network, name, c, **({"contrast": d[:, None]} if kwargs else {}), **kwargs)
        second = maps(network, name, d, **({"contrast": c[:, None]} if kwargs else {}), **kwargs)
        agreement[label] = top_k_agreement(first, second, 5.0)
    q1, mid, q3 = np.nanpercentile(cosine, [25, 50, 75])
    lines = [
        f"**{network.name}** ({len(c)} images): cos(γ_top1, γ_top2) median {mid:+.2f}, "
        f"quartiles [{q1:+.2f}, {q3:+.2f}], negative on {np.mean(cosine < 0):.0%} of images "
        f'(there "shared" is Grad-CAM); undefined on {int(np.isnan(cosine).sum())}.',
        "",
        "| map | median agreement % [95% CI] | where c < 0 | where c >= 0 | p, agrees more "
        "than Grad-CAM | p, agrees less |",
        "|---|---|---:|---:|---:|---:|",
    ]
    base = agreement["Grad-CAM"]
    for label, values in agreement.items():
        more, less = (
            ("", "")
            if label == "Grad-CAM"
            else (f"{paired_above(values, base):.2g}", f"{paired_above(base, values):.2g}")
        )
        lines.append(
            f"| {label} | {with_ci(values)} | {median(values[cosine < 0])} | "
            f"{median(values[cosine >= 0])} | {more} | {less} |"
        )
    return [*lines, ""]


# --- 2. The binary networks -----------------------------------------------------------------


def binary(network: Network) -> list[str]:
    c, _ = top2(network)
    f = 1 - c
    true_map = maps(network, "grad-cam", c, relu_attributions=False)
    false_map = maps(network, "grad-cam", f, relu_attributions=False)
    difference = maps(network, "difference-salience", c)  # the runner-up: the other class
    case = maps(network, "contrast-grad-cam", c, relu_attributions=False)
    identity = float(np.abs(difference - (true_map - false_map)).max())
    with np.errstate(all="ignore"):
        r = np.array(
            [
                np.corrcoef(t.ravel(), u.ravel())[0, 1]
                for t, u in zip(true_map, false_map, strict=True)
            ]
        )
    norm = np.linalg.norm(case.reshape(len(c), -1), axis=1) / np.linalg.norm(
        true_map.reshape(len(c), -1), axis=1
    )
    relu = partial(np.maximum, 0.0)
    x = network.images.numpy()
    lines = [
        f"**{network.name}** ({len(c)} images, each explained for its predicted class t):",
        "",
        f"- max |DifferenceSalience - (GradCAM_t - GradCAM_f)| before ReLU: {identity:.2g}.",
        f"- Pearson r of the signed maps t and f: median {np.nanmedian(r):+.3f} [quartiles "
        f"{np.nanpercentile(r, 25):+.3f}, {np.nanpercentile(r, 75):+.3f}] (-1: f mirrors t).",
        f"- CASE (k=1) over Grad-CAM, norm of the signed maps: median {np.nanmedian(norm):.2g}.",
        f"- Top-5% agreement: ReLU(t) vs ReLU(f) {median(top_k_agreement(relu(true_map), relu(false_map), 5.0))}%"
        f", ReLU(t - f) vs ReLU(t) {median(top_k_agreement(relu(difference), relu(true_map), 5.0))}%.",
        "",
        "| map (scored for t) | AD ↓ | AG ↑ | AI ↑ |",
        "|---|---:|---:|---:|",
    ]
    for label, m, y in (
        ("Grad-CAM of t", true_map, c),
        ("Grad-CAM of f (control)", false_map, c),
        ("Difference Salience t - f", difference, c),
    ):
        s = masking_scores(network.model, x, y, relu(m))
        lines.append(
            f"| {label} | {np.nanmean(s['AD']):.1f} | {np.nanmean(s['AG']):.1f} | "
            f"{np.nanmean(s['AI']):.1f} |"
        )
    return [*lines, ""]


# --- 3. torchcam cross-check ----------------------------------------------------------------


class FixedMaps:
    """A torchcam extractor that hands out precomputed maps: both libraries score the same."""

    def __init__(self, model: torch.nn.Module, maps: np.ndarray) -> None:
        self.model, self.maps = model, torch.as_tensor(maps[:, 0])

    def __call__(self, class_idx=None, scores=None, normalized=True, **kwargs):
        return [self.maps]

    def fuse_cams(self, cams):
        return cams[0]

    def _hooks_off(self):
        return nullcontext()


def torchcam_rows(network: Network, label: str, found: np.ndarray) -> list[str]:
    from torchcam.metrics import ClassificationMetric, DeletionInsertionMetric

    model, x = network.model, network.images
    y, _ = top2(network)
    unit = normalize(torch.as_tensor(found), "range").numpy()  # what torchcam's maps are
    softmax = partial(torch.softmax, dim=-1)
    theirs = ClassificationMetric(FixedMaps(model, unit), softmax)
    theirs.update(x, class_idx=[int(t) for t in y])
    curves = DeletionInsertionMetric(FixedMaps(model, unit), softmax, steps=CURVE_STEPS)
    curves.update(x, class_idx=[int(t) for t in y])
    theirs = theirs.summary() | curves.summary()
    step = math.ceil(x.shape[-1] * x.shape[-2] / CURVE_STEPS)
    kwargs = {"model": model, "x_batch": x.numpy(), "y_batch": y, "a_batch": unit}
    ours = {
        "AD": AverageDrop()(**kwargs),
        "AI": AverageIncrease()(**kwargs),
        "Deletion": Deletion(step=step, substrate=0.0)(**kwargs),
        "Insertion": Insertion(step=step, substrate=0.0)(**kwargs),
    }
    # torchcam's softmax is float32: a float64 gain below its resolution is no gain there.
    with torch.no_grad():
        p32, o32 = (
            torch.softmax(model(z), 1)[torch.arange(len(y)), y]
            for z in (x, x * torch.as_tensor(unit))
        )
        p64, o64 = (
            torch.softmax(model(z).double(), 1)[torch.arange(len(y)), y]
            for z in (x, x * torch.as_tensor(unit))
        )
    ties = int(((p64 < o64) & ~(p32 < o32)).sum())
    keys = {
        "AD": "avg_drop",
        "AI": "conf_increase",
        "Deletion": "deletion_auc",
        "Insertion": "insertion_auc",
    }
    rows = []
    for metric, key in keys.items():
        our, their = float(np.mean(ours[metric])), 100 * float(theirs[key])
        tolerance = 100 * ties / len(y) + 1e-9 if metric == "AI" else 0.01
        within = "yes" if abs(our - their) <= tolerance else "NO"
        rows.append(
            f"| {network.name} | {label} | {metric} | {our:.4f} | {their:.4f} | "
            f"{our - their:+.4f} | {tolerance:.3g} | {within} |"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 images, nothing written")
    parser.add_argument("--images", type=int, default=100)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    warnings.filterwarnings("ignore", category=UserWarning)
    n = 8 if args.quick else args.images
    networks = digit_networks(n) + pretrained_networks(n)
    projection_lines, binary_lines, cross = [], [], []
    for network in networks:
        print(network.name, flush=True)
        projection_lines += projection(network)
        classes = network.logits()[:1].shape[1]
        if classes == 2:
            binary_lines += binary(network)
        if "sigmoid" not in network.name:  # torchcam reads scores through a softmax
            y, _ = top2(network)
            for label, name, kwargs in (
                ("Grad-CAM", "grad-cam", {}),
                ("CASE (k=1)", "contrast-grad-cam", {}),
                ("OptiCAM (10 it.)", "opti-cam", {"n_iter": 10}),
            ):
                cross += torchcam_rows(network, label, maps(network, name, y, **kwargs))
    text = "\n".join(
        [
            "# Analyses beside the head-to-head",
            "",
            f"Generated by `python benchmarks/analyses.py` on 2 CPU cores shared with other "
            f"jobs; up to {n} images per network, as each section says (the networks and data of `contrastive.md`, "
            "`benchmarks/_common.py`). Maps are bilinear at the input; agreement is the share "
            "(%) of the top-5% pixels two maps have in common, lower is more class-sensitive; "
            "medians with 95% bootstrap intervals.",
            "",
            "## 1. CASE's projection: full (the paper) vs shared (max(c, 0))",
            "",
            *projection_lines,
            "## 2. The binary networks: Difference Salience against each class's Grad-CAM",
            "",
            *binary_lines,
            "## 3. The package's metrics against torchcam 0.5 on the same maps",
            "",
            "Same input-resolution maps, range-normalised; 20 steps and a zero baseline "
            "(`Deletion`/`Insertion` with `step=ceil(HW/20)`, `substrate=0`). torchcam computes "
            "the softmax in float32 and adds 1e-7 to AD's denominator (the package: float64); "
            "AI's tolerance is the share of images whose float64 gain is no gain in float32. A "
            "`nan` with `NO`: the package scores a constant map NaN by design, torchcam ranks it "
            "by pixel index.",
            "",
            "| network | maps | metric | package | torchcam | difference | tolerance | within |",
            "|---|---|---|---:|---:|---:|---:|---|",
            *cross,
        ]
    )
    print(text)
    if not args.quick:
        print(write_result("analyses", text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
