"""The adapters' options for code outside the course conventions (issue 17): other method
names, backward arguments, learning rates in arguments and module globals, gradients handed to
an update call or an optimizer, lazily made parameters, list inputs, cells stepped through
time, extra return values, prefixed or reordered gradients, one-hot labels, summed elementwise
losses, size-1 axes in layouts and positional references; each glue mistake is a
DerivationError naming the record, the option and the fix."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import handgrad
from handgrad import adapt
from handgrad.record import DerivationError
from tests.corpus import lenet_scratch, rnn_scratch, scratch_dl
from tests.corpus import reference_scratch as ref

DIMS = {"N": (2, 4), "D": (2, 5), "M": (3, 5)}


def check(record, cases=2):
    return handgrad.check(record, seed=0, cases=cases, shrink=False)


def inputs_for(record, seed=0):
    """One float64 case of the record's inputs, drawn as the engine draws them."""
    from handgrad.cases import build_inputs, sample_cases

    return build_inputs(record, sample_cases(record, seed, 2)[-1])


class Dense:
    def __init__(self, D, M):
        self.W, self.b = np.zeros((D, M)), np.zeros(M)

    def forward_pass(self, X, training):
        assert training is True
        self.X = X
        return X @ self.W + self.b

    def backward_pass(self, grad, lr, *, clip=None):
        self.dW, self.db = self.X.T @ grad, grad.sum(axis=0)
        dX = grad @ self.W.T
        self.W -= lr * self.dW
        self.b -= lr * self.db
        return dX


DENSE = {"shapes": "X: N D", "params": "W: D M, b: M", "dims": DIMS,
         "methods": "forward_pass, backward_pass", "args": (True,),
         "backward_args": (adapt.LR,), "reference": ref.dense}


def test_methods_and_backward_arguments_reach_the_layer_and_the_rate_is_0_then_replayed():
    rec = adapt.layer("dense-methods", Dense, **DENSE, backward_kwargs={"clip": None})
    assert check(rec).passed
    values = inputs_for(rec)
    out, cache = rec.forward(**{k: v.copy() for k, v in values.items()})
    grads = rec.backward(np.ones_like(out), cache)
    np.testing.assert_array_equal(cache.user.W, values["W"])  # stepped at rate 0
    new = rec.update({k: values[k].copy() for k in ("W", "b")}, grads, 0.1)
    np.testing.assert_allclose(new["W"], values["W"] - 0.1 * grads["W"], rtol=1e-15)


def test_a_method_that_does_not_exist_is_named_with_the_layers_methods():
    with pytest.raises(DerivationError, match=r"'dense-typo': methods\['backward'\] = "
                                              r"'backward_pas', which Dense does not have; its "
                                              r"methods are \['backward_pass', 'forward_pass'\]"):
        adapt.layer("dense-typo", Dense, **{**DENSE, "methods": "forward_pass, backward_pas"})
    rec = adapt.layer("dense-typo-factory", lambda D, M: Dense(D, M),
                      **{**DENSE, "methods": ("forward_pass", "backward_pas")})
    with pytest.raises(DerivationError, match="'dense-typo-factory'.*'backward_pas'"):
        rec.forward(**inputs_for(rec))
    with pytest.raises(DerivationError, match=r"methods names \['z'\].*set_labels"):
        adapt.layer("dense-stray", Dense, **{**DENSE, "methods": {"z": "set_z"}})


def test_lazy_parameters_are_replaced_after_a_first_forward():
    common = {k: v for k, v in lenet_scratch.FULLY_CONNECTED.items() if k != "lazy"}
    report = check(adapt.layer("fc-not-lazy", lenet_scratch.FC, **common))
    assert not report.passed, "a layer drawing its own weights on the first forward must " \
        "disagree with the reference unless lazy=True"
    assert check(adapt.layer("fc-lazy", lenet_scratch.FC, **common, lazy=True)).passed


