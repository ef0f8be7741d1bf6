"""Networks: SimpleNet, TwoLayerNet, MultiLayerNet - gradients, state, validation."""

import numpy as np
import pytest

from dlscratch import MultiLayerNet, SimpleNet, TwoLayerNet, build_network
from dlscratch.gradient import gradient_check


@pytest.fixture
def batch(rng):
    x = rng.standard_normal((6, 12))
    t = rng.integers(0, 4, 6)
    return x, t


def test_simple_net_gradient_rows_sum_to_zero():
    net = SimpleNet(rng=0)
    x = np.array([0.6, 0.9])
    t = np.array([0, 0, 1])
    dW = net.numerical_gradient(x, t)["W"]
    assert dW.shape == (2, 3)
    # softmax(xW) - t sums to zero, and each row of dW is x_i times it
    np.testing.assert_allclose(dW.sum(axis=1), 0.0, atol=1e-9)
    np.testing.assert_allclose(net.gradient(x, t)["W"], dW, atol=1e-8)
    assert dW[1, 2] < 0 < dW[1, 0]  # pushing W towards the right class lowers the loss


def test_simple_net_loss_from_notes_weights():
    # The book's fixed W for section 4.4.2 and x = [0.6, 0.9].
    W = [[0.47355232, 0.9977393, 0.84668094], [0.85557411, 0.03563661, 0.69422093]]
    net = SimpleNet(W=W)
    p = net.predict(np.array([0.6, 0.9]))
    np.testing.assert_allclose(p, [1.05414809, 0.63071653, 1.1328074], rtol=1e-7)
    assert net.loss(np.array([0.6, 0.9]), np.array([0, 0, 1])) == pytest.approx(
        0.92806853663411326, rel=1e-7
    )


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh"])
def test_two_layer_net_gradients_match(activation, batch):
    x, t = batch
    net = TwoLayerNet(12, 8, 4, activation=activation, weight_init_std=0.5, dtype=np.float64, rng=1)
    result = gradient_check(net, x, t)
    assert result.passed, str(result)
    assert list(result.max_rel_diff) == ["W1", "b1", "W2", "b2"]


CONFIGS = [
    dict(activation="relu"),
    dict(activation="sigmoid", weight_init_std="xavier"),
    dict(activation="tanh", weight_init_std="xavier"),
    dict(activation="relu", weight_decay_lambda=0.1),
    dict(activation="relu", use_batchnorm=True),
    dict(activation="sigmoid", use_batchnorm=True),
    dict(activation="relu", use_dropout=True, dropout_ratio=0.3),
    dict(activation="tanh", use_batchnorm=True, use_dropout=True, weight_decay_lambda=0.05),
    dict(activation="relu", use_batchnorm=True, batchnorm_position="after", use_dropout=True),
]


@pytest.mark.parametrize(
    "config", CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items())
)
def test_multi_layer_net_gradients_match(config, batch):
    x, t = batch
    net = MultiLayerNet(12, [10, 9, 8], 4, dtype=np.float64, rng=3, **config)
    result = gradient_check(net, x, t)
    assert result.passed, str(result)
    assert all(v < 1e-6 for v in result.max_rel_diff.values())


def test_batchnorm_before_or_after_the_activation(tmp_path):
    before = MultiLayerNet(6, [5, 4], 3, use_batchnorm=True, use_dropout=True, rng=0)
    after = MultiLayerNet(
        6, [5, 4], 3, use_batchnorm=True, use_dropout=True, batchnorm_position="after", rng=0
    )
    assert list(before.layers)[:4] == ["Affine1", "BatchNorm1", "Activation1", "Dropout1"]
    assert list(after.layers)[:4] == ["Affine1", "Activation1", "BatchNorm1", "Dropout1"]
    assert list(after.params) == list(before.params)  # same names, same places
    # In training mode, batch norm after ReLU gives outputs with mean 0 per feature.
    x = np.random.default_rng(1).standard_normal((50, 6)).astype(np.float32)
    h = x
    for name in ("Affine1", "Activation1", "BatchNorm1"):
        h = after.layers[name].forward(h, train=True)
    np.testing.assert_allclose(h.mean(axis=0), 0, atol=1e-5)

    from dlscratch.io import load_model, save_model

    save_model(tmp_path / "m.npz", after)
    loaded = load_model(tmp_path / "m.npz")
    assert loaded.batchnorm_position == "after" and list(loaded.layers) == list(after.layers)
    np.testing.assert_array_equal(loaded.predict(x), after.predict(x))
    with pytest.raises(ValueError, match="batchnorm_position must be 'before' or 'after'"):
        MultiLayerNet(6, [5], 3, use_batchnorm=True, batchnorm_position="middle")


def test_gradient_check_restores_batchnorm_statistics(batch):
    x, t = batch
    net = MultiLayerNet(12, [5], 4, use_batchnorm=True, dtype=np.float64, rng=0)
    before = net.state_dict()
    gradient_check(net, x, t)
    after = net.state_dict()
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])


def test_gradient_check_needs_float64(batch):
    x, t = batch
    net = MultiLayerNet(12, [5], 4, rng=0)
    with pytest.raises(TypeError, match="float64"):
        gradient_check(net, x, t)


def test_weight_decay_adds_penalty(batch):
    x, t = batch
    plain = MultiLayerNet(12, [5], 4, dtype=np.float64, rng=0)
    decayed = MultiLayerNet(12, [5], 4, weight_decay_lambda=0.2, dtype=np.float64, rng=0)
    penalty = 0.1 * sum(np.sum(plain.params[k] ** 2) for k in ("W1", "W2"))
    assert decayed.loss(x, t) == pytest.approx(plain.loss(x, t) + penalty)
    g0, g1 = plain.gradient(x, t), decayed.gradient(x, t)
    np.testing.assert_allclose(g1["W1"], g0["W1"] + 0.2 * plain.params["W1"])
    np.testing.assert_array_equal(g1["b1"], g0["b1"])  # biases are not decayed


