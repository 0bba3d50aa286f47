"""Hostile inputs, model structures, wrappers, layouts, threads and NoiseTunnel."""

from __future__ import annotations

import copy
import functools
import threading
from collections import namedtuple
from dataclasses import dataclass

import torch
from captum.attr import LayerGradCam, NoiseTunnel
from cases_methods import METHODS, SETUP, _kw, check_method
from harness import (
    Ctx,
    Net,
    Verdict,
    Wrong,
    accepted,
    add,
    close,
    inputs,
    net,
    ref_parts,
    track,
    warned,
)
from torch import nn

import captum_contrast as cc

T = [0, 2, 4]


def _run(method, model, layer, x, target=T, **kw):
    return getattr(cc, method)(model, layer).attribute(x, target=target, **_kw(method, kw))


def _base(method, x=None):
    """The method's map on the plain float32 eval net (metamorphic reference)."""
    m = net()
    x = inputs() if x is None else x
    return _run(method, m, m.layer, x)


def _same_as_base(method, out, x=None, tol=1e-4):
    if method == "OptiCAM":
        tol = max(tol, 1e-3)
    ref = _base(method, x)
    return close(out, ref.detach().double(), tol=tol, what="map vs plain-model map")


# ------------------------------------------------------------------ inputs

INPUT_VARIANTS = {
    # name: (input builder, model dtype or None, valid, tolerance)
    "float64": (lambda: inputs().double(), torch.float64, True, 1e-4),
    "float16": (lambda: inputs().half(), torch.float16, True, 2e-2),
    "bfloat16": (lambda: inputs().bfloat16(), torch.bfloat16, True, 6e-2),
    "channels_last": (
        lambda: inputs().contiguous(memory_format=torch.channels_last),
        None,
        True,
        1e-4,
    ),
    "non_contiguous": (
        lambda: inputs().transpose(2, 3).contiguous().transpose(2, 3),
        None,
        True,
        1e-4,
    ),
    "expanded": (lambda: inputs(b=1).expand(3, -1, -1, -1), None, True, 1e-4),
    "requires_grad": (lambda: inputs().requires_grad_(), None, True, 1e-4),
    "batch1": (lambda: inputs(b=1), None, True, 1e-4),
    "tuple_input": (lambda: (inputs(),), None, True, 1e-4),
}
INPUT_BAD = {
    "int_input": lambda: (inputs() * 255).long(),
    "uint8_input": lambda: (inputs() * 255).to(torch.uint8),
    "complex_input": lambda: inputs().to(torch.complex64),
    "bool_input": lambda: inputs() > 0.5,
    "nan_input": lambda: inputs().index_put_((torch.tensor([1]),), torch.tensor(float("nan"))),
    "inf_input": lambda: inputs().index_put_((torch.tensor([0]),), torch.tensor(float("inf"))),
    "empty_batch": lambda: inputs()[:0],
    "unbatched_3d": lambda: inputs()[0],
    "wrong_channels": lambda: inputs(c=2),
    "list_input": lambda: [inputs()],
    "numpy_input": lambda: inputs().numpy(),
    "meta_input": lambda: inputs().to("meta"),
    "two_tensors_tuple": lambda: (inputs(), inputs()),
    "dict_input": lambda: {"x": inputs()},
    "float64_input_float32_model": lambda: inputs().double(),
    "zero_width": lambda: torch.zeros(3, 3, 16, 0),
}


def _input_valid(method, key):
    build, dtype, _, tol = INPUT_VARIANTS[key]

    def fn():
        m = net()
        if dtype is not None:
            m = m.to(dtype)
        x = build()
        track(m, "model")
        track(x[0] if isinstance(x, tuple) else x, "inputs")
        out = getattr(cc, method)(m, m.layer).attribute(
            x,
            target=T[: (x[0] if isinstance(x, tuple) else x).shape[0]] if key != "batch1" else [0],
            **_kw(method),
        )
        base_x = x[0] if isinstance(x, tuple) else x
        base_x = base_x.detach().float().contiguous()
        if key == "batch1":
            m2 = net()
            ref = _run(method, m2, m2.layer, base_x, target=[0])
            return close(out, ref.detach().double(), tol=tol if method != "OptiCAM" else 1e-3)
        return _same_as_base(method, out, base_x, tol)

    return fn


