"""The adapters (handgrad.adapt) and the compact shapes (handgrad.shapes): each convention on a
right and a wrong function, several outputs, layouts, globals, and the caller's arrays."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

import handgrad
from handgrad import adapt
from handgrad.cases import build_inputs, sample_cases
from handgrad.record import DerivationError
from tests.corpus.classes import SGDLinear, SGDLinearAscent

DIMS = {"N": (2, 4), "D": (2, 5), "M": (3, 5)}


def affine_forward(x, w, b):
    return x @ w + b, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def affine_backward_sign(dout, cache):
    dx, dw, db = affine_backward(dout, cache)
    return dx, -dw, db


def affine_reference(x, w, b):
    return x @ w + b


def affine(name="affine", backward=affine_backward, **fields):
    return adapt.pair(name, affine_forward, backward, shapes="x: N D, w: D M, b: M", dims=DIMS,
                      reference=affine_reference, **fields)


def check(record, cases=2):
    return handgrad.check(record, seed=0, cases=cases, shrink=False)


def test_pair_right_passes_and_wrong_is_diagnosed():
    assert check(affine()).passed
    report = check(affine("affine-sign", affine_backward_sign))
    assert not report.passed and report.kind == "sign"
    assert report.failures[0].tensor == "w"


def test_pair_keys_gradients_by_input_name_and_passes_arrays_through():
    seen = []

    def forward(x, w, b):
        seen.extend([x, w, b])
        return affine_forward(x, w, b)

    rec = adapt.pair("ids", forward, affine_backward, shapes="x: N D, w: D M, b: M", dims=DIMS,
                     reference=affine_reference)
    x, w, b = np.ones((2, 3)), np.ones((3, 4)), np.zeros(4)
    out, cache = rec.forward(x=x, w=w, b=b)
    assert seen[0] is x and seen[1] is w and seen[2] is b, "the adapter copied an input"
    grads = rec.backward(np.ones_like(out), cache)
    assert set(grads) == {"x", "w", "b"} and grads["w"].shape == (3, 4)
    assert rec.inputs == {"x": ("N", "D"), "w": ("D", "M"), "b": ("M",)}


def test_pair_with_too_few_gradients_names_the_inputs():
    rec = affine("affine-two", lambda dout, cache: affine_backward(dout, cache)[:2])
    report = check(rec)
    assert report.kind == "exception"
    assert "2 gradients for the 3 differentiable inputs (x, w, b)" in report.failures[0].message


def relu_forward(x):
    return np.maximum(0, x), x


def test_pair_single_gradient_labels_and_kink_distance_on_the_users_cache():
    def embed_forward(x, W):
        return W[x], (x, W)

    def embed_backward(dout, cache):
        x, W = cache
        dW = np.zeros_like(W)
        np.add.at(dW, x, dout)
        return dW

    rec = adapt.pair("embed", embed_forward, embed_backward, shapes="x: N, W: V D",
                     dims={"N": (3, 5), "V": (2, 3), "D": (1, 3)}, labels={"x": "V"},
                     reference=lambda x, W: torch.nn.functional.embedding(x, W))
    assert rec.nondiff == {"x"} and check(rec).passed
    seen = []
    relu = adapt.pair("relu-kink", relu_forward, lambda d, x: d * (x > 0), shapes="x: N D",
                      dims=DIMS, reference=torch.relu,
                      kink_distance=lambda x: seen.append(type(x)) or float(np.abs(x).min()))
    assert check(relu).passed
    assert seen and set(seen) == {np.ndarray}, "kink_distance must receive the user's cache"


def test_args_and_kwargs_are_fresh_per_call_and_the_callers_stay_unchanged():
    def forward(x, scale, param):
        param["calls"] = param.get("calls", 0) + 1  # course code keeps state in its param dict
        return scale * x, (scale, param["calls"])

    def backward(dout, cache):
        scale, calls = cache
        return scale * dout * calls  # wrong unless every call sees a fresh param dict

    param = {"mode": "train"}
    rec = adapt.pair("scale", forward, backward, shapes="x: N D", dims=DIMS,
                     reference=lambda x: 2.0 * x, args=(2.0,), kwargs={"param": param})
    assert check(rec).passed
    assert param == {"mode": "train"}


def test_backward_writing_into_the_cached_input_is_seen_and_the_callers_arrays_survive():
    def backward(dout, x):
        x[x <= 0] = 0
        x[x > 0] = 1
        return dout * x

    shared = np.random.default_rng(0).uniform(-1, 1, (4, 5))
    before = shared.copy()
    rec = adapt.pair("relu-writes", relu_forward, backward, shapes="x: N D", dims=DIMS,
                     reference=torch.relu, samplers={"x": lambda rng, shape, dims: shared})
    assert check(rec).kind == "mutated-input"
    np.testing.assert_array_equal(shared, before)


def lstm_like_forward(x, h):
    return np.tanh(x + h), x * h, (x, h)


def lstm_like_backward(da, dm, cache):
    x, h = cache
    common = da * (1 - np.tanh(x + h) ** 2)
    return common + dm * h, common + dm * x


def lstm_like_reference(x, h):
    return torch.tanh(x + h), x * h


TWO_OUTPUTS = {"shapes": "x: N D, h: N D", "dims": {"N": (2, 3), "D": (3, 4)},
               "outputs": "a: N D, m: N D", "reference": lstm_like_reference}


def test_several_outputs_are_joined_and_dout_is_split_back():
    rec = adapt.pair("two-outputs", lstm_like_forward, lstm_like_backward, **TWO_OUTPUTS)
    x, h = np.full((2, 3), 0.5), np.full((2, 3), 2.0)
    out, cache = rec.forward(x=x, h=h)
    assert out.shape == (12,)
    np.testing.assert_allclose(out[6:], 1.0)
    ref = rec.reference(x=torch.from_numpy(x), h=torch.from_numpy(h))
    np.testing.assert_allclose(ref.numpy(), out)
    assert check(rec).passed


def test_several_outputs_wrong_backward_is_diagnosed_and_writes_into_dout_are_seen():
    def ignores_second_output(da, dm, cache):
        return lstm_like_backward(da, np.zeros_like(dm), cache)

    def writes_into_dm(da, dm, cache):
        dm *= 2
        return lstm_like_backward(da, dm / 2, cache)

    assert check(adapt.pair("two-drop", lstm_like_forward, ignores_second_output,
                            **TWO_OUTPUTS)).kind == "values"
    assert check(adapt.pair("two-write", lstm_like_forward, writes_into_dm,
                            **TWO_OUTPUTS)).kind == "mutated-upstream"


def nhwc_forward(x, w):
    """x: (N, H, W, C), w: (C, F) -> a 1x1 convolution (N, H, W, F)."""
    return x @ w, (x, w)


def nhwc_backward(dout, cache):
    x, w = cache
    return dout @ w.T, np.einsum("nhwc,nhwf->cf", x, dout)


def nhwc_backward_wrong_axes(dout, cache):
    """Rows and columns of x swapped against dout's (an NCHW habit)."""
    x, w = cache
    C, F = w.shape
    return dout @ w.T, x.transpose(0, 2, 1, 3).reshape(-1, C).T @ dout.reshape(-1, F)


