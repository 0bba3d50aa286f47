"""A torch-native runtime for the small ONNX graphs that PaddleOCR's networks ship as.

The OCR networks come as ONNX files inside ``rapidocr-onnxruntime``. Rather than needing
``onnx`` and a converter at load time, each graph was converted once (:mod:`._onnx`) into a
*spec*, a plain dictionary saved with ``torch.save`` under ``weights/``::

    {"inputs": [name], "outputs": [name], "metadata": {str: str},
     "nodes": [{"op": "Conv", "key": "conv2d_450", "inputs": [...], "outputs": [...],
                "attrs": {...}}, ...],
     "tensors": {name: Tensor}}   # the graph's constants (weights, scalars, shapes)

:class:`GraphNetwork` rebuilds it as an ``nn.Module`` with **one submodule per node** (a
``Conv2d`` for each convolution, a ``BatchNorm`` for each normalisation, small modules for the
rest), run in the graph's order. Every node's output is therefore a layer that a hook, and so
a CAM, can read, named ``nodes.<key>``. Only the operators these networks use are supported
(opset 11-12 semantics); anything else is refused by name at build time.

Example:
    >>> spec = {"inputs": ["x"], "outputs": ["y"], "metadata": {}, "tensors": {
    ...     "w": torch.ones(2, 1, 1, 1), "two": torch.tensor(2.0)}, "nodes": [
    ...     {"op": "Conv", "key": "conv", "inputs": ["x", "w"], "outputs": ["c"],
    ...      "attrs": {"strides": [1, 1], "pads": [0, 0, 0, 0], "group": 1}},
    ...     {"op": "Mul", "key": "times_two", "inputs": ["c", "two"], "outputs": ["y"], "attrs": {}}]}
    >>> net = GraphNetwork(spec)
    >>> net(torch.ones(1, 1, 2, 2)).flatten().tolist()
    [2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]
    >>> type(net.nodes.conv).__name__
    'Conv2d'
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Spec = dict[str, Any]

# ONNX TensorProto data types that Cast targets here.
_DTYPES = {1: torch.float32, 6: torch.int32, 7: torch.int64, 9: torch.bool, 11: torch.float64}


class _AnyRankBatchNorm(nn.modules.batchnorm._BatchNorm):
    """ONNX's BatchNormalization: per channel (dim 1) for inputs of any rank.

    torch's ``BatchNorm1d/2d`` check the rank; the ONNX node does not say it, so this one
    accepts ``(N, C, ...)`` as ``F.batch_norm`` does.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"BatchNormalization expects (N, C, ...), got {input.dim()}-D input")


class _Op(nn.Module):
    """One node without weights of its own: ``fn`` applied to its inputs in the graph's order.

    Inputs that are constants of the graph are kept as buffers (``const_<position>``), the
    others arrive as forward arguments in order.
    """

    def __init__(self, op: str, fn: Callable[..., Tensor], constants: dict[int, Tensor]) -> None:
        super().__init__()
        self.op = op
        self.fn = fn
        self.positions = sorted(constants)
        for position, value in constants.items():
            self.register_buffer(f"const_{position}", value.clone())

    def forward(self, *inputs: Tensor) -> Tensor:
        args = list(inputs)
        for position in self.positions:
            args.insert(position, getattr(self, f"const_{position}"))
        return self.fn(*args)

    def extra_repr(self) -> str:
        return self.op


class _MatMulConst(nn.Linear):
    """``MatMul(x, W)`` with a constant ``(in, out)`` weight: a bias-free ``nn.Linear``."""

    def __init__(self, weight: Tensor) -> None:
        super().__init__(weight.shape[0], weight.shape[1], bias=False)
        with torch.no_grad():
            self.weight.copy_(weight.T)


def _pads(attrs: dict[str, Any]) -> tuple[int, int]:
    pads = attrs.get("pads", [0, 0, 0, 0])
    if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", ""):
        raise ValueError(f"auto_pad={attrs['auto_pad']!r} is not supported")
    if len(pads) != 4 or pads[:2] != pads[2:]:
        raise ValueError(f"only symmetric 2-D pads are supported, got {pads}")
    return pads[0], pads[1]


def _conv(attrs: dict[str, Any], weight: Tensor, bias: Tensor | None) -> nn.Conv2d:
    groups = attrs.get("group", 1)
    module = nn.Conv2d(
        weight.shape[1] * groups,
        weight.shape[0],
        tuple(weight.shape[2:]),
        stride=tuple(attrs.get("strides", [1, 1])),
        padding=_pads(attrs),
        dilation=tuple(attrs.get("dilations", [1, 1])),
        groups=groups,
        bias=bias is not None,
    )
    _copy_into(module, weight, bias)
    return module