def _input_bad(method, key):
    def fn():
        m = net()
        track(m, "model")
        x = INPUT_BAD[key]()
        if isinstance(x, torch.Tensor) and x.device.type != "meta":
            track(x, "inputs")
        out = getattr(cc, method)(m, m.layer).attribute(x, target=T, **_kw(method))
        o = out[0] if isinstance(out, tuple) else out
        if isinstance(o, torch.Tensor) and key in ("nan_input", "inf_input"):
            if torch.isnan(o).any() and warned():
                return Verdict("correct", "NaN with a warning")
        accepted(key, out)

    return fn


for _m in METHODS:
    for _k in INPUT_VARIANTS:
        add(
            f"input.{_m}.{_k}",
            _input_valid(_m, _k),
            names=("input", "dtype"),
            repro=f"{SETUP}; m = m.to(<dtype>); {_m}(m, m.layer).attribute(<{_k} x>, target=[0,2,4], **{_kw(_m)})",
            valid=True,
        )
    for _k in INPUT_BAD:
        add(
            f"input.{_m}.bad.{_k}",
            _input_bad(_m, _k),
            names=(
                "input",
                "dtype",
                "finite",
                "nan",
                "batch",
                "channel",
                "shape",
                "empty",
                "device",
                "tensor",
            ),
            repro=f"{SETUP}; {_m}(m, m.layer).attribute(<{_k}>, target=[0,2,4], **{_kw(_m)})",
        )


# ------------------------------------------------------------------ model structures

NT = namedtuple("NT", ["logits", "aux"])


@dataclass
class HFOut:
    logits: torch.Tensor
    hidden: torch.Tensor | None = None


class Wrap(nn.Module):
    def __init__(self, kind, inner=None):
        super().__init__()
        self.inner = inner or net()
        self.layer = self.inner.layer
        self.kind = kind

    def forward(self, x):
        y = self.inner(x)
        return {
            "dict": lambda: {"logits": y},
            "tuple": lambda: (y, y.detach() * 0),
            "namedtuple": lambda: NT(y, None),
            "hf": lambda: HFOut(y),
            "3d": lambda: y[:, :, None],
            "list": lambda: [y],
            "1d": lambda: y[:, 0],
            "detached": lambda: y.detach(),
            "nan_logits": lambda: y * float("nan"),
            "int_logits": lambda: y.long(),
            "no_batch": lambda: y.sum(0),
            "dict_two": lambda: {"a": y, "b": y},
        }[self.kind]()


STRUCT_OK = ["dict", "tuple", "namedtuple", "hf"]
STRUCT_BAD = ["3d", "list", "1d", "detached", "nan_logits", "int_logits", "no_batch", "dict_two"]


def _struct(method, kind, ok):
    def fn():
        m = Wrap(kind).eval()
        track(m)
        out = _run(method, m, m.layer, inputs())
        if ok:
            return _same_as_base(method, out)
        o = out[0] if isinstance(out, tuple) else out
        if kind == "nan_logits" and isinstance(o, torch.Tensor) and warned():
            return Verdict("correct", "warned")
        if kind == "tuple":
            return _same_as_base(method, out)
        accepted(f"model output {kind}", out)

    return fn


for _m in METHODS:
    for _k in STRUCT_OK + STRUCT_BAD:
        ok = _k in STRUCT_OK
        add(
            f"model.{_m}.output_{_k}",
            _struct(_m, _k, ok),
            names=(
                "output",
                "logits",
                "forward",
                "model",
                "tensor",
                "finite",
                "nan",
                "dict",
                "tuple",
                "shape",
            ),
            repro=f"m = Wrap({_k!r}).eval()  # returns {_k} of Net's logits; {_m}(m, m.layer).attribute(x, target=[0,2,4])",
            valid=ok,
        )


# training-mode models with BatchNorm/Dropout, wrapped in various ways


def _train_bn(method, wrapper):
    def fn():
        m = net(bn=True, drop=True)
        m.train()
        track(m, "train-mode model")
        f = {
            "plain": lambda: m,
            "lambda": lambda: lambda x: m(x),
            "partial": lambda: functools.partial(m),
            "dataparallel": lambda: nn.DataParallel(m),
            "method": lambda: m.forward,
            "sequential": lambda: nn.Sequential(m),
        }[wrapper]()
        x = inputs()
        out1 = getattr(cc, method)(f, m.layer).attribute(x, target=T, **_kw(method))
        out2 = getattr(cc, method)(f, m.layer).attribute(x, target=T, **_kw(method))
        o1 = out1[0] if isinstance(out1, tuple) else out1
        o2 = out2[0] if isinstance(out2, tuple) else out2
        if not torch.equal(o1, o2):
            raise Wrong("two identical calls on a train-mode model differ")
        ref_m = copy.deepcopy(m).eval()
        ref = _run(method, ref_m, ref_m.layer, x)
        return close(out1, ref.detach().double(), tol=1e-4 if method != "OptiCAM" else 1e-3)

    return fn