def nchw_reference(x, w):
    return torch.nn.functional.conv2d(x, w[:, :, None, None])


LAYOUT = {"shapes": "x: N H W C, w: C F", "outputs": "out: N H W F",
          "dims": {"N": (1, 2), "H": (2, 3), "W": (4, 5), "C": (1, 3), "F": (2, 3)},
          "reference_shapes": "x: N C H W, w: F C, out: N F H W", "reference": nchw_reference}


def test_layout_stated_once_lets_an_nchw_reference_check_nhwc_code():
    rec = adapt.pair("nhwc", nhwc_forward, nhwc_backward, **LAYOUT)
    assert check(rec).passed
    assert not check(adapt.pair("nhwc-wrong", nhwc_forward, nhwc_backward_wrong_axes,
                                **LAYOUT)).passed


def test_the_reference_gets_contiguous_tensors_in_its_own_layout():
    """torch's slow_conv2d backward rejects a strided weight, so permuted inputs are made
    contiguous (inside the graph: gradients still reach the engine's leaves)."""
    seen = {}

    def reference(x, w):
        seen.update(x=(tuple(x.shape), x.is_contiguous()), w=(tuple(w.shape), w.is_contiguous()))
        return nchw_reference(x, w)

    rec = adapt.pair("nhwc-contiguous", nhwc_forward, nhwc_backward,
                     **{**LAYOUT, "reference": reference})
    x = torch.zeros((1, 2, 4, 3), dtype=torch.float64, requires_grad=True)
    w = torch.ones((3, 5), dtype=torch.float64, requires_grad=True)
    out = rec.reference(x=x, w=w)
    assert seen == {"x": ((1, 3, 2, 4), True), "w": ((5, 3), True)}
    assert tuple(out.shape) == (1, 2, 4, 5)
    out.sum().backward()
    assert x.grad is not None and w.grad is not None


