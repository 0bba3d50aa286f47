"""Head-to-head of every contrastive map on real networks: class sensitivity against fidelity.

Rows: Grad-CAM, CASE (full and shared), Finer-CAM (gamma 0.6 and 1.0), Difference Salience
(target minus runner-up), OptiCAM, pytorch-grad-cam's ScoreCAM, Fake-CAM and a random map.
Each map explains the network's top-1 class ``c``; its contrast is the top-2 class ``d``.

Columns (per network, medians or means with 95% bootstrap intervals):

- **class sensitivity**: top-5% agreement of the maps of ``c`` and of ``d`` (lower is more
  class-sensitive), Wilcoxon signed-rank p against Grad-CAM's agreements on the same images.
  Gameable: a map of ``y_c - y_d`` and one of ``y_d - y_c`` are exact negatives, so after a
  ReLU they never overlap; Difference reaches 0 by construction.
- **contrastive fidelity** (cannot be won by sign alone): keep only the map's top 20% pixels
  (the rest multiplied by 0, as the masking metrics do) and read ``q = sigmoid(y_c - y_d)``,
  the model's preference for ``c`` over ``d`` (``p_c / (p_c + p_d)`` on a softmax); then
  remove those pixels instead. The column is ``q(keep) - q(remove)`` averaged over images:
  positive when the map's top evidence is what makes the model prefer ``c`` to ``d``. A map
  that only flips signs gains nothing here, and the random and Fake maps show the floor.
  Ties (Fake-CAM is flat) are broken by seeded noise.
- **AD / AG / AI, insertion / deletion** of the top-1 class (the package's metrics).
- **MPRT** (Quantus, Spearman correlation of the map before and after re-drawing every
  layer's weights, lower is better; a map that ignores the weights scores 1) and **eMPRT**
  (relative entropy rise, higher is better; 0 when the map ignores the weights), on the first
  8 images.
- **time** to explain the images, relative to Grad-CAM's.

Run ``python benchmarks/contrastive.py`` (``--quick``: 4 images, one network, 3 maps, nothing
written);
it writes ``benchmarks/results/contrastive.md`` and ``contrastive.png``.
The report ends with the multi-label row, MinMax-CAM on the characters of real text lines,
read from ``ocr_minmax.py``'s results.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    RESULTS,
    Network,
    digit_networks,
    pgc_explainer,
    pretrained_networks,
    timed,
    with_ci,
    write_result,
)
from ocr_minmax import summary as ocr_minmax_summary  # noqa: E402

from captum_contrast.app.registry import explain_func  # noqa: E402
from captum_contrast.metrics import (  # noqa: E402
    AverageDrop,
    AverageGain,
    AverageIncrease,
    Deletion,
    Insertion,
    randomisation_scores,
    top_k_agreement,
)

KEEP = 0.2  # share of pixels kept (or removed) by the contrastive fidelity
MPRT_IMAGES = 8
QUICK_ROWS = ("Grad-CAM", "Finer-CAM (gamma 0.6)", "random map")
CURVE_STEPS = 20


def rows(network: Network, opti_iters: int) -> dict[str, Callable[[], Callable]]:
    """Row label -> a builder of its explain_func; every method comes from the registry."""
    model, layer = network.model, network.layer

    def ours(name: str, **kwargs: object) -> Callable:
        return explain_func(name, model, layer, init_kwargs=network.init_kwargs, **kwargs)

    return {
        # Captum's Grad-CAM and pytorch-grad-cam read dim 1 as channels, which holds on every
        # network here; they take no reshape_transform.
        "Grad-CAM": lambda: explain_func("grad-cam", model, layer),
        "CASE full": lambda: ours("contrast-grad-cam"),
        "CASE shared": lambda: ours("contrast-grad-cam", projection="shared"),
        "Finer-CAM (gamma 0.6)": lambda: ours("finer-cam"),
        "Finer-CAM (gamma 1.0)": lambda: ours("finer-cam", gamma=1.0),
        "Difference (c - runner-up)": lambda: ours("difference-salience"),
        f"OptiCAM ({opti_iters} it.)": lambda: ours("opti-cam", n_iter=opti_iters),
        "ScoreCAM (pytorch-grad-cam)": lambda: pgc_explainer("ScoreCAM", layer),
        "Fake-CAM": lambda: explain_func("fake-cam", model, layer),
        "random map": lambda: explain_func("random-cam", model, layer),
    }


def keep_masks(maps: np.ndarray, share: float, seed: int = 0) -> np.ndarray:
    """``(B, 1, H, W)`` 0/1 masks of each map's top ``share`` pixels, ties broken at random."""
    flat = np.nan_to_num(maps.reshape(len(maps), -1).astype(np.float64))
    jitter = np.random.default_rng(seed).random(flat.shape)
    order = np.lexsort((jitter, -flat), axis=-1)
    count = max(1, int(round(share * flat.shape[1])))
    masks = np.zeros_like(flat, dtype=np.float32)
    np.put_along_axis(masks, order[:, :count], 1.0, axis=1)
    return masks.reshape(maps.shape)


