"""Every layer: worked examples of chapter 5 and backprop vs numerical gradients (float64)."""

import numpy as np
import pytest

from dlscratch.gradient import numerical_gradient, relative_error
from dlscratch.layers import (
    AddLayer,
    Affine,
    BatchNormalization,
    Dropout,
    IdentityWithLoss,
    MulLayer,
    Relu,
    Sigmoid,
    SigmoidWithLoss,
    SoftmaxWithLoss,
    Tanh,
)

TOL = 1e-6


# -- computational graphs (section 5.4) -------------------------------------------------
def test_buy_apple_graph():
    apple, apple_num, tax = 100, 2, 1.1
    mul_apple, mul_tax = MulLayer(), MulLayer()
    price = mul_tax.forward(mul_apple.forward(apple, apple_num), tax)
    assert price == pytest.approx(220.0)
    d_apple_price, d_tax = mul_tax.backward(1)
    d_apple, d_apple_num = mul_apple.backward(d_apple_price)
    assert (d_apple, d_apple_num, d_tax) == pytest.approx((2.2, 110.0, 200.0))


def test_buy_apple_orange_graph():
    apple, apple_num, orange, orange_num, tax = 100, 2, 150, 3, 1.1
    mul_apple, mul_orange, add, mul_tax = MulLayer(), MulLayer(), AddLayer(), MulLayer()
    apple_price = mul_apple.forward(apple, apple_num)
    orange_price = mul_orange.forward(orange, orange_num)
    total = add.forward(apple_price, orange_price)
    price = mul_tax.forward(total, tax)
    assert price == pytest.approx(715.0)
    d_total, d_tax = mul_tax.backward(1)
    d_apple_price, d_orange_price = add.backward(d_total)
    d_orange, d_orange_num = mul_orange.backward(d_orange_price)
    d_apple, d_apple_num = mul_apple.backward(d_apple_price)
    assert (d_apple_num, d_apple, d_orange, d_orange_num, d_tax) == pytest.approx(
        (110.0, 2.2, 3.3, 165.0, 650.0)
    )


def test_mul_backward_before_forward():
    with pytest.raises(RuntimeError, match="before forward"):
        MulLayer().backward(1.0)


# -- numerical checks of single layers ---------------------------------------------------
def check_layer(layer, x, rng):
    """Compare dx and every parameter gradient with central differences of sum(out * G)."""
    out = layer.forward(x, train=True)
    G = rng.standard_normal(out.shape)
    G_before = G.copy()

    def objective(_):
        return float(np.sum(layer.forward(x, train=True) * G))

    dx_num = numerical_gradient(objective, x)
    param_num = {k: numerical_gradient(objective, p) for k, p in layer.params.items()}
    layer.forward(x, train=True)
    dx = layer.backward(G)
    np.testing.assert_array_equal(G, G_before)  # backward never modifies dout
    assert dx.shape == x.shape
    assert relative_error(dx, dx_num) < TOL
    for k, g in param_num.items():
        assert layer.grads[k].shape == layer.params[k].shape
        assert relative_error(layer.grads[k], g) < TOL, k


def test_relu_gradient(rng):
    x = rng.standard_normal((4, 5))
    x[np.abs(x) < 1e-3] = 0.5  # keep away from the kink
    check_layer(Relu(), x, rng)


def test_relu_in_place_overwrites_its_input_and_backpropagates_the_same(rng):
    x = rng.standard_normal((4, 5))
    dout = rng.standard_normal((4, 5))
    plain, inplace = Relu(), Relu(inplace=True)
    want_out, x_copy = plain.forward(x), x.copy()
    np.testing.assert_array_equal(x, x_copy)  # the plain one leaves its input alone
    got_out = inplace.forward(x_copy)
    assert got_out is x_copy  # the input now holds the output
    np.testing.assert_array_equal(got_out, want_out)
    np.testing.assert_array_equal(inplace.backward(dout), plain.backward(dout))
    assert repr(inplace) == "Relu(inplace=True)"


@pytest.mark.parametrize("layer_cls", [Sigmoid, Tanh])
def test_smooth_activation_gradients(layer_cls, rng):
    check_layer(layer_cls(), rng.standard_normal((4, 5)), rng)


def test_affine_gradient_and_image_input(rng):
    layer = Affine(rng.standard_normal((12, 3)), rng.standard_normal(3))
    check_layer(layer, rng.standard_normal((4, 3, 2, 2)), rng)  # (N, C, H, W) flattened to 12
    assert repr(layer) == "Affine(12 -> 3)"


