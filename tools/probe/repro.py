# ruff: noqa: E402, B023  (a script of independent sections, each importing what it shows)
"""Hand reproductions of every silent-wrong root cause the probe found (run from the repo root).

python tools/probe/repro.py   -- prints one line per finding; see results.md for the case list.
"""

import sys

sys.path.insert(0, "tools/probe")

# ---- section c1
import functools
import warnings

import numpy as np
import torch
from captum.attr import LayerGradCam
from harness import inputs, net
from torch import nn

import captum_contrast as cc

torch.manual_seed(0)
print("== A1 layout: Conv2d(3,5,3,stride=3) on 20x24")


class S(nn.Module):
    def __init__(s):
        super().__init__()
        s.layer = nn.Conv2d(3, 5, 3, stride=3)
        s.fc = nn.Linear(5, 5)

    def forward(s, x):
        return s.fc(torch.relu(s.layer(x)).mean((2, 3)))


m = S().eval()
x = torch.rand(2, 3, 20, 24)
print(
    " ContrastGradCAM",
    tuple(cc.ContrastGradCAM(m, m.layer).attribute(x, target=0).shape),
    "LayerGradCam",
    tuple(LayerGradCam(m, m.layer).attribute(x, target=0).shape),
)
print("== A2 layout: NHWC LayerNorm, K=h=w=8")


class N(nn.Module):
    def __init__(s):
        super().__init__()
        s.stem = nn.Conv2d(3, 8, 2, stride=2)
        s.layer = nn.LayerNorm(8)
        s.fc = nn.Linear(8, 5)

    def forward(s, x):
        return s.fc(torch.relu(s.layer(s.stem(x).permute(0, 2, 3, 1))).mean((1, 2)))


m = N().eval()
x = torch.rand(2, 3, 16, 16)
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    auto = cc.MinMaxCAM(m, m.layer).attribute(x, target=0)
print(" warnings:", [str(i.message)[:80] for i in w])
expl = cc.MinMaxCAM(m, m.layer, reshape_transform=cc.channels_last_transform).attribute(x, target=0)
print(
    " auto vs channels_last_transform max|diff|/max:",
    ((auto - expl).abs().max() / expl.abs().max()).item(),
)
print("== B layer returning a tuple, used as h + layer(h)[0]")


class TL(nn.Module):
    def __init__(s):
        super().__init__()
        s.conv = nn.Conv2d(8, 8, 3, padding=1)

    def forward(s, h):
        return (torch.relu(s.conv(h)),)


class HF(nn.Module):
    def __init__(s):
        super().__init__()
        s.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU())
        s.layer = TL()
        s.fc = nn.Linear(8, 5)

    def forward(s, x):
        h = s.stem(x)
        h = h + s.layer(h)[0]
        return s.fc(h.mean((2, 3)))


m = HF().eval()
x = torch.rand(3, 3, 16, 16)
box = {}
h = m.layer.register_forward_hook(lambda _m, _i, o: box.__setitem__("a", o[0]))
s = m(x)
a = box["a"]
h.remove()
g = torch.autograd.grad(s[:, 0].sum(), a)[0]
ref = torch.relu((g.mean((2, 3), keepdim=True) * a).sum(1, keepdim=True))
seen = []


def spy(_m, i, o):
    seen.append(m.fc(i[0]).detach().clone() if False else None)


logits_during = []
hh = m.fc.register_forward_hook(lambda _m, _i, o: logits_during.append(o.detach().clone()))
out = cc.MinMaxCAM(m, m.layer).attribute(x, target=0, labels=torch.zeros(3, 5))
hh.remove()
print(
    " MinMaxCAM (no other labels = Grad-CAM) vs hand Grad-CAM rel err:",
    ((out - ref).abs().max() / ref.abs().max()).item(),
)
print(" logits during call == model(x)?", torch.allclose(logits_during[0], s.detach(), atol=1e-5))
gc = LayerGradCam(m, m.layer).attribute(x, target=0, relu_attributions=True)
print(" Captum LayerGradCam vs hand:", ((gc - ref).abs().max() / ref.abs().max()).item())

