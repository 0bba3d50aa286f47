"""Hostile cases for the four methods: targets, contrasts, inputs, models, layouts, threads."""

from __future__ import annotations

import numpy as np
import torch
from harness import (
    NC,
    Ctx,
    Verdict,
    Wrong,
    accepted,
    add,
    close,
    inputs,
    net,
    ref_case,
    ref_diff,
    ref_minmax,
    ref_parts,
    track,
    warned,
)
from torch import nn

import captum_contrast as cc

METHODS = ["ContrastGradCAM", "MinMaxCAM", "OptiCAM", "DifferenceSalience"]
FAST_OPTI = dict(n_iter=3)
SETUP = "m = Net().eval(); x = torch.rand(3, 3, 16, 16)  # Net: tools/probe/harness.py"


def _mk(method, model, layer, **init):
    return getattr(cc, method)(model, layer, **init)


def _kw(method, extra=None):
    kw = dict(FAST_OPTI) if method == "OptiCAM" else {}
    if method == "DifferenceSalience":
        kw["contrast"] = "runner-up"
    kw.update(extra or {})
    return kw


def ref_for(method, parts, target, **kw):
    if method == "ContrastGradCAM":
        return ref_case(parts, target, k=kw.get("k", 1), contrast=kw.get("contrast"))
    if method == "MinMaxCAM":
        return ref_minmax(parts, target)
    if method == "DifferenceSalience":
        return ref_diff(parts, target, contrast=kw.get("contrast", "runner-up"))
    return None


def check_method(method, out, parts, target, model=None, x=None, **kw):
    """Compare to the float64 reference (OptiCAM: invariants of S(u) = sum softmax(u) A)."""
    if method != "OptiCAM":
        return close(out, ref_for(method, parts, target, **kw))
    a = parts[0]
    o = out[0] if isinstance(out, tuple) else out
    if tuple(o.shape) != (a.shape[0], 1, *a.shape[2:]):
        raise Wrong(f"OptiCAM shape {tuple(o.shape)}")
    if not torch.isfinite(o.double()).all():
        if warned():
            return Verdict("correct", "nan+warning")
        raise Wrong("OptiCAM non-finite without warning")
    lo = a.min(1, keepdim=True).values - 1e-4
    hi = a.max(1, keepdim=True).values + 1e-4
    if ((o.double() < lo * (1 + 1e-3)) | (o.double() > hi * (1 + 1e-3) + 1e-4)).any():
        raise Wrong("OptiCAM map is not a convex combination of the layer's channels")
    return Verdict("correct", "convex combination")


def std_call(method, ctx, target, **kw):
    obj = _mk(method, ctx.model, ctx.layer)
    return obj.attribute(ctx.x, target=target, **_kw(method, kw))


# ------------------------------------------------------------------ targets

