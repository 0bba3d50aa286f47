"""Probe harness: case registry, state snapshots, tiny models and float64 references."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

CASES: list[Case] = []
WARNINGS: list = []
WARNINGS_REC: list | None = None


@dataclass
class Case:
    name: str
    fn: Callable[[], Any]
    names: tuple[str, ...] = ()
    repro: str = ""
    group: str = ""
    valid: bool = False
    timeout: float = 30.0


@dataclass
class Verdict:
    cls: str
    detail: str = ""


class Wrong(Exception):
    """Silent wrong: plausible output that is wrong."""


class Obscure(Exception):
    """Obscure error detected by the case itself (e.g. CLI traceback)."""


class Clear(Exception):
    """Clear error detected by the case itself (e.g. CLI one-line message)."""


def add(name: str, fn: Callable[[], Any], names=(), repro: str = "", valid=False, timeout=30.0):
    group = name.split(".")[0]
    if isinstance(names, str):
        names = (names,)
    CASES.append(Case(name, fn, tuple(names), repro, group, valid, timeout))


def warned(pattern: str = "") -> bool:
    rec = WARNINGS_REC or []
    return any(pattern.lower() in str(w.message).lower() for w in rec)


# ---------------------------------------------------------------- state tracking

_TRACKED: list[tuple[Any, Any, str]] = []


def reset_tracking() -> None:
    _TRACKED.clear()


def _tensor_snap(t: torch.Tensor | None):
    if t is None:
        return None
    return (t.detach().clone(), t.requires_grad, t.dtype, t.device, tuple(t.shape))


def _same_tensor(a, b) -> bool:
    if a is None or b is None:
        return a is b
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.is_floating_point() or a.is_complex():
        return bool(((a == b) | (torch.isnan(a) & torch.isnan(b))).all())
    return bool(torch.equal(a, b))


def _module_snap(m: nn.Module) -> dict:
    snap: dict = {}
    for name, p in m.named_parameters(recurse=True):
        snap[f"param {name}"] = p.detach().clone()
        snap[f"requires_grad {name}"] = p.requires_grad
        snap[f"grad {name}"] = None if p.grad is None else p.grad.detach().clone()
        snap[f"param hooks {name}"] = len(getattr(p, "_backward_hooks", None) or {})
        snap[f"dtype {name}"] = p.dtype
    for name, b in m.named_buffers(recurse=True):
        snap[f"buffer {name}"] = b.detach().clone()
    for name, sub in m.named_modules():
        snap[f"training {name}"] = sub.training
        for attr in (
            "_forward_hooks",
            "_forward_pre_hooks",
            "_backward_hooks",
            "_backward_pre_hooks",
            "_state_dict_hooks",
            "_load_state_dict_pre_hooks",
        ):
            snap[f"{attr} {name}"] = len(getattr(sub, attr, {}) or {})
        snap[f"class {name}"] = type(sub).__name__
        snap[f"inplace {name}"] = getattr(sub, "inplace", None)
    return snap


def track(obj, label: str = ""):
    """Snapshot a module or tensor now; the harness compares it after the case."""
    if isinstance(obj, nn.Module):
        _TRACKED.append((obj, _module_snap(obj), label or type(obj).__name__))
    elif isinstance(obj, torch.Tensor):
        _TRACKED.append((obj, (_tensor_snap(obj), _tensor_snap(obj.grad)), label or "tensor"))
    return obj


def check_tracked() -> list[str]:
    out = []
    for obj, snap, label in _TRACKED:
        if isinstance(obj, nn.Module):
            now = _module_snap(obj)
            for key, before in snap.items():
                after = now.get(key, "<missing>")
                if isinstance(before, torch.Tensor):
                    if not isinstance(after, torch.Tensor) or not _same_tensor(before, after):
                        out.append(f"{label}: {key} changed")
                elif before != after:
                    out.append(f"{label}: {key} {before} -> {after}")
            for key in now:
                if key not in snap:
                    out.append(f"{label}: new {key}")
        else:
            (val, grad) = snap
            t = obj
            if not _same_tensor(val[0], t.detach()) or val[1] != t.requires_grad:
                out.append(f"{label}: input tensor value/requires_grad changed")
            g = t.grad if t.is_leaf else None
            if (grad is None) != (g is None) or (grad is not None and not _same_tensor(grad[0], g)):
                out.append(f"{label}: input .grad written")
    return out[:8]


def global_state() -> dict:
    import torch.nn.modules.module as mm

    state = {
        "grad_enabled": torch.is_grad_enabled(),
        "inference_mode": torch.is_inference_mode_enabled(),
        "default_dtype": torch.get_default_dtype(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "anomaly": torch.is_anomaly_enabled(),
        "num_threads": torch.get_num_threads(),
        "global_forward_hooks": len(mm._global_forward_hooks),
        "global_forward_pre_hooks": len(mm._global_forward_pre_hooks),
        "global_backward_hooks": len(mm._global_backward_hooks),
        "np_err": tuple(sorted(np.geterr().items())),
        "warnings_filters": len(warnings.filters),
    }
    return state


# ---------------------------------------------------------------- models

NC = 5  # classes of the standard net


class Net(nn.Module):
    """conv(3->8, stride 2) -> ReLU -> layer = [conv(8->K) + ReLU] -> GAP -> fc."""

    def __init__(self, k=6, ncls=NC, cin=3, bn=False, drop=False, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.stem = nn.Sequential(nn.Conv2d(cin, 8, 3, stride=2, padding=1), nn.ReLU())
        layer = [nn.Conv2d(8, k, 3, padding=1)]
        if bn:
            layer.append(nn.BatchNorm2d(k))
        layer.append(nn.ReLU())
        self.layer = nn.Sequential(*layer)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.5) if drop else nn.Identity()
        self.fc = nn.Linear(k, ncls)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.7)

    def forward(self, x):
        return self.fc(self.drop(self.pool(self.layer(self.stem(x))).flatten(1)))


def net(**kw) -> Net:
    return Net(**kw).eval()


def inputs(b=3, seed=1, c=3, s=16, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, s, s, generator=g).to(dtype)


def prepare() -> None:
    """Warm imports before forking so children start fast."""
    import captum.attr  # noqa: F401
    import quantus  # noqa: F401

    import captum_contrast as cc
    import captum_contrast.metrics  # noqa: F401
    import captum_contrast.training  # noqa: F401

    # one call of each method warms lazy imports and kernels, so forked children start warm
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m, x = net(), inputs()
        for name in ("ContrastGradCAM", "MinMaxCAM", "DifferenceSalience"):
            kw = {"contrast": "runner-up"} if name == "DifferenceSalience" else {}
            getattr(cc, name)(m, m.layer).attribute(x, target=[0, 1, 2], **kw)
        cc.OptiCAM(m, m.layer).attribute(x, target=[0, 1, 2], n_iter=1)
        ref_parts(m, m.layer, x)
        captum.attr.LayerGradCam(m, m.layer).attribute(x, target=0)
        captum_contrast.metrics.AverageDrop()(
            model=m,
            x_batch=x.numpy(),
            y_batch=np.array([0, 1, 2]),
            a_batch=np.ones((3, 1, 4, 4), np.float32),
        )


# ---------------------------------------------------------------- references (float64)


def module_name(model: nn.Module, layer: nn.Module) -> str:
    for name, sub in model.named_modules():
        if sub is layer:
            return name
    raise KeyError("layer not in model")


def ref_parts(model: nn.Module, layer: nn.Module, x: torch.Tensor, fwd=None):
    """A (B,K,h,w), logits S (B,C), full gradients G (B,C,K,h,w), all float64."""
    name = module_name(model, layer)
    m = copy.deepcopy(model).double().eval()
    lay = m.get_submodule(name)
    box = {}

    def hook(_mod, _inp, out):
        box["A"] = out
        return None

    h = lay.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            s = (fwd or (lambda mm, xx: mm(xx)))(m, x.detach().double())
            a = box["A"]
            grads = []
            for c in range(s.shape[1]):
                (g,) = torch.autograd.grad(s[:, c].sum(), a, retain_graph=True)
                grads.append(g)
    finally:
        h.remove()
    return a.detach(), s.detach(), torch.stack(grads, 1)


def combine(w: torch.Tensor, a: torch.Tensor, relu: bool) -> torch.Tensor:
    cam = (w[:, :, None, None] * a).sum(1, keepdim=True)
    return cam.clamp_min(0) if relu else cam


def ref_gradcam(parts, target, relu=True):
    a, s, g = parts
    t = _targets(target, s)
    w = torch.stack([g[b, t[b]].mean((-2, -1)) for b in range(len(t))])
    return combine(w, a, relu)


def _targets(target, s):
    b = s.shape[0]
    if target is None:
        return s.argmax(1).tolist()
    if isinstance(target, int):
        return [target] * b
    return [int(v) for v in target]


def ref_case(parts, target, k=1, contrast=None, projection="full", relu=True):
    a, s, g = parts
    t = _targets(target, s)
    maps_w = []
    for b in range(len(t)):
        gu = g[b, t[b]].mean((-2, -1))
        if contrast is None:
            order = [c for c in s[b].argsort(descending=True).tolist() if c != t[b]]
            v = order[:k]
        elif isinstance(contrast, int):
            v = [contrast]
        elif isinstance(contrast, torch.Tensor) and contrast.dim() == 2:
            v = contrast[b].tolist()
        else:
            v = list(contrast)
        gbar = torch.stack([g[b, c].mean((-2, -1)) for c in v]).mean(0)
        coef = (gu @ gbar) / (gbar @ gbar + 1e-8)
        if projection == "shared":
            coef = coef.clamp_min(0)
        maps_w.append(gu - coef * gbar)
    return combine(torch.stack(maps_w), a, relu)


def ref_minmax(parts, target, labels=None, variant="minmax", threshold=0.5, relu=True):
    a, s, g = parts
    det = (torch.sigmoid(s) > threshold) if labels is None else labels.bool()
    ws = []
    for b in range(s.shape[0]):
        cset = det[b].nonzero().flatten().tolist()
        if target is None:
            pool = cset if cset else list(range(s.shape[1]))
            c = max(pool, key=lambda i: s[b, i].item())
        else:
            c = _targets(target, s)[b]
        others = [n for n in cset if n != c]
        n_c = len(cset)
        if variant == "minmax":
            grad = g[b, c] - sum((g[b, n] for n in others), torch.zeros_like(g[b, c])) / max(
                n_c - 1, 1
            )
            ws.append(grad.mean((-2, -1)))
        else:
            z = torch.zeros_like(g[b, c])
            sn = sum((g[b, n] for n in others), z)
            sc = sum((g[b, n] for n in cset), z)
            term = g[b, c].clamp_min(0) - sn.clamp_min(0) / max(n_c - 1, 1)
            term = term + sc.clamp_max(0) / max(n_c, 1)
            ws.append(term.mean((-2, -1)))
    return combine(torch.stack(ws), a, relu)


def ref_diff(parts, target, contrast=None, relu=False):
    a, s, g = parts
    t = _targets(target, s)
    ws = []
    for b in range(len(t)):
        if contrast is None:
            f = 1 - t[b]
        elif contrast == "runner-up":
            f = max((c for c in range(s.shape[1]) if c != t[b]), key=lambda c: s[b, c].item())
        elif isinstance(contrast, int):
            f = contrast
        else:
            f = int(contrast[b])
        ws.append((g[b, t[b]] - g[b, f]).mean((-2, -1)))
    return combine(torch.stack(ws), a, relu)


def rel_err(out, ref) -> float:
    out = torch.as_tensor(out).detach().double().cpu()
    ref = torch.as_tensor(ref).detach().double().cpu()
    if out.shape != ref.shape:
        return float("inf")
    scale = ref.abs().max().item() + 1e-12
    return (out - ref).abs().max().item() / scale


def close(out, ref, tol=1e-4, what="map"):
    if isinstance(out, tuple):
        out = out[0]
    if not isinstance(out, torch.Tensor | np.ndarray):
        raise Wrong(f"{what}: returned {type(out).__name__}, expected a tensor")
    o = torch.as_tensor(out)
    if tuple(o.shape) != tuple(ref.shape):
        raise Wrong(f"{what}: shape {tuple(o.shape)} != reference {tuple(ref.shape)}")
    if not torch.isfinite(o.double()).all():
        if warned():
            return Verdict("correct", "non-finite with a warning")
        raise Wrong(f"{what}: non-finite values, no warning")
    e = rel_err(o, ref)
    if e > tol:
        raise Wrong(f"{what}: relative error {e:.3g} > {tol} vs reference")
    return Verdict("correct", f"rel err {e:.1e}")


def accepted(what: str, out=None):
    """Invalid input that came back as a result: silent wrong."""
    shape = ""
    if isinstance(out, torch.Tensor | np.ndarray):
        shape = f" (returned shape {tuple(out.shape)})"
    elif isinstance(out, tuple) and out and isinstance(out[0], torch.Tensor):
        shape = f" (returned shape {tuple(out[0].shape)})"
    raise Wrong(f"accepted {what} silently{shape}")


@dataclass
class Ctx:
    """Standard fixture: a tracked eval net, its layer, inputs and float64 parts."""

    model: nn.Module = field(default_factory=net)
    x: torch.Tensor = field(default_factory=inputs)

    def __post_init__(self):
        self.layer = self.model.layer
        self._parts = None

    @property
    def parts(self):
        if self._parts is None:
            self._parts = ref_parts(self.model, self.layer, self.x)
        return self._parts

    def tracked(self):
        track(self.model, "model")
        track(self.x, "inputs")
        return self
