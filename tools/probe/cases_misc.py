"""normalize, transforms, confusion_matrix, ContrastSet, training losses, data loaders."""

from __future__ import annotations

import cases_models  # noqa: F401  (registers the model/input cases)
import numpy as np
import torch
from harness import NC, Verdict, Wrong, accepted, add, net, track, warned
from torch import nn
from torch.nn import functional as F

import captum_contrast as cc
from captum_contrast import training as T


def _chk(fn_call, check=None, bad=False, what=""):
    def fn():
        out = fn_call()
        if bad:
            accepted(what, out)
        if check is not None:
            ok = check(out)
            if isinstance(ok, torch.Tensor | np.bool_):
                ok = bool(ok)
            if ok is not True:
                raise Wrong(f"{what}: {ok if isinstance(ok, str) else repr(out)[:200]}")
        return None

    return fn


def reg(prefix, table, names):
    for k, (f, chk, bad) in table.items():
        add(
            f"{prefix}.{k}",
            _chk(f, chk, bad, k),
            names=names,
            repro=f"{prefix}: <{k}>",
            valid=not bad,
        )


# ------------------------------------------------------------------ normalize
_m = torch.tensor([[[[1.0, 3.0], [2.0, 5.0]]]])
NORM = {
    "range_hand": (
        lambda: cc.normalize(_m, "range"),
        lambda o: o.flatten().tolist() == [0.0, 0.5, 0.25, 1.0],
        False,
    ),
    "max_hand": (lambda: cc.normalize(_m, "max"), lambda o: torch.allclose(o, _m / 5), False),
    "sigmoid_hand": (
        lambda: cc.normalize(_m, "sigmoid"),
        lambda o: torch.allclose(o, torch.sigmoid(_m)),
        False,
    ),
    "constant_range": (
        lambda: cc.normalize(torch.ones(2, 1, 3, 3), "range"),
        lambda o: bool((o == 0).all()),
        False,
    ),
    "per_example": (
        lambda: cc.normalize(torch.stack([_m[0], _m[0] * 10]), "range"),
        lambda o: torch.allclose(o[0], o[1]),
        False,
    ),
    "max_all_negative": (
        lambda: cc.normalize(-_m, "max"),
        lambda o: bool((o <= 1).all()) or "values > 1 from an all-negative map",
        False,
    ),
    "nan_map": (
        lambda: cc.normalize(
            _m.clone().index_put_((torch.tensor([0]),), torch.tensor(float("nan"))), "range"
        ),
        lambda o: bool(torch.isnan(o).all()) and warned() or "NaN map: no NaN+warning",
        False,
    ),
    "inf_map": (
        lambda: cc.normalize(torch.tensor([[[[1.0, float("inf")]]]]), "range"),
        lambda o: (
            (torch.isnan(o).any() and warned()) or "inf map: plausible values without warning"
        ),
        False,
    ),
    "int_map": (
        lambda: cc.normalize(torch.tensor([[[[1, 3], [2, 5]]]]), "range"),
        lambda o: (
            o.is_floating_point()
            and o.flatten().tolist() == [0.0, 0.5, 0.25, 1.0]
            or "int map result wrong"
        ),
        False,
    ),
    "float16_map": (
        lambda: cc.normalize(_m.half(), "range"),
        lambda o: o.dtype == torch.float16,
        False,
    ),
    "empty_batch": (
        lambda: cc.normalize(torch.zeros(0, 1, 2, 2)),
        lambda o: o.shape == (0, 1, 2, 2),
        False,
    ),
    "1d_batch": (lambda: cc.normalize(torch.tensor([1.0, 2.0, 3.0]), "range"), None, True),
    "0d": (lambda: cc.normalize(torch.tensor(3.0)), None, True),
    "bogus_method": (lambda: cc.normalize(_m, "minmax"), None, True),
    "numpy_input": (lambda: cc.normalize(_m.numpy(), "range"), None, True),
    "bool_map": (lambda: cc.normalize(_m > 2, "range"), None, True),
    "complex_map": (lambda: cc.normalize(_m.to(torch.complex64), "range"), None, True),
    "tiny_range": (
        lambda: cc.normalize(torch.tensor([[[[1.0, 1.0 + 1e-7]]]]), "range"),
        lambda o: torch.isfinite(o).all().item(),
        False,
    ),
    "grad_flows": (
        lambda: torch.autograd.grad(
            cc.normalize(_m.clone().requires_grad_(), "range").sum(),
            _m.clone().requires_grad_(),
            allow_unused=True,
        ),
        None,
        False,
    ),
}
reg("normalize", NORM, ("method", "attributions", "dimension", "dtype", "shape", "batch", "tensor"))


