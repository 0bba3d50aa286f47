"""A call leaves the model exactly as it found it: in eval and train mode, on success and on
failure, and when several threads explain one shared model at once."""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import Tensor

from captum_contrast import ContrastGradCAM, DifferenceSalience, FinerCAM, MinMaxCAM, OptiCAM
from captum_contrast.metrics import AverageDrop, Insertion, MultiLabelAverageDrop
from tests.helpers import BatchNormDropoutNet, assert_untouched, model_snapshot

Explain = Callable[[BatchNormDropoutNet, Tensor, object], Tensor]

# Each method's call at the model's last conv layer; `target` varies to make it fail.
METHODS: dict[str, Explain] = {
    "contrast-grad-cam": lambda m, x, t: ContrastGradCAM(m, m.conv2).attribute(x, t, k=2),
    "contrast-grad-cam-fixed": lambda m, x, t: ContrastGradCAM(m, m.conv2).attribute(
        x, t, contrast=[3, 4]
    ),
    "contrast-grad-cam-cosine": lambda m, x, t: ContrastGradCAM(m, m.conv2).cosine(x, t, k=2),
    "minmax-cam": lambda m, x, t: MinMaxCAM(m, m.conv2).attribute(x, t),
    "d-minmax-cam": lambda m, x, t: MinMaxCAM(m, m.conv2).attribute(x, t, variant="d-minmax"),
    "minmax-cam-form": lambda m, x, t: MinMaxCAM(m, m.conv2, classifier=m.fc).attribute(x, t),
    "opti-cam": lambda m, x, t: OptiCAM(m, m.conv2).attribute(x, t, n_iter=3),
    "opti-cam-iodiff": lambda m, x, t: OptiCAM(m, m.conv2).attribute(
        x, t, n_iter=2, objective="iodiff"
    ),
    "difference-salience": lambda m, x, t: DifferenceSalience(m, m.conv2).attribute(
        x, t, contrast=2
    ),
    "finer-cam": lambda m, x, t: FinerCAM(m, m.conv2).attribute(x, t, k=2),
    "finer-cam-fixed": lambda m, x, t: FinerCAM(m, m.conv2).attribute(x, t, contrast=[3, 4]),
    "layer-input": lambda m, x, t: ContrastGradCAM(m, m.conv2).attribute(
        x, t, attribute_to_layer_input=True
    ),
}


def _model(train: bool, with_grads: bool = False) -> BatchNormDropoutNet:
    torch.manual_seed(0)
    model = BatchNormDropoutNet()
    model.train(train)
    if with_grads:  # a user's own .grad, half way through a training step, must survive
        model(torch.rand(2, 3, 8, 8)).sum().backward()
    return model


def _quiet(call: Callable[[], object]) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return call()


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_leaves_the_model_untouched(name: str, train: bool) -> None:
    model = _model(train, with_grads=train)
    images = torch.rand(4, 3, 8, 8)
    before = model_snapshot(model)
    first = _quiet(lambda: METHODS[name](model, images, 1))
    assert_untouched(before, model)
    with pytest.raises(ValueError, match="target"):
        _quiet(lambda: METHODS[name](model, images, 99))  # fails after the forward
    assert_untouched(before, model)
    with pytest.raises(ValueError, match="NaN"):
        _quiet(lambda: METHODS[name](model, images * float("nan"), 1))  # fails before it
    assert_untouched(before, model)
    # Dropout is off and BatchNorm uses its running statistics: the same call, the same map.
    second = _quiet(lambda: METHODS[name](model, images, 1))
    torch.testing.assert_close(first, second, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["contrast-grad-cam", "opti-cam"])
def test_a_train_mode_model_is_explained_in_eval_mode_with_a_warning(name: str) -> None:
    model = _model(train=True)
    images = torch.rand(4, 3, 8, 8)
    with pytest.warns(UserWarning, match="training mode.*eval mode"):
        in_train = METHODS[name](model, images, 1)
    assert model.training and model.bn.training and model.dropout.training
    in_eval = METHODS[name](model.eval(), images, 1)
    torch.testing.assert_close(in_train, in_eval, rtol=0, atol=0)


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("metric", [AverageDrop, Insertion, MultiLabelAverageDrop])
def test_metrics_leave_the_model_untouched(metric: type, train: bool) -> None:
    model = _model(train)
    rng = np.random.default_rng(0)
    x, maps = rng.random((3, 3, 8, 8), dtype=np.float32), rng.random((3, 1, 4, 4))
    before = model_snapshot(model)
    scores = _quiet(lambda: metric()(model, x, np.array([0, 1, 2]), a_batch=maps))
    assert np.isfinite(scores).all()
    assert_untouched(before, model)
    with pytest.raises(ValueError, match="y_batch"):
        _quiet(lambda: metric()(model, x, np.array([0, 1, 9]), a_batch=maps))
    assert_untouched(before, model)
    model.eval()
    torch.testing.assert_close(
        np.asarray(scores), np.asarray(metric()(model, x, np.array([0, 1, 2]), a_batch=maps))
    )


