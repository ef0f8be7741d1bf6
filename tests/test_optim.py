"""Optimizers: two steps against the closed-form rules, validation, exact resume."""

import math

import numpy as np
import pytest

from dlscratch import MultiLayerNet
from dlscratch.optim import (
    OPTIMIZERS,
    SGD,
    AdaGrad,
    Adam,
    Momentum,
    Nesterov,
    RMSprop,
    get_optimizer,
)

W0 = np.array([[1.0, -2.0], [0.5, 3.0]])
G1 = np.array([[0.2, -0.4], [1.0, 0.0]])
G2 = np.array([[-0.1, 0.3], [0.5, 2.0]])


def two_steps(opt):
    params = {"W": W0.copy()}
    opt.update(params, {"W": G1.copy()})
    after1 = params["W"].copy()
    opt.update(params, {"W": G2.copy()})
    return after1, params["W"]


def test_sgd():
    w1, w2 = two_steps(SGD(lr=0.1))
    np.testing.assert_allclose(w1, W0 - 0.1 * G1)
    np.testing.assert_allclose(w2, W0 - 0.1 * G1 - 0.1 * G2)


def test_momentum():
    lr, m = 0.1, 0.9
    w1, w2 = two_steps(Momentum(lr=lr, momentum=m))
    v1 = -lr * G1
    v2 = m * v1 - lr * G2
    np.testing.assert_allclose(w1, W0 + v1)
    np.testing.assert_allclose(w2, W0 + v1 + v2)


def test_nesterov():
    lr, m = 0.1, 0.9
    w1, w2 = two_steps(Nesterov(lr=lr, momentum=m))
    v1 = -lr * G1
    e1 = W0 + m * m * v1 - (1 + m) * lr * G1
    v2 = m * v1 - lr * G2
    np.testing.assert_allclose(w1, e1)
    np.testing.assert_allclose(w2, e1 + m * m * v2 - (1 + m) * lr * G2)


def test_adagrad():
    lr = 0.5
    w1, w2 = two_steps(AdaGrad(lr=lr))
    h1 = G1**2
    e1 = W0 - lr * G1 / (np.sqrt(h1) + 1e-7)
    h2 = h1 + G2**2
    np.testing.assert_allclose(w1, e1)
    np.testing.assert_allclose(w2, e1 - lr * G2 / (np.sqrt(h2) + 1e-7))


def test_rmsprop():
    lr, rho = 0.01, 0.9
    w1, w2 = two_steps(RMSprop(lr=lr, decay_rate=rho))
    h1 = (1 - rho) * G1**2
    e1 = W0 - lr * G1 / (np.sqrt(h1) + 1e-7)
    h2 = rho * h1 + (1 - rho) * G2**2
    np.testing.assert_allclose(w1, e1)
    np.testing.assert_allclose(w2, e1 - lr * G2 / (np.sqrt(h2) + 1e-7))


def test_adam():
    lr, b1, b2 = 0.01, 0.9, 0.999
    w1, w2 = two_steps(Adam(lr=lr, beta1=b1, beta2=b2))
    m1, v1 = (1 - b1) * G1, (1 - b2) * G1**2
    e1 = W0 - lr * math.sqrt(1 - b2) / (1 - b1) * m1 / (np.sqrt(v1) + 1e-7)
    m2, v2 = b1 * m1 + (1 - b1) * G2, b2 * v1 + (1 - b2) * G2**2
    e2 = e1 - lr * math.sqrt(1 - b2**2) / (1 - b1**2) * m2 / (np.sqrt(v2) + 1e-7)
    np.testing.assert_allclose(w1, e1)
    np.testing.assert_allclose(w2, e2)
    # Adam's first step moves every weight by about lr, whatever the gradient's scale
    np.testing.assert_allclose(np.abs(w1 - W0)[G1 != 0], lr, rtol=1e-4)


def test_updates_in_place_keep_identity():
    params = {"W": W0.copy()}
    ref = params["W"]
    for name in OPTIMIZERS:
        get_optimizer(name, lr=0.01).update(params, {"W": G1})
    assert params["W"] is ref


def test_float32_stays_float32():
    params = {"W": W0.astype(np.float32)}
    for name in OPTIMIZERS:
        get_optimizer(name).update(params, {"W": G1.astype(np.float32)})
        assert params["W"].dtype == np.float32