# ------------------------------------------------------------------ transforms
TR = {
    "cl_hand": (
        lambda: cc.channels_last_transform(torch.arange(24.0).reshape(1, 2, 3, 4)),
        lambda o: torch.equal(o, torch.arange(24.0).reshape(1, 2, 3, 4).permute(0, 3, 1, 2)),
        False,
    ),
    "cl_3d_signal": (
        lambda: cc.channels_last_transform(torch.zeros(2, 7, 5)),
        lambda o: o.shape == (2, 5, 7),
        False,
    ),
    "cl_2d": (lambda: cc.channels_last_transform(torch.zeros(2, 5)), None, True),
    "cl_1d": (lambda: cc.channels_last_transform(torch.zeros(5)), None, True),
    "tok_hand": (
        lambda: cc.tokens_transform(torch.arange(10.0).reshape(1, 5, 2), prefix_tokens=1),
        lambda o: torch.equal(
            o, torch.arange(2.0, 10.0).reshape(1, 4, 2).permute(0, 2, 1).reshape(1, 2, 2, 2)
        ),
        False,
    ),
    "tok_nonsquare_no_hw": (lambda: cc.tokens_transform(torch.zeros(1, 1 + 6, 4)), None, True),
    "tok_hw_mismatch": (
        lambda: cc.tokens_transform(torch.zeros(1, 1 + 6, 4), height=2, width=2),
        None,
        True,
    ),
    "tok_prefix_too_big": (
        lambda: cc.tokens_transform(torch.zeros(1, 3, 4), prefix_tokens=5),
        None,
        True,
    ),
    "tok_prefix_neg": (
        lambda: cc.tokens_transform(torch.zeros(1, 5, 4), prefix_tokens=-1),
        None,
        True,
    ),
    "tok_prefix_float": (
        lambda: cc.tokens_transform(torch.zeros(1, 5, 4), prefix_tokens=1.0),
        None,
        True,
    ),
    "tok_height_only": (
        lambda: cc.tokens_transform(torch.zeros(1, 1 + 6, 4), height=2),
        lambda o: o.shape == (1, 4, 2, 3),
        False,
    ),
    "tok_2d": (lambda: cc.tokens_transform(torch.zeros(5, 4)), None, True),
    "tok_only_prefix": (lambda: cc.tokens_transform(torch.zeros(1, 1, 4)), None, True),
    "vit_hand": (
        lambda: cc.vit_reshape_transform(torch.zeros(2, 1 + 16, 8)),
        lambda o: o.shape == (2, 8, 4, 4),
        False,
    ),
    "vit_nonsquare": (lambda: cc.vit_reshape_transform(torch.zeros(2, 1 + 15, 8)), None, True),
    "vit_no_cls_square": (lambda: cc.vit_reshape_transform(torch.zeros(2, 16, 8)), None, True),
    "vit_4d": (lambda: cc.vit_reshape_transform(torch.zeros(2, 17, 8, 1)), None, True),
}
reg("transforms", TR, ("token", "shape", "prefix", "height", "width", "grid", "dimension", "maps"))


# ------------------------------------------------------------------ confusion_matrix


def _cm(loader_fn, ncls=NC, bad=False, expect=None, model=None, what=""):
    def fn():
        m = model() if model else net()
        if isinstance(m, nn.Module):
            track(m)
        out = cc.confusion_matrix(m, loader_fn(), ncls)
        if bad:
            accepted(what, out)
        if expect is not None:
            exp = expect(m)
            if not torch.equal(out, exp):
                raise Wrong(f"{what}: {out.tolist()} != {exp.tolist()}")
        return None

    return fn