def test_module_globals_are_set_per_call_restored_after_and_checked_by_name():
    before = lenet_scratch.LEARNING_RATE
    rec = adapt.layer("fc-globals", lenet_scratch.FC, **lenet_scratch.FULLY_CONNECTED)
    values = inputs_for(rec)
    out, cache = rec.forward(**{k: v.copy() for k, v in values.items()})
    grads = rec.backward(np.ones_like(out), cache)
    np.testing.assert_array_equal(cache.user.W, values["W"])
    assert before == lenet_scratch.LEARNING_RATE
    new = rec.update({k: values[k].copy() for k in ("W", "b")}, grads, 0.5)
    np.testing.assert_allclose(new["b"], values["b"] - 0.5 * grads["b"], rtol=1e-15)
    assert before == lenet_scratch.LEARNING_RATE
    module = sys.modules[lenet_scratch.__name__]
    with pytest.raises(DerivationError, match=r"'fc-typo': globals= names \['LEARNIG_RATE'\]"):
        adapt.layer("fc-typo", lenet_scratch.FC, **{**lenet_scratch.FULLY_CONNECTED,
                                                    "globals": (module, {"LEARNIG_RATE": 1})})
    with pytest.raises(DerivationError, match=r"globals= takes \(module, \{name: value\}\)"):
        adapt.layer("fc-bad", lenet_scratch.FC, **{**lenet_scratch.FULLY_CONNECTED,
                                                   "globals": {"LEARNING_RATE": adapt.LR}})


class Affine:
    """Hands its gradients to ``self.update`` by keyword, or to an optimizer attribute."""

    def __init__(self, D, M):
        self.W, self.b = np.zeros((D, M)), np.zeros(M)

    def forward(self, X):
        self.X = X
        return X @ self.W + self.b

    def backward(self, dout):
        self.update(db=dout.sum(axis=0), dW=self.X.T @ dout)
        return dout @ self.W.T

    def update(self, dW, db):
        self.last = (dW.shape, db.shape)


class AffineOptimizer(Affine):
    def backward(self, dout):
        dX = dout @ self.W.T
        self.W = self.optimizer.step(self.W, self.X.T @ dout)
        self.b = self.optimizer.step(self.b, dout.sum(axis=0))
        return dX


class AffineOptimizerCopy(AffineOptimizer):
    def backward(self, dout):
        self.optimizer.step(self.W.copy(), self.X.T @ dout)
        return dout @ self.W.T


class AffineOptimizerForgetsBias(AffineOptimizer):
    def backward(self, dout):
        self.W = self.optimizer.step(self.W, self.X.T @ dout)
        return dout @ self.W.T


AFFINE = {"shapes": "X: N D", "params": "W: D M, b: M", "dims": DIMS, "reference": ref.dense}


def test_gradients_passed_to_the_layers_own_update_by_keyword():
    assert check(adapt.layer("affine-kw", Affine, **AFFINE,
                             grads=adapt.passed_to("update"))).passed
    with pytest.raises(DerivationError, match=r"'affine-none': grads=adapt.passed_to\('apply'\)"
                                              r", but Affine has no method 'apply'"):
        adapt.layer("affine-none", Affine, **AFFINE, grads=adapt.passed_to("apply"))


def test_a_recording_optimizer_keeps_each_gradient_under_its_parameter():
    rec = adapt.layer("affine-opt", AffineOptimizer, **AFFINE, optimizer="optimizer")
    assert check(rec).passed
    values = inputs_for(rec)
    out, cache = rec.forward(**{k: v.copy() for k, v in values.items()})
    grads = rec.backward(np.ones_like(out), cache)
    np.testing.assert_allclose(grads["b"], np.full(values["b"].shape, out.shape[0]))
    assert "optimizer" not in cache._handgrad_state(), "the recorder is not the layer's state"
    copy_rec = adapt.layer("affine-copy", AffineOptimizerCopy, **AFFINE, optimizer="optimizer")
    with pytest.raises(DerivationError, match=r"'affine-copy': the optimizer was handed an "
                                              r"array that is none of the parameters"):
        copy_rec.backward(np.ones_like(out), copy_rec.forward(**values)[1])
    report = check(adapt.layer("affine-no-bias", AffineOptimizerForgetsBias, **AFFINE,
                               optimizer="optimizer"))
    assert report.kind == "exception"
    assert "handed no gradient for ['b'] to the optimizer" in report.failures[0].message


def test_list_inputs_and_their_errors():
    assert check(adapt.layer("concat", scratch_dl.Concatenate, **scratch_dl.CONCATENATE)).passed
    with pytest.raises(DerivationError, match=r"as_list names \['c'\], which are not in shapes"):
        adapt.layer("concat-bad", scratch_dl.Concatenate,
                    **{**scratch_dl.CONCATENATE, "as_list": ("a", "c")})