def test_layout_errors_name_the_input_and_the_fix():
    with pytest.raises(DerivationError, match=r"'nhwc-bad'.*reference_shapes\['x'\].*same "
                                              r"dimensions"):
        adapt.pair("nhwc-bad", nhwc_forward, nhwc_backward,
                   **{**LAYOUT, "reference_shapes": "x: N C H, out: N F H W"})
    with pytest.raises(DerivationError, match="declare the output's own layout"):
        adapt.pair("nhwc-out", nhwc_forward, nhwc_backward,
                   **{**LAYOUT, "outputs": None})


class Linear:
    def __init__(self, D, M):
        self.W, self.b = np.zeros((D, M)), np.zeros(M)

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout):
        self.dW, self.db = self.x.T @ dout, dout.sum(axis=0)
        return dout @ self.W.T


class LinearDictSlots:
    def __init__(self):
        self.params, self.grads = {}, {}

    def forward(self, x):
        self.x = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dout):
        self.grads["W"], self.grads["b"] = self.x.T @ dout, dout.sum(axis=0)
        return dout @ self.params["W"].T


class LinearTransposed(Linear):
    def backward(self, dout):
        dx = super().backward(dout)
        self.dW = dout.T @ self.x
        return dx


LAYER = {"shapes": "x: N D", "params": {"W": "D M", "b": "M"}, "reference": affine_reference}


def linear_reference(x, W, b):
    return x @ W + b


def test_layer_right_passes_and_wrong_is_diagnosed():
    common = {**LAYER, "reference": linear_reference}
    assert check(adapt.layer("linear", Linear, dims=DIMS, **common)).passed
    square = {"N": (2, 3), "D": (3, 4), "M": "D"}
    report = check(adapt.layer("linear-t", LinearTransposed, dims=square, **common))
    assert report.kind == "transposed"


def test_layer_slots_in_dicts_and_a_callable():
    rec = adapt.layer("linear-dicts", LinearDictSlots, dims=DIMS, shapes="x: N D",
                      params="W: D M, b: M", param_slot="params[{name}]", grads="grads[{name}]",
                      reference=linear_reference)
    assert check(rec).passed
    rec = adapt.layer("linear-callable", Linear, dims=DIMS, **{**LAYER,
                      "reference": linear_reference},
                      grads=lambda layer, name: getattr(layer, "d" + name))
    assert check(rec).passed


def test_layer_state_leaves_out_gradient_slots_and_the_learning_rate():
    rec = adapt.layer("sgd", SGDLinear, dims=DIMS, lr="lr", **{**LAYER,
                      "reference": linear_reference})
    x, W, b = np.ones((2, 3)), np.ones((3, 2)), np.zeros(2)
    _, cache = rec.forward(x=x, W=W, b=b)
    assert cache.user.lr == 0.0
    rec.backward(np.ones((2, 2)), cache)
    state = cache._handgrad_state()
    assert set(state) == {"W", "b", "x"} and state["W"] is W


