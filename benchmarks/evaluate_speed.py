"""`captum-contrast evaluate` against its forward-pass floor: wall time and forward count.

Run ``python benchmarks/evaluate_speed.py`` (``--quick`` for a smoke run). It times the
evaluation loop (:func:`captum_contrast.app.evaluation.evaluate_batches`: targets, four
gradient methods' maps, AD + AG + AI) on resnet18 with random weights, and the bare
``no_grad`` forwards of the same images it cannot avoid: ``(1 + M)`` forwards per image for
``M`` gradient methods (one to explain, one masked forward per method). The ratio says what
the rest costs (the backward, the maps, the masks, Quantus's preprocessing). Its section
replaces the one of the same title in ``benchmarks/results/speed.md`` (``speed.py`` writes
the others).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torchvision.models import resnet18

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _timing import Section, environment, time_interleaved  # noqa: E402

from captum_contrast.app.evaluation import evaluate_batches  # noqa: E402
from captum_contrast.app.progress import ForwardCounter  # noqa: E402

TITLE = "captum-contrast evaluate (the forward-pass floor)"
METHODS = ["grad-cam", "contrast-grad-cam", "minmax-cam", "difference-salience"]
METRICS = ["average-drop", "average-gain", "average-increase"]


def run(repeats: int, quick: bool) -> list[Section]:
    images, batch, side = (8, 4, 64) if quick else (16, 8, 224)
    torch.manual_seed(0)
    model = resnet18(weights=None).eval()
    data = [(torch.rand(3, side, side), 0) for _ in range(images)]

    def evaluate() -> None:
        evaluate_batches(
            model, model.layer4, data, METHODS, METRICS, targets="predicted",
            batch_size=batch, progress=False,
        )  # fmt: skip

    def floor() -> None:
        with torch.no_grad():
            for start in range(0, images, batch):
                stacked = torch.stack([x for x, _ in data[start : start + batch]])
                for _ in range(1 + len(METHODS)):
                    model(stacked)

    with ForwardCounter(model) as counter:
        evaluate()
    times = time_interleaved({"evaluate": evaluate, "floor": floor}, repeats)
    setup = (
        f"torchvision resnet18(weights=None), layer4, {images} images {side}x{side} in batches "
        f"of {batch}, `--targets predicted`, methods {', '.join(METHODS)}, metrics AD + AG + "
        f"AI; {environment()}. The loop ran {counter.count} image-forwards of the model "
        f"({counter.count / images:.0f} per image; the floor is 1 + {len(METHODS)}; the loop "
        f"before issue 21 ran 13 per image)."
    )
    section = Section(TITLE, f"bare forwards ((1 + {len(METHODS)}) per image, no_grad)", setup)
    section.rows = [
        (section.baseline, times["floor"], ""),
        ("evaluate loop", times["evaluate"], "backward, maps, masks and Quantus preprocessing"),
    ]
    return [section]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny settings, for a smoke test")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "speed.md")
    args = parser.parse_args(argv)
    (section,) = run(2 if args.quick else args.repeats, args.quick)
    table = section.to_markdown()
    print(table)
    if not args.quick:
        text = args.out.read_text() if args.out.exists() else ""
        head, marker, tail = text.partition(f"### {TITLE}")
        rest = tail[tail.find("\n### ") :] if marker and "\n### " in tail else ""
        args.out.write_text(head.rstrip("\n") + "\n\n" + table + "\n" + rest)
        print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