def _xs():
    return cm_x


cm_x = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(5))
cm_y = torch.tensor([0, 1, 2, 3, 4, 0])


def _cm_ref(m, x=cm_x, y=cm_y, ncls=NC):
    import copy

    with torch.no_grad():
        pred = copy.deepcopy(m).eval()(x).argmax(1)
    ref = torch.zeros(ncls, ncls, dtype=torch.long)
    for t, p in zip(y.tolist(), pred.tolist(), strict=True):
        ref[t, p] += 1
    return ref


CM = {
    "valid": (lambda: [(cm_x[:3], cm_y[:3]), (cm_x[3:], cm_y[3:])], NC, False, _cm_ref, None),
    "valid_list_batches": (lambda: [[cm_x, cm_y]], NC, False, _cm_ref, None),
    "extra_items": (lambda: [(cm_x, cm_y, torch.zeros(6))], NC, False, _cm_ref, None),
    "empty_loader": (lambda: [], NC, False, lambda m: torch.zeros(NC, NC, dtype=torch.long), None),
    "train_mode_bn": (
        lambda: [(cm_x, cm_y)],
        NC,
        False,
        lambda m: _cm_ref(m),
        lambda: net(bn=True, drop=True).train(),
    ),
    "float_labels": (lambda: [(cm_x, cm_y.float() + 0.7)], NC, True, None, None),
    "labels_int_valued_float": (lambda: [(cm_x, cm_y.float())], NC, True, None, None),
    "labels_oob": (lambda: [(cm_x, cm_y + 3)], NC, True, None, None),
    "labels_neg": (lambda: [(cm_x, cm_y - 1)], NC, True, None, None),
    "labels_bool": (lambda: [(cm_x, cm_y > 2)], NC, True, None, None),
    "labels_2d_onehot": (lambda: [(cm_x, F.one_hot(cm_y, NC))], NC, True, None, None),
    "labels_column": (lambda: [(cm_x, cm_y[:, None])], NC, True, None, None),
    "labels_short": (lambda: [(cm_x, cm_y[:4])], NC, True, None, None),
    "labels_list": (lambda: [(cm_x, cm_y.tolist())], NC, False, _cm_ref, None),
    "labels_numpy": (lambda: [(cm_x, cm_y.numpy())], NC, False, _cm_ref, None),
    "num_classes_small": (lambda: [(cm_x, cm_y % 3)], 3, True, None, None),
    "num_classes_big": (lambda: [(cm_x, cm_y)], 7, False, lambda m: _cm_ref(m, ncls=7), None),
    "num_classes_zero": (lambda: [(cm_x, cm_y)], 0, True, None, None),
    "num_classes_float": (lambda: [(cm_x, cm_y)], 5.0, True, None, None),
    "num_classes_none": (lambda: [(cm_x, cm_y)], None, True, None, None),
    "batch_dict": (lambda: [{"image": cm_x, "label": cm_y}], NC, True, None, None),
    "batch_bare_tensor": (lambda: [cm_x], NC, True, None, None),
    "batch_1tuple": (lambda: [(cm_x,)], NC, True, None, None),
    "loader_not_iterable": (lambda: 5, NC, True, None, None),
    "model_dict_output": (
        lambda: [(cm_x, cm_y)],
        NC,
        False,
        lambda m: _cm_ref(m.inner),
        lambda: cases_models.Wrap("dict").eval(),
    ),
    "model_nan_logits": (
        lambda: [(cm_x, cm_y)],
        NC,
        True,
        None,
        lambda: cases_models.Wrap("nan_logits").eval(),
    ),
    "model_1d_output": (
        lambda: [(cm_x, cm_y)],
        NC,
        True,
        None,
        lambda: cases_models.Wrap("1d").eval(),
    ),
    "model_3d_output": (
        lambda: [(cm_x, cm_y)],
        NC,
        True,
        None,
        lambda: cases_models.Wrap("3d").eval(),
    ),
    "labels_uint8": (lambda: [(cm_x, cm_y.to(torch.uint8))], NC, False, _cm_ref, None),
    "generator_loader": (
        lambda: ((cm_x[i : i + 2], cm_y[i : i + 2]) for i in range(0, 6, 2)),
        NC,
        False,
        _cm_ref,
        None,
    ),
}
for _k, (lf, n, bad, exp, mdl) in CM.items():
    add(
        f"confusion.{_k}",
        _cm(lf, n, bad, exp, mdl, _k),
        names=("label", "num_classes", "batch", "output", "logits", "data_loader", "finite", "nan"),
        repro=f"confusion_matrix(m, <{_k}>, num_classes={n})",
        valid=not bad,
    )

