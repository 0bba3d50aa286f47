"""report.html: self-contained, and rendered by a real browser (headless Chromium)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from captum_contrast.app.evaluation import run_evaluation
from captum_contrast.app.report import overlay
from captum_contrast.data.canvases import MultiDigitCanvases
from captum_contrast.data.models import small_cnn

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
# The docs' screenshot of the report; the test writes its own into tmp_path and copies it here
# only when asked (CAPTUM_CONTRAST_UPDATE_FIGURES=1), so running the suite leaves the
# checkout as it was.
SCREENSHOT = ROOT / "docs" / "figures" / "report.png"

# Injected into a copy of the report: records every error and, once loaded, writes what it
# found into the page, which --dump-dom prints.
CHECK = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(String(e.message || e.target.src)), true);
const original = console.error;
console.error = (...args) => { window.__errors.push(args.join(" ")); original(...args); };
window.addEventListener("load", () => {
  const images = [...document.images];
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).length;
  document.body.insertAdjacentHTML("beforeend",
    `<pre id="check">images=${images.length} broken=${broken} errors=${window.__errors.length}</pre>`);
});
</script>"""


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = small_cnn(num_classes=10, width=4).eval()
    out = tmp_path_factory.mktemp("report")
    paths = run_evaluation(
        model,
        model.features,
        MultiDigitCanvases(n=8, split="test", size=32, seed=4),
        ["grad-cam", "contrast-grad-cam", "fake-cam"],
        ["average-drop", "deletion"],
        out,
        targets="predicted",
        batch_size=4,
        progress=False,
        gallery_metric="deletion",
        settings={"data": "canvases", "arch": "small-cnn (random weights)"},
    )
    assert paths[-1] == out / "report.html"
    return paths[-1]


def test_the_report_is_one_self_contained_file(report) -> None:
    text = report.read_text(encoding="utf-8")
    sources = re.findall(r'src="([^"]*)"', text)
    assert sources and all(src.startswith("data:image/png;base64,") for src in sources)
    assert not re.search(r'(href|src)="(https?:|//|file:)', text)  # nothing fetched
    assert "<script" not in text
    # The table with intervals and the tests, the curves, a gallery per method, the costs.
    assert re.search(r"<td>\d+\.\d{3} \[\d+\.\d{3}, \d+\.\d{3}\]</td>", text)
    assert "Paired tests against Grad-CAM (Captum)" in text
    assert "Insertion and deletion curves" in text
    assert text.count("best by Deletion ↓") == 3 and text.count("worst by Deletion ↓") == 3
    # 3 methods x (3 best + 3 worst) x (image + overlay) + the curves.
    assert len(sources) == 3 * 6 * 2 + 1
    assert "ms per image" in text and "captum-contrast" in text and "torch" in text


def test_overlay_scales_the_map_over_the_image() -> None:
    image = np.zeros((1, 4, 4), np.float32)
    saliency = np.array([[0.0, 2.0], [2.0, 2.0]])
    picture = overlay(image, saliency)
    # jet(0) is dark blue, jet(1) dark red; half of each over a black image.
    assert picture[0, 0].tolist() == [0, 0, 64] and picture[3, 3].tolist() == [64, 0, 0]


@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="headless Chromium not installed (/usr/bin/chromium: apt-get install chromium)",
)
def test_the_report_renders_in_headless_chromium(report, tmp_path) -> None:
    page = tmp_path / "checked.html"
    page.write_text(
        report.read_text(encoding="utf-8").replace("<head>", "<head>" + CHECK, 1), "utf-8"
    )
    browser = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dumped = subprocess.run(
        [*browser, "--virtual-time-budget=10000", "--enable-logging=stderr", "--dump-dom",
         page.as_uri()],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    found = re.search(r"images=(\d+) broken=(\d+) errors=(\d+)", dumped.stdout)
    assert found, dumped.stdout[-2000:]
    images, broken, errors = map(int, found.groups())
    assert images == 37 and broken == 0 and errors == 0
    assert "CONSOLE" not in dumped.stderr  # nothing logged by the page itself
    screenshot = tmp_path / "report.png"
    shot = subprocess.run(
        [*browser, f"--screenshot={screenshot}", "--window-size=1100,1500", report.as_uri()],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert shot.returncode == 0, shot.stderr[-2000:]
    from PIL import Image

    with Image.open(screenshot) as picture:
        assert picture.size == (1100, 1500)
        assert len(set(picture.convert("RGB").getdata())) > 100  # not a blank page
    if os.environ.get("CAPTUM_CONTRAST_UPDATE_FIGURES") == "1":
        shutil.copyfile(screenshot, SCREENSHOT)