B = 3
TARGET_VALID = {
    "none": None,
    "int1": 1,
    "list": [0, 2, 4],
    "tuple": (0, 2, 4),
    "tensor_long": torch.tensor([0, 2, 4]),
    "tensor_int32": torch.tensor([0, 2, 4], dtype=torch.int32),
    "np_int64_scalar": np.int64(2),
    "np_array_int": np.array([0, 2, 4]),
    "tensor_0d": torch.tensor(3),
    "tensor_len1": torch.tensor([3]),
    "last_class": NC - 1,
    "uint8_tensor": torch.tensor([0, 2, 4], dtype=torch.uint8),
    "list_np_ints": [np.int64(0), np.int32(2), np.int16(4)],
    "int64_max_safe": 0,
    "tensor_column": torch.tensor([[0], [1], [2]]),
}
TARGET_EQUIV = {  # what a valid form means, for the reference
    "none": None,
    "int1": 1,
    "list": [0, 2, 4],
    "tuple": [0, 2, 4],
    "tensor_long": [0, 2, 4],
    "tensor_int32": [0, 2, 4],
    "np_int64_scalar": 2,
    "np_array_int": [0, 2, 4],
    "tensor_0d": 3,
    "tensor_len1": 3,
    "last_class": NC - 1,
    "uint8_tensor": [0, 2, 4],
    "list_np_ints": [0, 2, 4],
    "int64_max_safe": 0,
    "tensor_column": [0, 1, 2],
}
TARGET_BAD = {
    "float_1.7": 1.7,
    "float_1.0": 1.0,
    "float_nan": float("nan"),
    "float_inf": float("inf"),
    "bool_true": True,
    "bool_tensor": torch.tensor([True, False, True]),
    "neg1": -1,
    "neg_big": -7,
    "out_of_range": NC,
    "huge": 10**12,
    "list_float": [0.0, 1.5, 2.0],
    "list_short": [0, 1],
    "list_long": [0, 1, 2, 3],
    "list_nested": [[0], [1], [2]],
    "list_with_none": [0, None, 1],
    "list_with_neg": [0, -1, 1],
    "list_bools": [True, False, True],
    "list_strings": ["0", "1", "2"],
    "str_digit": "1",
    "str_word": "cat",
    "tensor_float": torch.tensor([0.0, 1.7, 2.0]),
    "tensor_float_int_valued": torch.tensor([0.0, 1.0, 2.0]),
    "tensor_complex": torch.tensor([0, 1, 2], dtype=torch.complex64),
    "tensor_2d_row": torch.tensor([[0, 1, 2]]),
    "tensor_wrong_len": torch.tensor([0, 1]),
    "np_float_array": np.array([1.7, 2.2, 0.4]),
    "np_bool_array": np.array([True, False, True]),
    "np_float_scalar": np.float64(2.0),
    "dict": {"a": 1},
    "empty_list": [],
    "tensor_empty": torch.tensor([], dtype=torch.long),
    "tuple_pairs": [(0, 1), (1, 1), (2, 2)],
    "meta_tensor": torch.tensor([0, 1, 2], device="meta"),
    "list_out_of_range": [0, 1, NC],
    "np_uint8_wrap": np.array([0, 1, 255], dtype=np.uint8),
}


def _tgt_valid(method, key):
    def fn():
        ctx = Ctx().tracked()
        out = std_call(method, ctx, TARGET_VALID[key])
        return check_method(method, out, ctx.parts, TARGET_EQUIV[key])

    return fn


def _tgt_bad(method, key):
    def fn():
        ctx = Ctx().tracked()
        out = std_call(method, ctx, TARGET_BAD[key])
        accepted(f"target={TARGET_BAD[key]!r}", out)

    return fn


for _m in METHODS:
    for _k in TARGET_VALID:
        add(
            f"method.{_m}.target.valid.{_k}",
            _tgt_valid(_m, _k),
            names=("target",),
            repro=f"{SETUP}; {_m}(m, m.layer).attribute(x, target={TARGET_VALID[_k]!r}, **{_kw(_m)})",
            valid=True,
        )
    for _k in TARGET_BAD:
        add(
            f"method.{_m}.target.bad.{_k}",
            _tgt_bad(_m, _k),
            names=("target",),
            repro=f"{SETUP}; {_m}(m, m.layer).attribute(x, target={TARGET_BAD[_k]!r}, **{_kw(_m)})",
        )


# ------------------------------------------------------------------ method-specific arguments


class Lazy:
    """An argument built inside the case (its constructor may already refuse it)."""

    def __init__(self, build):
        self.build = build

    def __repr__(self):
        return "<lazy>"


def _arg_case(method, kwargs, bad, names, init=None, check=None, model_fn=None):
    def fn():
        nonlocal kwargs
        kwargs = {k: v.build() if isinstance(v, Lazy) else v for k, v in kwargs.items()}
        ctx = Ctx(model=model_fn()) if model_fn else Ctx()
        ctx.tracked()
        obj = _mk(method, ctx.model, ctx.layer, **(init or {}))
        out = obj.attribute(ctx.x, target=[0, 2, 4], **_kw(method, kwargs))
        if bad:
            accepted(f"{kwargs or init}", out)
        if check:
            return check(out, ctx)
        return check_method(method, out, ctx.parts, [0, 2, 4], **kwargs)

    return fn