CS = {
    "from_cm_hand": (
        lambda: (
            cc.ContrastSet.from_confusion_matrix(
                torch.tensor([[8, 2, 0], [1, 7, 2], [0, 5, 5]]), k=1
            )
            .contrast_classes.flatten()
            .tolist()
        ),
        lambda o: o == [1, 2, 1],
        False,
    ),
    "from_cm_k_too_big": (
        lambda: cc.ContrastSet.from_confusion_matrix(torch.eye(3, dtype=torch.long), k=3),
        None,
        True,
    ),
    "from_cm_k0": (
        lambda: cc.ContrastSet.from_confusion_matrix(torch.eye(3, dtype=torch.long), k=0),
        None,
        True,
    ),
    "from_cm_nonsquare": (
        lambda: cc.ContrastSet.from_confusion_matrix(torch.ones(3, 4, dtype=torch.long), k=1),
        None,
        True,
    ),
    "from_cm_negative": (
        lambda: cc.ContrastSet.from_confusion_matrix(-torch.ones(3, 3, dtype=torch.long), k=1),
        None,
        True,
    ),
    "from_cm_nan": (
        lambda: cc.ContrastSet.from_confusion_matrix(torch.full((3, 3), float("nan")), k=1),
        None,
        True,
    ),
    "from_cm_1x1": (
        lambda: cc.ContrastSet.from_confusion_matrix(torch.ones(1, 1, dtype=torch.long), k=1),
        None,
        True,
    ),
    "ctor_float": (lambda: cc.ContrastSet(torch.ones(3, 1)), None, True),
    "ctor_1d": (lambda: cc.ContrastSet(torch.tensor([1, 2, 0])), None, True),
    "ctor_neg": (lambda: cc.ContrastSet(torch.tensor([[-1], [0], [1]])), None, True),
    "ctor_oob": (lambda: cc.ContrastSet(torch.tensor([[5], [0], [1]])), None, True),
    "call_oob_target": (
        lambda: cc.ContrastSet(torch.tensor([[1], [0], [1]]))(torch.tensor([3])),
        None,
        True,
    ),
    "call_float_target": (
        lambda: cc.ContrastSet(torch.tensor([[1], [0], [1]]))(torch.tensor([1.5])),
        None,
        True,
    ),
    "call_neg_target": (
        lambda: cc.ContrastSet(torch.tensor([[1], [0], [1]]))(torch.tensor([-1])),
        None,
        True,
    ),
}
reg("contrastset", CS, ("k", "confusion", "contrast_classes", "target", "class", "square", "shape"))


# ------------------------------------------------------------------ training losses


def _mm(x):
    # N(m): per-sample min-max at CAM resolution (SPEC 4)
    lo = x.amin((-2, -1), keepdim=True)
    hi = x.amax((-2, -1), keepdim=True)
    return (x - lo) / torch.where(hi - lo > 0, hi - lo, torch.ones_like(hi))


