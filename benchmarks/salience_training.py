"""Salience-guided training on the offline binary task: in-distribution and OOD AUROC.

Reproduces the Divisive Decisions comparison (cross-entropy, CYBORG, Difference, Per-class
and Contrast Salience) at toy scale on ``captum_contrast.data.canvases.SalienceDigits``: "does the
canvas contain a 3?", human maps = the 3's pixels (for negatives, the distractors' pixels).
Every method trains the same small CNN with the same data, budget and seeds; the checkpoint
with the best validation accuracy is kept (the CYBORG protocol) and scored by the logit
difference on the in-distribution test split and the shifted ``ood`` split.

Two settings: ``shift`` (the OOD split has new look-alike distractors 5 and 8, a raised
background and noise) and ``shift + shortcut`` (in addition, most training positives carry a
small bright marker that is not in the human maps, reversed in the OOD split).

    python salience_training.py            # full run, writes results/salience_training.md
    python salience_training.py --quick    # smoke run (tiny), writes nothing unless --out
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import Tensor, nn

from captum_contrast.data.models import small_cnn
from captum_contrast.data.salience import SalienceDigits
from captum_contrast.training import (
    ContrastSalienceLoss,
    CYBORGLoss,
    DifferenceSalienceLoss,
    PerClassSalienceLoss,
    class_activation_maps,
    head_weight,
)

METHODS = {
    "cross-entropy": None,
    "CYBORG": CYBORGLoss,
    "Difference Salience": DifferenceSalienceLoss,
    "Per-class Salience": PerClassSalienceLoss,
    "Contrast Salience": ContrastSalienceLoss,
}
SETTINGS = {"shift": 0.0, "shift + shortcut": 0.9}


@dataclass
class Budget:
    n_train: int
    n_eval: int
    epochs: int
    batch_size: int
    width: int
    lr: float


FULL = Budget(n_train=2000, n_eval=1000, epochs=12, batch_size=32, width=8, lr=3e-3)
QUICK = Budget(n_train=128, n_eval=64, epochs=1, batch_size=32, width=4, lr=3e-3)


def _data(budget: Budget, shortcut: float) -> dict[str, tuple[Tensor, Tensor, Tensor]]:
    sizes = {
        "train": budget.n_train,
        "val": budget.n_eval // 2,
        "test": budget.n_eval,
        "ood": budget.n_eval,
    }
    data = {
        split: SalienceDigits(n, split=split, size=32, seed=0, shortcut=shortcut).tensors()
        for split, n in sizes.items()
    }
    # The same OOD canvases without the intensity shift: only the new look-alike distractors
    # (and the reversed marker), to separate the semantic shift from the background/noise one.
    data["ood_distractors"] = SalienceDigits(
        budget.n_eval,
        split="ood",
        size=32,
        seed=0,
        shortcut=shortcut,
        ood_background=0.0,
        ood_noise=0.0,
    ).tensors()
    return data


def _scores(model: nn.Module, images: Tensor) -> Tensor:
    with torch.no_grad():
        logits = torch.cat([model(chunk) for chunk in images.split(500)])
    return logits[:, 1] - logits[:, 0]


def _auroc(model: nn.Module, split: tuple[Tensor, Tensor, Tensor]) -> float:
    images, labels, _ = split
    return float(roc_auc_score(labels.numpy(), _scores(model, images).numpy()))


def train_one(method: str, data: dict, budget: Budget, seed: int) -> dict[str, float]:
    torch.manual_seed(seed)
    model = small_cnn(num_classes=2, width=budget.width)
    loss_class = METHODS[method]
    criterion = loss_class(model.classifier) if loss_class is not None else None
    optimizer = torch.optim.Adam(model.parameters(), lr=budget.lr)
    images, labels, human_maps = data["train"]
    order = torch.Generator().manual_seed(seed)
    best_accuracy, best_state = -1.0, copy.deepcopy(model.state_dict())
    for _ in range(budget.epochs):
        model.train()
        for batch in torch.randperm(len(images), generator=order).split(budget.batch_size):
            logits, features = model.forward_with_features(images[batch])
            if criterion is None:
                loss = F.cross_entropy(logits, labels[batch])
            else:
                loss = criterion(logits, features, labels[batch], human_maps[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        val_images, val_labels, _ = data["val"]
        accuracy = float(((_scores(model, val_images) > 0).long() == val_labels).float().mean())
        if accuracy > best_accuracy:
            best_accuracy, best_state = accuracy, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    model.eval()
    scores = {split: _auroc(model, data[split]) for split in ("test", "ood", "ood_distractors")}
    return scores | _pointing(model, data["test"])


def _pointing(model: nn.Module, split: tuple[Tensor, Tensor, Tensor]) -> dict[str, float]:
    """Fraction of positives whose CAM, upsampled to the input, peaks on the 3's pixels.

    ``t`` is the true-class ("contains a 3") CAM, ``t-f`` the logit-difference CAM that
    Difference Salience shows; a salience-guided model should point at the 3, not at the
    distractors or the marker.
    """
    images, labels, human_maps = split
    positives = labels == 1
    with torch.no_grad():
        _, features = model.forward_with_features(images[positives])
        cams = class_activation_maps(features, head_weight(model.classifier))
    maps = {"point_t": cams[:, 1:], "point_t-f": cams[:, 1:] - cams[:, :1]}
    on_target = human_maps[positives].flatten(1)
    result = {}
    for name, cam in maps.items():
        upsampled = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)
        peaks = upsampled.flatten(1).argmax(1)
        result[name] = float(on_target.gather(1, peaks[:, None]).mean())
    return result


def _mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {spread:.3f}"


def run(budget: Budget, seeds: list[int], settings: dict[str, float]) -> str:
    lines = [
        "## Salience-guided training on the offline binary task",
        "",
        f'`SalienceDigits` (32 px, "contains a 3?"), {budget.n_train} training canvases, '
        f"{budget.n_eval} test and {budget.n_eval} OOD canvases; `small_cnn(2, width={budget.width})`, "
        f"Adam lr {budget.lr}, batch {budget.batch_size}, {budget.epochs} epochs, best-validation-"
        f"accuracy checkpoint; seeds {seeds}; losses at their defaults (alpha 0.5, lambdas 1/3). "
        'AUROC of the logit difference, mean ± std over seeds. "Points at the 3": fraction of '
        "in-distribution test positives whose true-class CAM t (or logit-difference CAM t − f), "
        "upsampled to the input, peaks on the 3's pixels (pointing game).",
        "",
    ]
    started = time.perf_counter()
    for setting, shortcut in settings.items():
        data = _data(budget, shortcut)
        results = {
            method: [train_one(method, data, budget, s) for s in seeds] for method in METHODS
        }
        lines += [
            f"### {setting}"
            + (f" (marker on {shortcut:.0%} of training positives)" if shortcut else ""),
            "",
            "| method | in-distribution AUROC | OOD AUROC | OOD − cross-entropy "
            "| OOD, new distractors only | points at the 3: t | t − f |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        baseline = [r["ood"] for r in results["cross-entropy"]]
        for method, runs in results.items():
            ood = [r["ood"] for r in runs]
            delta = [o - b for o, b in zip(ood, baseline, strict=True)]
            lines.append(
                f"| {method} | {_mean_std([r['test'] for r in runs])} | {_mean_std(ood)} | "
                f"{statistics.mean(delta):+.3f} | {_mean_std([r['ood_distractors'] for r in runs])} | "
                f"{_mean_std([r['point_t'] for r in runs])} | "
                f"{_mean_std([r['point_t-f'] for r in runs])} |"
            )
            print(
                f"{setting:>18} | {method:<20} | "
                + ", ".join(f"{r['test']:.3f}/{r['ood']:.3f}" for r in runs),
                flush=True,
            )
        contrast = [r["ood"] for r in results["Contrast Salience"]]
        cyborg = [r["ood"] for r in results["CYBORG"]]
        wins = sum(c > b for c, b in zip(contrast, baseline, strict=True))
        lines += [
            "",
            f"Contrast Salience vs cross-entropy, OOD AUROC: "
            f"{statistics.mean(contrast) - statistics.mean(baseline):+.3f} (higher in {wins} of "
            f"{len(seeds)} seeds); vs CYBORG: {statistics.mean(contrast) - statistics.mean(cyborg):+.3f}.",
            "",
        ]
    lines += [
        "The paper (Piland et al.) reports OOD AUROC gains for Contrast Salience of +1.4% (iris "
        "presentation attacks) and +8.1% (synthetic faces) with DenseNet-121 and real human "
        "annotations, and no in-distribution gain on chest X-rays; these toy-scale numbers test "
        "the losses, not that claim.",
        "",
    ]
    minutes = (time.perf_counter() - started) / 60
    lines.append(
        f"{torch.__version__}, {torch.get_num_threads()} CPU thread(s); {minutes:.1f} min in all."
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--out", type=Path, default=None, help="markdown output path")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    budget = QUICK if args.quick else FULL
    settings = {"shift": 0.0} if args.quick else SETTINGS
    table = run(budget, list(range(args.seeds if not args.quick else 1)), settings)
    print(table)
    out = args.out or (
        None if args.quick else Path(__file__).parent / "results" / "salience_training.md"
    )
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(table)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