def test_returns_names_the_checked_values_and_a_wrong_count_says_so():
    with pytest.raises(DerivationError, match=r"returns='loss, accuracy' does not name "
                                              r"\['out'\]"):
        adapt.layer("loss-layer", lenet_scratch.SoftmaxCrossEntropy,
                    **{**lenet_scratch.LOSS_LAYER, "outputs": None, "output": ()})
    rec = adapt.pair("cell-count", rnn_scratch.rnn_cell_forward, rnn_scratch.rnn_cell_backward,
                     **{**rnn_scratch.CELL, "returns": "a_next, cache"})
    with pytest.raises(DerivationError, match=r"'cell-count': forward returned 3 values; "
                                              r"expected 2 \(a_next, cache\)"):
        rec.forward(**inputs_for(rec))


def test_grad_keys_that_match_nothing_name_the_keys_found():
    rec = adapt.pair("cell-keys", rnn_scratch.rnn_cell_forward, rnn_scratch.rnn_cell_backward,
                     **{**rnn_scratch.CELL, "grad_keys": "grad_{name}"})
    out, cache = rec.forward(**inputs_for(rec))
    with pytest.raises(DerivationError, match=r"'cell-keys': grad_keys='grad_\{name\}' looks "
                                              r"for \['grad_xt', .*\['dWaa', 'dWax', "
                                              r"'da_prev', 'dba', 'dxt'\]"):
        rec.backward(np.ones_like(out), cache)
    with pytest.raises(DerivationError, match=r"grad_keys='dW': write the key"):
        adapt.pair("k", rnn_scratch.rnn_cell_forward, rnn_scratch.rnn_cell_backward,
                   **{**rnn_scratch.CELL, "grad_keys": "dW"})
    with pytest.raises(DerivationError, match=r"\['h'\] are not differentiable inputs"):
        adapt.pair("k", rnn_scratch.rnn_step_forward,
                   rnn_scratch.rnn_step_backward_params_first,
                   **{**rnn_scratch.STEP, "grad_keys": ("Wx", "Wh", "b", "x", "h")})


def test_one_hot_labels_along_an_axis():
    rec = adapt.loss("one-hot", lambda y, p: (0.0, 0 * p), shapes="y: C N, p: C N",
                     one_hot={"y": 0}, dims={"C": (3, 4), "N": (5, 6)})
    y = inputs_for(rec)["y"]
    assert set(np.unique(y)) <= {0.0, 1.0}
    np.testing.assert_array_equal(y.sum(axis=0), 1.0)
    assert "y" in rec.nondiff
    with pytest.raises(DerivationError, match=r"one_hot\['y'\] = 2: name an input"):
        adapt.loss("one-hot-bad", lambda y, p: (0.0, p), shapes="y: C N, p: C N",
                   one_hot={"y": 2}, dims={"C": (3, 4), "N": (5, 6)})


def test_an_elementwise_loss_summed_against_a_positional_reference():
    def squared(pred, target):
        return 0.5 * (pred - target) ** 2, pred - target

    def squared_doubled(pred, target):
        return 0.5 * (pred - target) ** 2, 2 * (pred - target)

    fields = {"shapes": "pred: N D, target: N D", "nondiff": {"target"}, "reduce": "sum",
              "dims": DIMS, "reference": lambda pred, target: 0.5 * (pred - target) ** 2}
    assert check(adapt.loss("squared", squared, **fields)).passed
    assert check(adapt.loss("squared-doubled", squared_doubled, **fields)).kind == "factor"
    with pytest.raises(DerivationError, match=r"reduce='max': 'sum' or 'mean'"):
        adapt.loss("squared-max", squared, **{**fields, "reduce": "max"})


def test_references_that_take_positional_tensors():
    def matmul_forward(a, b):
        return a @ b, (a, b)

    def matmul_backward(dout, cache):
        a, b = cache
        return dout @ b.T, a.T @ dout

    rec = adapt.pair("matmul", matmul_forward, matmul_backward, shapes="a: N D, b: D M",
                     dims=DIMS, reference=torch.matmul)
    assert check(rec).passed
    relu = adapt.pair("relu-functional", lambda x: (np.maximum(x, 0), x),
                      lambda dout, x: dout * (x > 0), shapes="x: N D", dims=DIMS,
                      reference=F.relu)
    assert check(relu).passed
    swapped = adapt.pair("by-name", matmul_forward, matmul_backward, shapes="a: N D, b: D M",
                         dims=DIMS, reference=lambda b, a: a @ b)
    assert check(swapped).passed, "a reference naming every input is called by name"


