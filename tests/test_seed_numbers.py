"""The study notes' (``shared/seeds/*.txt``) numbers and claims that no other test asserted.

Each test names the note it reproduces (by the number its file name starts with) and what
that note shows:

* ``000`` - "[04] 신경망 학습 (경사법)": gradient descent, simpleNet, numerical differentiation;
* ``001`` - "ch4. 신경망 학습": why a loss and not the accuracy, central differences;
* ``002`` - the chapter 3-6 notebook: softmax printouts, MNIST shapes, losses, gradients,
  TwoLayerNet and its training loop, the layers of chapter 5, the optimizers of 6.1;
* ``003`` - "오차역전파법이란?" (chapter 6 summary): optimizers, initial weights, batch norm,
  dropout;
* ``004`` - "신경망 학습 / 수치미분": MSE/CEE printouts, mini-batches, gradient descent with
  history.

Values printed by the notes are asserted exactly or to the digits printed. Where a note's
outcome depends on random numbers (initial weights, mini-batches) only what holds for every
seed is asserted, and the comment says so. Everything here runs in a few seconds.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from dlscratch import functions as F
from dlscratch.gradient import H, gradient_descent, numerical_diff, numerical_gradient
from dlscratch.layers import (
    AddLayer,
    BatchNormalization,
    Dropout,
    MulLayer,
    Relu,
    Sigmoid,
    SoftmaxWithLoss,
)
from dlscratch.nets import MultiLayerNet, SimpleNet, TwoLayerNet
from dlscratch.optim import SGD, AdaGrad, Adam, Momentum, RMSprop
from shared_data import BOOK_WEIGHTS, needs_mnist, needs_weights


def function_1(x):
    """Seeds 000, 002, 004: ``0.01 x^2 + 0.1 x``."""
    return 0.01 * x**2 + 0.1 * x


def function_2(x):
    """Seeds 000, 002, 004: ``x0^2 + x1^2``."""
    return x[0] ** 2 + x[1] ** 2


@pytest.fixture(scope="module")
def mnist():
    from dlscratch.data import load_mnist

    return load_mnist(flatten=True, normalize=False)


# == chapter 3: softmax and MNIST ===============================================================
def test_softmax_prints_exactly_as_the_notes():
    # 002, 3.5.3: print(softmax([0.3, 2.9, 4.0])) -> "[0.01821127 0.24519181 0.73659691]",
    # np.sum(y) -> 1.0, read as 1.8 %, 24.5 % and 73.7 %.
    y = F.softmax(np.array([0.3, 2.9, 4.0]))
    assert str(y) == "[0.01821127 0.24519181 0.73659691]"
    assert float(np.sum(y)) == 1.0
    assert np.round(100 * y, 1).tolist() == [1.8, 24.5, 73.7]


def test_softmax_overflow_guard_on_the_notes_integer_array():
    # 002, 3.5.2: a = np.array([1010, 1000, 990]) (integers), the naive formula gives
    # [nan, nan, nan]; subtracting c = max(a) (a - c = [0, -10, -20]) gives
    # array([9.99954600e-01, 4.53978686e-05, 2.06106005e-09]).
    a = np.array([1010, 1000, 990])
    y = F.softmax(a)
    assert repr(y) == "array([9.99954600e-01, 4.53978686e-05, 2.06106005e-09])"
    np.testing.assert_array_equal(F.softmax(a - np.max(a)), y)  # the guard is built in


def test_softmax_stays_finite_where_exp_overflows():
    # 002, 3.5.2: the printed table exp(0), exp(50), ..., exp(1000) turns to inf from x = 750.
    # The library's softmax has no such limit on the same inputs.
    for x in range(0, 1001, 50):
        y = F.softmax(np.array([float(x), 0.0]))
        assert np.all(np.isfinite(y)) and float(y.sum()) == pytest.approx(1.0), x
    assert F.softmax(np.array([1000.0, 0.0]))[0] == 1.0


@needs_mnist
def test_mnist_shapes_and_first_label_as_printed(mnist):
    # 002, 3.6.1: load_mnist(flatten=True, normalize=False) prints (60000, 784) (60000,)
    # (10000, 784) (10000,); t_train[0] is 5; img.shape (784,) reshaped to (28, 28).
    (x_train, t_train), (x_test, t_test) = mnist
    assert x_train.shape == (60000, 784) and t_train.shape == (60000,)
    assert x_test.shape == (10000, 784) and t_test.shape == (10000,)
    assert x_train.dtype == np.uint8 and x_train.max() == 255  # not normalised
    assert t_train[0] == 5
    img = x_train[0]
    assert img.shape == (784,) and img.reshape(28, 28).shape == (28, 28)


@needs_mnist
def test_random_mini_batch_of_ten(mnist):
    # 004, "미니배치 학습": np.random.choice(train_size, 10) picks 10 training samples.
    # Which ones is random; only the shapes and the pairing of images with labels are fixed.
    from dlscratch.data import sample_minibatch

    (x_train, t_train), _ = mnist
    x_batch, t_batch = sample_minibatch(x_train, t_train, 10, rng=0)
    assert x_batch.shape == (10, 784) and t_batch.shape == (10,)
    mask = np.random.default_rng(0).choice(60000, 10)
    np.testing.assert_array_equal(t_batch, t_train[mask])


@needs_weights
def test_book_network_predict_and_softmax_free_inference(mnist):
    # 002, 3.6.2: predict(network, x) = softmax(sigmoid(sigmoid(x W1 + b1) W2 + b2) W3 + b3);
    # 002, 5.6.3: at inference the softmax can be dropped - the arg-max of the scores is the
    # same. (The 0.9352 accuracy itself is asserted in test_io and test_cli_infer.)
    from dlscratch.io import load_book_weights, read_book_pickle

    net = load_book_weights(BOOK_WEIGHTS)
    w = read_book_pickle(BOOK_WEIGHTS)
    _, (x_test, _) = mnist
    x = x_test[:200].astype(np.float32) / 255.0
    z1 = F.sigmoid(x @ w["W1"] + w["b1"])
    z2 = F.sigmoid(z1 @ w["W2"] + w["b2"])
    y = F.softmax(z2 @ w["W3"] + w["b3"])
    np.testing.assert_allclose(net.predict_proba(x), y, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(net.predict(x).argmax(axis=1), y.argmax(axis=1))


# == chapter 4: losses ==========================================================================
def test_cross_entropy_to_the_printed_digits():
    # 004: print(cee) -> 0.510825457099 and 2.30258409299 (12 digits);
    # 002, 4.2.2: -log 0.6 = 0.51 and -log 0.1 = 2.3;
    # 002, 4.2.4: both batch versions print 1.7583023994178049.
    t = np.array([0, 0, 1, 0, 0, 0, 0, 0, 0, 0])
    y_right = np.array([0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0])
    y_wrong = np.array([0.1, 0.05, 0.1, 0.0, 0.05, 0.1, 0.0, 0.6, 0.0, 0.0])
    right, wrong = F.cross_entropy_error(y_right, t), F.cross_entropy_error(y_wrong, t)
    assert right == pytest.approx(0.510825457099, abs=5e-13)
    assert wrong == pytest.approx(2.30258409299, abs=5e-12)
    assert round(right, 2) == 0.51 and round(wrong, 1) == 2.3
    yb = np.array(
        [[0, 0, 0.02, 0.03, 0, 0, 0, 0.1, 0.05, 0.8], [0, 0, 0, 0, 0.01, 0, 0, 0, 0.99, 0]]
    )
    assert F.cross_entropy_error(yb, np.eye(10)[[3, 8]]) == 1.7583023994178049
    assert F.cross_entropy_error(yb, np.array([3, 8])) == 1.7583023994178049


def test_accuracy_does_not_move_when_the_loss_does():
    # 001 and 002, 4.2.5: "100 training images, 32 recognised: 32 %"; a small change of a weight
    # leaves the accuracy at 32 % while the loss changes continuously - so the accuracy's
    # derivative is 0 almost everywhere and the loss is what learning follows.
    rng = np.random.default_rng(0)
    net = TwoLayerNet(8, 6, 3, weight_init_std=0.5, dtype=np.float64, rng=1)
    x = rng.standard_normal((100, 8))
    pred = net.predict(x).argmax(axis=1)
    t = np.where(np.arange(100) < 32, pred, (pred + 1) % 3)  # exactly 32 right
    assert net.accuracy(x, t) == 0.32
    W1 = net.params["W1"]
    d_acc = numerical_gradient(lambda _: net.accuracy(x, t), W1)
    d_loss = numerical_gradient(lambda _: net.loss(x, t), W1)
    assert not d_acc.any()  # flat: no direction to move in
    assert np.count_nonzero(d_loss) == d_loss.size  # every weight moves the loss
    assert net.accuracy(x, t) == 0.32  # and W1 was restored


def test_step_function_has_zero_derivative_sigmoid_never():
    # 001, 002 4.2.5, 004: the step function's derivative is 0 everywhere but at 0,
    # the sigmoid's is never 0.
    for x in (-3.0, -0.5, 0.5, 3.0):
        assert numerical_diff(F.step_function, x) == 0.0
    for x in np.linspace(-10, 10, 41):
        assert numerical_diff(F.sigmoid, x) > 0.0


# == chapter 4: numerical differentiation and gradients =========================================
def test_too_small_h_rounds_to_zero_and_h_is_1e_4():
    # 000 "구현시 주의" and 002 4.3.1: h = 10e-50 makes the difference vanish by rounding
    # ("0이됨"); about 1e-4 is right, and that is the library's step.
    assert H == 1e-4
    assert inspect.signature(numerical_diff).parameters["h"].default == 1e-4
    assert numerical_diff(function_1, 5, h=10e-50) == 0.0
    assert np.float32(10e-50) == 0.0


def test_central_difference_beats_forward_difference(tmp_path):
    # 000 "중심 차분", 001 and 002 4.3.1: the central difference (f(x+h) - f(x-h)) / 2h
    # has a smaller error than the forward difference (f(x+h) - f(x)) / h.
    from dlscratch.experiments import run_experiment

    s = run_experiment("numerical-diff", tmp_path, quick=True, echo=None)["summary"]
    assert s["central_error_at_10"] < 1e-11 < 1e-7 < s["forward_error_at_10"]
    assert s["float32_of_1e_50"] == 0.0


def test_numerical_gradient_intermediate_values_of_the_notes():
    # 002, 4.4: the comments of numerical_gradient at x = [3, 4]: x[0] = 3.0001 gives
    # fxh1 = 25.00060001, x[0] = 2.9999 gives fxh2 = 24.99940001,
    # grad[0] = 0.0012 / 0.0002 = 6, and x[0] is restored to 3.
    seen = []

    def f(x):
        value = function_2(x)
        seen.append((x.copy(), value))
        return value

    x = np.array([3.0, 4.0])
    grad = numerical_gradient(f, x)
    (x1, fxh1), (x2, fxh2) = seen[0], seen[1]
    np.testing.assert_allclose(x1, [3.0001, 4.0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(x2, [2.9999, 4.0], rtol=0, atol=1e-15)
    assert fxh1 == pytest.approx(25.00060001, abs=1e-12)
    assert fxh2 == pytest.approx(24.99940001, abs=1e-12)
    assert fxh1 - fxh2 == pytest.approx(0.0012, abs=1e-12)
    assert grad[0] == pytest.approx(6.0, abs=1e-9)
    np.testing.assert_array_equal(x, [3.0, 4.0])
    assert len(seen) == 4  # two evaluations per variable


def test_gradient_descent_signature_history_and_lr_0_07():
    # 000 and 002: gradient_descent(f, init_x, lr=0.01, step_num=100).
    # 004: the history version records x before every step, and is run on x0^2 + x1^2 from
    # (-3, 4) with lr = 0.07 (the note prints x without its value). Each step multiplies x by
    # 1 - 2 * 0.07 = 0.86, so x = (-3, 4) * 0.86**100 ~ (-8.45e-7, 1.13e-6): the minimum (0, 0).
    params = inspect.signature(gradient_descent).parameters
    assert params["lr"].default == 0.01 and params["step_num"].default == 100
    x, path = gradient_descent(function_2, np.array([-3.0, 4.0]), lr=0.07)
    np.testing.assert_allclose(x, np.array([-3.0, 4.0]) * 0.86**100, rtol=1e-9)
    assert np.abs(x).max() < 2e-6
    history = path[:-1]  # the note's x_history: 100 points, the start first
    assert history.shape == (100, 2)
    np.testing.assert_array_equal(history[0], [-3.0, 4.0])
    np.testing.assert_allclose(history[1], [-3.0 * 0.86, 4.0 * 0.86])


def test_zero_gradient_at_a_saddle_point_is_not_a_minimum():
    # 000 "PROBLEM" and 002 4.4.1: at minima, local minima and saddle points the gradient is 0,
    # so gradient descent can stop where the function is not smallest.
    def saddle(x):
        return x[0] ** 2 - x[1] ** 2

    np.testing.assert_array_equal(numerical_gradient(saddle, np.array([0.0, 0.0])), [0.0, 0.0])
    x, _ = gradient_descent(saddle, np.array([1.0, 0.0]), lr=0.1, step_num=200)
    assert np.abs(x).max() < 1e-15  # stuck at the saddle (0, 0)...
    assert saddle(np.array([0.0, 0.1])) < saddle(x)  # ...which is not a minimum


def test_simple_net_is_the_notes_class():
    # 000 and 002 4.4.2: simpleNet has one 2x3 weight from np.random.randn(2, 3);
    # predict(x) = x W; loss = cross_entropy_error(softmax(x W), t); the gradient has W's shape.
    # The weights are random: only the construction and the formulas are asserted.
    net = SimpleNet(rng=7)
    np.testing.assert_array_equal(net.W, np.random.default_rng(7).standard_normal((2, 3)))
    x, t = np.array([0.6, 0.9]), np.array([0, 0, 1])
    np.testing.assert_allclose(net.predict(x), x @ net.W, rtol=1e-15)
    expected = F.cross_entropy_error(F.softmax(x @ net.W), t)
    assert net.loss(x, t) == pytest.approx(expected, rel=1e-6)  # the notes add 1e-7 in the log
    assert net.numerical_gradient(x, t)["W"].shape == net.W.shape == (2, 3)


# == chapter 4.5: TwoLayerNet and its training loop =============================================
def test_two_layer_net_is_the_notes_class():
    # 002, 4.5.1: TwoLayerNet(input_size, hidden_size, output_size, weight_init_std=0.01):
    # W1 = 0.01 * randn(784, 50), b1 = zeros(50), W2 = 0.01 * randn(50, 10), b2 = zeros(10);
    # sigmoid hidden layer, softmax output; gradient() by the notes' explicit backward pass.
    params = inspect.signature(TwoLayerNet).parameters
    assert params["weight_init_std"].default == 0.01
    net = TwoLayerNet(784, 50, 10, rng=0)
    assert {k: v.shape for k, v in net.params.items()} == {
        "W1": (784, 50),
        "b1": (50,),
        "W2": (50, 10),
        "b2": (10,),
    }
    assert not net.params["b1"].any() and not net.params["b2"].any()
    assert net.params["W1"].std() == pytest.approx(0.01, rel=0.02)  # random: the scale only

    small = TwoLayerNet(6, 5, 3, weight_init_std=0.5, dtype=np.float64, rng=2)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6))
    t = np.eye(3)[rng.integers(0, 3, 4)]  # one-hot, as the notes
    W1, b1, W2, b2 = (small.params[k] for k in ("W1", "b1", "W2", "b2"))
    a1 = x @ W1 + b1
    z1 = F.sigmoid(a1)
    y = F.softmax(z1 @ W2 + b2)
    np.testing.assert_allclose(small.predict_proba(x), y, rtol=1e-12)
    dy = (y - t) / 4
    da1 = dy @ W2.T
    dz1 = (1.0 - z1) * z1 * da1  # sigmoid_grad(a1) * da1
    expected = {"W2": z1.T @ dy, "b2": dy.sum(axis=0), "W1": x.T @ dz1, "b1": dz1.sum(axis=0)}
    grads = small.gradient(x, t)
    for k, g in expected.items():
        np.testing.assert_allclose(grads[k], g, rtol=1e-10, atol=1e-15, err_msg=k)
    # accuracy() with one-hot t, as the notes' np.argmax(t, axis=1)
    assert small.accuracy(x, t) == np.mean(y.argmax(axis=1) == t.argmax(axis=1))


@needs_mnist
def test_mini_batch_training_as_the_notes(mnist):
    # 002, 4.5.2: TwoLayerNet(784, 50, 10), batch 100, lr 0.1, np.random.choice mini-batches,
    # iter_per_epoch = max(train_size / batch_size, 1) = 600, accuracy on train and test data
    # once per epoch (4.5.3). The note prints no accuracies and the run is random, so two epochs
    # are run and only what every seed shows is asserted: the loss falls from ln 10 and train
    # and test accuracy rise together.
    from dlscratch.experiments import train_iterations
    from dlscratch.experiments.base import iterations_per_epoch

    (x_train, t_train), (x_test, t_test) = mnist
    x_train, x_test = x_train / np.float32(255), x_test / np.float32(255)
    t_train, t_test = np.eye(10)[t_train], np.eye(10)[t_test]  # one_hot_label=True
    per_epoch = iterations_per_epoch(60000, 100)
    assert per_epoch == 600
    net = TwoLayerNet(784, 50, 10, rng=0)
    log = train_iterations(
        net,
        SGD(lr=0.1),
        x_train,
        t_train,
        iterations=2 * per_epoch,
        batch_size=100,
        rng=np.random.default_rng(0),
        eval_every=per_epoch,
        eval_sets={"train": (x_train, t_train), "test": (x_test, t_test)},
    )
    assert log.eval_iterations == [0, 600, 1200]
    assert len(log.losses) == 1200
    assert log.losses[0] == pytest.approx(np.log(10), abs=0.05)
    assert np.mean(log.losses[-100:]) < 1.0
    train, test = log.accuracy["train"], log.accuracy["test"]
    assert train == sorted(train) and test == sorted(test)
    assert test[-1] > 0.7 and abs(train[-1] - test[-1]) < 0.03


# == chapter 5: computational graphs and layers =================================================
def test_local_computation_4000_plus_200():
    # 002, 5.1.2: whatever made the 4,000, adding the apples is 4,000 + 200 = 4,200, and the
    # addition node passes the upstream derivative on unchanged.
    add = AddLayer()
    assert add.forward(4000, 200) == 4200
    assert add.backward(1.1) == (1.1, 1.1)


def test_chain_rule_through_add_and_mul_nodes():
    # 002, 5.2.2-5.2.3: z = t^2, t = x + y, so dz/dx = dz/dt * dt/dx = 2t * 1 = 2(x + y).
    x, y = 1.0, 2.0
    add, square = AddLayer(), MulLayer()
    t = add.forward(x, y)
    z = square.forward(t, t)
    assert z == 9.0
    d1, d2 = square.backward(1.0)  # the product node swaps its inputs: t and t
    dx, dy = add.backward(d1 + d2)
    assert dx == dy == 2 * (x + y) == 6.0


def test_relu_layer_masks_the_notes_array():
    # 002, 5.5.1: x = [[1.0, -0.5], [-2.0, 3.0]], mask = (x <= 0) = [[False, True], [True, False]];
    # forward zeroes the masked entries, backward zeroes dout there (x = 0 counts as masked).
    x = np.array([[1.0, -0.5], [-2.0, 3.0]])
    mask = x <= 0
    assert mask.tolist() == [[False, True], [True, False]]
    layer = Relu()
    np.testing.assert_array_equal(layer.forward(x), [[1.0, 0.0], [0.0, 3.0]])
    dout = np.full((2, 2), 5.0)
    np.testing.assert_array_equal(layer.backward(dout), np.where(mask, 0.0, 5.0))
    layer.forward(np.array([[0.0, 1.0]]))
    np.testing.assert_array_equal(layer.backward(np.array([[1.0, 1.0]])), [[0.0, 1.0]])


def test_sigmoid_layer_backward_from_its_output():
    # 002, 5.5.2: dL/dy * y^2 * exp(-x) = dL/dy * y * (1 - y): backward needs only the output;
    # 003, 6.2.2: near 0 and 1 that derivative vanishes (gradient vanishing).
    x = np.array([-10.0, -1.0, 0.0, 1.0, 10.0])
    layer = Sigmoid()
    y = layer.forward(x)
    dout = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    dx = layer.backward(dout)
    # (1 - y) loses digits to cancellation at x = 10, hence 1e-10 rather than 1e-15
    np.testing.assert_allclose(dx, dout * y**2 * np.exp(-x), rtol=1e-10)
    assert dx[2] == 0.75  # 3 * 0.5 * 0.5
    assert np.abs(layer.backward(np.ones(5)))[[0, 4]].max() < 5e-5


def test_softmax_with_loss_backward_is_y_minus_t():
    # 002, 5.6.3: label (0, 1, 0). Softmax output (0.3, 0.2, 0.5) sends back (0.3, -0.8, 0.5),
    # a large error; output (0.01, 0.99, 0) sends back (0.01, -0.01, 0), a small one.
    # The layer takes scores, so the scores are chosen as logs of those outputs.
    t = np.array([1])
    layer = SoftmaxWithLoss()
    loss = layer.forward(np.log(np.array([[0.3, 0.2, 0.5]])), t)
    assert loss == pytest.approx(-np.log(0.2), rel=1e-12)
    np.testing.assert_allclose(layer.backward(), [[0.3, -0.8, 0.5]], rtol=0, atol=1e-15)
    layer.forward(np.array([[np.log(0.01), np.log(0.99), -1000.0]]), t)
    np.testing.assert_allclose(layer.backward(), [[0.01, -0.01, 0.0]], rtol=0, atol=1e-15)
    # ...divided by the batch size: one sample's error per sample
    layer.forward(np.log(np.array([[0.3, 0.2, 0.5], [0.3, 0.2, 0.5]])), np.array([1, 1]))
    np.testing.assert_allclose(layer.backward(), [[0.15, -0.4, 0.25]] * 2, rtol=0, atol=1e-15)


# == chapter 6: optimizers ======================================================================
def test_optimizer_defaults_are_the_notes():
    # 002, 6.1: SGD(lr=0.01), Momentum(lr=0.01, momentum=0.9), AdaGrad(lr=0.01),
    # Adam(lr=0.001, beta1=0.9, beta2=0.999).
    assert SGD().hyperparameters() == {"lr": 0.01}
    assert Momentum().hyperparameters() == {"lr": 0.01, "momentum": 0.9}
    assert AdaGrad().hyperparameters() == {"lr": 0.01}
    assert Adam().hyperparameters() == {"lr": 0.001, "beta1": 0.9, "beta2": 0.999}


def test_bowl_of_section_6_1_3():
    # 002 6.1.3 and 003 6.1.2: f(x, y) = x^2 / 20 + y^2 has its minimum at (0, 0); its gradient
    # is large along y and small along x (anisotropic), so it mostly does not point at (0, 0).
    from dlscratch.experiments.optimizers import bowl, bowl_grad

    assert bowl(0.0, 0.0) == 0.0
    gx, gy = bowl_grad(1.0, 1.0)
    assert (gx, gy) == (0.1, 2.0)
    num = numerical_gradient(lambda p: bowl(p[0], p[1]), np.array([-7.0, 2.0]))
    np.testing.assert_allclose(num, bowl_grad(-7.0, 2.0), rtol=1e-9)
    angle = np.degrees(np.arccos(np.dot(-num, [7.0, -2.0]) / np.linalg.norm(num) / np.hypot(7, 2)))
    assert angle > 45  # the descent direction at the notes' start misses the minimum widely


def test_adagrad_steps_shrink_and_rmsprop_forgets():
    # 002 6.1.5 and 003 6.1.4: AdaGrad adds every squared gradient to h, so with a constant
    # gradient its step lr / sqrt(k) shrinks towards 0; RMSprop's moving average forgets old
    # gradients, so after a burst its step returns to lr.
    params = {"W": np.zeros(1)}
    opt = AdaGrad(lr=0.1)
    steps = []
    for _ in range(100):
        before = params["W"].copy()
        opt.update(params, {"W": np.ones(1)})
        steps.append(float(before[0] - params["W"][0]))
    k = np.arange(1, 101)
    np.testing.assert_allclose(steps, 0.1 / (np.sqrt(k) + 1e-7), rtol=1e-9)
    assert steps == sorted(steps, reverse=True) and steps[-1] == pytest.approx(0.01)

    def last_step_after_burst(opt):
        params = {"W": np.zeros(1)}
        opt.update(params, {"W": np.full(1, 100.0)})
        for _ in range(1000):
            before = params["W"].copy()
            opt.update(params, {"W": np.ones(1)})
        return float(before[0] - params["W"][0])

    # the burst's share of h decays as 0.99**1000 ~ 4e-5 (times 100**2 * 0.01): step ~ 0.0998
    assert last_step_after_burst(RMSprop(lr=0.1, decay_rate=0.99)) == pytest.approx(0.1, rel=5e-3)
    assert last_step_after_burst(AdaGrad(lr=0.1)) < 0.01


# == chapter 6.2: initial weights ===============================================================
def test_uniform_initial_weights_stay_uniform():
    # 003, 6.2.1: with every weight 0 (or any one value) backprop updates all weights alike,
    # so the hidden units stay copies of each other: the initial weights must be random.
    rng = np.random.default_rng(0)
    net = MultiLayerNet(4, [3], 2, activation="sigmoid", dtype=np.float64, rng=0)
    for name in ("W1", "W2"):
        net.params[name][...] = 0.0
    x, t = rng.standard_normal((20, 4)), rng.integers(0, 2, 20)
    opt = SGD(lr=0.5)
    for _ in range(20):
        opt.update(net.params, net.gradient(x, t))
    W1, W2 = net.params["W1"], net.params["W2"]
    assert np.abs(W2).max() > 0.01  # it did learn something...
    np.testing.assert_array_equal(W1, W1[:, :1].repeat(3, axis=1))  # ...but all columns alike
    np.testing.assert_array_equal(W2, W2[:1].repeat(3, axis=0))  # and all rows alike


def test_relu_activations_xavier_shrink_he_keeps():
    # 003, 6.2.3: with ReLU, He (sqrt(2/n)) keeps the activations spread over the 5 layers,
    # while with Xavier (1/sqrt(n)) they lean towards 0 the deeper the layer. Random weights:
    # the ratios asserted hold for every seed (the variance halves per layer under Xavier).
    from dlscratch.experiments.weight_init import layer_activations

    x = np.random.default_rng(0).standard_normal((1000, 100))
    for seed in range(3):
        he = [a.std() for a in layer_activations(x, "relu", "he", rng=seed)]
        xavier = [a.std() for a in layer_activations(x, "relu", "xavier", rng=seed)]
        assert 0.7 < he[-1] / he[0] < 1.5
        assert xavier[-1] / xavier[0] < 0.4
        assert all(b < a for a, b in zip(xavier, xavier[1:]))


def test_tanh_is_symmetric_about_the_origin_sigmoid_about_half():
    # 003, 6.2.2: tanh is an S-curve symmetric about the origin, the sigmoid about (0, 0.5).
    x = np.linspace(-5, 5, 101)
    np.testing.assert_allclose(F.tanh(-x), -F.tanh(x), rtol=0, atol=1e-15)
    np.testing.assert_allclose(F.sigmoid(-x), 1.0 - F.sigmoid(x), rtol=0, atol=1e-15)
    assert F.tanh(np.array(0.0)) == 0.0 and F.sigmoid(np.array(0.0)) == 0.5


# == chapter 6.3-6.4: batch norm and dropout ====================================================
def test_batch_norm_sits_before_the_activation():
    # 003, 6.3.1: batch norm normalises each mini-batch (mean 0, variance 1) and is inserted
    # in front of the activation function.
    net = MultiLayerNet(4, [3, 3], 2, use_batchnorm=True, rng=0)
    assert list(net.layers) == [
        "Affine1",
        "BatchNorm1",
        "Activation1",
        "Affine2",
        "BatchNorm2",
        "Activation2",
        "Affine3",
    ]
    assert isinstance(net.layers["BatchNorm1"], BatchNormalization)


def test_dropout_draws_a_new_mask_every_training_pass():
    # 003, 6.4.3: "훈련 시마다 임의의 뉴런들을 삭제" - every training pass deletes other
    # neurons (a different model each time, like an ensemble); at test time nothing is deleted.
    layer = Dropout(0.5, rng=0)
    x = np.ones((10, 100))
    first = layer.forward(x, train=True) != 0
    second = layer.forward(x, train=True) != 0
    assert (first != second).any()
    assert 0.4 < first.mean() < 0.6 and 0.4 < second.mean() < 0.6
    assert layer.forward(x, train=False) is x