# ---- section c2
import warnings

import torch
from torch import nn

import captum_contrast as cc

warnings.simplefilter("ignore")
print("== C train-mode BN+Dropout model behind lambda / partial")
for name, wrap in [
    ("plain", lambda m: m),
    ("lambda", lambda m: lambda x: m(x)),
    ("partial", lambda m: functools.partial(m)),
]:
    m = net(bn=True, drop=True).train()
    x = inputs()
    rm = m.layer[1].running_mean.clone()
    nb = m.layer[1].num_batches_tracked.clone()
    f = wrap(m)
    o1 = cc.ContrastGradCAM(f, m.layer).attribute(x, target=[0, 2, 4])
    o2 = cc.ContrastGradCAM(f, m.layer).attribute(x, target=[0, 2, 4])
    print(
        f" {name}: calls equal={torch.equal(o1, o2)}; BN running_mean changed={not torch.equal(rm, m.layer[1].running_mean)}; num_batches_tracked {nb.item()}->{m.layer[1].num_batches_tracked.item()}; model.training={m.training}"
    )
print("== D target as (B,1) tensor")
m = net()
x = inputs()
a = cc.ContrastGradCAM(m, m.layer).attribute(x, target=torch.tensor([[0], [1], [2]]))
b = cc.ContrastGradCAM(m, m.layer).attribute(x, target=[0, 1, 2])
print(" (B,1) target == [0,1,2]:", torch.allclose(a, b))
print("== E relu_attributions='no'")
a = cc.ContrastGradCAM(m, m.layer).attribute(x, target=[0, 2, 4], relu_attributions="no")
print(" min of map (ReLU applied if >= 0):", a.min().item())
print("== H model returning NaN logits")


class NanOut(nn.Module):
    def __init__(s):
        super().__init__()
        s.inner = net()
        s.layer = s.inner.layer

    def forward(s, x):
        return s.inner(x) * float("nan")


mn = NanOut().eval()
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    for M in ["ContrastGradCAM", "MinMaxCAM", "OptiCAM"]:
        kw = {"n_iter": 2} if M == "OptiCAM" else {}
        o = getattr(cc, M)(mn, mn.layer).attribute(x, target=[0, 2, 4], **kw)
        print(
            f" {M}: map finite={bool(torch.isfinite(o).all())}, nan={bool(torch.isnan(o).any())}, max={o.max().item():.3g}"
        )
    print(" warnings:", [str(i.message)[:90] for i in w])
print("== I NoiseTunnel with return_weights=True")
from captum.attr import NoiseTunnel

o = NoiseTunnel(cc.ContrastGradCAM(m, m.layer)).attribute(
    x, nt_samples=2, stdevs=0.1, target=[0, 2, 4], return_weights=True
)
print(" type:", type(o).__name__, getattr(o, "shape", None))
print("== F OptiCAM n_iter=0")
o = cc.OptiCAM(m, m.layer).attribute(x, target=[0, 2, 4], n_iter=0, return_weights=True)
print(" weights (uniform = no optimisation):", o[1][0].tolist())
print("== G device_ids='0'")
o = cc.ContrastGradCAM(m, m.layer, device_ids="0").attribute(x, target=[0, 2, 4])
print(" ran:", o.shape)

# ---- section c3
import warnings

import torch
from harness import inputs, net

import captum_contrast as cc
from captum_contrast import metrics as M
from captum_contrast import training as T

warnings.simplefilter("ignore")
m = net()
x = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(5))
print("== K confusion_matrix")
y = torch.tensor([0, 1, 2, 3, 4, 0])
print(
    " float labels +0.7 ->",
    cc.confusion_matrix(m, [(x, y.float() + 0.7)], 5).sum(1).tolist(),
    "(rows = truncated labels)",
)
print(" bool labels ->", cc.confusion_matrix(m, [(x, y > 2)], 5).sum(1).tolist())


class NanM(torch.nn.Module):
    def forward(self, t):
        return net()(t) * float("nan")