def test_a_size_1_axis_in_one_layout_only():
    seen = {}

    def reference(x, W, b):
        seen["b"] = tuple(b.shape)
        return ref.conv_valid(x, W, b)

    rec = adapt.layer("conv-bias-rank", lenet_scratch.Conv,
                      **{**lenet_scratch.CONV, "reference": reference})
    x = torch.zeros((1, 3, 3, 2), dtype=torch.float64, requires_grad=True)
    W = torch.ones((2, 2, 2, 3), dtype=torch.float64, requires_grad=True)
    b = torch.arange(3, dtype=torch.float64).reshape(1, 1, 1, 3).requires_grad_()
    out = rec.reference(x=x, W=W, b=b)
    assert seen["b"] == (3,) and tuple(out.shape) == (1, 2, 2, 3)
    np.testing.assert_array_equal(out[0, 0, 0].detach().numpy(), [0.0, 1.0, 2.0])
    out.sum().backward()
    assert tuple(b.grad.shape) == (1, 1, 1, 3)
    with pytest.raises(DerivationError, match=r"reference_shapes\['b'\]"):
        adapt.layer("conv-bias-bad", lenet_scratch.Conv,
                    **{**lenet_scratch.CONV, "reference_shapes": "b: F K"})


def test_loss_layer_without_upstream_needs_a_scalar_output():
    with pytest.raises(DerivationError, match=r"upstream=False is for a loss layer.*"
                                              r"outputs='loss: \(\)'"):
        adapt.layer("loss-layer", lenet_scratch.SoftmaxCrossEntropy,
                    **{**lenet_scratch.LOSS_LAYER, "outputs": "loss: N", "returns": None})


def test_time_and_carry_errors_name_the_fix():
    loop = rnn_scratch.LOOP
    with pytest.raises(DerivationError, match=r"time='S' is not a dimension"):
        adapt.layer("loop", rnn_scratch.RNNCell, **{**loop, "time": "S"})
    with pytest.raises(DerivationError, match=r"carry=\{'h': 'h'\}: map an input"):
        adapt.layer("loop", rnn_scratch.RNNCell, **{**loop, "carry": {"h": "h"}})
    with pytest.raises(DerivationError, match=r"declare the outputs stacked over time"):
        adapt.layer("loop", rnn_scratch.RNNCell, **{**loop, "outputs": "h: N H"})


def test_a_loss_function_with_module_globals_for_its_hyperparameters():
    module = types.ModuleType("notebook")
    module.reg = 123.0

    def ridge(w, X):
        r = X @ w
        return 0.5 * r @ r + module.reg * w @ w, X.T @ r + 2 * module.reg * w

    rec = adapt.loss("ridge-globals", ridge, shapes="w: D, X: N D", nondiff={"X"},
                     globals=(module, {"reg": 0.1}), dims={"N": (2, 4), "D": (1, 3)},
                     reference=lambda w, X: 0.5 * ((X @ w) ** 2).sum() + 0.1 * (w @ w))
    assert check(rec).passed
    assert module.reg == 123.0


def test_a_backward_given_the_input_instead_of_a_cache():
    def relu_backward_in_place(dout, x):
        x[x < 0] = 0
        return dout * (x > 0)

    fields = {"shapes": "x: N D", "returns": "out", "backward_args": (adapt.input("x"),),
              "dims": DIMS, "reference": F.relu}
    assert check(adapt.pair("relu-input", lambda x: np.maximum(x, 0),
                            lambda dout, x: dout * (x > 0), **fields)).passed
    report = check(adapt.pair("relu-input-writes", lambda x: np.maximum(x, 0),
                              relu_backward_in_place, **fields))
    assert report.kind == "mutated-input", "the backward gets the engine's input itself"
    with pytest.raises(DerivationError, match=r"adapt.input names \['z'\], which are not "
                                              r"inputs; name one of \['x'\]"):
        adapt.pair("relu-z", lambda x: np.maximum(x, 0), relu_backward_in_place,
                   **{**fields, "backward_args": (adapt.input("z"),)})


def test_an_optimizer_and_a_gradient_slot_together_are_refused():
    with pytest.raises(DerivationError, match=r"'affine-both': optimizer= reads the gradients "
                                              r"where backward hands them.*drop grads="):
        adapt.layer("affine-both", AffineOptimizer, **AFFINE, optimizer="optimizer",
                    grads="grads[{name}]")