def _conv_transpose(attrs: dict[str, Any], weight: Tensor, bias: Tensor | None) -> nn.Module:
    groups = attrs.get("group", 1)
    module = nn.ConvTranspose2d(
        weight.shape[0],
        weight.shape[1] * groups,
        tuple(weight.shape[2:]),
        stride=tuple(attrs.get("strides", [1, 1])),
        padding=_pads(attrs),
        output_padding=tuple(attrs.get("output_padding", [0, 0])),
        dilation=tuple(attrs.get("dilations", [1, 1])),
        groups=groups,
        bias=bias is not None,
    )
    _copy_into(module, weight, bias)
    return module


def _copy_into(module: nn.Module, weight: Tensor, bias: Tensor | None) -> None:
    with torch.no_grad():
        module.weight.copy_(weight)
        if bias is not None:
            module.bias.copy_(bias)


def _batch_norm(attrs: dict[str, Any], scale, shift, mean, var) -> nn.Module:
    module = _AnyRankBatchNorm(scale.numel(), eps=attrs.get("epsilon", 1e-5))
    with torch.no_grad():
        module.weight.copy_(scale)
        module.bias.copy_(shift)
        module.running_mean.copy_(mean)
        module.running_var.copy_(var)
    return module


def _reshape(data: Tensor, shape: Tensor) -> Tensor:
    # ONNX: a 0 copies the input's size at that position (allowzero=0), -1 is inferred.
    sizes = [data.shape[i] if size == 0 else size for i, size in enumerate(shape.tolist())]
    return data.reshape(sizes)


def _slice(data: Tensor, starts, ends, axes=None, steps=None) -> Tensor:
    starts, ends = starts.tolist(), ends.tolist()
    axes = list(range(len(starts))) if axes is None else axes.tolist()
    steps = [1] * len(starts) if steps is None else steps.tolist()
    index = [slice(None)] * data.dim()
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        if step != 1:
            raise ValueError(f"Slice with step {step} is not supported")
        index[axis] = slice(start, min(end, data.shape[axis]))
    return data[tuple(index)]


def _softmax(x: Tensor, axis: int) -> Tensor:
    # Opset < 13: the input is coerced to 2-D at `axis` and normalised over dims axis..end.
    axis = axis % x.dim()
    return x.flatten(axis).softmax(-1).reshape(x.shape)


def _resize(attrs: dict[str, Any]) -> Callable[..., Tensor]:
    key = (attrs.get("mode"), attrs.get("coordinate_transformation_mode"))
    if key != ("nearest", "asymmetric") or attrs.get("nearest_mode", "floor") != "floor":
        raise ValueError(f"Resize {attrs} is not supported (only nearest, asymmetric, floor)")

    def resize(x: Tensor, roi: Tensor, scales: Tensor) -> Tensor:
        factors = scales.tolist()
        if factors[:2] != [1.0, 1.0]:
            raise ValueError(f"Resize scales {factors} change the batch or channel axis")
        return F.interpolate(x, scale_factor=factors[2:], mode="nearest")

    return resize


def _hard_sigmoid(alpha: float, beta: float) -> Callable[[Tensor], Tensor]:
    return lambda x: (alpha * x + beta).clamp(0.0, 1.0)


def _function(op: str, attrs: dict[str, Any]) -> Callable[..., Tensor]:
    """The torch function for a weight-free ONNX operator with these attributes."""
    simple: dict[str, Callable[..., Tensor]] = {
        "Add": operator.add,
        "Sub": operator.sub,
        "Mul": operator.mul,
        "Div": operator.truediv,
        "Pow": torch.pow,
        "Sqrt": torch.sqrt,
        "Relu": torch.relu,
        "Sigmoid": torch.sigmoid,
        "Identity": lambda x: x,
        "MatMul": torch.matmul,
        "Clip": lambda x, low=None, high=None: x.clamp(low, high),
        "GlobalAveragePool": lambda x: x.mean(dim=tuple(range(2, x.dim())), keepdim=True),
        # On the input's device: shapes are concatenated with constants (buffers), which
        # follow the model to its device.
        "Shape": lambda x: torch.tensor(x.shape, dtype=torch.int64, device=x.device),
        "Reshape": _reshape,
        "Slice": _slice,
    }
    if op in simple:
        return simple[op]
    if op == "HardSigmoid":
        return _hard_sigmoid(attrs.get("alpha", 0.2), attrs.get("beta", 0.5))
    if op == "Cast":
        if attrs.get("to") not in _DTYPES:
            raise ValueError(f"Cast to ONNX data type {attrs.get('to')} is not supported")
        dtype = _DTYPES[attrs["to"]]
        return lambda x: x.to(dtype)
    if op == "Concat":
        return lambda *xs: torch.cat(xs, dim=attrs["axis"])
    if op == "Transpose":
        return lambda x: x.permute(attrs["perm"])
    if op == "Squeeze":
        return lambda x: x.squeeze(tuple(attrs["axes"]))
    if op == "ReduceMean":
        return lambda x: x.mean(dim=tuple(attrs["axes"]), keepdim=bool(attrs.get("keepdims", 1)))
    if op == "Softmax":
        return lambda x: _softmax(x, attrs.get("axis", 1))
    if op == "Resize":
        return _resize(attrs)
    if op in ("AveragePool", "MaxPool"):
        return _pool(op, attrs)
    raise ValueError(f"ONNX operator {op!r} is not supported by this runtime")