print(
    " NaN logits ->",
    cc.confusion_matrix(NanM(), [(x, y)], 5).sum(0).tolist(),
    "(all predicted as class 0)",
)
print("== L ContrastSet")
print(
    " from_confusion_matrix(negative) ->",
    cc.ContrastSet.from_confusion_matrix(-torch.ones(3, 3, dtype=torch.long), k=1)
    .contrast_classes.flatten()
    .tolist(),
)
print(
    " from_confusion_matrix(NaN) ->",
    cc.ContrastSet.from_confusion_matrix(torch.full((3, 3), float("nan")), k=1)
    .contrast_classes.flatten()
    .tolist(),
)
cs = cc.ContrastSet(torch.tensor([[1], [0], [1]]))
print(" set(tensor([-1])) ->", cs(torch.tensor([-1])).tolist(), "(the last class's row)")
print("== J explainer")
xe = np.random.default_rng(0).random((4, 3, 16, 16), dtype=np.float32)
f = M.explainer(cc.ContrastGradCAM, layer="layer")
a = f(model=m, inputs=xe, targets=np.array([1.7, 2.2, 0.3, 3.9]))
b = f(model=m, inputs=xe, targets=np.array([1, 2, 0, 3]))
print(" float targets == truncated:", np.allclose(a, b))
a = f(model=m, inputs=xe, targets=np.array([True, False, True, True]))
b = f(model=m, inputs=xe, targets=np.array([1, 0, 1, 1]))
print(" bool targets == 0/1:", np.allclose(a, b))
print("== N normalize")
print(
    " inf map range ->",
    cc.normalize(torch.tensor([[[[1.0, float("inf")]]]]), "range").flatten().tolist(),
)
print(
    " nan map range ->",
    cc.normalize(torch.tensor([[[[1.0, float("nan"), 3.0]]]]), "range").flatten().tolist(),
)
print(
    " all-negative map max ->",
    cc.normalize(torch.tensor([[[[-1.0, -3.0]]]]), "max").flatten().tolist(),
)
print("== O training losses")
head = torch.nn.Linear(6, 2)
feats = torch.randn(4, 6, 5, 5)
logits = head(feats.mean((2, 3)))
lab = torch.tensor([0, 1, 1, 0])
h = torch.rand(4, 5, 5)
l1 = T.CYBORGLoss(head)(logits, feats, lab.bool(), h)
l2 = T.CYBORGLoss(head)(logits, feats, lab, h)
print(" bool labels == int labels:", torch.allclose(l1, l2))
print(
    " human map 7x7 for 5x5 CAMs ->",
    T.CYBORGLoss(head)(logits, feats, lab, torch.rand(4, 7, 7)).item(),
)
print(" NaN logits ->", T.CYBORGLoss(head)(logits * float("nan"), feats, lab, h).item())
print("== P stats")
print(" wilcoxon_below(ones((3,3))) ->", M.wilcoxon_below(np.ones((3, 3))))
print(" wilcoxon_below([50]*6) ->", M.wilcoxon_below([50.0] * 6))
print(
    " wilcoxon_below(threshold=nan) ->",
    M.wilcoxon_below([10.0, 20.0, 30.0], threshold=float("nan")),
)
print(" trapezoid len mismatch ->", M.trapezoid(np.array([0.0, 1.0]), np.array([0.0, 0.5, 1.0])))
print(" trapezoid unsorted ->", M.trapezoid(np.array([0.0, 1.0, 1.0]), np.array([1.0, 0.0, 0.5])))
print(" harmonic_mean(-1, 1) ->", M.harmonic_mean(np.array([-1.0]), np.array([1.0])))
print(
    " drop_scores(p=-0.5, o=0.5) ->",
    M.drop_scores(np.array([-0.5]), np.array([0.5])),
    " p=1.5 ->",
    M.drop_scores(np.array([1.5]), np.array([0.5])),
)
print(" gain_scores shapes (2,) vs (1,) ->", M.gain_scores(np.array([0.5, 0.2]), np.array([0.5])))
r = np.arange(16.0).reshape(1, 4, 4)
print(" top_k_agreement(top_k=150) ->", M.top_k_agreement(r, -r, top_k=150))
print(
    " detections(threshold=2.0) ->",
    M.detections(net(), np.zeros((2, 3, 16, 16), np.float32), threshold=2.0),
)
xd = np.random.default_rng(0).random((4, 3, 16, 16), dtype=np.float32)
yd = np.array([0, 2, 4, 1])
ad = np.random.default_rng(1).random((4, 1, 4, 4)).astype(np.float32)
print(
    " Deletion(substrate=nan) ->",
    M.Deletion(substrate=float("nan"))(model=m, x_batch=xd, y_batch=yd, a_batch=ad),
)
print(
    " Deletion(step=1e9) ->",
    M.Deletion(step=10**9)(model=m, x_batch=xd, y_batch=yd, a_batch=ad),
    "default:",
    M.Deletion()(model=m, x_batch=xd, y_batch=yd, a_batch=ad),
)
print(
    " AverageDrop(complex map) ->",
    M.AverageDrop()(model=m, x_batch=xd, y_batch=yd, a_batch=ad.astype(np.complex64) * 1j),
)

