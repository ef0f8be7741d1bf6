"""Contract tests over the registries: a newly registered optimizer or activation is tested here
without a test of its own being written, and is usable from every front end at once."""

from __future__ import annotations

import numpy as np
import pytest

from dlscratch.config import RunConfig
from dlscratch.gradient import gradient_check, numerical_gradient
from dlscratch.layers import ACTIVATIONS
from dlscratch.nets import MultiLayerNet
from dlscratch.optim import OPTIMIZERS, get_optimizer


# -- activations ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_every_activation_backward_equals_numerical_gradient(name):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 4))
    x[np.abs(x) < 1e-3] = 0.5  # keep away from kinks, where the derivative is one-sided
    dout = rng.normal(size=x.shape)
    layer = ACTIVATIONS.create(name)
    layer.forward(x.copy(), train=True)
    dx = layer.backward(dout.copy())
    # d/dx of sum(forward(x) * dout) is the backward of dout
    numeric = numerical_gradient(lambda _: float((layer.forward(x) * dout).sum()), x)
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_every_activation_trains_in_a_network_and_passes_the_gradient_check(name):
    rng = np.random.default_rng(1)
    net = MultiLayerNet(6, [5, 4], 3, activation=name, dtype=np.float64, rng=0)
    x, t = rng.normal(size=(8, 6)), rng.integers(0, 3, 8)
    result = gradient_check(net, x, t)
    assert result.passed, result


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_every_activation_option_is_validated_from_its_declaration(name):
    for option in getattr(ACTIVATIONS[name], "options", ()):
        if option.low is not None:
            with pytest.raises(ValueError, match=option.name):
                ACTIVATIONS.create(name, **{option.name: option.low - 1})
    with pytest.raises(ValueError, match="has no option 'nonsense'"):
        ACTIVATIONS.create(name, nonsense=1)


# -- optimizers ----------------------------------------------------------------------------------
def _quadratic(seed=0):
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(6, 6))
    A = M @ M.T / 6 + np.eye(6)
    c = rng.normal(size=6)
    return A, c


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_descends_a_quadratic_with_its_defaults(name):
    A, c = _quadratic()
    params = {"W": np.zeros(6)}
    loss = lambda w: 0.5 * w @ A @ w - c @ w  # noqa: E731
    opt = get_optimizer(name, lr=0.05)
    start = loss(params["W"])
    for _ in range(200):
        opt.update(params, {"W": A @ params["W"] - c})
    assert loss(params["W"]) < start - 0.5 * abs(start - loss(np.linalg.solve(A, c)))


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_resumes_exactly_from_its_state_dict(name):
    A, c = _quadratic(1)
    a, b = {"W": np.ones(6)}, {"W": np.ones(6)}
    opt_a = get_optimizer(name, lr=0.05)
    for _ in range(5):
        opt_a.update(a, {"W": A @ a["W"] - c})
    b["W"][...] = a["W"]
    opt_b = get_optimizer(name, lr=0.05)
    opt_b.load_state_dict(opt_a.state_dict())
    for _ in range(5):
        opt_a.update(a, {"W": A @ a["W"] - c})
        opt_b.update(b, {"W": A @ b["W"] - c})
    np.testing.assert_array_equal(a["W"], b["W"])


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_declares_a_default_rate_and_validated_options(name):
    cls = OPTIMIZERS[name]
    assert cls.default_lr > 0
    opt = get_optimizer(name)
    assert opt.lr == cls.default_lr
    for option in cls.options:
        assert getattr(opt, option.name) == option.default
        if option.high is not None:
            with pytest.raises(ValueError, match=option.name):
                get_optimizer(name, **{option.name: option.high + 1})


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_is_a_valid_run_configuration(name):
    cfg = RunConfig(optimizer=name)
    assert cfg.build_optimizer().lr == OPTIMIZERS[name].default_lr
    options = {o.name: o.default for o in OPTIMIZERS[name].options}
    cfg = cfg.replace(optimizer_options=options)
    assert cfg.build_optimizer().hyperparameters() == {"lr": cfg.learning_rate, **options}


def test_adamw_decays_weights_but_not_biases_or_batchnorm():
    from dlscratch.optim.adamw import AdamW

    net = MultiLayerNet(4, [3], 2, use_batchnorm=True, rng=0)
    before = {k: v.copy() for k, v in net.params.items()}
    zero = {k: np.zeros_like(v) for k, v in net.params.items()}
    AdamW(lr=0.1, weight_decay=0.5).update(net.params, zero)  # no gradient: decay only
    for k, v in net.params.items():
        if k.startswith("W"):
            np.testing.assert_allclose(v, before[k] * (1 - 0.1 * 0.5), rtol=1e-6)
        else:
            np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_every_activation_names_a_valid_initialisation(name):
    from dlscratch.estimator import MLPClassifier

    init = ACTIVATIONS[name].preferred_init
    assert RunConfig(activation=name, init=init).init == init
    assert MLPClassifier(activation=name).run_config().weight_init == init
    assert RunConfig(activation=name).weight_init == init  # the default follows the activation


def test_weight_init_defaults_to_the_networks_own():
    """init left unset: the book's choices (section 6.2, chapters 7-8); set, it is kept."""
    assert RunConfig().init is None and RunConfig().weight_init == "he"  # ReLU
    assert RunConfig(activation="sigmoid").weight_init == "xavier"
    assert RunConfig(net="simple-cnn").weight_init == 0.01  # chapter 7's weight_init_std
    assert RunConfig(net="deep-cnn").weight_init == "he"
    assert RunConfig(net="simple-cnn", init="he").weight_init == "he"
    net = RunConfig(net="simple-cnn").build_network(0)
    assert 0.008 < float(net.params["W2"].std()) < 0.012  # std 0.01, not He's 0.02
    assert "init 0.01" in RunConfig(net="simple-cnn").describe()
