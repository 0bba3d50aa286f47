"""ONNX file -> the spec :class:`~._graph.GraphNetwork` runs (needs the ``onnx`` package).

This is how the vendored ``weights/ppocr_*.pt`` files were made, and how the tests check that
they still equal a fresh conversion of the wheel's files::

    spec = convert(source_file("rapidocr_onnxruntime", "models/ch_PP-OCRv4_det_infer.onnx"),
                   cut_final="Sigmoid")
    torch.save(spec, "ppocr_v4_det.pt")
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from captum_contrast.data.pretrained._common import EXTRA_HINT
from captum_contrast.data.pretrained._graph import Spec, build_node


def _onnx():
    try:
        import onnx
    except ImportError as error:
        raise ImportError(f"converting an ONNX model needs onnx: {EXTRA_HINT}") from error
    return onnx


def _attribute(value: Any) -> Any:
    """ONNX attribute values as plain Python (torch.load(weights_only=True) reads them)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, (list, tuple)):
        return [_attribute(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (int, float, str)):
        return value
    raise ValueError(f"unsupported ONNX attribute value {value!r}")


def _key(output: str, taken: set[str]) -> str:
    """A module name from a node's output: ``conv2d_450.tmp_0`` -> ``conv2d_450``."""
    name = re.sub(r"\.tmp_\d+$", "", output.removeprefix("p2o."))
    name = re.sub(r"\W", "_", name) or "node"
    key, n = name, 1
    while key in taken or hasattr(nn.ModuleDict, key):  # e.g. "double" is a method
        n += 1
        key = f"{name}_{n}"
    taken.add(key)
    return key


def convert(path: str | Path, cut_final: str | None = None) -> Spec:
    """Read an ONNX file into a :class:`~._graph.GraphNetwork` spec.

    Every ``Constant`` node and initializer becomes a tensor of the spec; nodes whose inputs
    are all constants are evaluated here (folded); nodes the output does not depend on are
    dropped.

    Args:
        path: The ``.onnx`` file.
        cut_final: An operator (``"Softmax"``, ``"Sigmoid"``) that ends the graph (behind any
            ``Identity``) and is left out, so the network returns its logits; an error if the
            graph does not end so.

    Returns:
        The spec (a dict of plain values and tensors; ``torch.save`` it).
    """
    onnx = _onnx()
    from onnx import helper, numpy_helper

    proto = onnx.load(str(path))
    graph = proto.graph
    tensors: dict[str, torch.Tensor] = {
        item.name: torch.from_numpy(numpy_helper.to_array(item).copy())
        for item in graph.initializer
    }
    nodes: list[dict[str, Any]] = []
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Constant":
            tensors[node.output[0]] = torch.from_numpy(numpy_helper.to_array(attrs["value"]).copy())
            continue
        attrs = {name: _attribute(value) for name, value in attrs.items()}
        nodes.append(
            {"op": node.op_type, "inputs": list(node.input), "outputs": list(node.output),
             "attrs": attrs}
        )  # fmt: skip
    inputs = [item.name for item in graph.input if item.name not in tensors]
    outputs = [item.name for item in graph.output]
    if cut_final is not None:
        last = next((n for n in nodes if outputs[0] in n["outputs"]), None)
        while last is not None and last["op"] == "Identity":  # Paddle's scale_0 output
            last = next((n for n in nodes if last["inputs"][0] in n["outputs"]), None)
        if last is None or last["op"] != cut_final:
            found = last["op"] if last else "no node"
            raise ValueError(f"`cut_final`: the graph ends in {found}, not {cut_final}")
        outputs = [last["inputs"][0]]
    nodes = _fold_constants(nodes, tensors)
    nodes = _live(nodes, outputs[0])
    used = {name for node in nodes for name in node["inputs"]}
    taken: set[str] = set()
    for node in nodes:
        node["key"] = _key(node["outputs"][0], taken)
    return {
        "inputs": inputs,
        "outputs": outputs,
        "metadata": {item.key: item.value for item in proto.metadata_props},
        "nodes": nodes,
        "tensors": {name: value for name, value in tensors.items() if name in used},
    }


def _fold_constants(nodes: list[dict[str, Any]], tensors: dict[str, torch.Tensor]) -> list:
    """Evaluate the nodes whose every input is a constant (Paddle casts its shape literals)."""
    kept = []
    for node in nodes:
        names = [name for name in node["inputs"] if name]
        if names and all(name in tensors for name in names) and node["op"] not in ("Conv",):
            module, _ = build_node(node, tensors)
            with torch.no_grad():
                tensors[node["outputs"][0]] = module()
        else:
            kept.append(node)
    return kept


def _live(nodes: list[dict[str, Any]], output: str) -> list[dict[str, Any]]:
    """The nodes the output depends on, in their order."""
    needed, kept = {output}, []
    for node in reversed(nodes):
        if needed.intersection(node["outputs"]):
            kept.append(node)
            needed.update(name for name in node["inputs"] if name)
    return kept[::-1]
