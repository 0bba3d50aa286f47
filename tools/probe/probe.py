"""Hostile black-box probe of captum_contrast (issue 22, goal 3).

Every case runs in its own forked child (isolation, a per-case timeout detects hangs), and
is classified automatically:

* correct        -- the result matches a reference (hand computation in float64, Captum's
                    LayerGradCam, or an invariant), or the input was invalid and refused clearly
* clear error    -- an exception raised inside captum_contrast whose message names the argument
* obscure error  -- traceback from torch/numpy/quantus internals, or a message not naming it
* silent wrong   -- a plausible result that is wrong (or invalid input accepted silently)
* state damage   -- model params/buffers/grads/flags/hooks or global torch state changed
* hang           -- the case ran past its timeout

Usage: python tools/probe/probe.py [--only PATTERN] [--jobs N] [--timeout S]
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import select
import sys
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))
os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

torch.set_num_threads(1)

import harness as H  # noqa: E402

import captum_contrast  # noqa: E402

PKG_DIR = str(Path(captum_contrast.__file__).resolve().parent)
CLASSES = ["correct", "clear error", "obscure error", "silent wrong", "state damage", "hang"]


def _raised_in_package(exc: BaseException) -> bool:
    tb = traceback.extract_tb(exc.__traceback__)
    return bool(tb) and str(Path(tb[-1].filename).resolve()).startswith(PKG_DIR)


def _where(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    if not tb:
        return "?"
    f = tb[-1]
    return f"{Path(f.filename).name}:{f.lineno}"


def classify_exception(case: H.Case, exc: BaseException) -> tuple[str, str]:
    msg = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    names = [n.lower() for n in case.names]
    text = str(exc).lower()
    named = any(n in text for n in names) if names else bool(text)
    if _raised_in_package(exc) and named:
        return "clear error", msg
    return "obscure error", f"{msg} [raised at {_where(exc)}]"


def run_in_child(case: H.Case) -> dict:
    H.reset_tracking()
    glob_before = H.global_state()
    res: dict = {"name": case.name}
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        H.WARNINGS[:] = []
        H.WARNINGS_REC = rec
        try:
            out = case.fn()
            if isinstance(out, H.Verdict):
                res["cls"], res["detail"] = out.cls, out.detail
            else:
                res["cls"], res["detail"] = "correct", ""
        except H.Wrong as exc:
            res["cls"], res["detail"] = "silent wrong", str(exc)
        except H.Obscure as exc:
            res["cls"], res["detail"] = "obscure error", str(exc)
        except H.Clear as exc:
            res["cls"], res["detail"] = "clear error", str(exc)
        except BaseException as exc:  # noqa: BLE001 - we classify everything
            res["cls"], res["detail"] = classify_exception(case, exc)
            if case.valid and res["cls"] == "clear error":
                res["refused_valid"] = True
    damage = H.check_tracked()
    glob_after = H.global_state()
    for key, before in glob_before.items():
        if glob_after.get(key) != before:
            damage.append(f"global {key}: {before} -> {glob_after.get(key)}")
    if damage:
        res["prev"] = f"{res['cls']}: {res['detail']}"
        res["cls"], res["detail"] = "state damage", "; ".join(damage)[:400]
    return res


def run_all(cases: list[H.Case], jobs: int, timeout: float) -> list[dict]:
    results: list[dict] = []
    pending = list(cases)
    running: dict[int, tuple[H.Case, int, float]] = {}
    buffers: dict[int, bytes] = {}
    while pending or running:
        while pending and len(running) < jobs:
            case = pending.pop(0)
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # child
                os.close(r)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
                try:
                    res = run_in_child(case)
                except BaseException as exc:  # noqa: BLE001
                    res = {"name": case.name, "cls": "obscure error", "detail": f"harness: {exc!r}"}
                data = pickle.dumps(res)
                with os.fdopen(w, "wb") as fh:
                    fh.write(data)
                os._exit(0)
            os.close(w)
            running[r] = (case, pid, time.time())
            buffers[r] = b""
        ready, _, _ = select.select(list(running), [], [], 0.2)
        for r in ready:
            chunk = os.read(r, 1 << 20)
            if chunk:
                buffers[r] += chunk
                continue
            case, pid, t0 = running.pop(r)
            os.close(r)
            os.waitpid(pid, 0)
            try:
                res = pickle.loads(buffers.pop(r))
            except Exception:  # noqa: BLE001 - child died (segfault, OOM)
                res = {"name": case.name, "cls": "obscure error", "detail": "child crashed"}
            res["t"] = time.time() - t0
            res["repro"] = case.repro
            res["group"] = case.group
            results.append(res)
            _progress(res)
        now = time.time()
        for r, (case, pid, t0) in list(running.items()):
            if now - t0 > case.timeout or now - t0 > timeout:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                os.close(r)
                running.pop(r)
                buffers.pop(r, None)
                res = {"name": case.name, "cls": "hang", "detail": f"> {now - t0:.0f} s"}
                res.update(repro=case.repro, group=case.group, t=now - t0)
                results.append(res)
                _progress(res)
    return results


def _progress(res: dict) -> None:
    mark = "" if res["cls"] in ("correct", "clear error") else "  <--"
    print(f"{res['t']:6.2f}s {res['cls']:14s} {res['name']}{mark}", flush=True)


def report(results: list[dict], elapsed: float, commit: str) -> str:
    counts = Counter(r["cls"] for r in results)
    lines = [
        "# Probe results",
        "",
        f"`python tools/probe/probe.py` on commit {commit}: {len(results)} cases, "
        f"{elapsed:.0f} s wall.",
        "",
        "| class | count |",
        "|---|---:|",
    ]
    lines += [f"| {c} | {counts.get(c, 0)} |" for c in CLASSES]
    lines += [f"| **total** | {len(results)} |", ""]
    groups = Counter(r["group"] for r in results)
    lines += ["| group | cases | not correct/clear |", "|---|---:|---:|"]
    for g in sorted(groups):
        bad = sum(
            1 for r in results if r["group"] == g and r["cls"] not in ("correct", "clear error")
        )
        lines.append(f"| {g} | {groups[g]} | {bad} |")
    lines.append("")
    for cls in ["silent wrong", "state damage", "hang", "obscure error"]:
        rows = sorted((r for r in results if r["cls"] == cls), key=lambda r: r["name"])
        if not rows:
            continue
        lines += [f"## {cls} ({len(rows)})", ""]
        for r in rows:
            detail = r["detail"].replace("\n", " ").replace("|", "/")[:300]
            lines.append(f"- `{r['name']}`: {detail}")
            if r.get("prev"):
                lines.append(f"  - outcome apart from the damage: {r['prev'][:200]}")
            lines.append(f"  - repro: `{r['repro']}`")
        lines.append("")
    refused = [r for r in results if r.get("refused_valid")]
    if refused:
        lines += [
            f"## valid input refused with a clear error ({len(refused)}; counted as clear)",
            "",
        ]
        lines += [f"- `{r['name']}`: {r['detail'][:200]}" for r in refused]
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help="regex on case names")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--out", default=str(HERE / "results.md"))
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args()
    import cases_cli  # noqa: F401
    import cases_methods  # noqa: F401
    import cases_metrics  # noqa: F401
    import cases_misc  # noqa: F401
    import cases_models  # noqa: F401

    cases = H.CASES
    names = Counter(c.name for c in cases)
    dup = [n for n, k in names.items() if k > 1]
    assert not dup, f"duplicate case names: {dup[:5]}"
    if args.only:
        cases = [c for c in cases if re.search(args.only, c.name)]
    if args.list:
        for c in cases:
            print(c.name)
        print(len(cases), "cases")
        return 0
    H.prepare()  # build shared fixtures once, before forking
    if any(c.group == "cli" for c in cases):
        for arch, ncls in (("resnet18", 5), ("resnet18", 2), ("resnet34", 5)):
            cases_cli._weights(Path("."), arch, ncls)
    t0 = time.time()
    results = run_all(cases, args.jobs, args.timeout)
    elapsed = time.time() - t0
    commit = os.popen(f"git -C {HERE} rev-parse --short HEAD").read().strip()
    text = report(results, elapsed, commit)
    print()
    print(text)
    if not args.only:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
