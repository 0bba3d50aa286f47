"""Completed batches on disk, so that ``captum-contrast evaluate --resume`` continues a run.

Every batch a rank finishes is written at once to ``<out>/checkpoint/batch-<b>.npz`` (one
file per batch, named by its global batch number, written to a temporary name and renamed,
so a run killed at any moment leaves only whole files). ``settings.json`` beside them
records what the numbers depend on; ``--resume`` refuses a checkpoint made with other
settings. The files are plain NumPy archives (no pickle), so the scores, maps and curves
are exact float64/float32 copies and a resumed run writes byte-identical tables.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from captum_contrast.app.tables import Record

SEPARATOR = "|"  # method and metric names hold ':' and '-', never '|'


@dataclass
class BatchResult:
    """One batch's results: records (method-major, rows in batch order) and the rest.

    ``maps[method]`` is ``(R, h, w)`` float32 at the method's resolution, row ``r`` for the
    ``r``-th explained (image, class) of the batch; ``curves[(method, metric)]`` the
    insertion/deletion probability curves ``(R, steps)``; ``seconds`` the wall time of each
    stage (``"shared"``, then one key per method); ``forwards`` the images the model ran.
    """

    batch: int
    records: list[Record]
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    curves: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    forwards: int = 0
    images: int = 0
    loaded: bool = False
    """Read from the checkpoint (``True``) rather than computed by this run."""


class Checkpoint:
    """The ``checkpoint/`` folder of one run: :meth:`save` and :meth:`load` batches.

    Example:
        >>> import tempfile
        >>> from captum_contrast.app.checkpoint import BatchResult, Checkpoint
        >>> from captum_contrast.app.tables import Record
        >>> folder = Checkpoint(tempfile.mkdtemp(), {"methods": ["grad-cam"]}, resume=False)
        >>> folder.save(BatchResult(3, [Record(6, 1, "grad-cam", {"average-drop": 0.1})], images=1))
        >>> Checkpoint(folder.folder.parent, {"methods": ["grad-cam"]}, resume=True).load(3).records
        [Record(index=6, label=1, method='grad-cam', scores={'average-drop': 0.1})]
        >>> folder.load(4) is None
        True
    """

    def __init__(
        self, out_dir: str | Path, settings: Mapping[str, Any], *, resume: bool, writer: bool = True
    ) -> None:
        self.folder = Path(out_dir) / "checkpoint"
        self.resume = resume
        self.verify(out_dir, settings, resume=resume)
        settings_file = self.folder / "settings.json"
        if writer and not (resume and settings_file.is_file()):
            # A fresh run: an old checkpoint in this folder belongs to another run.
            if self.folder.exists():
                shutil.rmtree(self.folder)
        if not settings_file.is_file():
            # Rank 0, or a rank of another node that does not share rank 0's file system.
            self.folder.mkdir(parents=True, exist_ok=True)
            if not resume:
                for stale in self.folder.glob("batch-*"):
                    stale.unlink()
            _atomic_write(settings_file, _settings_text(settings).encode("utf-8"))

    @staticmethod
    def verify(out_dir: str | Path, settings: Mapping[str, Any], *, resume: bool) -> None:
        """With ``resume``, a ValueError if the checkpoint there was made with other settings.

        Every rank calls it before the first barrier, so a refusal stops every rank.
        """
        path = Path(out_dir) / "checkpoint" / "settings.json"
        if not resume or not path.is_file():
            return
        found = path.read_text(encoding="utf-8")
        if found != _settings_text(settings):
            changed = _changed(json.loads(found), json.loads(_settings_text(settings)))
            raise ValueError(
                f"--resume: the checkpoint in {path.parent} was made with other settings "
                f"({'; '.join(changed)}); rerun with those, or drop --resume to start over"
            )

    def path(self, batch: int) -> Path:
        return self.folder / f"batch-{batch:07d}.npz"

    def save(self, result: BatchResult) -> None:
        """Write ``result`` atomically (a temporary file renamed over the final name)."""
        arrays: dict[str, np.ndarray] = {
            "batch": np.array(result.batch),
            "forwards": np.array(result.forwards),
            "images": np.array(result.images),
            "index": np.array([r.index for r in result.records], dtype=np.int64),
            "label": np.array([r.label for r in result.records], dtype=np.int64),
            "method": np.array([r.method for r in result.records], dtype=str),
            "metrics": np.array(list(result.records[0].scores) if result.records else [], str),
        }
        for metric in arrays["metrics"].tolist():
            arrays[f"score{SEPARATOR}{metric}"] = np.array(
                [r.scores[metric] for r in result.records], dtype=np.float64
            )
        for method, maps in result.maps.items():
            arrays[f"map{SEPARATOR}{method}"] = maps
        for (method, metric), curve in result.curves.items():
            arrays[f"curve{SEPARATOR}{method}{SEPARATOR}{metric}"] = curve
        for stage, seconds in result.seconds.items():
            arrays[f"seconds{SEPARATOR}{stage}"] = np.array(seconds)
        temporary = self.path(result.batch).with_suffix(".tmp")
        with temporary.open("wb") as handle:
            np.savez(handle, **arrays)
        os.replace(temporary, self.path(result.batch))

    def load(self, batch: int) -> BatchResult | None:
        """The saved result of ``batch``; ``None`` if it never finished or not resuming."""
        path = self.path(batch)
        if not self.resume or not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as archive:
            metrics = archive["metrics"].tolist()
            scores = {m: archive[f"score{SEPARATOR}{m}"].tolist() for m in metrics}
            records = [
                Record(int(i), int(label), str(method), {m: scores[m][row] for m in metrics})
                for row, (i, label, method) in enumerate(
                    zip(archive["index"], archive["label"], archive["method"], strict=True)
                )
            ]
            result = BatchResult(
                batch,
                records,
                forwards=int(archive["forwards"]),
                images=int(archive["images"]),
                loaded=True,
            )
            for key in archive.files:
                kind, *names = key.split(SEPARATOR)
                if kind == "map":
                    result.maps[names[0]] = archive[key]
                elif kind == "curve":
                    result.curves[(names[0], names[1])] = archive[key]
                elif kind == "seconds":
                    result.seconds[names[0]] = float(archive[key])
        return result


def _settings_text(settings: Mapping[str, Any]) -> str:
    return json.dumps(dict(settings), indent=1, sort_keys=True, default=str)


def _changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> Sequence[str]:
    keys = sorted(set(old) | set(new))
    return [
        f"{k}: {old.get(k)!r} then, {new.get(k)!r} now" for k in keys if old.get(k) != new.get(k)
    ]


def _atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
