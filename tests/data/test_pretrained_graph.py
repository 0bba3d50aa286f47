"""The torch-native runtime of the vendored ONNX graphs: ONNX semantics, refusals by name."""

from __future__ import annotations

import pytest
import torch

from captum_contrast.data.pretrained._graph import GraphNetwork, build_node


def _node(op: str, inputs: list[str], attrs: dict | None = None) -> dict:
    return {"op": op, "key": op.lower(), "inputs": inputs, "outputs": ["y"], "attrs": attrs or {}}


def _run(node: dict, tensors: dict, *inputs: torch.Tensor) -> torch.Tensor:
    module, dynamic = build_node(node, tensors)
    assert len(dynamic) == len(inputs)
    return module(*inputs)


def test_reshape_copies_a_zero_and_infers_a_minus_one() -> None:
    x = torch.arange(24.0).view(2, 3, 4)
    out = _run(_node("Reshape", ["x", "shape"]), {"shape": torch.tensor([0, -1])}, x)
    assert out.shape == (2, 12)  # 0 keeps the batch size whatever it is
    assert torch.equal(out, x.view(2, 12))


def test_softmax_of_opset_12_normalises_over_every_axis_from_axis_on() -> None:
    x = torch.tensor([[[0.0, 0.0], [0.0, 0.0]]])  # (1, 2, 2)
    out = _run(_node("Softmax", ["x"], {"axis": 1}), {}, x)
    torch.testing.assert_close(out, torch.full((1, 2, 2), 0.25))  # 4 entries share the mass


def test_slice_clips_an_end_past_the_axis_and_takes_axes() -> None:
    x = torch.arange(10.0).view(2, 5)
    tensors = {"s": torch.tensor([1]), "e": torch.tensor([2**62]), "a": torch.tensor([1])}
    out = _run(_node("Slice", ["x", "s", "e", "a"]), tensors, x)
    assert torch.equal(out, x[:, 1:])


def test_constant_inputs_keep_their_position_for_non_commutative_ops() -> None:
    x = torch.tensor([1.0, 2.0])
    out = _run(_node("Sub", ["ten", "x"]), {"ten": torch.tensor(10.0)}, x)
    assert out.tolist() == [9.0, 8.0]  # 10 - x, not x - 10
    out = _run(_node("Div", ["x", "two"]), {"two": torch.tensor(2.0)}, x)
    assert out.tolist() == [0.5, 1.0]


def test_hard_sigmoid_uses_the_nodes_alpha_and_beta() -> None:
    x = torch.tensor([-10.0, 0.0, 1.0, 10.0])
    out = _run(_node("HardSigmoid", ["x"], {"alpha": 0.2, "beta": 0.5}), {}, x)
    torch.testing.assert_close(out, torch.tensor([0.0, 0.5, 0.7, 1.0]))


def test_omitted_trailing_inputs_are_dropped_and_constant_weights_make_layers() -> None:
    weight = torch.ones(1, 1, 3, 3)
    conv = _node("Conv", ["x", "w", ""], {"pads": [1, 1, 1, 1], "strides": [1, 1]})
    module, dynamic = build_node(conv, {"w": weight})
    assert isinstance(module, torch.nn.Conv2d) and module.bias is None and dynamic == ["x"]
    assert module(torch.ones(1, 1, 3, 3))[0, 0, 1, 1].item() == 9.0
    matmul, dynamic = build_node(_node("MatMul", ["x", "w"]), {"w": torch.eye(3)[:, :2]})
    assert isinstance(matmul, torch.nn.Linear) and matmul(torch.ones(1, 3)).tolist() == [[1, 1]]


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (_node("Gelu", ["x"]), "ONNX operator 'Gelu' is not supported"),
        (_node("Conv", ["x", "w"], {"pads": [0, 0, 1, 1]}), "only symmetric 2-D pads"),
        (_node("Resize", ["x", "r", "s"], {"mode": "linear"}), "only nearest, asymmetric"),
        (_node("Add", ["", "x"]), "an omitted input before a given one"),
        (_node("Cast", ["x"], {"to": 16}), "Cast to ONNX data type 16 is not supported"),
    ],
)
def test_unsupported_nodes_are_refused_by_name(node: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_node(node, {"w": torch.ones(1, 1, 1, 1)})


def test_graph_network_frees_intermediates_and_exposes_every_node_as_a_layer() -> None:
    spec = {
        "inputs": ["x"],
        "outputs": ["z"],
        "metadata": {"character": "a\nb"},
        "tensors": {"one": torch.tensor(1.0)},
        "nodes": [
            {"op": "Add", "key": "plus", "inputs": ["x", "one"], "outputs": ["y"], "attrs": {}},
            {"op": "Mul", "key": "square", "inputs": ["y", "y"], "outputs": ["z"], "attrs": {}},
        ],
    }
    net = GraphNetwork(spec)
    seen = []
    handle = net.nodes.plus.register_forward_hook(lambda m, i, o: seen.append(o.clone()) or None)
    try:
        assert net(torch.tensor([2.0])).tolist() == [9.0]
    finally:
        handle.remove()
    assert seen[0].tolist() == [3.0] and net.metadata == {"character": "a\nb"}
    with pytest.raises(ValueError, match="one input and one output"):
        GraphNetwork({**spec, "outputs": ["y", "z"]})