def loss_data(b=4, k=6, h=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    head = nn.Linear(k, 2)
    with torch.no_grad():
        head.weight.copy_(torch.randn(2, k, generator=g))
        head.bias.copy_(torch.randn(2, generator=g))
    feats = torch.randn(b, k, h, h, generator=g)
    logits = head(feats.mean((2, 3)))
    labels = torch.tensor([0, 1, 1, 0][:b])
    hmap = torch.rand(b, h, h, generator=g)
    return head, logits, feats, labels, hmap


def _loss_hand(name):
    def fn():
        head, logits, feats, labels, hmap = loss_data()
        track(head)
        loss = getattr(T, name)(head)
        got = loss(logits, feats, labels, hmap)
        cams = torch.einsum("ck,bkhw->bchw", head.weight, feats)
        idx = torch.arange(4)
        t = cams[idx, labels]
        f = cams[idx, 1 - labels]
        h = _mm(hmap)
        ce = F.cross_entropy(logits, labels)
        if name == "CYBORGLoss":
            ref = 0.5 * ce + 0.5 * F.mse_loss(_mm(t), h)
        elif name == "DifferenceSalienceLoss":
            ref = 0.5 * ce + 0.5 * F.mse_loss(_mm(t - f), h)
        elif name == "PerClassSalienceLoss":
            ref = (ce + F.mse_loss(_mm(t), h) + F.mse_loss(_mm(f), 1 - h)) / 3
        else:
            ref = (ce + F.mse_loss(_mm(t), h) + F.mse_loss(_mm(f), 1 - _mm(t))) / 3
        if not torch.allclose(got, ref, rtol=1e-4, atol=1e-6):
            raise Wrong(f"{name} {got.item():.6f} != hand {ref.item():.6f}")
        return None

    return fn


LOSSES = ["CYBORGLoss", "DifferenceSalienceLoss", "PerClassSalienceLoss", "ContrastSalienceLoss"]
LOSS_BAD = {
    "labels_float": lambda d: {**d, "labels": d["labels"].float() + 0.3},
    "labels_oob": lambda d: {**d, "labels": d["labels"] + 2},
    "labels_neg": lambda d: {**d, "labels": d["labels"] - 1},
    "labels_bool": lambda d: {**d, "labels": d["labels"].bool()},
    "labels_2d": lambda d: {**d, "labels": d["labels"][:, None]},
    "labels_short": lambda d: {**d, "labels": d["labels"][:2]},
    "hmap_wrong_size": lambda d: {**d, "human_maps": torch.rand(4, 7, 7)},
    "hmap_nan": lambda d: {**d, "human_maps": d["human_maps"] * float("nan")},
    "hmap_wrong_batch": lambda d: {**d, "human_maps": d["human_maps"][:2]},
    "features_2d": lambda d: {**d, "features": d["features"].mean((2, 3))},
    "features_wrong_k": lambda d: {**d, "features": torch.rand(4, 3, 5, 5)},
    "logits_3_classes": lambda d: {**d, "logits": torch.rand(4, 3)},
    "logits_nan": lambda d: {**d, "logits": d["logits"] * float("nan")},
    "features_channels_last": lambda d: {**d, "features": d["features"].permute(0, 2, 3, 1)},
    "empty_batch": lambda d: {k: v[:0] for k, v in d.items()},
}


def _loss_bad(name, key):
    def fn():
        head, logits, feats, labels, hmap = loss_data()
        track(head)
        d = {"logits": logits, "features": feats, "labels": labels, "human_maps": hmap}
        d = LOSS_BAD[key](d)
        out = getattr(T, name)(head)(d["logits"], d["features"], d["labels"], d["human_maps"])
        if key == "logits_nan" and torch.isnan(out).all():
            return Verdict("correct", "NaN loss, as torch losses give")
        if key == "hmap_wrong_size":
            return Verdict("correct", "documented: human maps of any resolution")
        if key == "labels_bool":
            ref = getattr(T, name)(head)(logits, feats, labels, hmap)
            if torch.allclose(out, ref):
                return Verdict("correct", "documented: bool labels")
            raise Wrong("bool labels differ from int labels")
        accepted(key, out)

    return fn


for _n in LOSSES:
    add(
        f"training.{_n}.hand",
        _loss_hand(_n),
        names=(),
        repro=f"{_n}(head)(logits, feats, labels, hmap) vs SPEC 4 hand computation",
        valid=True,
    )
    for _k in LOSS_BAD:
        add(
            f"training.{_n}.{_k}",
            _loss_bad(_n, _k),
            names=("labels", "human_maps", "features", "logits", "batch", "finite", "nan", "shape"),
            repro=f"{_n}(head)(<{_k}>)",
        )

LOSS_CTOR = {
    "cyborg_alpha_neg": (lambda: T.CYBORGLoss(nn.Linear(6, 2), alpha=-0.5), None, True),
    "cyborg_alpha_2": (lambda: T.CYBORGLoss(nn.Linear(6, 2), alpha=2.0), None, True),
    "cyborg_alpha_nan": (lambda: T.CYBORGLoss(nn.Linear(6, 2), alpha=float("nan")), None, True),
    "cyborg_3_outputs": (lambda: T.CYBORGLoss(nn.Linear(6, 3)), None, True),
    "cyborg_not_linear": (lambda: T.CYBORGLoss(nn.Conv2d(6, 2, 1)), None, True),
    "perclass_lambdas_2": (
        lambda: T.PerClassSalienceLoss(nn.Linear(6, 2), lambdas=(0.5, 0.5)),
        None,
        True,
    ),
    "perclass_lambdas_neg": (
        lambda: T.PerClassSalienceLoss(nn.Linear(6, 2), lambdas=(1, -1, 1)),
        None,
        True,
    ),
    "contrast_lambdas_nan": (
        lambda: T.ContrastSalienceLoss(nn.Linear(6, 2), lambdas=(1, float("nan"), 1)),
        None,
        True,
    ),
    "cam_classes_oob": (
        lambda: T.class_activation_maps(torch.rand(2, 6, 3, 3), torch.rand(4, 6), classes=4),
        None,
        True,
    ),
    "cam_classes_float": (
        lambda: T.class_activation_maps(torch.rand(2, 6, 3, 3), torch.rand(4, 6), classes=1.5),
        None,
        True,
    ),
    "cam_classes_neg": (
        lambda: T.class_activation_maps(torch.rand(2, 6, 3, 3), torch.rand(4, 6), classes=-1),
        None,
        True,
    ),
    "cam_classes_bool_list": (
        lambda: T.class_activation_maps(
            torch.rand(2, 6, 3, 3), torch.rand(4, 6), classes=[True, False]
        ),
        None,
        True,
    ),
    "cam_weight_mismatch": (
        lambda: T.class_activation_maps(torch.rand(2, 6, 3, 3), torch.rand(4, 5)),
        None,
        True,
    ),
    "cam_hand": (
        lambda: T.class_activation_maps(
            torch.arange(8.0).reshape(1, 2, 2, 2), torch.tensor([[1.0, -1.0]]), classes=0
        ),
        lambda o: o.flatten().tolist() == [-4.0, -4.0, -4.0, -4.0],
        False,
    ),
    "kur_spec_vector": (
        lambda: _kur(),
        lambda o: torch.allclose(
            o,
            torch.tensor(
                [
                    [0.5979, -0.0667, 0.0537],
                    [0.0954, 0.4193, -0.0632],
                    [-0.0374, 0.0252, 0.5050],
                    [0.1667, 0.1667, 0.1667],
                ]
            ).T,
            atol=1e-4,
        ),
        False,
    ),
    "head_weight_conv": (lambda: T.head_weight(nn.Conv2d(3, 2, 1)), None, True),
    "head_weight_none": (lambda: T.head_weight(None), None, True),
}


def _kur():
    lin = T.KernelUsageRegularizedLinear(4, 3)
    with torch.no_grad():
        lin.weight.copy_(
            torch.tensor([[1, -0.5, 0.2], [0.3, 0.8, -0.4], [-0.2, 0.1, 0.9], [0.5, 0.5, 0.5]]).T
        )
    return lin.effective_weight.detach()


reg(
    "training.misc",
    LOSS_CTOR,
    (
        "alpha",
        "lambdas",
        "classifier",
        "classes",
        "weight",
        "features",
        "linear",
        "outputs",
        "class",
    ),
)


# ------------------------------------------------------------------ data
def _data(fn_call, bad, check=None):
    return fn_call, check, bad


def _dc():
    from captum_contrast import data as D

    return D


DATA = {
    "digit_valid": (
        lambda: _dc().DigitCanvases(n=4, split="test")[0],
        lambda o: o[0].shape == (1, 32, 32) and bool((o[2] == (o[0] > 0)).all()),
        False,
    ),
    "digit_n0": (lambda: len(_dc().DigitCanvases(n=0)), lambda o: o == 0, False),
    "digit_n_neg": (lambda: _dc().DigitCanvases(n=-1), None, True),
    "digit_split_bogus": (lambda: _dc().DigitCanvases(n=2, split="dev"), None, True),
    "digit_size_tiny": (lambda: _dc().DigitCanvases(n=2, size=4), None, True),
    "digit_size_zero": (lambda: _dc().DigitCanvases(n=2, size=0), None, True),
    "digit_size_float": (lambda: _dc().DigitCanvases(n=2, size=32.5), None, True),
    "digit_digit_size_big": (lambda: _dc().DigitCanvases(n=2, size=16, digit_size=20), None, True),
    "digit_index_oob": (lambda: _dc().DigitCanvases(n=2)[5], None, True),
    "multi_min_gt_max": (
        lambda: _dc().MultiDigitCanvases(n=2, min_digits=3, max_digits=1),
        None,
        True,
    ),
    "multi_max_11": (lambda: _dc().MultiDigitCanvases(n=2, max_digits=11), None, True),
    "multi_min0": (lambda: _dc().MultiDigitCanvases(n=2, min_digits=0, max_digits=1), None, True),
    "multi_valid": (
        lambda: _dc().MultiDigitCanvases(n=3)[1],
        lambda o: bool((o[2].any(0) == (o[0][0] > 0)).all()) and o[1].sum() >= 1,
        False,
    ),
    "sal_frac_1.5": (lambda: _dc().SalienceDigits(n=4, positive_fraction=1.5), None, True),
    "sal_pos_class_11": (lambda: _dc().SalienceDigits(n=4, positive_class=11), None, True),
    "sal_distractor_is_positive": (
        lambda: _dc().SalienceDigits(n=4, split="ood", ood_distractors=(3,)),
        None,
        True,
    ),
    "sal_bad_annotation": (
        lambda: _dc().SalienceDigits(n=4, negative_annotation="bogus"),
        None,
        True,
    ),
    "sal_noise_neg": (lambda: _dc().SalienceDigits(n=4, ood_noise=-1.0), None, True),
    "small_cnn_0_classes": (lambda: _dc().small_cnn(num_classes=0), None, True),
    "small_cnn_width_0": (lambda: _dc().small_cnn(num_classes=2, width=0), None, True),
    "fit_mismatch": (
        lambda: _dc().fit_classifier(
            _dc().small_cnn(2, width=2), torch.rand(4, 1, 32, 32), torch.tensor([0, 1]), epochs=1
        ),
        None,
        True,
    ),
    "fit_epochs_neg": (
        lambda: _dc().fit_classifier(
            _dc().small_cnn(2, width=2),
            torch.rand(4, 1, 32, 32),
            torch.tensor([0, 1, 0, 1]),
            epochs=-1,
        ),
        None,
        True,
    ),
    "fit_float_labels_1d": (
        lambda: _dc().fit_classifier(
            _dc().small_cnn(2, width=2),
            torch.rand(4, 1, 32, 32),
            torch.tensor([0.0, 1.0, 0.5, 1.0]),
            epochs=1,
        ),
        None,
        True,
    ),
    "fit_labels_oob": (
        lambda: _dc().fit_classifier(
            _dc().small_cnn(2, width=2),
            torch.rand(4, 1, 32, 32),
            torch.tensor([0, 1, 5, 1]),
            epochs=1,
        ),
        None,
        True,
    ),
}
reg(
    "data",
    DATA,
    (
        "n",
        "split",
        "size",
        "digit",
        "index",
        "positive",
        "annotation",
        "noise",
        "num_classes",
        "width",
        "labels",
        "epochs",
        "class",
        "fraction",
        "distractor",
        "range",
    ),
)