def preference(network: Network, images: torch.Tensor, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    logits = network.logits(images).double()
    rows_ = torch.arange(len(c))
    return torch.sigmoid(logits[rows_, c] - logits[rows_, d]).numpy()


def contrastive_fidelity(
    network: Network, maps: np.ndarray, c: np.ndarray, d: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per image ``q(keep top 20%)`` and ``q(remove top 20%)``, ``q = sigmoid(y_c - y_d)``."""
    masks = torch.as_tensor(keep_masks(maps, KEEP))
    images = network.images
    return (
        preference(network, images * masks, c, d),
        preference(network, images * (1 - masks), c, d),
    )


def fidelity(network: Network, maps: np.ndarray, c: np.ndarray) -> dict[str, np.ndarray]:
    x = network.images.numpy()
    step = int(np.ceil(x.shape[-1] * x.shape[-2] / CURVE_STEPS))
    metrics = {
        "AD": AverageDrop(),
        "AG": AverageGain(),
        "AI": AverageIncrease(),
        "Ins": Insertion(step=step),
        "Del": Deletion(step=step),
    }
    kwargs = {"model": network.model, "x_batch": x, "y_batch": c, "a_batch": maps}
    return {name: np.asarray(metric(**kwargs, batch_size=256)) for name, metric in metrics.items()}


def measure(network: Network, opti_iters: int, quick: bool) -> dict[str, dict]:
    order = network.logits().argsort(dim=1, descending=True).numpy()
    c, d = order[:, 0], order[:, 1]
    x = network.images
    results: dict[str, dict] = {}
    for label, build in rows(network, opti_iters).items():
        if quick and label not in QUICK_ROWS:
            continue
        explain = build()
        print(f"  {label}", flush=True)
        maps, seconds = timed(lambda explain=explain: explain(network.model, x, c))
        second = explain(network.model, x, d)
        keep, remove = contrastive_fidelity(network, maps, c, d)
        sanity = randomisation_scores(
            network.model, x[:MPRT_IMAGES].numpy(), c[:MPRT_IMAGES], explain
        )
        results[label] = {
            "agreement": top_k_agreement(maps, second, 5.0),
            "keep": keep,
            "remove": remove,
            "seconds": seconds,
            **fidelity(network, maps, c),
            **sanity,
        }
    return results


def paired_p(values: np.ndarray, reference: np.ndarray) -> float:
    both = np.isfinite(values) & np.isfinite(reference)
    if both.sum() < 2 or np.allclose(values[both], reference[both]):
        return float("nan")
    return float(stats.wilcoxon(values[both], reference[both]).pvalue)


COLUMNS = (
    "map",
    "class sens. % ↓ (p vs Grad-CAM)",
    "contrastive fidelity ↑",
    "AD ↓",
    "AG ↑",
    "AI ↑",
    "Ins ↑",
    "Del ↓",
    "MPRT ↓",
    "eMPRT ↑",
    "time",
)


def table(results: dict[str, dict]) -> list[str]:
    base = results["Grad-CAM"]
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for label, r in results.items():
        p = paired_p(r["agreement"], base["agreement"])
        sensitivity = with_ci(r["agreement"]) + ("" if np.isnan(p) else f" (p={p:.2g})")
        cells = [
            label,
            sensitivity,
            with_ci(r["keep"] - r["remove"], 2, np.nanmean),
            f"{np.nanmean(r['AD']):.1f}",
            f"{np.nanmean(r['AG']):.1f}",
            f"{np.nanmean(r['AI']):.1f}",
            f"{np.nanmean(r['Ins']):.1f}",
            f"{np.nanmean(r['Del']):.1f}",
            with_ci(r["mprt"], 2),
            with_ci(r["emprt"], 2),
            f"{r['seconds'] / base['seconds']:.2f}x",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def verdict(name: str, results: dict[str, dict]) -> str:
    """The most class-sensitive map among those faithful to the contrast."""
    floor = max(
        float(np.nanmean(results[b]["keep"] - results[b]["remove"]))
        for b in ("Fake-CAM", "random map")
    )
    grad_cam_cf = float(np.nanmean(results["Grad-CAM"]["keep"] - results["Grad-CAM"]["remove"]))
    faithful = {
        label: r
        for label, r in results.items()
        if label not in ("Fake-CAM", "random map")
        and float(np.nanmean(r["keep"] - r["remove"])) > max(floor, 0.0)
        and float(np.nanmedian(r["mprt"])) < 0.5
    }
    failing = [
        f"{label} ({np.nanmedian(r['mprt']):.2f})"
        for label, r in results.items()
        if label not in ("Fake-CAM", "random map") and not np.nanmedian(r["mprt"]) < 0.5
    ]
    fails = f" Fails MPRT (median >= 0.5): {', '.join(failing)}." if failing else ""
    if not faithful:
        return (
            f"- **{name}**: no map beats the random and Fake maps on contrastive fidelity." + fails
        )
    sensitive = sorted(
        faithful, key=lambda label: float(np.nanmedian(faithful[label]["agreement"]))
    )
    best = sensitive[0]
    cf_best = float(np.nanmean(faithful[best]["keep"] - faithful[best]["remove"]))
    most_faithful = max(
        faithful, key=lambda lb: np.nanmean(faithful[lb]["keep"] - faithful[lb]["remove"])
    )
    return (
        f"- **{name}**: most class-sensitive among the maps that beat the random/Fake floor "
        f"({floor:+.2f}) on contrastive fidelity and pass MPRT (median < 0.5): **{best}** (agreement "
        f"{np.nanmedian(faithful[best]['agreement']):.1f}%, fidelity {cf_best:+.2f} vs "
        f"Grad-CAM's {grad_cam_cf:+.2f}); most faithful to the contrast: {most_faithful}."
        f" Faithful and weight-dependent: {', '.join(sensitive)}.{fails}"
    )


def finer_peer_rows(network: Network) -> list[str]:
    """This package's Finer-CAM (torchcam's definition) against pytorch-grad-cam's FinerCAM."""
    c = network.logits().argmax(1).numpy()
    x = network.images
    theirs = pgc_explainer("FinerCAM", network.layer, alpha=1.0)(network.model, x, c)
    lines = []
    for gamma in (1.0, 0.6):
        ours = explain_func(
            "finer-cam", network.model, network.layer, init_kwargs=network.init_kwargs, gamma=gamma
        )(network.model, x, c)
        a, b = ours.reshape(len(c), -1), theirs.reshape(len(c), -1)
        with np.errstate(all="ignore"):
            r = np.array([np.corrcoef(u, v)[0, 1] for u, v in zip(a, b, strict=True)])
        agreement = top_k_agreement(ours, theirs, 5.0)
        lines.append(
            f"| {network.name} | {gamma} vs alpha 1 | {with_ci(r, 2)} | {with_ci(agreement)} |"
        )
    return lines


def plot(all_results: dict[str, dict[str, dict]], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(all_results), figsize=(4.2 * len(all_results), 4.2))
    axes = np.atleast_1d(axes)
    for axis, (name, results) in zip(axes, all_results.items(), strict=True):
        for label, r in results.items():
            x = float(np.nanmedian(r["agreement"]))
            y = float(np.nanmean(r["keep"] - r["remove"]))
            axis.scatter(x, y, s=30)
            axis.annotate(label, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        axis.set_title(name, fontsize=9)
        axis.set_xlabel("top-1/top-2 agreement % (lower: class-sensitive)")
        axis.axhline(0, color="grey", lw=0.5)
    axes[0].set_ylabel("contrastive fidelity q(keep) - q(remove)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="4 images, 1 network, 3 maps, no files"
    )
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument(
        "--part", type=int, help="measure only network PART and save it (run parts in parallel)"
    )
    parser.add_argument("--assemble", action="store_true", help="write the report from saved parts")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    warnings.filterwarnings("ignore")
    n, opti_iters = (4, 2) if args.quick else (args.images, 10)
    parts = Path(tempfile.gettempdir()) / "captum_contrast_contrastive_parts"
    if args.assemble:
        saved = [pickle.loads(p.read_bytes()) for p in sorted(parts.glob("*.pkl"))]
    else:
        if args.quick:
            networks = digit_networks(n)[:1]
        else:
            networks = digit_networks(n) + pretrained_networks(n)
            networks = networks if args.part is None else [networks[args.part]]
        saved = []
        for network in networks:
            print(network.name, flush=True)
            measured = measure(network, opti_iters, args.quick)
            saved.append((network.name, network.note, measured, finer_peer_rows(network)))
        if args.part is not None:
            parts.mkdir(parents=True, exist_ok=True)
            (parts / f"{args.part}.pkl").write_bytes(pickle.dumps(saved[0]))
            return 0
    all_results, blocks, peers = {}, [], []
    for name, note, measured, peer_rows in saved:
        all_results[name] = measured
        blocks += [f"### {name}", "", note, "", *table(measured), ""]
        peers += peer_rows
    if args.quick:
        print("\n".join(blocks + peers))
        return 0
    verdicts = [verdict(name, results) for name, results in all_results.items()]
    verdicts += ocr_minmax_summary(verdict_only=True)  # the multi-label row's verdict
    text = "\n".join(
        [
            "# Head-to-head: class sensitivity against fidelity on real networks",
            "",
            "Generated by `python benchmarks/contrastive.py` (networks run as parallel `--part`s, "
            f"then `--assemble`) on 2 CPU cores shared with other jobs; {n} images per network "
            "(small, for time: read the "
            "intervals). Each map explains the top-1 class c against the top-2 class d. "
            "Medians with 95% bootstrap intervals; contrastive fidelity and eMPRT are means / "
            "medians as marked in `benchmarks/contrastive.py`'s docstring, which defines every "
            f"column. MPRT/eMPRT on the first {MPRT_IMAGES} images. Time is one call on all the "
            "images, relative to Grad-CAM, on a CPU shared with other jobs (noisy).",
            "",
            "## Verdicts",
            "",
            *verdicts,
            "",
            "![class sensitivity against contrastive fidelity](contrastive.png)",
            "",
            *blocks,
            "## Finer-CAM: this package (torchcam's definition) against pytorch-grad-cam's",
            "",
            "Pearson correlation and top-5% agreement of the two maps of the top-1 class, per "
            "image (median [95% CI]). pytorch-grad-cam weights each reference by its softmax "
            "probability, lets the gradient flow through those weights, and defaults to "
            "alpha 1 (this package: plain mean, gamma 0.6).",
            "",
            "| network | gamma (ours) | Pearson r | top-5% agreement % |",
            "|---|---|---|---|",
            *peers,
            "",
            *ocr_minmax_summary(),  # the multi-label row: written by benchmarks/ocr_minmax.py
        ]
    )
    print(text)
    plot(all_results, RESULTS / "contrastive.png")
    print(write_result("contrastive", text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