@pytest.mark.parametrize(
    "factory, message",
    [
        (lambda: SGD(lr=-0.1), "learning rate must be > 0, got -0.1"),
        (lambda: SGD(lr=0), "learning rate must be > 0, got 0"),
        (lambda: Adam(lr=float("nan")), "learning rate must be a finite number"),
        (lambda: Momentum(momentum=1.0), "momentum must be >= 0 and < 1, got 1.0"),
        (lambda: Adam(beta2=-0.5), "beta2 must be >= 0 and < 1"),
        (lambda: RMSprop(decay_rate=2), "decay_rate must be >= 0 and < 1, got 2"),
        (lambda: get_optimizer("lion"), "unknown optimizer 'lion'"),
    ],
)
def test_bad_hyperparameters(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()


def test_missing_gradient_named():
    params = {"W": np.ones(2), "b": np.ones(1)}
    opt = Adam()
    with pytest.raises(ValueError, match=r"no gradient for parameter\(s\) \['b'\]; .*got \['W'\]"):
        opt.update(params, {"W": np.ones(2)})
    with pytest.raises(ValueError, match="gradient of 'b' has shape"):
        opt.update(params, {"W": np.ones(2), "b": np.ones(3)})
    np.testing.assert_array_equal(params["W"], 1)  # nothing was changed
    assert opt.t == 0  # not even the step count


def test_shape_mismatch_named():
    with pytest.raises(ValueError, match="gradient of 'W' has shape"):
        SGD().update({"W": np.zeros((2, 2))}, {"W": np.zeros(3)})


def _train(net, opt, batches):
    for x, t in batches:
        opt.update(net.params, net.gradient(x, t))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_resume_is_bit_identical(name, rng):
    batches = [(rng.standard_normal((8, 6)), rng.integers(0, 3, 8)) for _ in range(6)]
    kwargs = dict(use_batchnorm=True, use_dropout=True, dropout_ratio=0.2)

    straight = MultiLayerNet(6, [5, 4], 3, rng=7, **kwargs)
    opt = get_optimizer(name, lr=0.01)
    _train(straight, opt, batches)

    first = MultiLayerNet(6, [5, 4], 3, rng=7, **kwargs)
    opt1 = get_optimizer(name, lr=0.01)
    _train(first, opt1, batches[:3])
    net_state, opt_state = first.state_dict(), opt1.state_dict()
    random_state = first.random_state()

    resumed = MultiLayerNet(6, [5, 4], 3, rng=99, **kwargs)
    resumed.load_state_dict(net_state)
    resumed.set_random_state(random_state)
    opt2 = get_optimizer(name, lr=0.5)  # hyperparameters come from the state
    opt2.load_state_dict(opt_state)
    _train(resumed, opt2, batches[3:])

    for k in straight.params:
        np.testing.assert_array_equal(resumed.params[k], straight.params[k])
    assert opt2.t == opt.t == 6


def test_state_dict_contents_and_type_check():
    opt = Adam(lr=0.01)
    opt.update({"W": W0.copy()}, {"W": G1})
    state = opt.state_dict()
    assert state["type"] == "Adam" and state["t"] == 1
    assert set(state["state"]) == {"m", "v"} and "W" in state["state"]["m"]
    assert state["hyperparameters"] == {"lr": 0.01, "beta1": 0.9, "beta2": 0.999}
    with pytest.raises(ValueError, match="for 'Adam', not 'SGD'"):
        SGD().load_state_dict(state)


@pytest.mark.parametrize("clone", ["deepcopy", "pickle"])
def test_copied_optimizer_keeps_its_state_dict_current(clone, rng):
    """A copy or pickle of an optimizer saves the state it really steps with, not a stale one."""
    import copy
    import pickle

    net = MultiLayerNet(6, [5], 3, rng=0)
    x, t = rng.standard_normal((8, 6)), rng.integers(0, 3, 8)
    opt = Adam(lr=0.01)
    opt.update(net.params, net.gradient(x, t))
    twin = copy.deepcopy(opt) if clone == "deepcopy" else pickle.loads(pickle.dumps(opt))
    twin_net = copy.deepcopy(net)
    opt.update(net.params, net.gradient(x, t))
    twin.update(twin_net.params, twin_net.gradient(x, t))
    for slot in ("m", "v"):
        for name, a in twin.state_dict()["state"][slot].items():
            np.testing.assert_array_equal(a, opt.state[slot][name])
            assert np.shares_memory(twin.state[slot][name], twin._flat_state[slot])
