"""A killed `evaluate` resumes to the tables of an uninterrupted run; ranks and nodes agree."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from captum_contrast.app.cli import main
from captum_contrast.data.models import small_cnn
from tests.helpers import TORCHRUN, needs_torchrun

ROOT = Path(__file__).resolve().parents[2]
TABLES = (
    "metrics.md",
    "metrics.csv",
    "metrics_per_example.csv",
    "metrics_tests.csv",
    "curves.csv",
)
BATCHES = 20


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    torch.save(small_cnn(num_classes=10, width=4).state_dict(), path)
    return path


def _args(weights: Path, out: Path, *extra: str) -> list[str]:
    return [
        "-m", "captum_contrast.app.cli", "evaluate", "--data", "canvases",
        "--canvases", str(BATCHES), "--arch", "small-cnn", "--weights", str(weights),
        "--layer", "features", "--batch-size", "1", "--targets", "predicted",
        "--method", "grad-cam", "--method", "contrast-grad-cam",
        "--metric", "average-drop", "--metric", "deletion", "--save-maps", "--no-progress",
        "--out", str(out), *extra,
    ]  # fmt: skip


def _env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "WORLD_SIZE"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env


def _kill_midway(command: list[str], out: Path, after: int = 3) -> int:
    """Start ``command``, SIGKILL its whole process group once ``after`` batches are saved."""
    process = subprocess.Popen(
        command,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 600
    try:
        while len(list(out.glob("checkpoint/batch-*.npz"))) < after:
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    saved = len(list(out.glob("checkpoint/batch-*.npz")))
    assert saved < BATCHES, "killed too late to test a resume"
    return saved


def _in_process(args: list[str]) -> int:
    """The CLI in this process, one thread as in the subprocesses (OMP_NUM_THREADS=1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return main(args[2:])  # without "-m captum_contrast.app.cli"
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def uninterrupted(weights, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole")
    assert _in_process(_args(weights, out)) == 0
    return out


def _assert_same_outputs(first: Path, second: Path) -> None:
    for name in TABLES:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    with np.load(first / "maps.npz") as a, np.load(second / "maps.npz") as b:
        assert a.files == b.files
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])


def test_a_run_killed_midway_resumes_to_the_uninterrupted_tables(
    weights, uninterrupted, tmp_path, capsys
):
    out = tmp_path / "killed"
    saved = _kill_midway([sys.executable, *_args(weights, out)], out)
    assert _in_process(_args(weights, out, "--resume")) == 0
    assert f"({saved} from the checkpoint)" in capsys.readouterr().out
    _assert_same_outputs(uninterrupted, out)
    # Other settings are refused rather than mixed into the tables.
    assert _in_process([*_args(weights, out, "--resume"), "--batch-size", "2"]) == 2
    assert "made with other settings (batch_size: 1 then, 2 now)" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@needs_torchrun
def test_two_processes_killed_midway_resume_on_two_nodes_to_the_one_process_tables(
    weights, uninterrupted, tmp_path
):
    out = tmp_path / "ranks"
    torchrun = [*TORCHRUN, "--standalone", "--nproc-per-node", "2"]
    _kill_midway([*torchrun, *_args(weights, out)], out)
    # Resumed as two simulated nodes of one process each (a local static rendezvous).
    port, nodes = _free_port(), []
    for rank in (0, 1):
        command = [
            *TORCHRUN, "--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(rank),
            "--master-addr", "127.0.0.1", "--master-port", str(port),
            *_args(weights, out, "--resume"),
        ]  # fmt: skip
        nodes.append(
            subprocess.Popen(
                command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    for node in nodes:
        _, err = node.communicate(timeout=600)
        assert node.returncode == 0, err[-3000:]
    _assert_same_outputs(uninterrupted, out)
    saved = sorted(p.name for p in (out / "checkpoint").glob("batch-*.npz"))
    assert saved == [f"batch-{b:07d}.npz" for b in range(BATCHES)]