def _reg_arg(method, key, kwargs, bad, names, init=None, check=None, model_fn=None):
    add(
        f"arg.{method}.{key}",
        _arg_case(method, kwargs, bad, names, init, check, model_fn),
        names=names,
        repro=f"{SETUP}; {method}(m, m.layer{', **' + repr(init) if init else ''})"
        f".attribute(x, target=[0, 2, 4], **{_kw(method, kwargs)})",
        valid=not bad,
    )


# ContrastGradCAM: contrast and k
_C = "ContrastGradCAM"
for key, kw in {
    "k2": {"k": 2},
    "k4_all_others": {"k": NC - 1},
    "contrast_int": {"contrast": 1},
    "contrast_list": {"contrast": [1, 3]},
    "contrast_tensor_2d": {"contrast": torch.tensor([[1], [3], [0]])},
}.items():
    _reg_arg(_C, key, kw, False, ("contrast", "k"))
for key, kw in {
    "k0": {"k": 0},
    "k_neg": {"k": -1},
    "k_too_big": {"k": NC},
    "k_float": {"k": 1.5},
    "k_bool": {"k": True},
    "k_str": {"k": "1"},
    "k_none": {"k": None},
    "contrast_same_as_target": {"contrast": torch.tensor([[0], [2], [4]])},
    "contrast_out_of_range": {"contrast": NC},
    "contrast_negative": {"contrast": -1},
    "contrast_float": {"contrast": 1.5},
    "contrast_float_tensor": {"contrast": torch.tensor([[1.0], [3.0], [0.0]])},
    "contrast_wrong_batch": {"contrast": torch.tensor([[1], [3]])},
    "contrast_3d": {"contrast": torch.zeros(3, 1, 1, dtype=torch.long)},
    "contrast_empty_list": {"contrast": []},
    "contrast_str": {"contrast": "runner-up"},
    "contrast_bool": {"contrast": True},
    "contrast_nan": {"contrast": float("nan")},
    "projection_bogus": {"projection": "half"},
    "projection_none": {"projection": None},
    "relu_str": {"relu_attributions": "no"},
    "contrast_set_too_small": {"contrast": Lazy(lambda: cc.ContrastSet(torch.tensor([[1], [0]])))},
    "contrast_set_out_of_range": {"contrast": Lazy(lambda: cc.ContrastSet(torch.full((NC, 1), 9)))},
    "contrast_set_self": {"contrast": Lazy(lambda: cc.ContrastSet(torch.arange(NC)[:, None]))},
    "contrast_set_float": {"contrast": Lazy(lambda: cc.ContrastSet(torch.ones(NC, 1)))},
}.items():
    _reg_arg(_C, key, kw, True, ("contrast", "k", "projection", "relu", "contrastset", "class"))

# MinMaxCAM: labels, threshold, variant, classifier
_M = "MinMaxCAM"


def _labels_check(labels):
    def check(out, ctx):
        return close(out, ref_minmax(ctx.parts, [0, 2, 4], labels=labels))

    return check


