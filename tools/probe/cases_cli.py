"""Hostile CLI cases: `python -m captum_contrast.app.cli explain|evaluate|demo`.

Each case calls ``cli.main(argv)`` in its forked child (the same code path as ``python -m``
minus interpreter start-up); a few run the real module in a subprocess. An uncaught
exception (a traceback) is obscure; exit != 0 with a one-line message naming the file or
flag is clear; exit 0 on hostile input is checked against a reference output.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from harness import Clear, Obscure, Verdict, Wrong, add

ROOT = Path(__file__).resolve().parents[2]


def _tmp() -> Path:
    return Path(tempfile.mkdtemp(prefix="probe_cli_"))


_CACHE = Path(tempfile.gettempdir()) / f"probe_weights_{os.getpid()}"


def _weights(d: Path, arch="resnet18", ncls=5) -> Path:
    """A random state dict, written once per probe run (cases only read it)."""
    import torch
    import torchvision

    _CACHE.mkdir(exist_ok=True)
    p = _CACHE / f"{arch}_{ncls}.pth"
    if not p.exists():
        torch.manual_seed(0)
        m = getattr(torchvision.models, arch)(weights=None, num_classes=ncls)
        tmp = p.with_suffix(f".{os.getpid()}.tmp")
        torch.save(m.state_dict(), tmp)
        os.replace(tmp, p)
    return p


def _img(d: Path, name="a.png", size=(80, 60), mode="RGB", seed=0, **save) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    arr = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
    im = Image.fromarray(arr, "RGB")
    if mode != "RGB":
        im = im.convert(mode)
    p = d / name
    im.save(p, **save)
    return p


def run_cli(argv: list[str]) -> tuple[int, str]:
    from captum_contrast.app import cli

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 1
        except Exception as exc:  # noqa: BLE001 -> a traceback for the user
            raise Obscure(f"traceback: {type(exc).__name__}: {str(exc)[:200]}") from exc
    return int(code or 0), buf.getvalue()


def expect_refusal(argv, names, what):
    code, out = run_cli(argv)
    if code == 0:
        raise Wrong(f"exit 0 on {what}: {out.strip()[-200:]}")
    low = out.lower()
    if "traceback" in low:
        raise Obscure(f"traceback printed (exit {code})")
    if any(n.lower() in low for n in names):
        raise Clear(f"exit {code}: {out.strip().splitlines()[-1][:200] if out.strip() else ''}")
    raise Obscure(f"exit {code}, message does not name {names}: {out.strip()[-200:]}")


BASE = ["--arch", "resnet18", "--resize", "64", "--crop", "64"]


def _explain_bad(make, names, what, extra=()):
    def fn():
        d = _tmp()
        w = _weights(d)
        args = make(d, w)
        expect_refusal(
            ["explain", *BASE, "--weights", str(w), "--out", str(d / "out"), *extra, *args],
            names,
            what,
        )

    return fn


def _corrupt(d, w):
    p = d / "bad.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(100))
    return [str(p)]


def _empty(d, w):
    p = d / "empty.jpg"
    p.write_bytes(b"")
    return [str(p)]


def _text(d, w):
    p = d / "text.jpg"
    p.write_text("hello")
    return [str(p)]


def _bomb(d, w):
    from PIL import Image

    p = d / "bomb.png"
    Image.new("1", (16000, 16000)).save(p)
    return [str(p)]


def _truncated(d, w):
    p = _img(d, "t.jpg", size=(200, 200))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return [str(p)]


EXPLAIN_BAD = {
    "corrupt_png": (_corrupt, ("bad.png",), "a corrupt PNG", ()),
    "empty_file": (_empty, ("empty.jpg",), "an empty file", ()),
    "text_as_jpg": (_text, ("text.jpg",), "a text file", ()),
    "decompression_bomb": (_bomb, ("bomb.png", "pixels", "large"), "a decompression-bomb PNG", ()),
    "truncated_jpeg": (_truncated, ("t.jpg", "truncated"), "a truncated JPEG", ()),
    "missing_file": (lambda d, w: [str(d / "nope.png")], ("nope.png",), "a missing file", ()),
    "directory_as_image": (lambda d, w: [str(d)], ("directory", "probe_cli"), "a directory", ()),
    "target_oob": (
        lambda d, w: [str(_img(d))],
        ("target", "999"),
        "--target 999",
        ("--target", "999"),
    ),
    "target_neg": (lambda d, w: [str(_img(d))], ("target",), "--target -1", ("--target", "-1")),
    "target_float": (lambda d, w: [str(_img(d))], ("target",), "--target 1.5", ("--target", "1.5")),
    "target_name_no_names": (
        lambda d, w: [str(_img(d))],
        ("target", "tiger"),
        "--target 'tiger cat' with a state dict",
        ("--target", "tiger cat"),
    ),
    "layer_missing": (
        lambda d, w: [str(_img(d))],
        ("layer", "layer9"),
        "--layer layer9",
        ("--layer", "layer9"),
    ),
    "layer_fc": (lambda d, w: [str(_img(d))], ("layer", "fc"), "--layer fc", ("--layer", "fc")),
    "layer_unused": (lambda d, w: [str(_img(d))], ("layer",), "--layer ''", ("--layer", "")),
    "method_bogus": (
        lambda d, w: [str(_img(d))],
        ("method",),
        "--method bogus",
        ("--method", "bogus"),
    ),
    "resize_zero": (lambda d, w: [str(_img(d))], ("resize",), "--resize 0", ("--resize", "0")),
    "crop_neg": (lambda d, w: [str(_img(d))], ("crop",), "--crop -5", ("--crop", "-5")),
    "crop_gt_resize": (
        lambda d, w: [str(_img(d))],
        ("crop",),
        "--crop 500 > resize",
        ("--crop", "500"),
    ),
    "opti_iters_zero": (
        lambda d, w: [str(_img(d))],
        ("opti",),
        "--opti-iters 0",
        ("--method", "opti-cam", "--opti-iters", "0"),
    ),
    "opti_iters_neg": (
        lambda d, w: [str(_img(d))],
        ("opti",),
        "--opti-iters -3",
        ("--method", "opti-cam", "--opti-iters", "-3"),
    ),
    "num_classes_mismatch": (
        lambda d, w: [str(_img(d))],
        ("num-classes", "num_classes", "weights", "size mismatch"),
        "--num-classes 3 with 5-class weights",
        ("--num-classes", "3"),
    ),
    "num_classes_zero": (
        lambda d, w: [str(_img(d))],
        ("num-classes", "num_classes"),
        "--num-classes 0",
        ("--num-classes", "0"),
    ),
}
for _k, (mk, names, what, extra) in EXPLAIN_BAD.items():
    add(
        f"cli.explain.{_k}",
        _explain_bad(mk, names, what, extra),
        names=names,
        repro=f"python -m captum_contrast.app.cli explain --arch resnet18 --weights w.pth --resize 64 --crop 64 {' '.join(extra)} <{_k}>",
        timeout=60,
    )


def _weights_bad(kind):
    def fn():
        import torch

        d = _tmp()
        img = _img(d)
        w = d / "w.pth"
        if kind == "missing":
            w = d / "missing.pth"
        elif kind == "corrupt":
            w.write_bytes(os.urandom(300))
        elif kind == "empty":
            w.write_bytes(b"")
        elif kind == "wrong_arch":
            w = _weights(d, "resnet34")
        elif kind == "pickled_module":
            import torchvision

            torch.save(torchvision.models.resnet18(num_classes=5), w)
        elif kind == "not_a_dict":
            torch.save(torch.zeros(3), w)
        elif kind == "directory":
            w = d
        elif kind == "nan_weights":
            import torchvision

            m = torchvision.models.resnet18(num_classes=5)
            sd = {
                k: v.float() * float("nan") if v.is_floating_point() else v
                for k, v in m.state_dict().items()
            }
            torch.save(sd, w)
            code, out = run_cli(
                ["explain", *BASE, "--weights", str(w), "--out", str(d / "o"), str(img)]
            )
            if code == 0 and "nan" not in out.lower() and "warn" not in out.lower():
                raise Wrong("NaN weights explained with exit 0 and no warning")
            if code == 0:
                return Verdict("correct", "warned")
            if "traceback" in out.lower():
                raise Obscure("traceback")
            raise Clear(out.strip()[-150:])
        elif kind == "arch_bogus":
            expect_refusal(
                ["explain", "--arch", "resnet9000", "--out", str(d / "o"), str(img)],
                ("arch", "resnet9000"),
                "--arch resnet9000",
            )
        elif kind == "hf_broken_dir":
            (d / "hf").mkdir()
            (d / "hf" / "config.json").write_text("{not json")
            expect_refusal(
                ["explain", "--arch", f"hf:{d / 'hf'}", "--out", str(d / "o"), str(img)],
                ("hf", "config", str(d / "hf")),
                "a broken hf: directory",
            )
        elif kind == "timm_missing":
            expect_refusal(
                ["explain", "--arch", "timm:not_a_model", "--out", str(d / "o"), str(img)],
                ("timm", "not_a_model"),
                "timm:not_a_model",
            )
        elif kind == "named_weights_offline":
            expect_refusal(
                [
                    "explain",
                    "--arch",
                    "resnet18",
                    "--weights",
                    "IMAGENET1K_V1",
                    "--out",
                    str(d / "o"),
                    str(img),
                ],
                ("weights", "IMAGENET1K_V1", "download", "cache"),
                "named weights offline",
            )
        elif kind == "weights_name_bogus":
            expect_refusal(
                [
                    "explain",
                    "--arch",
                    "resnet18",
                    "--weights",
                    "IMAGENET9K",
                    "--out",
                    str(d / "o"),
                    str(img),
                ],
                ("weights", "IMAGENET9K"),
                "bogus weights name",
            )
        if kind in (
            "arch_bogus",
            "hf_broken_dir",
            "timm_missing",
            "named_weights_offline",
            "weights_name_bogus",
        ):
            return None
        expect_refusal(
            ["explain", *BASE, "--weights", str(w), "--out", str(d / "o"), str(img)],
            ("weights", str(w.name), "state dict", "w.pth"),
            f"--weights {kind}",
        )

    return fn


for _k in [
    "missing",
    "corrupt",
    "empty",
    "wrong_arch",
    "pickled_module",
    "not_a_dict",
    "directory",
    "nan_weights",
    "arch_bogus",
    "hf_broken_dir",
    "timm_missing",
    "named_weights_offline",
    "weights_name_bogus",
]:
    add(
        f"cli.weights.{_k}",
        _weights_bad(_k),
        names=("weights", "arch"),
        repro=f"python -m captum_contrast.app.cli explain --arch resnet18 --weights <{_k}> img.png",
        timeout=60,
    )


def _out_bad(kind):
    def fn():
        d = _tmp()
        w = _weights(d)
        img = _img(d)
        if kind == "out_is_file":
            out = d / "file"
            out.write_text("x")
        elif kind == "out_under_file":
            (d / "file").write_text("x")
            out = d / "file" / "sub"
        elif kind == "out_readonly":
            out = d / "ro"
            out.mkdir()
            os.chmod(out, 0o500)
            if os.geteuid() == 0:
                out = Path("/proc/probe_out")  # root ignores modes; /proc refuses mkdir
        else:
            out = Path("/proc/1/probe")
        expect_refusal(
            ["explain", *BASE, "--weights", str(w), "--out", str(out), str(img)],
            ("out", str(out)),
            f"--out {kind}",
        )

    return fn


for _k in ["out_is_file", "out_under_file", "out_readonly", "out_proc"]:
    add(
        f"cli.out.{_k}",
        _out_bad(_k),
        names=("out",),
        repro=f"python -m captum_contrast.app.cli explain ... --out <{_k}> img.png",
        timeout=60,
    )


# image modes that must be decoded like their RGB equivalent


def _overlays(d: Path) -> list[np.ndarray]:
    from PIL import Image

    return [np.asarray(Image.open(p).convert("RGB"), dtype=float) for p in sorted(d.rglob("*.png"))]


def _mode_case(kind):
    def fn():
        from PIL import Image

        d = _tmp()
        w = _weights(d)
        rng = np.random.default_rng(0)
        ramp = np.tile(np.linspace(0, 255, 80), (60, 1))
        rgb = np.stack([ramp, ramp[::-1], (rng.random((60, 80)) * 255)], -1).astype(np.uint8)
        grey8 = ramp.astype(np.uint8)
        ref_path = d / "ref.png"
        test_path = d / "test.png"
        if kind == "png16":
            Image.fromarray(grey8, "L").convert("RGB").save(ref_path)
            Image.fromarray((grey8.astype(np.uint16) * 257).astype(np.uint16)).save(test_path)
        elif kind == "exif_rotated":
            rot = np.rot90(rgb, k=-1).copy()  # what the viewer shows for orientation 6
            Image.fromarray(rot).save(ref_path)
            im = Image.fromarray(rgb)
            exif = im.getexif()
            exif[0x0112] = 6
            test_path = d / "test.jpg"
            im.save(test_path, exif=exif, quality=100, subsampling=0)
            Image.open(test_path).convert("RGB")  # make sure it is readable
            # reference decoded from the same JPEG pixels, rotated
            Image.fromarray(
                np.rot90(np.asarray(Image.open(test_path).convert("RGB")), k=-1).copy()
            ).save(ref_path)
        elif kind == "palette":
            Image.fromarray(rgb).save(ref_path)
            Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(
                test_path
            )
            Image.open(test_path).convert("RGB").save(ref_path)
        elif kind == "rgba_transparent":
            Image.fromarray(rgb).save(ref_path)
            a = np.dstack([rgb, np.full((60, 80), 255, np.uint8)])
            Image.fromarray(a, "RGBA").save(test_path)
        elif kind == "grey_alpha":
            Image.fromarray(grey8, "L").convert("RGB").save(ref_path)
            Image.fromarray(grey8, "L").convert("LA").save(test_path)
        elif kind == "cmyk_jpeg":
            test_path = d / "test.jpg"
            Image.fromarray(rgb).convert("CMYK").save(test_path, quality=100)
            Image.open(test_path).convert("RGB").save(ref_path)
        elif kind == "bilevel":
            b = (grey8 > 128).astype(np.uint8) * 255
            Image.fromarray(b, "L").convert("RGB").save(ref_path)
            Image.fromarray(b, "L").convert("1").save(test_path)
        elif kind == "float_tiff":
            test_path = d / "test.tif"
            Image.fromarray(grey8, "L").convert("RGB").save(ref_path)
            Image.fromarray(grey8.astype(np.float32) / 255.0, "F").save(test_path)
        elif kind == "tiny_1x1":
            Image.fromarray(rgb[:1, :1]).save(test_path)
            code, out = run_cli(
                ["explain", *BASE, "--weights", str(w), "--out", str(d / "t"), str(test_path)]
            )
            if code != 0:
                if "traceback" in out.lower():
                    raise Obscure("traceback")
                raise Clear(out.strip()[-150:])
            return None
        code1, out1 = run_cli(
            [
                "explain",
                *BASE,
                "--weights",
                str(w),
                "--target",
                "1",
                "--out",
                str(d / "r"),
                str(ref_path),
            ]
        )
        code2, out2 = run_cli(
            [
                "explain",
                *BASE,
                "--weights",
                str(w),
                "--target",
                "1",
                "--out",
                str(d / "t"),
                str(test_path),
            ]
        )
        if code1 != 0:
            raise Obscure(f"reference image failed: {out1[-200:]}")
        if code2 != 0:
            if "traceback" in out2.lower():
                raise Obscure(f"traceback on {kind}")
            raise Clear(f"refused {kind}: {out2.strip()[-150:]}")
        r, t = _overlays(d / "r"), _overlays(d / "t")
        if len(r) != len(t) or any(a.shape != b.shape for a, b in zip(r, t, strict=False)):
            raise Wrong(f"{kind}: overlay shapes {[a.shape for a in t]} vs {[a.shape for a in r]}")
        diff = max(np.abs(a - b).mean() for a, b in zip(r, t, strict=True))
        if diff > 4.0:
            raise Wrong(
                f"{kind}: overlay differs from the RGB equivalent by {diff:.1f}/255 on average"
            )
        return Verdict("correct", f"diff {diff:.2f}")

    return fn


for _k in [
    "png16",
    "exif_rotated",
    "palette",
    "rgba_transparent",
    "grey_alpha",
    "cmyk_jpeg",
    "bilevel",
    "float_tiff",
    "tiny_1x1",
]:
    add(
        f"cli.image.{_k}",
        _mode_case(_k),
        names=("image", "mode"),
        repro=f"explain the same picture as RGB PNG and as <{_k}>; compare overlays",
        valid=True,
        timeout=90,
    )


# evaluate


def _imagefolder(d: Path, bad=None) -> Path:
    root = d / "data"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(2):
            _img(root / c, f"{i}.png", size=(40, 40), seed=i + (c == "b") * 7)
    if bad == "corrupt":
        (root / "a" / "zz.png").write_bytes(b"garbage")
    if bad == "empty_class":
        (root / "c").mkdir()
    return root


def _evaluate(kind):
    def fn():
        d = _tmp()
        w = _weights(d, ncls=2)
        base = ["evaluate", *BASE, "--weights", str(w), "--out", str(d / "o"), "--no-progress"]
        if kind == "valid":
            root = _imagefolder(d)
            code, out = run_cli(
                [*base, "--data", str(root), "--method", "grad-cam", "--metric", "average-drop"]
            )
            if code != 0:
                raise Obscure(f"valid evaluate failed: {out[-300:]}")
            if not (d / "o" / "metrics.md").exists():
                raise Wrong("no metrics.md written")
            return None
        table = {
            "data_missing": lambda: (["--data", str(d / "none")], ("data", "none")),
            "data_empty_dir": lambda: (
                ["--data", str((d / "e").mkdir() or d / "e")],
                ("data", "image", "empty", "class"),
            ),
            "data_corrupt_image": lambda: (
                [
                    "--data",
                    str(_imagefolder(d, "corrupt")),
                    "--method",
                    "grad-cam",
                    "--metric",
                    "average-drop",
                ],
                ("zz.png",),
            ),
            "batch_size_zero": lambda: (
                ["--data", str(_imagefolder(d)), "--batch-size", "0"],
                ("batch",),
            ),
            "batch_size_neg": lambda: (
                ["--data", str(_imagefolder(d)), "--batch-size", "-2"],
                ("batch",),
            ),
            "canvases_zero": lambda: (["--data", "canvases", "--canvases", "0"], ("canvases",)),
            "metric_bogus": lambda: (
                ["--data", str(_imagefolder(d)), "--metric", "accuracy"],
                ("metric",),
            ),
            "targets_bogus": lambda: (
                ["--data", str(_imagefolder(d)), "--targets", "all"],
                ("targets",),
            ),
            "num_classes_vs_folders": lambda: (
                ["--data", str(_imagefolder(d)), "--num-classes", "7"],
                ("num-classes", "num_classes", "class", "weights"),
            ),
            "more_folders_than_outputs": lambda: (
                [
                    "--data",
                    str(_imagefolder(d, "empty_class")),
                    "--method",
                    "grad-cam",
                    "--metric",
                    "average-drop",
                ],
                ("class", "folder", "output"),
            ),
            "data_is_file": lambda: (["--data", str(_img(d))], ("data",)),
        }
        argv, names = table[kind]()
        expect_refusal([*base, *argv], names, kind)

    return fn


for _k in [
    "valid",
    "data_missing",
    "data_empty_dir",
    "data_corrupt_image",
    "batch_size_zero",
    "batch_size_neg",
    "canvases_zero",
    "metric_bogus",
    "targets_bogus",
    "num_classes_vs_folders",
    "more_folders_than_outputs",
    "data_is_file",
]:
    add(
        f"cli.evaluate.{_k}",
        _evaluate(_k),
        names=("data",),
        repro=f"python -m captum_contrast.app.cli evaluate --arch resnet18 --weights w2.pth --resize 64 --crop 64 <{_k}>",
        valid=_k == "valid",
        timeout=90,
    )


def _demo(kind):
    def fn():
        d = _tmp()
        if kind == "out_under_file":
            (d / "f").write_text("x")
            expect_refusal(
                ["demo", "--quick", "--out", str(d / "f" / "x")],
                ("out", str(d / "f")),
                "demo --out under a file",
            )
        elif kind == "bad_flag":
            expect_refusal(["demo", "--fast"], ("fast", "unrecognized"), "demo --fast")
        elif kind == "no_command":
            code, out = run_cli([])
            if "usage" in out.lower() and "traceback" not in out.lower():
                return Verdict("correct", f"usage printed, exit {code}")
            raise Obscure(out[-200:])
        elif kind == "unknown_command":
            expect_refusal(["explian"], ("explian", "invalid choice"), "unknown command")

    return fn


for _k in ["out_under_file", "bad_flag", "no_command", "unknown_command"]:
    add(
        f"cli.demo.{_k}",
        _demo(_k),
        names=("out",),
        repro=f"python -m captum_contrast.app.cli demo <{_k}>",
        timeout=120,
    )


def _subprocess(argv, names):
    def fn():
        env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
        r = subprocess.run(
            [sys.executable, "-m", "captum_contrast.app.cli", *argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            cwd=tempfile.mkdtemp(),
        )
        out = r.stdout + r.stderr
        if r.returncode == 0:
            raise Wrong(f"exit 0: {out[-200:]}")
        if "Traceback" in out:
            raise Obscure(f"traceback: {out.strip().splitlines()[-1][:200]}")
        if any(n in out.lower() for n in names):
            raise Clear(out.strip().splitlines()[-1][:200])
        raise Obscure(f"message does not name {names}: {out[-200:]}")

    return fn


add(
    "cli.subprocess.missing_image",
    _subprocess(["explain", "--arch", "resnet18", "/nonexistent/x.png"], ("x.png", "--weights")),
    names=("x.png",),
    repro="python -m captum_contrast.app.cli explain --arch resnet18 /nonexistent/x.png",
    timeout=120,
)
add(
    "cli.subprocess.no_args",
    _subprocess(["explain"], ("arch", "images", "required")),
    names=("arch",),
    repro="python -m captum_contrast.app.cli explain",
    timeout=120,
)