def test_params_are_shared_with_layers():
    net = MultiLayerNet(4, [3], 2, rng=0)
    net.params["W1"] -= 1.0
    np.testing.assert_array_equal(net.layers["Affine1"].params["W"], net.params["W1"])
    assert list(net.params) == ["W1", "b1", "W2", "b2"]


def test_param_names_with_batchnorm():
    net = MultiLayerNet(4, [3, 3], 2, use_batchnorm=True, rng=0)
    assert list(net.params) == [
        "W1",
        "b1",
        "gamma1",
        "beta1",
        "W2",
        "b2",
        "gamma2",
        "beta2",
        "W3",
        "b3",
    ]
    assert "running_mean1" in net.state_dict()


def test_dtype_default_float32_and_float64_option(batch):
    x, t = batch
    net32 = MultiLayerNet(12, [5], 4, rng=0)
    assert all(p.dtype == np.float32 for p in net32.params.values())
    assert net32.predict(x).dtype == np.float32
    assert all(g.dtype == np.float32 for g in net32.gradient(x, t).values())
    net64 = MultiLayerNet(12, [5], 4, dtype="float64", rng=0)
    assert net64.predict(x).dtype == np.float64


def test_init_scales():
    he = MultiLayerNet(1000, [500], 10, weight_init_std="he", rng=0)
    xavier = MultiLayerNet(1000, [500], 10, weight_init_std="xavier", rng=0)
    fixed = MultiLayerNet(1000, [500], 10, weight_init_std=0.01, rng=0)
    assert he.params["W1"].std() == pytest.approx(np.sqrt(2 / 1000), rel=0.02)
    assert xavier.params["W1"].std() == pytest.approx(1 / np.sqrt(1000), rel=0.02)
    assert fixed.params["W1"].std() == pytest.approx(0.01, rel=0.02)
    assert he.params["W2"].std() == pytest.approx(np.sqrt(2 / 500), rel=0.05)
    assert not he.params["b1"].any()


def test_same_seed_same_weights():
    a = MultiLayerNet(5, [4], 3, use_dropout=True, rng=42)
    b = MultiLayerNet(5, [4], 3, use_dropout=True, rng=42)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])


def test_state_dict_round_trip(batch):
    x, t = batch
    src = MultiLayerNet(12, [6], 4, use_batchnorm=True, rng=1)
    src.gradient(x, t)  # moves running statistics
    dst = MultiLayerNet(12, [6], 4, use_batchnorm=True, rng=2)
    dst.load_state_dict(src.state_dict())
    np.testing.assert_array_equal(dst.predict(x), src.predict(x))
    state = src.state_dict()
    state["W1"] = state["W1"][:, :5]
    with pytest.raises(ValueError, match=r"'W1': expected shape \(12, 6\), found \(12, 5\)"):
        dst.load_state_dict(state)
    with pytest.raises(ValueError, match="missing"):
        dst.load_state_dict({"W1": state["W1"]})


def test_build_network_from_config():
    net = MultiLayerNet(8, [5, 4], 3, activation="tanh", use_batchnorm=True, rng=0)
    clone = build_network(net.get_config())
    assert type(clone) is MultiLayerNet
    assert clone.get_config() == net.get_config()
    two = TwoLayerNet(8, 5, 3, rng=0)
    assert type(build_network(two.get_config())) is TwoLayerNet
    with pytest.raises(ValueError, match="unknown network class"):
        build_network({"class": "Nope"})


def test_accuracy_with_integer_and_one_hot_labels(rng):
    net = MultiLayerNet(3, [4], 2, rng=0)
    x = rng.standard_normal((10, 3))
    pred = net.predict(x).argmax(axis=1)
    assert net.accuracy(x, pred) == 1.0
    assert net.accuracy(x, np.eye(2)[pred], batch_size=3) == 1.0
    assert net.accuracy(x, 1 - pred) == 0.0


def test_repr_lists_layers():
    text = repr(MultiLayerNet(784, [100], 10, use_batchnorm=True, use_dropout=True))
    for part in ("Affine(784 -> 100)", "BatchNormalization(100)", "Relu()", "Dropout(ratio=0.5)"):
        assert part in text


# -- bad input --------------------------------------------------------------------------
def test_wrong_feature_count_is_a_clear_error():
    net = MultiLayerNet(784, [10], 10)
    with pytest.raises(ValueError, match="expects 784 input features per sample, got 783"):
        net.predict(np.zeros((2, 783)))
    with pytest.raises(ValueError, match="single sample"):
        net.predict(np.zeros(784))


def test_labels_out_of_range():
    net = MultiLayerNet(4, [3], 10)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        net.loss(np.zeros((2, 4)), np.array([1, 10]))


def test_non_finite_input():
    net = MultiLayerNet(4, [3], 2)
    x = np.zeros((2, 4))
    x[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        net.gradient(x, np.array([0, 1]))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(activation="swish"), "unknown activation 'swish'"),
        (dict(weight_init_std="lecun"), "unknown weight init 'lecun'"),
        (dict(weight_init_std=-1.0), "positive number"),
        (dict(weight_decay_lambda=-0.1), "weight_decay_lambda must be >= 0"),
        (dict(use_dropout=True, dropout_ratio=1.2), r"dropout_ratio must be in \[0, 1\)"),
        (dict(dtype="int32"), "float32 or float64"),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        MultiLayerNet(4, [3], 2, **kwargs)


def test_bad_sizes():
    with pytest.raises(ValueError, match="positive integers"):
        MultiLayerNet(4, [3, 0], 2)