# ---- section CLI
import contextlib
import io
import tempfile
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

from captum_contrast.app import cli

d = Path(tempfile.mkdtemp())
torch.manual_seed(0)
torch.save(torchvision.models.resnet18(num_classes=5).state_dict(), d / "w.pth")
ramp = np.tile(np.linspace(0, 255, 80), (60, 1)).astype(np.uint8)
Image.fromarray(ramp, "L").convert("RGB").save(d / "ref.png")
Image.fromarray(ramp.astype(np.uint16) * 257).save(d / "ramp16.png")
Image.fromarray(ramp.astype(np.float32) / 255, "F").save(d / "rampf.tif")
print(
    "16-bit PNG mode:",
    Image.open(d / "ramp16.png").mode,
    " float TIFF mode:",
    Image.open(d / "rampf.tif").mode,
)


def run(p, out):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            code = cli.main(
                [
                    "explain",
                    "--arch",
                    "resnet18",
                    "--weights",
                    str(d / "w.pth"),
                    "--resize",
                    "64",
                    "--crop",
                    "64",
                    "--target",
                    "1",
                    "--out",
                    str(d / out),
                    str(p),
                ]
            )
        except SystemExit as e:
            code = e.code
    if code:
        print(buf.getvalue()[-300:])
    pngs = sorted((d / out).glob("*.png"))
    return code, np.asarray(Image.open(pngs[0]).convert("RGB"), float)


c0, r = run(d / "ref.png", "r")
for name in ["ramp16.png", "rampf.tif"]:
    c, t = run(d / name, "o_" + name)
    print(f"{name}: exit {c}; overlay mean |diff| vs 8-bit RGB = {np.abs(t - r).mean():.1f}/255")
# what PIL's convert('RGB') does with the 16-bit ramp (the usual clipping)
a = np.asarray(Image.open(d / "ramp16.png").convert("RGB"))
print(
    "PIL convert('RGB') of the 16-bit ramp: share of pixels = 255:",
    (a[..., 0] == 255).mean().round(3),
)
# EXIF orientation 6
rng = np.random.default_rng(0)
rgb = (rng.random((60, 80, 3)) * 255).astype(np.uint8)
im = Image.fromarray(rgb)
ex = im.getexif()
ex[0x0112] = 6
im.save(d / "exif.jpg", exif=ex, quality=100, subsampling=0)
Image.fromarray(np.rot90(np.asarray(Image.open(d / "exif.jpg").convert("RGB")), k=-1).copy()).save(
    d / "upright.png"
)
c1, e = run(d / "exif.jpg", "e")
c2, u = run(d / "upright.png", "u")
print(
    f"EXIF orientation 6 JPEG: exit {c1}; overlay shape {e.shape} vs upright {u.shape}; mean |diff| {np.abs(e - u).mean() if e.shape == u.shape else 'n/a'}"
)
