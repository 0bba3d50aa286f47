"""Hostile cases for captum_contrast.metrics: metric classes, masking_scores, explainer, stats."""

from __future__ import annotations

import numpy as np
import torch
from harness import NC, Verdict, Wrong, accepted, add, net, track, warned
from torch.nn import functional as F

import captum_contrast as cc
from captum_contrast import metrics as M

MASKING = ["AverageDrop", "AverageGain", "AverageIncrease"]
MULTI = [
    "MultiLabelIncreaseInConfidence",
    "MultiLabelAverageDrop",
    "AverageDropOfOthers",
    "AverageRetention",
    "AverageRetentionOfOthers",
]
OTHER = ["ConfidenceDrop", "Insertion", "Deletion", "MassOnObject", "ClassSensitivity"]
ALL = MASKING + MULTI + OTHER


def data(b=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((b, 3, 16, 16), dtype=np.float32)
    y = np.array([0, 2, 4, 1][:b])
    a = rng.random((b, 1, 4, 4)).astype(np.float32)
    s = (rng.random((b, 1, 16, 16)) > 0.5).astype(np.float32)
    return x, y, a, s


def call(name, model, x, y, a, s=None, **kw):
    metric = getattr(M, name)(**kw.pop("init", {}))
    extra = {}
    if name == "ClassSensitivity":
        extra["explain_func"] = M.explainer(cc.ContrastGradCAM, layer="layer")
    if name == "MassOnObject" and s is None:
        s = data()[3][: len(x)]
    return metric(
        model=model, x_batch=x, y_batch=y, a_batch=a, s_batch=s, device="cpu", **extra, **kw
    )


def ref_masking(model, x, y, a):
    xt = torch.as_tensor(x).float()
    at = torch.as_tensor(a).float()
    up = F.interpolate(at, size=xt.shape[-2:], mode="bilinear", align_corners=False)
    lo = up.amin((1, 2, 3), keepdim=True)
    hi = up.amax((1, 2, 3), keepdim=True)
    smask = torch.where(hi > lo, (up - lo) / (hi - lo), torch.zeros_like(up))
    with torch.no_grad():
        p = torch.softmax(model(xt).double(), 1)[torch.arange(len(y)), torch.as_tensor(y)]
        o = torch.softmax(model(smask * xt).double(), 1)[torch.arange(len(y)), torch.as_tensor(y)]
    p, o = p.numpy(), o.numpy()
    return {
        "AverageDrop": 100 * np.maximum(p - o, 0) / p,
        "AverageGain": 100 * np.maximum(o - p, 0) / (1 - p + 1e-8),
        "AverageIncrease": 100.0 * (p < o),
    }


def _valid_masking(name):
    def fn():
        m = net()
        track(m)
        x, y, a, _ = data()
        got = np.asarray(call(name, m, x, y, a), dtype=float)
        ref = ref_masking(m, x, y, a)[name]
        if got.shape != ref.shape or not np.allclose(got, ref, rtol=1e-3, atol=1e-3):
            raise Wrong(f"{name} {got.round(3).tolist()} != hand {ref.round(3).tolist()}")
        return None

    return fn


for _n in MASKING:
    add(
        f"metric.{_n}.hand_reference",
        _valid_masking(_n),
        names=(),
        repro=f"{_n}()(model=m, x_batch=x, y_batch=y, a_batch=a) vs softmax hand computation",
        valid=True,
    )


BAD_Y = {
    "y_float": np.array([1.7, 2.2, 0.4, 3.9]),
    "y_float_intvalued": np.array([0.0, 2.0, 4.0, 1.0]),
    "y_bool": np.array([True, False, True, True]),
    "y_oob": np.array([0, 2, NC, 1]),
    "y_neg": np.array([0, -1, 4, 1]),
    "y_nan": np.array([0, np.nan, 4, 1]),
    "y_2d": np.array([[0], [2], [4], [1]]),
    "y_short": np.array([0, 2]),
    "y_str": np.array(["0", "2", "4", "1"]),
}
BAD_A = {
    "a_nan": lambda a: np.where(np.arange(a.size).reshape(a.shape) == 0, np.nan, a),
    "a_inf": lambda a: np.where(np.arange(a.size).reshape(a.shape) == 0, np.inf, a),
    "a_wrong_batch": lambda a: a[:2],
    "a_bigger_than_input": lambda a: np.ones((4, 1, 32, 32), np.float32),
    "a_3channels": lambda a: np.repeat(a, 3, axis=1),
    "a_1d": lambda a: a.reshape(4, -1),
    "a_complex": lambda a: a.astype(np.complex64),
}
BAD_X = {
    "x_nan": lambda x: np.where(np.arange(x.size).reshape(x.shape) == 5, np.nan, x),
    "x_int": lambda x: (x * 255).astype(np.int64),
    "x_empty": lambda x: x[:0],
    "x_channels_last": lambda x: x.transpose(0, 2, 3, 1).copy(),
}


Y_LENIENT = ("y_float_intvalued", "y_2d")  # accepted if scored exactly as the int labels


def _bad_y(name, key):
    def fn():
        m = net()
        track(m)
        x, y, a, s = data()
        out = call(name, m, x, BAD_Y[key], a, s)
        if key in Y_LENIENT:
            ref = np.asarray(call(name, net(), x, y, a, s), dtype=float)
            got = np.asarray(out, dtype=float)
            if got.shape == ref.shape and np.allclose(got, ref, equal_nan=True):
                return Verdict("correct", "read as the integer labels")
            raise Wrong(f"{key}: {got.round(2).tolist()} != int labels {ref.round(2).tolist()}")
        accepted(f"y_batch {key}", np.asarray(out, dtype=object))

    return fn


def _bad_a(name, key):
    def fn():
        m = net()
        track(m)
        x, y, a, s = data()
        aa = BAD_A[key](a)
        out = call(name, m, x, y, aa, s)
        arr = np.asarray(out, dtype=float)
        if key in ("a_nan", "a_inf"):
            # documented: NaN for the example whose map holds NaN/inf, the rest unaffected
            if np.isnan(arr[0]) and np.isfinite(arr[1:]).all():
                return Verdict("correct", "NaN for that example")
            raise Wrong(f"non-finite map scored {arr.round(3).tolist()} (warned={warned()})")
        if key == "a_bigger_than_input":
            accepted("a map larger than the input", arr)
        accepted(f"a_batch {key}", arr)

    return fn


def _bad_x(name, key):
    def fn():
        m = net()
        track(m)
        x, y, a, s = data()
        xx = BAD_X[key](x)
        out = call(name, m, xx, y[: len(xx)], a[: len(xx)], s[: len(xx)])
        arr = np.asarray(out, dtype=float)
        if key == "x_nan":
            if np.isnan(arr[0]) and warned():
                return Verdict("correct", "NaN with a warning")
            raise Wrong(f"NaN pixel scored {arr.round(3).tolist()}")
        if key == "x_channels_last" and name in MASKING:
            ref = ref_masking(m, x, y, a)[name]
            if not np.allclose(arr, ref, rtol=1e-3, atol=1e-3):
                raise Wrong(
                    f"channels-last x scores {arr.round(2).tolist()} != {ref.round(2).tolist()}"
                )
            return None
        if key == "x_channels_last":
            return None
        if key == "x_int":  # int pixels mean their float values
            ref = np.asarray(call(name, net(), x_f := xx.astype(np.float32), y, a, s), dtype=float)
            del x_f
            if arr.shape == ref.shape and np.allclose(arr, ref, atol=1e-3, equal_nan=True):
                return Verdict("correct", "int pixels scored as floats")
            raise Wrong(f"int x scored {arr.round(2).tolist()} vs float {ref.round(2).tolist()}")
        accepted(f"x_batch {key}", arr)

    return fn


def _dtype_model(name, dtype):
    def fn():
        m = net().to(dtype)
        track(m)
        x, y, a, s = data()
        out = np.asarray(call(name, m, x, y, a, s), dtype=float)
        ref = np.asarray(call(name, net(), x, y, a, s), dtype=float)
        tol = 2.0 if dtype != torch.float64 else 1e-3
        if out.shape != ref.shape or not np.allclose(out, ref, atol=tol, equal_nan=True):
            raise Wrong(
                f"{dtype} model scores {out.round(2).tolist()} vs float32 {ref.round(2).tolist()}"
            )
        return None

    return fn


def _train_mode(name):
    def fn():
        m = net(bn=True, drop=True).train()
        track(m)
        x, y, a, s = data()
        out1 = np.asarray(call(name, m, x, y, a, s), dtype=float)
        out2 = np.asarray(call(name, m, x, y, a, s), dtype=float)
        if not np.array_equal(out1, out2, equal_nan=True):
            raise Wrong("two identical metric calls differ on a train-mode model")
        return None

    return fn


def _constant_map(name):
    def fn():
        m = net()
        track(m)
        x, y, a, s = data()
        out = np.asarray(call(name, m, x, y, np.zeros_like(a), s), dtype=float)
        if name == "ClassSensitivity":
            return None  # a_batch only read where y_batch is the top-1 class
        if name in ("Insertion", "Deletion", "ConfidenceDrop", "MassOnObject"):
            if np.isnan(out).all():
                return Verdict("correct", "NaN for a constant map")
            raise Wrong(f"constant map ranked: {out.round(2).tolist()}")
        return None

    return fn


NO_Y = {"MassOnObject", "ClassSensitivity"}  # y_batch does not select a class there
for _n in ALL:
    for _k in BAD_Y:
        if _n in NO_Y and _k in ("y_oob", "y_neg"):
            continue
        add(
            f"metric.{_n}.{_k}",
            _bad_y(_n, _k),
            names=("y_batch", "target", "label", "class"),
            repro=f"{_n}()(model=m, x_batch=x, y_batch={BAD_Y[_k].tolist()!r}, a_batch=a)",
        )
    for _k in BAD_A:
        if _n == "ClassSensitivity" and _k in ("a_nan", "a_inf"):
            continue  # a_batch is only read where y_batch is the top-1 class
        add(
            f"metric.{_n}.{_k}",
            _bad_a(_n, _k),
            names=("a_batch", "map", "shape", "attribution"),
            repro=f"{_n}()(model=m, x_batch=x, y_batch=y, a_batch=<{_k}>)",
        )
    for _k in BAD_X:
        if _n == "MassOnObject" and _k == "x_nan":
            continue  # no forward pass: pixels are not read
        add(
            f"metric.{_n}.{_k}",
            _bad_x(_n, _k),
            names=("x_batch", "input", "finite", "empty", "dtype"),
            repro=f"{_n}()(model=m, x_batch=<{_k}>, y_batch=y, a_batch=a)",
            valid=_k in ("x_channels_last", "x_int"),
        )
    for _d in (torch.float64, torch.float16, torch.bfloat16):
        add(
            f"metric.{_n}.model_{str(_d)[6:]}",
            _dtype_model(_n, _d),
            names=("dtype",),
            repro=f"{_n}()(model=Net().to({_d}), x_batch=x, y_batch=y, a_batch=a)",
            valid=True,
        )
    add(
        f"metric.{_n}.train_mode_model",
        _train_mode(_n),
        names=(),
        repro=f"{_n}()(model=Net(bn=True, drop=True).train(), ...) twice",
        valid=True,
    )
    add(
        f"metric.{_n}.constant_map",
        _constant_map(_n),
        names=(),
        repro=f"{_n}()(model=m, x_batch=x, y_batch=y, a_batch=zeros)",
        valid=True,
    )


BAD_INIT = {
    "AverageDrop": [{"mask_normalization": "bogus"}],
    "AverageGain": [{"eps": -1.0}, {"eps": float("nan")}],
    "MultiLabelAverageDrop": [{"threshold": 1.5}, {"threshold": float("nan")}],
    "ClassSensitivity": [{"top_k": 0.0}, {"top_k": 150.0}, {"top_k": float("nan")}],
    "ConfidenceDrop": [{"top_k": -5.0}, {"top_k": 101.0}, {"baseline": float("nan")}],
    "Insertion": [{"step": 0}, {"step": -1}, {"substrate": "bogus"}],
    "Deletion": [{"substrate": float("nan")}],
}


def _bad_init(name, kw):
    def fn():
        m = net()
        track(m)
        x, y, a, s = data()
        out = call(name, m, x, y, a, s, init=kw)
        if np.isnan(np.asarray(out, dtype=float)).all():
            return Verdict("correct", "NaN for every example")
        accepted(f"{name}({kw})", np.asarray(out, dtype=float))

    return fn


for _n, kws in BAD_INIT.items():
    for i, kw in enumerate(kws):
        add(
            f"metric.{_n}.init_bad_{i}",
            _bad_init(_n, kw),
            names=tuple(kw),
            repro=f"{_n}(**{kw})(model=m, x_batch=x, y_batch=y, a_batch=a)",
        )


# ------------------------------------------------------------------ masking_scores


def _ms_valid():
    m = net()
    track(m)
    x, y, a, _ = data()
    got = M.masking_scores(m, x, y, a)
    ref = ref_masking(m, x, y, a)
    for k, name in (("AD", "AverageDrop"), ("AG", "AverageGain"), ("AI", "AverageIncrease")):
        if not np.allclose(got[k], ref[name], rtol=1e-3, atol=1e-3):
            raise Wrong(f"masking_scores {k} {got[k]} != {ref[name]}")
    return None


add("masking.valid_hand", _ms_valid, repro="masking_scores(m, x, y, a) vs hand", valid=True)


def _ms(kw_fn, what, names, valid=False, dtype=None):
    def fn():
        m = net()
        if dtype is not None:
            m = m.to(dtype)
        track(m)
        x, y, a, _ = data()
        args = {"model": m, "x_batch": x, "y_batch": y, "a_batch": a}
        args.update(kw_fn(x, y, a))
        out = M.masking_scores(**args)
        if valid:
            ref = M.masking_scores(net(), x, y, a)
            for k in ref:
                if not np.allclose(out[k], ref[k], atol=2.0, equal_nan=True):
                    raise Wrong(
                        f"{what}: {k} {np.round(out[k], 2)} vs float32 {np.round(ref[k], 2)}"
                    )
            return None
        accepted(what, out["AD"] if isinstance(out, dict) and "AD" in out else None)

    return fn


MS_CASES = {
    "float64_model": (lambda x, y, a: {}, "float64 model", (), True, torch.float64),
    "float16_model": (lambda x, y, a: {}, "float16 model", (), True, torch.float16),
    "bfloat16_model": (lambda x, y, a: {}, "bfloat16 model", (), True, torch.bfloat16),
    "y_float": (lambda x, y, a: {"y_batch": y + 0.7}, "float y_batch", ("y_batch",), False, None),
    "y_bool": (lambda x, y, a: {"y_batch": y > 1}, "bool y_batch", ("y_batch",), False, None),
    "y_oob": (
        lambda x, y, a: {"y_batch": y + 10},
        "y_batch out of range",
        ("y_batch",),
        False,
        None,
    ),
    "threshold_bad": (
        lambda x, y, a: {"multilabel": True, "threshold": 1.0},
        "threshold=1",
        ("threshold",),
        False,
        None,
    ),
    "eps_neg": (lambda x, y, a: {"eps": -1.0}, "eps=-1", ("eps",), False, None),
    "norm_bogus": (
        lambda x, y, a: {"mask_normalization": "bogus"},
        "mask_normalization=bogus",
        ("mask_normalization",),
        False,
        None,
    ),
    "batch_size_0": (
        lambda x, y, a: {"batch_size": 0},
        "batch_size=0",
        ("batch_size",),
        False,
        None,
    ),
    "batch_size_neg": (
        lambda x, y, a: {"batch_size": -4},
        "batch_size=-4",
        ("batch_size",),
        False,
        None,
    ),
    "a_wrong_batch": (
        lambda x, y, a: {"a_batch": a[:3]},
        "a_batch of 3 for 4 inputs",
        ("a_batch",),
        False,
        None,
    ),
    "y_wrong_len": (
        lambda x, y, a: {"y_batch": y[:3]},
        "y_batch of 3 for 4 inputs",
        ("y_batch",),
        False,
        None,
    ),
    "x_torch": (
        lambda x, y, a: {"x_batch": torch.as_tensor(x)},
        "torch x_batch",
        ("x_batch",),
        True,
        None,
    ),
    "channel_first_wrong": (
        lambda x, y, a: {"channel_first": False},
        "channel_first=False on NCHW",
        ("channel_first",),
        False,
        None,
    ),
}
for _k, (kwf, what, names, valid, dt) in MS_CASES.items():
    add(
        f"masking.{_k}",
        _ms(kwf, what, names, valid, dt),
        names=names or ("dtype",),
        repro=f"masking_scores(m, x, y, a, <{_k}>)",
        valid=valid,
    )


# ------------------------------------------------------------------ explainer


def _explainer(targets, bad, layer="layer", kw=None):
    def fn():
        m = net()
        track(m)
        x = data()[0]
        f = M.explainer(cc.ContrastGradCAM, layer=layer, **(kw or {}))
        out = f(model=m, inputs=x, targets=targets)
        if bad:
            accepted(f"targets={targets!r}", out)
        ref = cc.ContrastGradCAM(m, m.layer).attribute(
            torch.as_tensor(x), target=torch.as_tensor(targets)
        )
        ref = F.interpolate(ref, size=(16, 16), mode="bilinear", align_corners=False)
        if out.shape != (4, 1, 16, 16) or not np.allclose(
            out, ref.detach().numpy(), rtol=1e-4, atol=1e-6
        ):
            raise Wrong("explainer map differs from ContrastGradCAM upsampled")
        return None

    return fn


EXPL = {
    "valid": (np.array([0, 2, 4, 1]), False, "layer", None),
    "valid_list": ([0, 2, 4, 1], False, "layer", None),
    "float_targets": (np.array([1.7, 2.2, 0.3, 3.9]), True, "layer", None),
    "bool_targets": (np.array([True, False, True, True]), True, "layer", None),
    "oob_targets": (np.array([0, 2, 9, 1]), True, "layer", None),
    "neg_targets": (np.array([0, -2, 1, 1]), True, "layer", None),
    "short_targets": (np.array([0, 2]), True, "layer", None),
    "nan_targets": (np.array([0, np.nan, 1, 1]), True, "layer", None),
    "layer_missing": (np.array([0, 2, 4, 1]), True, "layer9", None),
    "layer_int": (np.array([0, 2, 4, 1]), True, 3, None),
    "bad_attr_kw": (np.array([0, 2, 4, 1]), True, "layer", {"bogus": 1}),
    "str_targets": (np.array(["a", "b", "c", "d"]), True, "layer", None),
}
for _k, (tg, bad, lay, kw) in EXPL.items():
    add(
        f"explainer.{_k}",
        _explainer(tg, bad, lay, kw),
        names=("target", "layer", "bogus", "argument"),
        repro=f"explainer(ContrastGradCAM, layer={lay!r}, **{kw or {}})(model=m, inputs=x, targets={tg!r})",
        valid=not bad,
    )


def _fake_cam(arg, bad):
    def fn():
        out = M.fake_cam(None, arg)
        if bad:
            accepted(f"fake_cam inputs shape {getattr(arg, 'shape', arg)}", out)
        return None

    return fn


for _k, (arg, bad) in {
    "nchw": (np.zeros((2, 3, 4, 5)), False),
    "empty": (np.zeros((0, 3, 4, 5)), False),
    "1d": (np.zeros(5), True),
    "string": ("abc", True),
}.items():
    add(
        f"explainer.fake_cam_{_k}",
        _fake_cam(arg, bad),
        names=("input", "shape"),
        repro=f"fake_cam(None, <{_k}>)",
        valid=not bad,
    )


# ------------------------------------------------------------------ stats


def _stat(fn_call, check=None, bad=False, what=""):
    def fn():
        out = fn_call()
        if bad:
            accepted(what, out)
        if check is not None and not check(out):
            raise Wrong(f"{what}: got {out!r}")
        return None

    return fn


STATS = {
    "ttest_equal": (
        lambda: M.paired_ttest([1, 2, 3, 4.0], [1.5, 2.1, 2.9, 4.4]).pvalue,
        lambda p: 0 <= p <= 1,
        False,
    ),
    "ttest_unequal_len": (lambda: M.paired_ttest([1, 2, 3.0], [1, 2.0]), None, True),
    "ttest_empty": (lambda: M.paired_ttest([], []), None, True),
    "ttest_all_nan": (lambda: M.paired_ttest([np.nan] * 3, [1, 2, 3.0]), None, True),
    "ttest_dict_no_overlap": (lambda: M.paired_ttest({1: 0.2}, {2: 0.3}), None, True),
    "ttest_alt_bogus": (
        lambda: M.paired_ttest([1, 2, 3.0], [2, 3, 1.0], alternative="up"),
        None,
        True,
    ),
    "ttest_str_scores": (lambda: M.paired_ttest(["a", "b"], ["c", "d"]), None, True),
    "wilcoxon_empty": (lambda: M.wilcoxon_below([]), None, True),
    "wilcoxon_all_nan": (lambda: M.wilcoxon_below([np.nan, np.nan]), lambda p: np.isnan(p), False),
    "wilcoxon_threshold_nan": (
        lambda: M.wilcoxon_below([10.0, 20.0, 30.0], threshold=float("nan")),
        None,
        True,
    ),
    "topk_shape_mismatch": (
        lambda: M.top_k_agreement(np.ones((1, 4, 4)), np.ones((1, 5, 5))),
        None,
        True,
    ),
    "topk_zero": (
        lambda: M.top_k_agreement(
            np.arange(16.0).reshape(1, 4, 4), np.arange(16.0).reshape(1, 4, 4), top_k=0
        ),
        None,
        True,
    ),
    "topk_over_100": (
        lambda: M.top_k_agreement(
            np.arange(16.0).reshape(1, 4, 4), np.arange(16.0).reshape(1, 4, 4), top_k=150
        ),
        None,
        True,
    ),
    "topk_tiny_fraction": (
        lambda: M.top_k_agreement(
            np.arange(16.0).reshape(1, 4, 4), np.arange(16.0).reshape(1, 4, 4), top_k=1
        ),
        None,
        True,
    ),
    "topk_nan_k": (
        lambda: M.top_k_agreement(np.ones((1, 4, 4)), np.ones((1, 4, 4)), top_k=float("nan")),
        None,
        True,
    ),
    "topk_hand": (
        lambda: M.top_k_agreement(
            np.arange(16.0).reshape(1, 4, 4),
            np.arange(16.0)[::-1].reshape(1, 4, 4).copy(),
            top_k=50,
        ),
        lambda r: r.tolist() == [0.0],
        False,
    ),
    "topk_batch_mismatch": (
        lambda: M.top_k_agreement(np.ones((2, 4, 4)), np.ones((3, 4, 4))),
        None,
        True,
    ),
    "hm_neg": (lambda: M.harmonic_mean(np.array([-1.0]), np.array([1.0])), None, True),
    "hm_shape": (
        lambda: M.harmonic_mean(np.array([1.0, 2.0]), np.array([1.0, 2.0, 3.0])),
        None,
        True,
    ),
    "trapz_mismatch": (
        lambda: M.trapezoid(np.array([0.0, 1.0]), np.array([0.0, 0.5, 1.0])),
        None,
        True,
    ),
    "trapz_unsorted": (
        lambda: M.trapezoid(np.array([0.0, 1.0, 1.0]), np.array([1.0, 0.0, 0.5])),
        None,
        True,
    ),
    "drop_p_zero": (
        lambda: M.drop_scores(np.array([0.0]), np.array([0.5])),
        lambda r: np.isnan(r).all() or np.isinf(r).all() or (r == 0).all(),
        False,
    ),
    "drop_p_neg": (lambda: M.drop_scores(np.array([-0.5]), np.array([0.5])), None, True),
    "drop_p_gt1": (lambda: M.drop_scores(np.array([1.5]), np.array([0.5])), None, True),
    "gain_shape": (lambda: M.gain_scores(np.array([0.5, 0.2]), np.array([0.5])), None, True),
    "increase_hand": (
        lambda: M.increase_scores(np.array([0.5, 0.5]), np.array([0.5, 0.6])),
        lambda r: r.tolist() == [0.0, 100.0],
        False,
    ),
    "macro_len_mismatch": (
        lambda: M.multilabel_macro_scores({"AD": [1.0, 2.0]}, [0, 1, 2]),
        None,
        True,
    ),
    "macro_float_labels": (
        lambda: M.multilabel_macro_scores({"AD": [1.0, 2.0]}, [0.5, 1.5]),
        None,
        True,
    ),
    "macro_hand": (
        lambda: M.multilabel_macro_scores(
            {"AD": [10.0, 20.0, 40.0], "ARO": [1.0, 1.0, 1.0]}, [0, 0, 1]
        ),
        lambda r: abs(r["AD"] - 27.5) < 1e-9,
        False,
    ),
    "macro_empty": (lambda: M.multilabel_macro_scores({"AD": []}, []), None, True),
    "detections_hand": (
        lambda: M.detections(net(), np.zeros((2, 3, 16, 16), np.float32), threshold=2.0),
        None,
        True,
    ),
}
for _k, (f, chk, bad) in STATS.items():
    add(
        f"stats.{_k}",
        _stat(f, chk, bad, _k),
        names=(
            "score",
            "threshold",
            "top_k",
            "shape",
            "length",
            "alternative",
            "label",
            "empty",
            "position",
            "p",
            "nan",
        ),
        repro=f"captum_contrast.metrics.<{_k}>",
        valid=not bad,
    )