for _m in METHODS:
    for _w in ["plain", "lambda", "partial", "dataparallel", "method", "sequential"]:
        add(
            f"model.{_m}.train_bn_dropout_{_w}",
            _train_bn(_m, _w),
            names=("train", "eval", "mode"),
            repro=f"m = Net(bn=True, drop=True).train(); f = {_w}(m); {_m}(f, m.layer).attribute(x, target=[0,2,4]) twice",
            valid=True,
        )


class Twice(nn.Module):
    """The explained conv runs twice (weight sharing)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 6, 3, stride=2, padding=1), nn.ReLU())
        self.layer = nn.Conv2d(6, 6, 3, padding=1)
        self.fc = nn.Linear(6, 5)
        torch.manual_seed(0)

    def forward(self, x):
        h = torch.relu(self.layer(self.stem(x)))
        h = torch.relu(self.layer(h))
        return self.fc(h.mean((2, 3)))


class TupleLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, h):
        return (torch.relu(self.conv(h)),)


class HFStyle(nn.Module):
    """A block returning (h,) used as h + block(h)[0] (Hugging Face style)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU())
        self.layer = TupleLayer()
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        h = self.stem(x)
        h = h + self.layer(h)[0]
        return self.fc(h.mean((2, 3)))


class InplaceAfter(Net):
    """ReLU(inplace=True) right after the explained conv modifies its output in place."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Conv2d(8, 6, 3, padding=1)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.fc(self.pool(self.act(self.layer(self.stem(x)))).flatten(1))


def _gc_ref(m, layer, x, target=T):
    return LayerGradCam(m, layer).attribute(x, target=target, relu_attributions=True)


def _hf_tuple(method):
    def fn():
        m = HFStyle().eval()
        track(m)
        x = inputs()
        out = _run(method, m, m.layer, x)
        # reference: hand-computed on the same model with the first tuple element hooked
        box = {}

        def hook(_m, _i, out_):
            box["a"] = out_[0]

        h = m.layer.register_forward_hook(hook)
        try:
            s = m(x)
            a = box["a"]
            grads = [torch.autograd.grad(s[:, c].sum(), a, retain_graph=True)[0] for c in range(5)]
        finally:
            h.remove()
        g = torch.stack(grads, 1).double()
        parts = (a.detach().double(), s.detach().double(), g)
        return check_method(method, out, parts, T)

    return fn


def _twice(method):
    def fn():
        m = Twice().eval()
        track(m)
        out = _run(method, m, m.layer, inputs())
        o = out[0] if isinstance(out, tuple) else out
        accepted("a layer that runs twice (ambiguous: which call is explained?)", o)

    return fn


def _inplace(method):
    def fn():
        m = InplaceAfter().eval()
        track(m)
        x = inputs()
        out = _run(method, m, m.layer, x)
        ref_m = copy.deepcopy(m)
        ref_m.act.inplace = False
        parts = ref_parts(ref_m, ref_m.layer, x)
        return check_method(method, out, parts, T)

    return fn


for _m in METHODS:
    add(
        f"model.{_m}.layer_returns_tuple_hf",
        _hf_tuple(_m),
        names=("layer", "tuple"),
        repro=f"m = HFStyle().eval()  # h + layer(h)[0]; {_m}(m, m.layer).attribute(x, target=[0,2,4])",
        valid=True,
    )
    add(
        f"model.{_m}.layer_called_twice",
        _twice(_m),
        names=("layer", "twice", "more than once", "called"),
        repro=f"m = Twice().eval(); {_m}(m, m.layer).attribute(x, target=[0,2,4])",
    )
    add(
        f"model.{_m}.inplace_relu_after_layer",
        _inplace(_m),
        names=("inplace",),
        repro=f"m = InplaceAfter().eval()  # layer -> ReLU(inplace=True); {_m}(m, m.layer).attribute(x, target=[0,2,4])",
        valid=True,
    )


# frozen params, existing hooks, existing grads, scripted


def _prepared(method, prep, what):
    def fn():
        m = net()
        extra = prep(m)
        track(m)
        x = inputs()
        out = _run(method, m, m.layer, x)
        if what == "hook_scale":
            # the user's hook doubles the layer output: the model computes on 2A
            m2 = net()
            m2.layer.register_forward_hook(lambda _m, _i, o: o * 2)
            ref = _run(method, m2, m2.layer, x)
            return close(out, ref.detach().double(), tol=1e-3 if method == "OptiCAM" else 1e-4)
        del extra
        return _same_as_base(method, out)

    return fn


def _freeze(m):
    for p in m.parameters():
        p.requires_grad_(False)


def _partial_freeze(m):
    m.stem.requires_grad_(False)


def _fill_grads(m):
    for p in m.parameters():
        p.grad = torch.ones_like(p)


PREPS = {
    "frozen_all": (_freeze, "same"),
    "frozen_stem": (_partial_freeze, "same"),
    "grads_already_set": (_fill_grads, "same"),
    "forward_hook_counting": (
        lambda m: m.layer.register_forward_hook(lambda *_: None),
        "same",
    ),
    "forward_pre_hook": (lambda m: m.layer.register_forward_pre_hook(lambda *_: None), "same"),
    "full_backward_hook": (lambda m: m.layer.register_full_backward_hook(lambda *_: None), "same"),
    "hook_scale_output": (
        lambda m: m.layer.register_forward_hook(lambda _m, _i, o: o * 2),
        "hook_scale",
    ),
    "param_tensor_hook": (lambda m: m.fc.weight.register_hook(lambda g: g), "same"),
}
for _m in METHODS:
    for _k, (prep, what) in PREPS.items():
        add(
            f"model.{_m}.{_k}",
            _prepared(_m, prep, what),
            names=("hook", "grad"),
            repro=f"m = Net().eval(); <{_k}>; {_m}(m, m.layer).attribute(x, target=[0,2,4])",
            valid=True,
        )


def _scripted(method):
    def fn():
        m = net()
        sm = torch.jit.script(m)
        track(m)
        out = _run(method, sm, sm.layer, inputs())
        return _same_as_base(method, out)

    return fn


for _m in METHODS:
    add(
        f"model.{_m}.torchscript",
        _scripted(_m),
        names=("script", "jit", "hook", "layer"),
        repro=f"sm = torch.jit.script(Net().eval()); {_m}(sm, sm.layer).attribute(x, target=[0,2,4])",
        valid=True,
    )


# inside no_grad / inference_mode / default dtype changed


def _ctx_case(method, ctxname):
    def fn():
        m = net()
        track(m)
        x = inputs()
        if ctxname == "no_grad":
            with torch.no_grad():
                out = _run(method, m, m.layer, x)
            return _same_as_base(method, out)
        if ctxname == "inference_mode":
            with torch.inference_mode():
                out = _run(method, m, m.layer, x)
            accepted("a call under inference_mode", out)
        if ctxname == "default_float64":
            torch.set_default_dtype(torch.float64)
            try:
                out = _run(method, m, m.layer, x)
            finally:
                torch.set_default_dtype(torch.float32)
            return _same_as_base(method, out)
        if ctxname == "anomaly":
            with torch.autograd.detect_anomaly(check_nan=False):
                out = _run(method, m, m.layer, x)
            return _same_as_base(method, out)
        return None

    return fn


for _m in METHODS:
    for _c in ["no_grad", "inference_mode", "default_float64", "anomaly"]:
        add(
            f"model.{_m}.under_{_c}",
            _ctx_case(_m, _c),
            names=("inference", "grad"),
            repro=f"with <{_c}>: {_m}(m, m.layer).attribute(x, target=[0,2,4])",
            valid=_c != "inference_mode",
        )


# ------------------------------------------------------------------ layouts


class StrideNet(nn.Module):
    """Conv2d(3, 5, 3, stride=3) on 20x24: (B, 5, 6, 8), channels-first by construction."""

    def __init__(self, cin=3, k=5, stride=3):
        super().__init__()
        torch.manual_seed(0)
        self.layer = nn.Conv2d(cin, k, 3, stride=stride)
        self.fc = nn.Linear(k, 5)

    def forward(self, x):
        return self.fc(torch.relu(self.layer(x)).mean((2, 3)))


class NHWC(nn.Module):
    """Permutes to NHWC, LayerNorm over channels (channels-last layer), pools."""

    def __init__(self, k=8):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, k, 2, stride=2)
        self.layer = nn.LayerNorm(k)
        self.fc = nn.Linear(k, 5)

    def forward(self, x):
        h = self.stem(x).permute(0, 2, 3, 1)
        return self.fc(torch.relu(self.layer(h)).mean((1, 2)))


def _layout(method, build, x_shape, transform):
    def fn():
        m = build().eval()
        track(m)
        x = torch.rand(*x_shape, generator=torch.Generator().manual_seed(2))
        out = _run(method, m, m.layer, x)
        o = out[0] if isinstance(out, tuple) else out
        m2 = copy.deepcopy(m)
        init = {"reshape_transform": transform} if transform else {}
        ref = getattr(cc, method)(m2, m2.layer, **init).attribute(x, target=T, **_kw(method))
        r = ref[0] if isinstance(ref, tuple) else ref
        if transform is None:
            gc = _gc_ref(m2, m2.layer, x)
            if o.shape != gc.shape:
                raise Wrong(f"map {tuple(o.shape)} but LayerGradCam gives {tuple(gc.shape)}")
            return Verdict("correct", "shape as LayerGradCam")
        return close(o, r.detach().double(), tol=1e-3 if method == "OptiCAM" else 1e-4)

    return fn


LAYOUTS = {
    "conv_stride3_20x24": (lambda: StrideNet(), (3, 3, 20, 24), None),
    "conv_stride1_K_eq_w": (lambda: StrideNet(k=8, stride=1), (3, 3, 10, 10), None),
    "conv_K_eq_h_eq_w": (lambda: StrideNet(k=8, stride=1), (3, 3, 10, 10), None),
    "conv_1ch_layer": (lambda: StrideNet(k=1, stride=1), (3, 3, 9, 9), None),
    "nhwc_layernorm_K8_grid8": (lambda: NHWC(8), (3, 3, 16, 16), cc.channels_last_transform),
    "nhwc_layernorm_K8_grid4": (lambda: NHWC(8), (3, 3, 8, 8), cc.channels_last_transform),
    "nhwc_layernorm_K6_grid8": (lambda: NHWC(6), (3, 3, 16, 16), cc.channels_last_transform),
    "nhwc_layernorm_K4_grid4x6": (lambda: NHWC(4), (3, 3, 8, 12), cc.channels_last_transform),
}
for _m in METHODS:
    for _k, (build, shape, tr) in LAYOUTS.items():
        add(
            f"layout.{_m}.{_k}",
            _layout(_m, build, shape, tr),
            names=("reshape_transform", "layout", "ambiguous"),
            repro=f"m = <{_k}>; x = torch.rand{shape}; {_m}(m, m.layer).attribute(x, target=[0,2,4]) vs explicit transform / LayerGradCam",
            valid=True,
        )


# ------------------------------------------------------------------ repetition, threads, NoiseTunnel


def _threads(method):
    def fn():
        m = net()
        track(m)
        x = inputs()
        seq = [_run(method, m, m.layer, x[i : i + 1], target=[T[i]]) for i in range(3)]
        res = [None] * 3
        errs = []

        def work(i):
            try:
                res[i] = _run(method, m, m.layer, x[i : i + 1], target=[T[i]])
            except Exception as exc:  # noqa: BLE001
                errs.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errs:
            raise errs[0]
        for a, b in zip(seq, res, strict=True):
            a = a[0] if isinstance(a, tuple) else a
            b = b[0] if isinstance(b, tuple) else b
            if not torch.allclose(a, b, rtol=1e-5, atol=1e-7):
                raise Wrong("threaded maps differ from sequential ones")
        return None

    return fn


def _batch_consistency(method):
    def fn():
        m = net()
        track(m)
        x = inputs()
        full = _run(method, m, m.layer, x)
        full = full[0] if isinstance(full, tuple) else full
        perm = [2, 0, 1]
        permuted = _run(method, m, m.layer, x[perm], target=[T[i] for i in perm])
        permuted = permuted[0] if isinstance(permuted, tuple) else permuted
        if not torch.allclose(full[perm], permuted, rtol=1e-4, atol=1e-6):
            raise Wrong("map depends on the order of the batch")
        return None

    return fn


def _after_error(method):
    def fn():
        m = net()
        track(m)
        x = inputs()
        try:
            _run(method, m, m.layer, x, target=[0, 1])
        except Exception:  # noqa: BLE001
            pass
        out = _run(method, m, m.layer, x)
        return _same_as_base(method, out)

    return fn


def _noise_tunnel(method, stdevs, nt_type):
    def fn():
        m = net()
        track(m)
        x = inputs()
        obj = getattr(cc, method)(m, m.layer)
        kw = _kw(method)
        nt = NoiseTunnel(obj)
        out = nt.attribute(x, nt_type=nt_type, nt_samples=2, stdevs=stdevs, target=T, **kw)
        if stdevs == 0.0 and nt_type == "smoothgrad":
            return _same_as_base(method, out)
        if not torch.isfinite(out).all():
            raise Wrong("non-finite NoiseTunnel output")
        return None

    return fn


for _m in METHODS:
    add(
        f"repeat.{_m}.threads",
        _threads(_m),
        names=(),
        repro=f"3 threads each {_m}(m, m.layer).attribute(x[i:i+1]) vs sequential",
        valid=True,
    )
    add(
        f"repeat.{_m}.batch_permutation",
        _batch_consistency(_m),
        names=(),
        repro=f"{_m} on x vs x[[2,0,1]]",
        valid=True,
    )
    add(
        f"repeat.{_m}.after_error",
        _after_error(_m),
        names=(),
        repro=f"{_m} call with bad target, then a good call",
        valid=True,
    )
    for sd, ntt in [(0.0, "smoothgrad"), (0.1, "smoothgrad_sq"), (0.1, "vargrad")]:
        add(
            f"noisetunnel.{_m}.{ntt}_sd{sd}",
            _noise_tunnel(_m, sd, ntt),
            names=("nt", "noise"),
            repro=f"NoiseTunnel({_m}(m, m.layer)).attribute(x, nt_type={ntt!r}, nt_samples=2, stdevs={sd}, target=[0,2,4])",
            valid=True,
            timeout=60,
        )


def _nt_return_weights(method):
    def fn():
        m = net()
        track(m)
        nt = NoiseTunnel(getattr(cc, method)(m, m.layer))
        out = nt.attribute(
            inputs(), nt_samples=2, stdevs=0.1, target=T, return_weights=True, **_kw(method)
        )
        if not (
            isinstance(out, tuple)
            and len(out) == 2
            and out[0].shape == (3, 1, 8, 8)
            and out[1].shape == (3, 6)
        ):
            raise Wrong(f"NoiseTunnel(return_weights=True) gave {type(out).__name__}")
        return None

    return fn


for _m in METHODS:
    add(
        f"noisetunnel.{_m}.return_weights",
        _nt_return_weights(_m),
        names=("return_weights", "noisetunnel", "tuple"),
        repro=f"NoiseTunnel({_m}(m, m.layer)).attribute(x, nt_samples=2, stdevs=0.1, target=[0,2,4], return_weights=True)",
        valid=True,
    )


def _cosine(key, kw, bad):
    def fn():
        ctx = Ctx().tracked()
        out = cc.ContrastGradCAM(ctx.model, ctx.layer).cosine(
            ctx.x, target=kw.get("target", T), k=kw.get("k", 1)
        )
        if bad:
            accepted(str(kw), out)
        a, s, g = ctx.parts
        cos = []
        for b, t in enumerate(T):
            gu = g[b, t].mean((-2, -1))
            v = [c for c in s[b].argsort(descending=True).tolist() if c != t][: kw.get("k", 1)]
            gbar = torch.stack([g[b, c].mean((-2, -1)) for c in v]).mean(0)
            cos.append(torch.nn.functional.cosine_similarity(gu, gbar, dim=0))
        return close(out, torch.stack(cos), tol=1e-4, what="cosine")

    return fn


for _k, (kw, bad) in {
    "k1": ({}, False),
    "k3": ({"k": 3}, False),
    "target_float": ({"target": 1.5}, True),
    "k0": ({"k": 0}, True),
    "target_oob": ({"target": 7}, True),
}.items():
    add(
        f"cosine.{_k}",
        _cosine(_k, kw, bad),
        names=("target", "k"),
        repro=f"{SETUP}; ContrastGradCAM(m, m.layer).cosine(x, **{kw})",
        valid=not bad,
    )
