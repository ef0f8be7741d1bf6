"""Convolution, max pooling and one SimpleConvNet step against PyTorch, in float64."""

from __future__ import annotations

import numpy as np
import pytest

from dlscratch.layers import Convolution, Pooling
from dlscratch.nets import SimpleConvNet

torch = pytest.importorskip("torch")
F = torch.nn.functional

RTOL = 1e-6


def _close(ours, theirs, name=""):
    theirs = theirs.detach().numpy()
    scale = max(np.abs(theirs).max(), 1e-12)
    assert np.abs(ours - theirs).max() / scale < RTOL, name


@pytest.mark.parametrize("stride,pad", [(1, 0), (2, 1), (1, 2), (3, 0)])
def test_convolution_against_conv2d(stride, pad):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 10, 10))
    W, b = rng.standard_normal((4, 2, 4, 4)), rng.standard_normal(4)
    conv = Convolution(W.copy(), b.copy(), stride, pad)
    out = conv.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = conv.backward(dout)
    xt, Wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, W, b))
    ot = F.conv2d(xt, Wt, bt, stride=stride, padding=pad)
    ot.backward(torch.tensor(dout))
    _close(out, ot, "out")
    _close(dx, xt.grad, "dx")
    _close(conv.dW, Wt.grad, "dW")
    _close(conv.db, bt.grad, "db")


@pytest.mark.parametrize("k,stride,pad", [(2, 2, 0), (3, 1, 1), (3, 2, 1)])
def test_max_pooling_against_max_pool2d(k, stride, pad):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 9, 9)) if (9 + 2 * pad - k) % stride == 0 else None
    if x is None:
        x = rng.standard_normal((2, 3, 8, 8))
    pool = Pooling(k, k, stride=stride, pad=pad)
    out = pool.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = pool.backward(dout)
    xt = torch.tensor(x, requires_grad=True)
    ot = F.max_pool2d(xt, k, stride=stride, padding=pad)
    ot.backward(torch.tensor(dout))
    _close(out, ot, "out")
    _close(dx, xt.grad, "dx")


def test_simple_convnet_step_against_torch():
    rng = np.random.default_rng(2)
    net = SimpleConvNet(
        input_dim=(1, 12, 12),
        conv_param={"filter_num": 5, "filter_size": 3, "pad": 1, "stride": 1},
        hidden_size=20,
        output_size=10,
        weight_init_std=0.1,
        dtype=np.float64,
        rng=0,
    )
    for name, p in net.params.items():
        if name.startswith("b"):
            p[...] = rng.standard_normal(p.shape) * 0.1
    x = rng.random((16, 144))
    t = rng.integers(0, 10, 16)
    loss = net.loss(x, t, train=True)
    grads = net.gradient(x, t)

    P = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in net.params.items()}
    h = F.conv2d(torch.tensor(x.reshape(16, 1, 12, 12)), P["W1"], P["b1"], padding=1)
    h = F.max_pool2d(F.relu(h), 2)
    h = F.relu(h.reshape(16, -1) @ P["W2"] + P["b2"])
    y = h @ P["W3"] + P["b3"]
    lt = F.cross_entropy(y, torch.tensor(t))
    lt.backward()
    assert abs(loss - lt.item()) / abs(lt.item()) < RTOL
    for name, g in grads.items():
        _close(g, P[name].grad, name)