_L = torch.tensor([[1, 0, 1, 0, 0], [0, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
for key, lab in {
    "labels_bool": _L.bool(),
    "labels_float01": _L.float(),
    "labels_long": _L,
    "labels_all_zero": torch.zeros(3, NC),
}.items():
    _reg_arg(_M, key, {"labels": lab}, False, ("labels",), check=_labels_check(lab))
_reg_arg(
    _M,
    "d_minmax",
    {"variant": "d-minmax"},
    False,
    ("variant",),
    check=lambda out, ctx: close(out, ref_minmax(ctx.parts, [0, 2, 4], variant="d-minmax")),
)
_reg_arg(
    _M,
    "threshold_0.2",
    {"threshold": 0.2},
    False,
    ("threshold",),
    check=lambda out, ctx: close(out, ref_minmax(ctx.parts, [0, 2, 4], threshold=0.2)),
)
for key, kw in {
    "labels_half": {"labels": torch.full((3, NC), 0.5)},
    "labels_two": {"labels": _L * 2},
    "labels_neg": {"labels": -_L},
    "labels_nan": {"labels": torch.full((3, NC), float("nan"))},
    "labels_wrong_L": {"labels": _L[:, :3]},
    "labels_wrong_B": {"labels": _L[:2]},
    "labels_1d": {"labels": _L[0]},
    "labels_3d": {"labels": _L[:, :, None]},
    "labels_index_list": {"labels": [0, 2]},
    "labels_str": {"labels": "all"},
    "threshold_nan": {"threshold": float("nan")},
    "threshold_neg": {"threshold": -0.5},
    "threshold_2": {"threshold": 2.0},
    "threshold_str": {"threshold": "0.5"},
    "variant_bogus": {"variant": "max"},
    "variant_upper": {"variant": "MINMAX"},
}.items():
    _reg_arg(_M, key, kw, True, ("labels", "threshold", "variant"))
_reg_arg(
    _M,
    "classifier_wrong_shape",
    {},
    True,
    ("classifier",),
    init={"classifier": nn.Linear(4, NC)},
)
_reg_arg(
    _M,
    "classifier_tensor_wrong_shape",
    {},
    True,
    ("classifier",),
    init={"classifier": torch.ones(3, 3)},
)
_reg_arg(_M, "classifier_str", {}, True, ("classifier",), init={"classifier": "fc"})


def _cam_form_check(out, ctx):
    # CAM form equals the gradient form times h*w on a GAP + linear model.
    a, s, g = ctx.parts
    ref = ref_minmax(ctx.parts, [0, 2, 4]) * (a.shape[-1] * a.shape[-2])
    return close(out, ref)


add(
    "arg.MinMaxCAM.classifier_fc",
    lambda: _cam_form_check(
        cc.MinMaxCAM(
            *(lambda c: (c.model, c.layer))(_ctx := Ctx().tracked()), classifier=_ctx.model.fc
        ).attribute(_ctx.x, target=[0, 2, 4]),
        _ctx,
    ),
    names=("classifier",),
    repro=f"{SETUP}; MinMaxCAM(m, m.layer, classifier=m.fc).attribute(x, target=[0,2,4])",
    valid=True,
)

# OptiCAM arguments
_O = "OptiCAM"
for key, kw in {
    "objective_diff": {"objective": "diff"},
    "objective_iomask": {"objective": "iomask"},
    "objective_iodiff": {"objective": "iodiff"},
    "norm_max": {"normalization": "max"},
    "norm_sigmoid": {"normalization": "sigmoid"},
    "preset_fast": {"preset": "fast", "n_iter": 3},
    "init_gradcam": {"init": "grad-cam"},
    "early_official": {"early_stop": "official"},
    "early_none": {"early_stop": None},
    "n_iter_1": {"n_iter": 1},
    "preprocess_identity": {"preprocess": lambda t: t},
}.items():
    _reg_arg(_O, key, kw, False, ("objective",))
for key, kw in {
    "objective_bogus": {"objective": "maximize"},
    "norm_bogus": {"normalization": "softmax"},
    "preset_bogus": {"preset": "slow"},
    "n_iter_0": {"n_iter": 0},
    "n_iter_neg": {"n_iter": -3},
    "n_iter_float": {"n_iter": 2.5},
    "lr_zero": {"lr": 0.0},
    "lr_neg": {"lr": -0.1},
    "lr_nan": {"lr": float("nan")},
    "lr_inf": {"lr": float("inf")},
    "early_bogus": {"early_stop": "never"},
    "init_bogus": {"init": "random"},
    "preprocess_not_callable": {"preprocess": 3},
    "preprocess_wrong_shape": {"preprocess": lambda t: t[:, :1]},
    "preprocess_nan": {"preprocess": lambda t: t * float("nan")},
}.items():
    _reg_arg(
        _O,
        key,
        kw,
        True,
        (
            "objective",
            "normalization",
            "preset",
            "n_iter",
            "lr",
            "early_stop",
            "init",
            "preprocess",
        ),
    )


def _opti_weights():
    ctx = Ctx().tracked()
    out, w = cc.OptiCAM(ctx.model, ctx.layer).attribute(
        ctx.x, target=[0, 2, 4], n_iter=3, return_weights=True
    )
    if w.shape != (3, ctx.parts[0].shape[1]):
        raise Wrong(f"weights shape {tuple(w.shape)}")
    if (w < 0).any() or not torch.allclose(w.sum(1), torch.ones(3), atol=1e-4):
        raise Wrong("softmax(u) weights do not sum to 1")
    ref = (w.double()[:, :, None, None] * ctx.parts[0]).sum(1, keepdim=True)
    return close(out, ref, tol=1e-4)


add(
    "arg.OptiCAM.return_weights_identity",
    _opti_weights,
    names=(),
    repro=f"{SETUP}; m_, w = OptiCAM(m, m.layer).attribute(x, target=[0,2,4], n_iter=3, return_weights=True); m_ vs (w[:,:,None,None]*A).sum(1)",
    valid=True,
)

# DifferenceSalience: binary model, contrast forms
_D = "DifferenceSalience"


def _bin():
    return net(ncls=2, seed=3)


def _ds_case(target, contrast, bad, ncls=2, relu=None):
    def fn():
        ctx = Ctx(model=net(ncls=ncls, seed=3)).tracked()
        kw = {} if contrast == "<default>" else {"contrast": contrast}
        if relu is not None:
            kw["relu_attributions"] = relu
        out = cc.DifferenceSalience(ctx.model, ctx.layer).attribute(ctx.x, target=target, **kw)
        if bad:
            accepted(f"target={target!r}, contrast={contrast!r}", out)
        c = None if contrast == "<default>" else contrast
        return close(out, ref_diff(ctx.parts, target, contrast=c, relu=bool(relu)))

    return fn


for key, (t, c, bad, ncls) in {
    "binary_default": ([0, 1, 1], "<default>", False, 2),
    "binary_none_target": (None, "<default>", True and False, 2),
    "binary_target1": (1, "<default>", False, 2),
    "multi_runner_up": ([0, 2, 4], "runner-up", False, NC),
    "multi_int_contrast": ([0, 2, 4], 1, False, NC),
    "multi_no_contrast": ([0, 2, 4], "<default>", True, NC),
    "binary_target2": ([0, 2, 1], "<default>", True, 2),
    "contrast_eq_target": ([1, 1, 1], 1, True, NC),
    "contrast_list_eq_target": ([0, 2, 4], [0, 2, 4], True, NC),
    "contrast_runner_typo": ([0, 2, 4], "runner_up", True, NC),
    "contrast_float": ([0, 2, 4], 1.5, True, NC),
    "contrast_oob": ([0, 2, 4], NC, True, NC),
    "contrast_neg": ([0, 2, 4], -1, True, NC),
    "contrast_bool": ([0, 1, 1], True, True, 2),
    "binary_contrast_same": ([1, 1, 1], 1, True, 2),
}.items():
    add(
        f"arg.{_D}.{key}",
        _ds_case(t, c, bad, ncls),
        names=("target", "contrast"),
        repro=f"m = Net(ncls={ncls}).eval(); x = torch.rand(3,3,16,16); DifferenceSalience(m, m.layer).attribute(x, target={t!r}{'' if c == '<default>' else f', contrast={c!r}'})",
        valid=not bad,
    )
add(
    f"arg.{_D}.relu_true",
    _ds_case([0, 1, 1], "<default>", False, 2, relu=True),
    names=("relu",),
    repro="DifferenceSalience(m2, m2.layer).attribute(x, target=[0,1,1], relu_attributions=True)",
    valid=True,
)


class OneLogit(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = net(ncls=1, seed=4)
        self.layer = self.inner.layer

    def forward(self, x):
        return self.inner(x)


def _single_logit(target):
    def fn():
        m = OneLogit().eval()
        x = inputs()
        track(m)
        out = cc.DifferenceSalience(m, m.layer).attribute(x, target=target)
        a, s, g = ref_parts(m, m.layer, x)
        t = [target] * 3 if isinstance(target, int) else target
        sign = torch.tensor([1.0 if v == 1 else -1.0 for v in t], dtype=torch.float64)
        w = g[:, 0].mean((-2, -1)) * sign[:, None]
        ref = (w[:, :, None, None] * a).sum(1, keepdim=True)
        return close(out, ref)

    return fn


add(
    "arg.DifferenceSalience.single_logit_t1",
    _single_logit(1),
    names=("target",),
    repro="m = net(ncls=1); DifferenceSalience(m, m.layer).attribute(x, target=1)",
    valid=True,
)
add(
    "arg.DifferenceSalience.single_logit_mixed",
    _single_logit([0, 1, 0]),
    names=("target",),
    repro="m = net(ncls=1); DifferenceSalience(m, m.layer).attribute(x, target=[0,1,0])",
    valid=True,
)


def _single_logit_bad(target):
    def fn():
        m = OneLogit().eval()
        track(m)
        out = cc.DifferenceSalience(m, m.layer).attribute(inputs(), target=target)
        accepted(f"target={target} for a single-logit model", out)

    return fn


for _t in (2, -1, [0, 1, 2]):
    add(
        f"arg.DifferenceSalience.single_logit_bad_{_t}",
        _single_logit_bad(_t),
        names=("target",),
        repro=f"m = net(ncls=1); DifferenceSalience(m, m.layer).attribute(x, target={_t!r})",
    )


# ------------------------------------------------------------------ constructor arguments


def _ctor_bad(method, build, what):
    def fn():
        m = net()
        m.add_module("unused", nn.Conv2d(8, 6, 3))  # before the snapshot: part of the model
        track(m)
        obj = build(method, m)
        out = obj.attribute(inputs(), target=[0, 2, 4], **_kw(method))
        accepted(what, out)

    return fn


CTOR_BAD = {
    "layer_none": (lambda M, m: getattr(cc, M)(m, None), "layer=None", ("layer",)),
    "layer_str": (lambda M, m: getattr(cc, M)(m, "layer"), "layer='layer'", ("layer",)),
    "layer_not_in_model": (
        lambda M, m: getattr(cc, M)(m, nn.Conv2d(8, 6, 3)),
        "a layer that is not in the model",
        ("layer",),
    ),
    "layer_unused_submodule": (
        lambda M, m: getattr(cc, M)(m, m.unused),
        "a layer that never runs",
        ("layer",),
    ),
    "forward_not_callable": (
        lambda M, m: getattr(cc, M)(3, m.layer),
        "forward_func=3",
        ("forward",),
    ),
    "device_ids_str": (
        lambda M, m: getattr(cc, M)(m, m.layer, device_ids="0"),
        "device_ids='0'",
        ("device_ids",),
    ),
    "reshape_not_callable": (
        lambda M, m: getattr(cc, M)(m, m.layer, reshape_transform=5),
        "reshape_transform=5",
        ("reshape_transform",),
    ),
    "reshape_wrong_output": (
        lambda M, m: getattr(cc, M)(m, m.layer, reshape_transform=lambda t: t.flatten(1)),
        "a reshape_transform returning (B, N)",
        ("reshape_transform", "shape"),
    ),
    "layer_is_stem_relu_after_pool": (
        lambda M, m: getattr(cc, M)(m, m.fc),
        "the classifier Linear as layer (no grid)",
        ("layer", "grid", "shape", "spatial"),
    ),
    "layer_is_pool_1x1": (
        lambda M, m: getattr(cc, M)(m, m.pool),
        "the 1x1 pooled layer",
        ("layer", "grid", "shape"),
    ),
}
for _m in METHODS:
    for key, (build, what, names) in CTOR_BAD.items():
        if key == "layer_is_pool_1x1":
            continue  # a 1x1 grid is legitimate (checked below)
        add(
            f"ctor.{_m}.{key}",
            _ctor_bad(_m, build, what),
            names=names,
            repro=f"{SETUP}; {_m}(...{what}...).attribute(x, target=[0,2,4])",
        )


def _pool_layer(method):
    def fn():
        ctx = Ctx().tracked()
        ctx.layer = ctx.model.pool
        out = std_call(method, ctx, [0, 2, 4])
        return check_method(method, out, ctx.parts, [0, 2, 4])

    return fn


for _m in METHODS:
    add(
        f"ctor.{_m}.layer_1x1_pool",
        _pool_layer(_m),
        names=("layer",),
        repro=f"{SETUP}; {_m}(m, m.pool).attribute(x, target=[0,2,4])",
        valid=True,
    )