def descend(record, rate=1e-2, seed=0):
    """What a descent check on a layer does: gradients at rate 0 for a random dout, then the
    record's own update at ``rate`` from the same point."""
    rng = np.random.default_rng(seed)
    inputs = {"x": rng.uniform(-1, 1, (3, 4)), "W": rng.uniform(-1, 1, (4, 2)),
              "b": rng.uniform(-1, 1, 2)}
    _, cache = record.forward(**{k: v.copy() for k, v in inputs.items()})
    grads = {k: np.array(g) for k, g in record.backward(rng.standard_normal((3, 2)),
                                                        cache).items()}
    new = record.update({k: v.copy() for k, v in inputs.items()}, grads, rate)
    return inputs, grads, new


def test_layer_update_replays_the_layers_own_step():
    common = {**LAYER, "reference": linear_reference, "dims": DIMS, "lr": "lr"}
    inputs, grads, new = descend(adapt.layer("sgd", SGDLinear, **common))
    for k in ("W", "b"):
        np.testing.assert_allclose(new[k], inputs[k] - 1e-2 * grads[k], rtol=1e-15)
    inputs, grads, new = descend(adapt.layer("sgd-up", SGDLinearAscent, **common))
    np.testing.assert_allclose(new["W"], inputs["W"] + 1e-2 * grads["W"], rtol=1e-15)
    rec = adapt.layer("sgd-unseen", SGDLinear, **common)
    with pytest.raises(DerivationError, match="no checked backward"):
        rec.update({"W": np.ones((4, 2)), "b": np.ones(2)}, {"W": np.ones((4, 2)),
                                                             "b": np.ones(2)}, 0.1)


def test_layer_constructor_needing_more_than_dims_is_explained():
    class Needs:
        def __init__(self, in_features, out_features):
            pass

    with pytest.raises(DerivationError, match=r"make_layer needs 'in_features'.*lambda D, M"):
        adapt.layer("needs", Needs, dims=DIMS, **LAYER)


def cross_entropy(x, y):
    return torch.nn.functional.cross_entropy(x, y)