def test_affine_rejects_wrong_feature_count(rng):
    layer = Affine(rng.standard_normal((784, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="expects 784 input features, got 783"):
        layer.forward(np.zeros((2, 783)))
    with pytest.raises(ValueError, match=r"W \(D, M\) and b \(M,\)"):
        Affine(np.zeros((3, 2)), np.zeros(3))


def test_batchnorm_gradient(rng):
    layer = BatchNormalization(rng.standard_normal(5) + 1.0, rng.standard_normal(5))
    check_layer(layer, rng.standard_normal((6, 5)) * 3 + 1, rng)


def test_batchnorm_train_normalises_and_inference_uses_running_stats(rng):
    x = rng.standard_normal((200, 3)) * [1.0, 5.0, 0.1] + [2.0, -1.0, 7.0]
    bn = BatchNormalization(np.ones(3), np.zeros(3), momentum=0.9)
    y = bn.forward(x, train=True)
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.std(axis=0), 1.0, atol=1e-5)
    # running stats moved 10% of the way from (0, 1) towards the batch statistics
    np.testing.assert_allclose(bn.buffers["running_mean"], 0.1 * x.mean(axis=0))
    np.testing.assert_allclose(bn.buffers["running_var"], 0.9 + 0.1 * x.var(axis=0))
    for _ in range(200):
        bn.forward(x, train=True)
    y_inf = bn.forward(x, train=False)
    np.testing.assert_allclose(y_inf, y, atol=1e-4)  # converged running stats ~ batch stats


def test_batchnorm_needs_two_samples_and_valid_momentum():
    bn = BatchNormalization(np.ones(2), np.zeros(2))
    with pytest.raises(ValueError, match="at least 2"):
        bn.forward(np.ones((1, 2)), train=True)
    with pytest.raises(ValueError, match="momentum"):
        BatchNormalization(np.ones(2), np.zeros(2), momentum=1.5)


def test_dropout_inverted_and_seeded():
    x = np.ones((1000, 100))
    a = Dropout(0.3, rng=7).forward(x, train=True)
    b = Dropout(0.3, rng=7).forward(x, train=True)
    np.testing.assert_array_equal(a, b)
    kept = a != 0
    assert kept.mean() == pytest.approx(0.7, abs=0.01)
    np.testing.assert_allclose(a[kept], 1 / 0.7)  # inverted: survivors are scaled up
    assert a.mean() == pytest.approx(1.0, abs=0.01)  # expectation preserved
    layer = Dropout(0.3, rng=1)
    assert layer.forward(x, train=False) is x  # inference is the identity


def test_dropout_gradient_with_frozen_mask(rng):
    layer = Dropout(0.4, rng=3)
    layer.frozen = True
    check_layer(layer, rng.standard_normal((5, 6)), rng)


def test_dropout_ratio_validated():
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        Dropout(1.0)


# -- loss layers ------------------------------------------------------------------------
@pytest.mark.parametrize("one_hot", [False, True])
def test_softmax_with_loss_gradient(one_hot, rng):
    x = rng.standard_normal((5, 4))
    labels = rng.integers(0, 4, 5)
    t = np.eye(4)[labels] if one_hot else labels
    layer = SoftmaxWithLoss()
    layer.forward(x, t)
    dx = layer.backward()
    dx_num = numerical_gradient(lambda _: SoftmaxWithLoss().forward(x, t), x)
    assert relative_error(dx, dx_num) < TOL
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(dx, (e / e.sum(axis=1, keepdims=True) - np.eye(4)[labels]) / 5)


def test_softmax_with_loss_value_matches_cross_entropy():
    from dlscratch.functions import cross_entropy_error, softmax

    x = np.array([[0.3, 2.9, 4.0], [1.0, 0.0, -1.0]])
    t = np.array([2, 0])
    expected = cross_entropy_error(softmax(x), t)
    assert SoftmaxWithLoss().forward(x, t) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("shape", [(6,), (6, 1)])
def test_sigmoid_with_loss_value_gradient_and_extremes(rng, shape):
    from dlscratch.functions import sigmoid

    x = rng.standard_normal(shape) * 3
    t = (rng.random(shape) > 0.5).astype(float)
    y = sigmoid(x)
    expected = -np.mean(t * np.log(y) + (1 - t) * np.log(1 - y))
    layer = SigmoidWithLoss()
    assert layer.forward(x, t) == pytest.approx(expected, rel=1e-12)
    dx = layer.backward()
    assert dx.shape == shape
    np.testing.assert_allclose(dx, (y - t) / 6, rtol=1e-12)
    dx_num = numerical_gradient(lambda _: SigmoidWithLoss().forward(x, t), x)
    assert relative_error(dx, dx_num) < TOL
    # A confident wrong answer costs about |score|, not inf; a confident right one about 0.
    assert SigmoidWithLoss().forward(np.array([1000.0, -1000.0]), np.array([0.0, 1.0])) == 1000
    assert SigmoidWithLoss().forward(np.array([1000.0, -1000.0]), np.array([1.0, 0.0])) == 0
    assert SigmoidWithLoss().forward(np.zeros(2), np.array([0, 1])) == pytest.approx(np.log(2))


def test_sigmoid_with_loss_rejects_what_it_cannot_mean():
    layer = SigmoidWithLoss()
    with pytest.raises(ValueError, match=r"shape \(N,\) or \(N, 1\).*use SoftmaxWithLoss"):
        layer.forward(np.zeros((4, 3)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="targets must lie in \\[0, 1\\]"):
        layer.forward(np.zeros(3), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"targets must have shape \(3,\), got \(2,\)"):
        layer.forward(np.zeros(3), np.array([0, 1]))
    assert layer.forward(np.zeros((2, 1)), np.array([0, 1])) == pytest.approx(np.log(2))


def test_identity_with_loss(rng):
    x = rng.standard_normal((4, 3))
    t = rng.standard_normal((4, 3))
    layer = IdentityWithLoss()
    assert layer.forward(x, t) == pytest.approx(0.5 * np.sum((x - t) ** 2) / 4)
    dx = layer.backward()
    dx_num = numerical_gradient(lambda _: IdentityWithLoss().forward(x, t), x)
    assert relative_error(dx, dx_num) < TOL
    with pytest.raises(ValueError, match="targets must have shape"):
        layer.forward(x, t[:, :2])