@pytest.mark.parametrize("name", ["contrast-grad-cam", "d-minmax-cam", "finer-cam", "opti-cam"])
def test_four_threads_on_one_model_give_the_sequential_maps(name: str) -> None:
    """4 threads x 25 calls on one shared model: each call's hook acts in its own thread."""
    model = _model(train=False)
    torch.manual_seed(1)
    batches = [torch.rand(2, 3, 8, 8) for _ in range(4)]
    sequential = [METHODS[name](model, images, 1) for images in batches]
    before = model_snapshot(model)
    results: dict[int, list[Tensor]] = {index: [] for index in range(4)}
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def work(index: int) -> None:
        start.wait()
        try:
            for _ in range(25):
                results[index].append(METHODS[name](model, batches[index], 1))
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[0]
    for index in range(4):
        assert len(results[index]) == 25
        for attribution in results[index]:
            torch.testing.assert_close(attribution, sequential[index], rtol=1e-6, atol=1e-7)
    assert_untouched(before, model)


def test_concurrent_train_mode_calls_restore_the_mode_once_all_are_done() -> None:
    model = _model(train=True)
    before = model_snapshot(model)
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def work() -> None:
        barrier.wait()
        try:
            for _ in range(10):
                _quiet(lambda: METHODS["contrast-grad-cam"](model, torch.rand(2, 3, 8, 8), 1))
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[0]
    assert_untouched(before, model)  # running statistics unchanged, train mode restored


def test_confusion_matrix_leaves_a_train_mode_model_untouched() -> None:
    from captum_contrast import confusion_matrix

    model = _model(train=True)
    torch.manual_seed(2)
    loader = [(torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])) for _ in range(2)]
    before = model_snapshot(model)
    with pytest.warns(UserWarning, match="training mode"):
        counts = confusion_matrix(model, loader, 5)
    assert_untouched(before, model)
    assert int(counts.sum()) == 8
    torch.testing.assert_close(counts, confusion_matrix(model.eval(), loader, 5))


class TupleBlock(torch.nn.Module):
    """A block returning ``(h,)``, Hugging Face style."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, hidden: Tensor) -> tuple[Tensor]:
        return (torch.relu(self.conv(hidden)),)


class TupleBlockNet(torch.nn.Module):
    """``h + block(h)[0]``: the model indexes the tuple its block returns."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.block = TupleBlock()
        self.head = torch.nn.Linear(4, 5)
        self.seen: list[Tensor] = []

    def forward(self, x: Tensor) -> Tensor:
        hidden = self.stem(x)
        hidden = hidden + self.block(hidden)[0]
        logits = self.head(hidden.mean(dim=(2, 3)))
        self.seen.append(logits.detach())
        return logits


class Unwrapped(torch.nn.Module):
    """``TupleBlockNet`` read at ``block``'s tensor, for Captum's LayerGradCam."""

    def __init__(self, net: TupleBlockNet) -> None:
        super().__init__()
        self.net = net
        self.at = torch.nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        hidden = self.net.stem(x)
        return self.net.head((hidden + self.at(self.net.block(hidden)[0])).mean(dim=(2, 3)))


def test_a_layer_returning_a_tuple_keeps_its_structure() -> None:
    # Issue 22: (h,) was replaced by h, so block(h)[0] took example 0 of the batch.
    from captum.attr import LayerGradCam

    torch.manual_seed(0)
    model = TupleBlockNet().eval()
    images, target = torch.rand(3, 3, 8, 8), torch.tensor([0, 2, 4])
    plain = model(images)
    model.seen.clear()
    labels = torch.nn.functional.one_hot(target, 5).bool()  # one label: MinMax = Grad-CAM
    ours = MinMaxCAM(model, model.block).attribute(images, target, labels=labels)
    torch.testing.assert_close(model.seen[0], plain)  # the logits during the call
    unwrapped = Unwrapped(model)
    expected = LayerGradCam(unwrapped, unwrapped.at).attribute(
        images, target, relu_attributions=True
    )
    assert expected.abs().sum() > 0
    torch.testing.assert_close(ours, expected)


HIDDEN: dict[str, Callable[[BatchNormDropoutNet], Callable[[Tensor], Tensor]]] = {
    "lambda": lambda model: lambda x: model(x),
    "partial": lambda model: functools.partial(model),
}


@pytest.mark.parametrize("hide", sorted(HIDDEN))
@pytest.mark.parametrize("name", ["contrast-grad-cam", "contrast-grad-cam-cosine", "opti-cam"])
def test_a_train_mode_model_hidden_in_a_function_is_explained_in_eval_mode(
    name: str, hide: str
) -> None:
    # Issue 22: only `layer` was switched; BatchNorm statistics changed and calls differed.
    model = _model(train=True)
    forward = HIDDEN[hide](model)
    images = torch.rand(4, 3, 8, 8)
    before = model_snapshot(model)
    calls = {
        "contrast-grad-cam": lambda: ContrastGradCAM(forward, model.conv2).attribute(
            images, 1, k=2
        ),
        "contrast-grad-cam-cosine": lambda: ContrastGradCAM(forward, model.conv2).cosine(
            images, 1, k=2
        ),
        "opti-cam": lambda: OptiCAM(forward, model.conv2).attribute(images, 1, n_iter=3),
    }
    with pytest.warns(UserWarning, match="training mode.*eval mode"):
        first = calls[name]()
    assert_untouched(before, model)
    second = _quiet(calls[name])
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    model.eval()
    torch.testing.assert_close(first, calls[name](), rtol=0, atol=0)


def test_confusion_matrix_of_a_hidden_train_mode_model_leaves_it_untouched() -> None:
    from captum_contrast import confusion_matrix

    model = _model(train=True)
    loader = [(torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 3]))]
    before = model_snapshot(model)
    first = _quiet(lambda: confusion_matrix(lambda x: model(x), loader, 5))
    assert_untouched(before, model)
    torch.testing.assert_close(first, confusion_matrix(model.eval(), loader, 5))