def softmax_loss(x, y):
    p = np.exp(x - x.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    N = x.shape[0]
    dx = p.copy()
    dx[np.arange(N), y] -= 1
    return -np.log(p[np.arange(N), y]).mean(), dx / N


def test_loss_right_passes_and_missing_mean_is_a_factor():
    fields = {"shapes": "x: N C, y: N", "labels": {"y": "C"}, "dims": {"N": (2, 4), "C": (2, 5)},
              "reference": cross_entropy}
    assert check(adapt.loss("sm", softmax_loss, **fields)).passed
    undivided = adapt.loss("sm-sum", lambda x, y: (softmax_loss(x, y)[0],
                                                   softmax_loss(x, y)[1] * x.shape[0]), **fields)
    assert check(undivided).kind == "factor"


def ridge(params, X, y, lam):
    r = X @ params["w"] - y
    return 0.5 * r @ r + 0.5 * lam * params["w"] @ params["w"], {"w": X.T @ r + lam * params["w"]}


def test_loss_with_a_params_dict():
    fields = {"shapes": "X: N D, y: N", "params": "w: D", "nondiff": {"X", "y"}, "args": (0.1,),
              "dims": {"N": (2, 4), "D": (2, 3)},
              "reference": lambda w, X, y: 0.5 * ((X @ w - y) ** 2).sum() + 0.05 * (w @ w)}
    rec = adapt.loss("ridge", ridge, **fields)
    assert list(rec.inputs) == ["w", "X", "y"] and check(rec).passed

    def ridge_without_lam(params, X, y, lam):
        value, grads = ridge(params, X, y, lam)
        return value, {"w": grads["w"] - lam * params["w"]}

    assert check(adapt.loss("ridge-wrong", ridge_without_lam, **fields)).kind == "values"


def test_loss_with_module_globals_restores_them_after_each_call():
    module = types.ModuleType("notebook")
    module.w = "the user's own w"

    def quadratic(X):
        r = X @ module.w
        return 0.5 * r @ r, {"w": X.T @ r}

    fields = {"shapes": "X: N D", "params": "w: D", "globals_of": module, "nondiff": {"X"},
              "dims": {"N": (2, 4), "D": (1, 3)},
              "reference": lambda w, X: 0.5 * ((X @ w) ** 2).sum()}
    assert check(adapt.loss("globals", quadratic, **fields)).passed
    assert module.w == "the user's own w"

    def raises(X):
        assert module.w is not None
        raise RuntimeError("boom")

    rec = adapt.loss("globals-raise", raises, **fields)
    with pytest.raises(RuntimeError):
        rec.forward(w=np.ones(2), X=np.ones((2, 2)))
    assert module.w == "the user's own w"
    del module.w
    quadratic_rec = adapt.loss("globals-absent", quadratic, **fields)
    quadratic_rec.forward(w=np.ones(2), X=np.ones((2, 2)))
    assert not hasattr(module, "w"), "a global that was not there before must be removed"


def test_loss_backward_scales_by_dout_and_never_writes_into_the_cached_gradient():
    rec = adapt.loss("sm-scale", softmax_loss, shapes="x: N C, y: N", labels={"y": "C"},
                     dims={"N": (2, 4), "C": (2, 5)}, reference=cross_entropy)
    x, y = np.array([[0.1, 0.2, 0.3], [0.3, -0.2, 0.0]]), np.array([0, 2])
    value, cache = rec.forward(x=x, y=y)
    cached = cache.user["x"].copy()
    grads = rec.backward(np.asarray(3.0), cache)
    np.testing.assert_allclose(grads["x"], 3.0 * softmax_loss(x, y)[1])
    np.testing.assert_array_equal(cache.user["x"], cached)
    assert value.shape == () and rec.output == ()


def test_derived_dims_drive_the_sampled_cases():
    rec = adapt.pair("derived", affine_forward, affine_backward,
                     shapes="x: N D, w: D M, b: M", reference=affine_reference,
                     dims={"N": (1, 3), "K": (1, 2), "D": "K + 1", "M": "2 * K"})
    assert rec.dims == {"N": (1, 3), "K": (1, 2)}
    for case in sample_cases(rec, 0, 4):
        k = case.dim_map["K"]
        assert build_inputs(rec, case)["w"].shape == (k + 1, 2 * k)
    assert check(rec).passed


def test_adapter_build_errors_name_the_derivation_and_the_fix():
    with pytest.raises(DerivationError, match=r"'a': shapes\['x'\] uses \['Q'\].*'Q': \(lo, hi\)"):
        adapt.pair("a", affine_forward, affine_backward, shapes="x: N Q, w: D M, b: M",
                   dims=DIMS, reference=affine_reference)
    with pytest.raises(DerivationError, match=r"'a': \['inputs'\] are built by the adapter"):
        affine("a", inputs={"x": ("N",)})
    with pytest.raises(DerivationError, match="adapters check the gradients of inputs only"):
        affine("a", intermediates=("h",))
    with pytest.raises(DerivationError, match=r"labels names 'y', which is not in shapes"):
        affine("a", labels={"y": "M"})
    with pytest.raises(DerivationError, match=r"labels\['x'\] = 'C' uses \['C'\]"):
        affine("a", labels={"x": "C"})
    with pytest.raises(DerivationError, match=r"\['x'\] get a sampler from samplers= and from"):
        affine("a", labels={"x": "M"}, samplers={"x": adapt.bernoulli(0.5)})
    with pytest.raises(DerivationError, match=r"grads='dW': write where each tensor lives"):
        adapt.layer("a", Linear, dims=DIMS, grads="dW", **LAYER)