def _pool(op: str, attrs: dict[str, Any]) -> Callable[[Tensor], Tensor]:
    kernel, stride = tuple(attrs["kernel_shape"]), tuple(attrs.get("strides", [1, 1]))
    padding, ceil = _pads(attrs), bool(attrs.get("ceil_mode", 0))
    if op == "MaxPool":
        return nn.MaxPool2d(kernel, stride, padding, ceil_mode=ceil)
    include = bool(attrs.get("count_include_pad", 0))
    return nn.AvgPool2d(kernel, stride, padding, ceil_mode=ceil, count_include_pad=include)


def build_node(node: Spec, tensors: dict[str, Tensor]) -> tuple[nn.Module, list[str]]:
    """The module for one node, and the names of its inputs that come from other nodes.

    Example:
        >>> module, dynamic = build_node(
        ...     {"op": "Add", "inputs": ["x", "one"], "outputs": ["y"], "attrs": {}},
        ...     {"one": torch.tensor(1.0)})
        >>> dynamic, module(torch.zeros(2)).tolist()
        (['x'], [1.0, 1.0])
    """
    op, attrs, names = node["op"], node["attrs"], list(node["inputs"])
    while names and not names[-1]:  # omitted trailing optional inputs
        names.pop()
    if "" in names:
        raise ValueError(f"node {node.get('key')!r}: an omitted input before a given one")
    constant = [name in tensors for name in names]
    if op in ("Conv", "ConvTranspose") and all(constant[1:]):
        weight, bias = tensors[names[1]], tensors[names[2]] if len(names) > 2 else None
        build = _conv if op == "Conv" else _conv_transpose
        return build(attrs, weight, bias), names[:1]
    if op == "BatchNormalization" and all(constant[1:]):
        return _batch_norm(attrs, *(tensors[name] for name in names[1:5])), names[:1]
    if op == "MatMul" and constant == [False, True] and tensors[names[1]].dim() == 2:
        return _MatMulConst(tensors[names[1]]), names[:1]
    constants = {i: tensors[name] for i, name in enumerate(names) if constant[i]}
    module = _Op(op, _function(op, attrs), constants)
    return module, [name for i, name in enumerate(names) if not constant[i]]


class GraphNetwork(nn.Module):
    """A converted ONNX graph (see the module docstring): one submodule per node, in order.

    Args:
        spec: The converted graph (:func:`captum_contrast.data.pretrained._onnx.convert`).

    Attributes:
        nodes: The node modules, by key; ``nodes.<key>`` names a layer to explain.
        metadata: The ONNX model's metadata (PaddleOCR stores its character list there).
    """

    def __init__(self, spec: Spec) -> None:
        super().__init__()
        if len(spec["inputs"]) != 1 or len(spec["outputs"]) != 1:
            raise ValueError("only graphs with one input and one output are supported")
        self.input_name, self.output_name = spec["inputs"][0], spec["outputs"][0]
        self.metadata: dict[str, str] = dict(spec.get("metadata", {}))
        self.nodes = nn.ModuleDict()
        plan: list[tuple[str, list[str], str]] = []
        for node in spec["nodes"]:
            if len(node["outputs"]) != 1:
                raise ValueError(f"node {node['key']!r} has several outputs; not supported")
            module, dynamic = build_node(node, spec["tensors"])
            self.nodes[node["key"]] = module
            plan.append((node["key"], dynamic, node["outputs"][0]))
        self._plan = plan
        self._last_use = _last_uses(plan, self.output_name)

    def forward(self, x: Tensor) -> Tensor:
        values = {self.input_name: x}
        for step, (key, inputs, output) in enumerate(self._plan):
            values[output] = self.nodes[key](*(values[name] for name in inputs))
            for name in self._last_use.get(step, ()):  # free what no later node reads
                del values[name]
        return values[self.output_name]


def _last_uses(plan: Sequence[tuple[str, list[str], str]], keep: str) -> dict[int, list[str]]:
    last: dict[str, int] = {}
    for step, (_, inputs, _) in enumerate(plan):
        for name in inputs:
            last[name] = step
    freed: dict[int, list[str]] = {}
    for name, step in last.items():
        if name != keep:
            freed.setdefault(step, []).append(name)
    return freed
