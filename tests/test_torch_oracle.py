"""PyTorch as an independent oracle for dlscratch (float64, small seeded data).

Every test computes the same quantity twice, once with dlscratch (NumPy) and once
with PyTorch's own functions, autograd or ``torch.optim``, and compares the numbers
with tight tolerances. Skipped as a whole when torch is not installed.

Where dlscratch follows the book rather than PyTorch, the test spells out the
convention and checks the exact relation between the two:

* ``cross_entropy_error`` adds ``1e-7`` inside the log; torch's losses do not.
* ``mean_squared_error`` is the book's ``0.5 * sum((y - t)**2)`` (no mean).
* ``sigmoid`` is computed as ``0.5 * (1 + tanh(x / 2))``: accurate in absolute
  terms, but not in relative terms far in the negative tail (``sigmoid(-40)`` is 0).
* ``BatchNormalization``: ``eps = 1e-7`` (torch 1e-5); ``momentum`` is the weight of
  the *old* running value (torch's ``momentum`` is the weight of the new batch, so
  torch ``momentum = 1 - dlscratch momentum``); the running variance is updated
  with the *biased* batch variance (torch uses the unbiased one, ``* N / (N - 1)``);
  inputs (N, d1, d2, ...) are normalised per flattened feature, not per channel.
* Optimizers: Momentum equals ``torch.optim.SGD(momentum=m)`` exactly (``v = -lr * buf``);
  the book's Nesterov is *not* torch's Nesterov (see the tests); AdaGrad and RMSprop
  equal torch's with ``eps=1e-7`` (both add eps after the square root); the book's Adam
  equals torch's Adam with the time-dependent ``eps_t = 1e-7 / sqrt(1 - beta2**t)``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from dlscratch import (  # noqa: E402  (after importorskip on purpose)
    Affine,
    BatchNormalization,
    IdentityWithLoss,
    MultiLayerNet,
    Relu,
    Sigmoid,
    SoftmaxWithLoss,
    Tanh,
    cross_entropy_error,
    mean_squared_error,
    mean_squared_error_mean,
    relu,
    sigmoid,
    softmax,
    tanh,
)
from dlscratch.functions import softmax_cross_entropy  # noqa: E402
from dlscratch.nets import FlatDict  # noqa: E402
from dlscratch.optim import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop  # noqa: E402

RTOL = 1e-12
ATOL = 1e-14
CEE_EPS = 1e-7  # the book's guard inside the log of cross_entropy_error


@pytest.fixture(autouse=True)
def _torch_float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def T(a, grad=False):
    """A float64 torch tensor holding a copy of ``a``."""
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def N(t):
    """A NumPy copy of a torch tensor."""
    return t.detach().cpu().numpy().copy()


def close(actual, desired, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol)


def one_hot(labels, c):
    return np.eye(c)[labels]


# ---------------------------------------------------------------------------------------
# functions
# ---------------------------------------------------------------------------------------


def test_sigmoid_matches_torch():
    x = np.random.default_rng(0).normal(scale=4.0, size=(7, 9))
    close(sigmoid(x), N(torch.sigmoid(T(x))))
    # 1-D and large arguments: 0.5*(1 + tanh(x/2)) has an absolute error of ~1e-16, so in the
    # far negative tail it is accurate absolutely but not relatively (sigmoid(-40) -> 0.0,
    # torch 4.2e-18). A documented property of the overflow-free formula, not a bug.
    tail = np.array([-1000.0, -40.0, -20.0, -5.0, 0.0, 5.0, 20.0, 40.0, 1000.0])
    close(sigmoid(tail), N(torch.sigmoid(T(tail))), rtol=1e-12, atol=1e-16)
    assert sigmoid(np.array([-40.0]))[0] == 0.0 < torch.sigmoid(T([-40.0])).item()


def test_relu_and_tanh_match_torch():
    x = np.random.default_rng(1).normal(scale=3.0, size=(6, 5))
    x[0, 0] = 0.0
    close(relu(x), N(torch.relu(T(x))), rtol=0, atol=0)
    close(tanh(x), N(torch.tanh(T(x))))
    v = x[1]
    close(relu(v), N(torch.relu(T(v))), rtol=0, atol=0)
    close(tanh(v), N(torch.tanh(T(v))))


def test_softmax_matches_torch_batched_1d_and_large():
    x = np.random.default_rng(2).normal(scale=3.0, size=(5, 7))
    close(softmax(x), N(torch.softmax(T(x), dim=-1)))
    close(softmax(x[2]), N(torch.softmax(T(x[2]), dim=-1)))
    big = np.array([1010.0, 1000.0, 990.0])
    out = softmax(big)
    assert np.all(np.isfinite(out))
    close(out, N(torch.softmax(T(big), dim=-1)))
    rows = np.array([[1010.0, 1000.0, 990.0], [-1000.0, 0.0, 1000.0], [3.0, 3.0, 3.0]])
    close(softmax(rows), N(torch.softmax(T(rows), dim=-1)))


def _probs_and_labels(n=6, c=5, seed=3):
    rng = np.random.default_rng(seed)
    y = softmax(rng.normal(size=(n, c)))
    labels = rng.integers(0, c, size=n)
    return y, labels


def test_cross_entropy_error_matches_torch_with_the_books_guard():
    y, labels = _probs_and_labels()
    n, c = y.shape
    t = one_hot(labels, c)
    # The book's definition, -sum(t * log(y + 1e-7)) / N, written with torch ops: exact.
    expected = (-(T(t) * torch.log(T(y) + CEE_EPS)).sum() / n).item()
    close(cross_entropy_error(y, t), expected)
    close(cross_entropy_error(y, labels), expected)
    # Against torch's own NLL (no guard): log(y + eps) - log(y) ~ eps / y, so the book's loss is
    # smaller by at most ~1e-7 / min(y at the labels), and strictly smaller.
    nll = F.nll_loss(torch.log(T(y)), torch.as_tensor(labels)).item()
    gap = nll - cross_entropy_error(y, labels)
    bound = CEE_EPS / y[np.arange(n), labels].min()
    assert 0 < gap <= 1.001 * bound
    # A single sample, one-hot 1-D and integer scalar label.
    close(cross_entropy_error(y[0], t[0]), -torch.log(T(y[0, labels[0]]) + CEE_EPS).item())
    close(cross_entropy_error(y[0], np.int64(labels[0])), cross_entropy_error(y[0], t[0]))


def test_mean_squared_error_is_half_the_sum():
    rng = np.random.default_rng(4)
    y, t = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    sse = F.mse_loss(T(y), T(t), reduction="sum").item()
    close(mean_squared_error(y, t), 0.5 * sse)
    close(mean_squared_error_mean(y, t), 0.5 * sse / 4)
    close(
        mean_squared_error(y[1], t[1]), 0.5 * F.mse_loss(T(y[1]), T(t[1]), reduction="sum").item()
    )
    # torch's default (reduction='mean') divides by every element, the book does not.
    close(mean_squared_error(y, t), 0.5 * y.size * F.mse_loss(T(y), T(t)).item())


def test_softmax_cross_entropy_fused_matches_torch_for_huge_logits():
    rng = np.random.default_rng(5)
    logits = rng.normal(scale=500.0, size=(4, 6))
    labels = rng.integers(0, 6, size=4)
    loss, probs = softmax_cross_entropy(logits, labels)
    close(loss, F.cross_entropy(T(logits), torch.as_tensor(labels)).item())
    close(probs, N(torch.softmax(T(logits), dim=-1)))


# ---------------------------------------------------------------------------------------
# layers
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("x_shape", [(5, 12), (3, 1, 28, 28)], ids=["2d", "images"])
def test_affine_forward_and_backward(x_shape):
    rng = np.random.default_rng(6)
    d = math.prod(x_shape[1:])
    x, W, b = rng.normal(size=x_shape), rng.normal(size=(d, 4)), rng.normal(size=4)
    dout = rng.normal(size=(x_shape[0], 4))
    layer = Affine(W.copy(), b.copy())
    out = layer.forward(x.copy())
    dx = layer.backward(dout.copy())

    xt, Wt, bt = T(x, True), T(W, True), T(b, True)
    # torch.nn.functional.linear takes the weight as (out, in): W.T
    yt = F.linear(xt.reshape(x_shape[0], -1), Wt.T, bt)
    yt.backward(T(dout))
    close(out, N(yt))
    assert dx.shape == x_shape
    close(dx, N(xt.grad))
    close(layer.grads["W"], N(Wt.grad))
    close(layer.grads["b"], N(bt.grad))


@pytest.mark.parametrize(
    "layer_cls, torch_fn",
    [(Relu, torch.relu), (Sigmoid, torch.sigmoid), (Tanh, torch.tanh)],
    ids=["relu", "sigmoid", "tanh"],
)
def test_activation_layers_forward_and_backward(layer_cls, torch_fn):
    rng = np.random.default_rng(7)
    x = rng.normal(scale=2.0, size=(6, 5))
    x[0, :2] = 0.0  # ReLU's kink: both libraries use a zero derivative at 0
    dout = rng.normal(size=x.shape)
    layer = layer_cls()
    out = layer.forward(x.copy())
    dx = layer.backward(dout.copy())
    xt = T(x, True)
    yt = torch_fn(xt)
    yt.backward(T(dout))
    close(out, N(yt))
    close(dx, N(xt.grad))


@pytest.mark.parametrize("target", ["integer", "one-hot"])
def test_softmax_with_loss_matches_torch_cross_entropy(target):
    rng = np.random.default_rng(8)
    logits = rng.normal(scale=3.0, size=(7, 4))
    logits[0] *= 300.0  # huge scores: both work in log space
    labels = rng.integers(0, 4, size=7)
    t = labels if target == "integer" else one_hot(labels, 4)
    layer = SoftmaxWithLoss()
    loss = layer.forward(logits.copy(), t)
    dx = layer.backward(1.0)

    zt = T(logits, True)
    # integer targets -> class indices; one-hot -> class probabilities (torch >= 1.10)
    tt = torch.as_tensor(labels) if target == "integer" else T(t)
    lt = F.cross_entropy(zt, tt)  # reduction='mean', like the book
    lt.backward()
    close(loss, lt.item())
    close(dx, N(zt.grad))
    # backward(dout) scales the gradient
    close(layer.backward(2.5), 2.5 * N(zt.grad))


def test_identity_with_loss_matches_torch():
    rng = np.random.default_rng(9)
    y, t = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    layer = IdentityWithLoss()
    loss = layer.forward(y.copy(), t.copy())
    dx = layer.backward(1.0)
    yt = T(y, True)
    lt = 0.5 * F.mse_loss(yt, T(t), reduction="sum") / 5
    lt.backward()
    close(loss, lt.item())
    close(dx, N(yt.grad))


def test_sigmoid_with_loss_matches_torch_bce_with_logits():
    from dlscratch.layers import SigmoidWithLoss

    rng = np.random.default_rng(10)
    x = rng.normal(size=(7, 1)) * 20  # scores large enough to saturate the sigmoid
    t = rng.random((7, 1))  # soft targets are allowed too
    layer = SigmoidWithLoss()
    loss = layer.forward(x.copy(), t.copy())
    dx = layer.backward(1.0)
    xt = T(x, True)
    lt = F.binary_cross_entropy_with_logits(xt, T(t))
    lt.backward()
    close(loss, lt.item())
    close(dx, N(xt.grad))


BN_EPS = 1e-7  # dlscratch's default; torch's is 1e-5, so it is passed explicitly below
BN_MOMENTUM = 0.9  # dlscratch: weight of the old running value; torch: momentum = 1 - 0.9


def _bn_data(seed=10, n=8, d=5):
    rng = np.random.default_rng(seed)
    x = rng.normal(loc=2.0, scale=3.0, size=(n, d))
    gamma, beta = rng.normal(1.0, 0.3, size=d), rng.normal(size=d)
    return rng, x, gamma, beta


def test_batchnorm_train_forward_and_backward():
    rng, x, gamma, beta = _bn_data()
    dout = rng.normal(size=x.shape)
    bn = BatchNormalization(gamma.copy(), beta.copy())
    assert (bn.momentum, bn.eps) == (BN_MOMENTUM, BN_EPS)
    out = bn.forward(x.copy(), train=True)
    dx = bn.backward(dout.copy())

    xt, gt, bt = T(x, True), T(gamma, True), T(beta, True)
    yt = F.batch_norm(xt, None, None, gt, bt, training=True, eps=BN_EPS)
    yt.backward(T(dout))
    close(out, N(yt))
    close(dx, N(xt.grad), rtol=1e-10, atol=1e-12)
    close(bn.grads["gamma"], N(gt.grad))
    close(bn.grads["beta"], N(bt.grad))


def test_batchnorm_running_statistics_conventions():
    """dlscratch: running = 0.9 * running + 0.1 * batch, with the *biased* batch variance.

    torch's F.batch_norm uses momentum=0.1 for the same weighting, but updates the running
    variance with the *unbiased* batch variance (times N / (N - 1)), so the running means
    agree exactly and the running variances do not.
    """
    rng, x, gamma, beta = _bn_data(seed=11)
    n, d = x.shape
    bn = BatchNormalization(gamma.copy(), beta.copy())
    rm_t, rv_t = torch.zeros(d), torch.ones(d)  # torch's defaults, as dlscratch's
    rm_ref, rv_ref = torch.zeros(d), torch.ones(d)  # the biased-variance EMA, by hand
    batches = [x + rng.normal(scale=0.5, size=x.shape) for _ in range(4)]
    for i, xb in enumerate(batches):
        bn.forward(xb.copy(), train=True)
        xbt = T(xb)
        F.batch_norm(xbt, rm_t, rv_t, training=True, momentum=1 - BN_MOMENTUM, eps=BN_EPS)
        rm_ref = BN_MOMENTUM * rm_ref + (1 - BN_MOMENTUM) * xbt.mean(0)
        rv_ref = BN_MOMENTUM * rv_ref + (1 - BN_MOMENTUM) * xbt.var(0, unbiased=False)
        close(bn.buffers["running_mean"], N(rm_t))
        close(bn.buffers["running_var"], N(rv_ref))
        if i == 0:
            # after one step from var = 1 the two conventions differ by exactly the Bessel factor
            batch_var = xb.var(axis=0)
            close(N(rv_t), BN_MOMENTUM + (1 - BN_MOMENTUM) * batch_var * n / (n - 1))
            close(bn.buffers["running_var"], BN_MOMENTUM + (1 - BN_MOMENTUM) * batch_var)
    close(N(rm_ref), N(rm_t))
    assert not np.allclose(bn.buffers["running_var"], N(rv_t), rtol=1e-3)


def test_batchnorm_eval_mode_uses_running_statistics():
    rng, x, gamma, beta = _bn_data(seed=12)
    bn = BatchNormalization(gamma.copy(), beta.copy())
    for _ in range(3):
        bn.forward(x + rng.normal(size=x.shape), train=True)
    rm, rv = bn.buffers["running_mean"].copy(), bn.buffers["running_var"].copy()
    x_test = rng.normal(size=(3, x.shape[1]))
    out = bn.forward(x_test.copy(), train=False)
    expected = F.batch_norm(T(x_test), T(rm), T(rv), T(gamma), T(beta), training=False, eps=BN_EPS)
    close(out, N(expected))
    # eval mode leaves the running statistics alone (torch too)
    close(bn.buffers["running_mean"], rm, rtol=0, atol=0)
    close(bn.buffers["running_var"], rv, rtol=0, atol=0)


def test_batchnorm_on_4d_input_is_per_flattened_feature_not_per_channel():
    rng = np.random.default_rng(13)
    x = rng.normal(size=(6, 2, 3, 3))
    d = 2 * 3 * 3
    gamma, beta = rng.normal(1.0, 0.2, size=d), rng.normal(size=d)
    bn = BatchNormalization(gamma.copy(), beta.copy())
    out = bn.forward(x.copy(), train=True)
    flat = F.batch_norm(T(x).reshape(6, d), None, None, T(gamma), T(beta), True, 0.1, BN_EPS)
    close(out, N(flat).reshape(x.shape))
    # torch's BatchNorm2d would normalise each of the 2 channels over (N, H, W) instead
    per_channel = F.batch_norm(T(x), None, None, None, None, True, 0.1, BN_EPS)
    assert not np.allclose(out, N(per_channel))


# ---------------------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------------------


def _torch_twin(net):
    """An nn.Sequential with the net's architecture and a copy of its parameters."""
    acts = {"relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid, "tanh": torch.nn.Tanh}
    sizes = [net.input_size, *net.hidden_size_list, net.output_size]
    modules, linears, norms = [], [], []
    for i in range(1, len(sizes)):
        lin = torch.nn.Linear(sizes[i - 1], sizes[i], dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(T(net.params[f"W{i}"]).T)  # torch keeps (out, in)
            lin.bias.copy_(T(net.params[f"b{i}"]))
        modules.append(lin)
        linears.append(lin)
        if i == len(sizes) - 1:
            break
        if net.use_batchnorm:
            bn = torch.nn.BatchNorm1d(sizes[i], eps=BN_EPS, dtype=torch.float64)
            with torch.no_grad():
                bn.weight.copy_(T(net.params[f"gamma{i}"]))
                bn.bias.copy_(T(net.params[f"beta{i}"]))
            modules.append(bn)
            norms.append(bn)
        modules.append(acts[net.activation]())
    model = torch.nn.Sequential(*modules).train()
    return model, linears, norms


@pytest.mark.parametrize(
    "activation, use_batchnorm",
    [("relu", False), ("sigmoid", False), ("tanh", True)],
    ids=["relu", "sigmoid", "tanh-batchnorm"],
)
@pytest.mark.parametrize("target", ["integer", "one-hot"])
def test_multilayernet_loss_and_gradient_match_torch(activation, use_batchnorm, target):
    lam = 0.05
    rng = np.random.default_rng(14)
    net = MultiLayerNet(
        6,
        [5, 4],
        3,
        activation=activation,
        weight_decay_lambda=lam,
        use_batchnorm=use_batchnorm,
        dtype=np.float64,
        rng=15,
    )
    if use_batchnorm:  # move gamma/beta off their (1, 0) start so their gradients matter
        for name in net.params:
            if name.startswith(("gamma", "beta")):
                net.params[name][...] += rng.normal(scale=0.3, size=net.params[name].shape)
    x = rng.normal(size=(8, 6))
    labels = rng.integers(0, 3, size=8)
    t = labels if target == "integer" else one_hot(labels, 3)

    model, linears, norms = _torch_twin(net)
    scores = model(T(x))
    tt = torch.as_tensor(labels) if target == "integer" else T(t)
    # dlscratch's loss: mean cross-entropy + 0.5 * lambda * sum(W**2) over the weight
    # matrices only (params named W*): no decay on biases or batch-norm gamma/beta.
    penalty = 0.5 * lam * sum((lin.weight**2).sum() for lin in linears)
    loss_t = F.cross_entropy(scores, tt) + penalty
    loss_t.backward()

    close(net.loss(x, t, train=True), loss_t.item())
    grads = {k: g.copy() for k, g in net.gradient(x, t).items()}
    expected = {}
    for i, lin in enumerate(linears, start=1):
        expected[f"W{i}"] = N(lin.weight.grad).T
        expected[f"b{i}"] = N(lin.bias.grad)
    for i, bn in enumerate(norms, start=1):
        expected[f"gamma{i}"] = N(bn.weight.grad)
        expected[f"beta{i}"] = N(bn.bias.grad)
    assert set(grads) == set(expected)
    for name, g in expected.items():
        close(grads[name], g, rtol=1e-10, atol=1e-13)
    # the predictions in inference mode agree too (no batch norm: identical to training)
    if not use_batchnorm:
        with torch.no_grad():
            close(net.predict(x), N(model.eval()(T(x))))


# ---------------------------------------------------------------------------------------
# optimizers
# ---------------------------------------------------------------------------------------

SHAPES = {"W": (4, 3), "b": (5,)}
SIZE = sum(math.prod(s) for s in SHAPES.values())


def _quadratic(seed=16):
    """f(theta) = 0.5 theta' A theta - c' theta over all parameters, A SPD (eigs 0.5..3)."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(SIZE, SIZE)))
    A = q @ np.diag(rng.uniform(0.5, 3.0, size=SIZE)) @ q.T
    c = rng.normal(size=SIZE)
    start = {k: rng.normal(size=s) for k, s in SHAPES.items()}
    return A, c, start


def _split(vec):
    out, i = {}, 0
    for k, s in SHAPES.items():
        out[k] = vec[i : i + math.prod(s)].reshape(s)
        i += math.prod(s)
    return out


def _flat_dict(values):
    """A FlatDict (views into one buffer), as networks hand optimizers: the fast path."""
    flat = np.zeros(SIZE + 16)
    layout, views, start = [], [], 0
    for k, s in SHAPES.items():
        v = flat[start : start + math.prod(s)].reshape(s)
        v[...] = values[k]
        layout.append((k, start, s))
        views.append((k, v))
        start += 16  # aligned, like the networks' buffers
    return FlatDict(views, flat, tuple(layout))


def run_dlscratch(opt, steps, grad_fn, start, flat=False):
    params = _flat_dict(start) if flat else {k: v.copy() for k, v in start.items()}
    grads = _flat_dict({k: np.zeros(s) for k, s in SHAPES.items()}) if flat else None
    history = [{k: v.copy() for k, v in params.items()}]
    for step in range(steps):
        g = grad_fn(np.concatenate([params[k].ravel() for k in SHAPES]), step)
        if flat:
            for k, v in _split(g).items():
                grads[k][...] = v
            assert opt._is_flat_pair(params, grads)
        else:
            grads = _split(g)
        opt.update(params, grads)
        history.append({k: v.copy() for k, v in params.items()})
    return history


def run_torch(make_opt, steps, grad_fn, start, before_step=None):
    params = {k: T(v, True) for k, v in start.items()}
    opt = make_opt(list(params.values()))
    history = [{k: N(v) for k, v in params.items()}]
    for step in range(steps):
        theta = np.concatenate([N(params[k]).ravel() for k in SHAPES])
        for k, g in _split(grad_fn(theta, step)).items():
            params[k].grad = T(g)
        if before_step is not None:
            before_step(opt, step + 1)
        opt.step()
        history.append({k: N(v) for k, v in params.items()})
    return history


def quadratic_grad(A, c):
    def grad(theta, step):
        return A @ theta - c

    return grad


def assert_same_history(h1, h2, rtol=1e-11, atol=1e-13):
    assert len(h1) == len(h2)
    for a, b in zip(h1, h2):
        for k in SHAPES:
            close(a[k], b[k], rtol=rtol, atol=atol)


OPT_CASES = {
    "sgd": (lambda: SGD(lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
    # book: v = m*v - lr*g; W += v.  torch: buf = m*buf + g; W -= lr*buf.  With a constant
    # lr, v = -lr*buf at every step, so the two are the same algorithm.
    "momentum": (
        lambda: Momentum(lr=0.05, momentum=0.9),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
    ),
    # both: h += g*g; W -= lr*g/(sqrt(h) + eps) with eps after the sqrt; torch's eps is 1e-10
    "adagrad": (lambda: AdaGrad(lr=0.3), lambda p: torch.optim.Adagrad(p, lr=0.3, eps=1e-7)),
    # book decay_rate is torch's alpha; torch also adds eps after the sqrt (default 1e-8)
    "rmsprop": (
        lambda: RMSprop(lr=0.01, decay_rate=0.99),
        lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.99, eps=1e-7),
    ),
}


@pytest.mark.parametrize("flat", [False, True], ids=["dicts", "flat"])
@pytest.mark.parametrize("name", list(OPT_CASES))
def test_optimizer_matches_torch_on_a_quadratic(name, flat):
    A, c, start = _quadratic()
    make_dl, make_torch = OPT_CASES[name]
    grad = quadratic_grad(A, c)
    h_dl = run_dlscratch(make_dl(), 10, grad, start, flat=flat)
    h_t = run_torch(make_torch, 10, grad, start)
    assert_same_history(h_dl, h_t)
    assert not np.allclose(h_dl[-1]["W"], start["W"])  # they did move


@pytest.mark.parametrize("flat", [False, True], ids=["dicts", "flat"])
def test_adam_equals_torch_adam_with_eps_scaled_by_bias_correction(flat):
    """Book: W -= lr*sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps).

    Dividing through by sqrt(1-b2^t) gives torch's form, lr * m_hat / (sqrt(v_hat) + eps_t),
    with eps_t = eps / sqrt(1 - b2^t): the book's Adam *is* torch's Adam with a
    time-dependent eps. Setting that eps in torch before each step reproduces it exactly.
    """
    A, c, start = _quadratic(seed=17)
    lr, b1, b2, eps = 0.05, 0.9, 0.999, 1e-7
    grad = quadratic_grad(A, c)

    def schedule_eps(opt, t):
        opt.param_groups[0]["eps"] = eps / math.sqrt(1.0 - b2**t)

    h_dl = run_dlscratch(Adam(lr=lr, beta1=b1, beta2=b2), 10, grad, start, flat=flat)
    h_t = run_torch(
        lambda p: torch.optim.Adam(p, lr=lr, betas=(b1, b2), eps=eps),
        10,
        grad,
        start,
        before_step=schedule_eps,
    )
    assert_same_history(h_dl, h_t)


def test_adam_vs_torch_adam_with_constant_eps_is_close_but_not_exact():
    """With torch's plain eps=1e-7 the only difference is eps_t vs eps in the denominator.

    At t=1, eps_t = 1e-7/sqrt(0.001) ~ 3.2e-6, so each step differs relatively by about
    (eps_t - eps) / sqrt(v_hat) ~ 3e-6 / |g|, fading as eps_t -> eps. After 10 steps with
    lr = 0.05 the parameters differ by ~1.5e-6 here: far above rounding (so the two are not
    the same formula) and far below anything that matters in training.
    """
    A, c, start = _quadratic(seed=17)
    lr, b1, b2 = 0.05, 0.9, 0.999
    grad = quadratic_grad(A, c)
    h_dl = run_dlscratch(Adam(lr=lr, beta1=b1, beta2=b2), 10, grad, start)
    h_t = run_torch(lambda p: torch.optim.Adam(p, lr=lr, betas=(b1, b2), eps=1e-7), 10, grad, start)
    diff = max(np.abs(h_dl[-1][k] - h_t[-1][k]).max() for k in SHAPES)
    assert 1e-8 < diff < 1e-5
    assert_same_history(h_dl, h_t, rtol=0, atol=1e-5)


def _random_grads(steps, seed):
    """Gradients that do not depend on the parameters, so both runs see the same sequence."""
    rng = np.random.default_rng(seed)
    gs = [rng.normal(size=SIZE) for _ in range(steps)]
    return lambda theta, step: gs[step]


def test_nesterov_book_variant_is_not_torch_nesterov():
    """The book's Nesterov (dlscratch) is not torch's SGD(nesterov=True); they differ at O(lr).

    book:   v' = m*v - lr*g;  dW = m^2 * v' - (1+m)*lr*g      (uses the *new* v')
    torch:  b' = m*b + g;     dW = -lr*(g + m*b')  =  m*v' - lr*g     (v' = -lr*b')
            which is Bengio et al.'s form m^2 * v - (1+m)*lr*g with the *old* v.

    So for the same gradient sequence the per-step moves obey exactly
    dW_book = m * dW_torch - lr * g. The first step is -(1+m+m^2)*lr*g against
    -(1+m)*lr*g: they agree only to first order in the momentum m (they differ by m^2*lr*g),
    not to first order in lr.
    """
    lr, m, steps = 0.05, 0.9, 8
    A, c, start = _quadratic(seed=18)
    grad = _random_grads(steps, seed=19)
    h_dl = run_dlscratch(Nesterov(lr=lr, momentum=m), steps, grad, start)
    h_t = run_torch(
        lambda p: torch.optim.SGD(p, lr=lr, momentum=m, nesterov=True), steps, grad, start
    )
    for step in range(steps):
        g = _split(grad(None, step))
        for k in SHAPES:
            d_dl = h_dl[step + 1][k] - h_dl[step][k]
            d_t = h_t[step + 1][k] - h_t[step][k]
            close(d_dl, m * d_t - lr * g[k], rtol=1e-10, atol=1e-13)
            if step == 0:
                close(d_dl, -(1 + m + m * m) * lr * g[k], rtol=1e-12, atol=1e-15)
                close(d_t, -(1 + m) * lr * g[k], rtol=1e-12, atol=1e-15)
    assert not np.allclose(h_dl[-1]["W"], h_t[-1]["W"], rtol=1e-3)

    # With a small momentum the gap after one step is m^2 * lr * g: second order in m.
    small = 1e-3
    w_dl = run_dlscratch(Nesterov(lr=lr, momentum=small), 1, grad, start)[-1]
    w_t = run_torch(
        lambda p: torch.optim.SGD(p, lr=lr, momentum=small, nesterov=True), 1, grad, start
    )[-1]
    g0 = _split(grad(None, 0))
    for k in SHAPES:
        close(w_dl[k] - w_t[k], -(small**2) * lr * g0[k], rtol=1e-6, atol=1e-18)


def test_nesterov_book_variant_has_torchs_terminal_velocity():
    """Under a constant gradient both move by -lr*g/(1-m) per step in the limit.

    book: m^2 * (-lr*g/(1-m)) - (1+m)*lr*g = -lr*g/(1-m); torch: m*v - lr*g, the same.
    """
    lr, m, steps = 0.01, 0.9, 400  # m**400 ~ 5e-19: transients are gone
    g_const = np.random.default_rng(20).normal(size=SIZE)
    _, _, start = _quadratic(seed=21)

    def grad(theta, step):
        return g_const

    h_dl = run_dlscratch(Nesterov(lr=lr, momentum=m), steps, grad, start)
    h_t = run_torch(
        lambda p: torch.optim.SGD(p, lr=lr, momentum=m, nesterov=True), steps, grad, start
    )
    g = _split(g_const)
    for k in SHAPES:
        d_dl = h_dl[-1][k] - h_dl[-2][k]
        d_t = h_t[-1][k] - h_t[-2][k]
        close(d_dl, -lr * g[k] / (1 - m), rtol=1e-8, atol=1e-12)
        close(d_t, -lr * g[k] / (1 - m), rtol=1e-8, atol=1e-12)
    # ...but the positions differ by the accumulated transient
    assert not np.allclose(h_dl[-1]["W"], h_t[-1]["W"], rtol=1e-6)


# -- registered additions: AdamW and LeakyReLU ------------------------------------------------


@pytest.mark.parametrize("flat", [False, True], ids=["dicts", "flat"])
def test_adamw_equals_torch_adamw_with_decay_on_weights_only(flat):
    """AdamW = Adam's step (with the eps correction above) after W <- W (1 - lr * wd).

    In torch the bias gets ``weight_decay=0`` through its own parameter group: dlscratch
    decays parameters named W only.
    """
    from dlscratch.optim.adamw import AdamW

    A, c, start = _quadratic(seed=18)
    lr, b1, b2, eps, wd = 0.05, 0.9, 0.999, 1e-7, 0.3
    grad = quadratic_grad(A, c)

    def make_torch(p):
        groups = [{"params": [p[0]], "weight_decay": wd}, {"params": [p[1]], "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=lr, betas=(b1, b2), eps=eps)

    def schedule_eps(opt, t):
        for group in opt.param_groups:
            group["eps"] = eps / math.sqrt(1.0 - b2**t)

    h_dl = run_dlscratch(AdamW(lr=lr, beta1=b1, beta2=b2, weight_decay=wd), 10, grad, start,
                         flat=flat)
    h_t = run_torch(make_torch, 10, grad, start, before_step=schedule_eps)
    assert_same_history(h_dl, h_t)
    h_adam = run_dlscratch(Adam(lr=lr, beta1=b1, beta2=b2), 10, grad, start, flat=flat)
    assert not np.allclose(h_dl[-1]["W"], h_adam[-1]["W"])  # the decay did something


@pytest.mark.parametrize("alpha", [0.01, 0.2])
def test_leaky_relu_matches_torch(alpha):
    from dlscratch.layers.leaky_relu import LeakyReLU

    rng = np.random.default_rng(8)
    x = rng.normal(scale=2.0, size=(6, 5))
    dout = rng.normal(size=x.shape)
    layer = LeakyReLU(alpha=alpha)
    out = layer.forward(x.copy())
    dx = layer.backward(dout.copy())
    xt = T(x, True)
    yt = torch.nn.LeakyReLU(negative_slope=alpha)(xt)
    yt.backward(T(dout))
    close(out, N(yt))
    close(dx, N(xt.grad))
