"""A batch split among threads (dlscratch.nets.parallel) gives the one-thread numbers.

With ``--threads 2`` the convolutional networks run each half of a batch on its own
replica and add the gradients up. Everything a reader can see must be what one
thread gives, up to the rounding of that sum: gradients, the loss, the layers' own
``dW``, predictions, training, and the BLAS setting afterwards.
"""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from dlscratch.backend import num_threads, set_num_threads
from dlscratch.nets import DeepConvNet, SimpleConvNet, TwoLayerNet, parallel
from dlscratch.optim import Adam
from dlscratch.training import Trainer

SMALL = {"input_dim": (1, 10, 10), "conv_param": {"filter_num": 4, "filter_size": 3}}


@pytest.fixture
def two_threads():
    set_num_threads(2)
    yield
    set_num_threads(1)


def with_threads(n, run):
    set_num_threads(n)
    try:
        return run()
    finally:
        set_num_threads(1)


def batch(rng, n, size=100):
    return rng.random((n, size)), rng.integers(0, 10, n)


@pytest.mark.parametrize("n", [32, 33, 100, 101])
def test_gradient_and_loss_are_those_of_one_thread(n):
    rng = np.random.default_rng(n)
    x, t = batch(rng, n)
    net = SimpleConvNet(**SMALL, hidden_size=8, dtype=np.float64, rng=1, weight_decay_lambda=0.1)

    def run():
        grads = net.gradient(x, t)
        return grads, net.last_loss, {k: v.copy() for k, v in net.layers["Conv1"].grads.items()}

    one, loss_one, conv_one = with_threads(1, run)
    assert parallel.parts_for(net, n, train=True) is None
    two, loss_two, conv_two = with_threads(2, run)
    set_num_threads(2)
    assert len(parallel.parts_for(net, n, train=True)) == 2  # the split really happened
    set_num_threads(1)
    assert loss_two == pytest.approx(loss_one, rel=1e-13)
    for name in one:
        np.testing.assert_allclose(two[name], one[name], rtol=1e-12, atol=1e-15, err_msg=name)
    # the layer's own gradients are the batch's, not a half's
    np.testing.assert_allclose(conv_two["W"], conv_one["W"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(conv_two["W"], two["W1"], rtol=0, atol=0)


def test_trainer_fast_path_fills_the_network_buffers(two_threads):
    rng = np.random.default_rng(3)
    x, t = batch(rng, 40)
    net = SimpleConvNet(**SMALL, hidden_size=8, dtype=np.float64, rng=2)
    reference = SimpleConvNet(**SMALL, hidden_size=8, dtype=np.float64, rng=2)
    fast = net.gradient(x, t, reuse=True)
    assert fast["W1"] is not None and np.shares_memory(fast.flat, net.flat_grads)
    set_num_threads(1)
    slow = reference.gradient(x, t)
    np.testing.assert_allclose(net.flat_grads, slow.flat, rtol=1e-12, atol=1e-15)


def test_parameters_changed_in_place_or_replaced_are_seen(two_threads):
    rng = np.random.default_rng(4)
    x, t = batch(rng, 40)
    net = SimpleConvNet(**SMALL, hidden_size=8, dtype=np.float64, rng=3)
    net.gradient(x, t)  # replicas built
    net.params["W1"] = rng.standard_normal(net.params["W1"].shape)  # in place
    net.load_state_dict({k: v * 0.5 for k, v in net.state_dict().items()})
    twin = SimpleConvNet(**SMALL, hidden_size=8, dtype=np.float64, rng=0)
    twin.load_state_dict(net.state_dict())
    got = net.gradient(x, t)
    set_num_threads(1)
    want = twin.gradient(x, t)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-12, atol=1e-15, err_msg=name)


def test_predictions_are_those_of_one_thread():
    rng = np.random.default_rng(5)
    net = DeepConvNet(rng=0)  # dropout and all: in inference every layer is row-wise
    x = rng.random((64, 784), dtype=np.float32)
    one = with_threads(1, lambda: net.predict(x))
    two = with_threads(2, lambda: net.predict(x))
    assert two.shape == one.shape == (64, 10)
    np.testing.assert_allclose(two, one, rtol=1e-5, atol=1e-6)
    assert (two.argmax(axis=1) == one.argmax(axis=1)).all()


def test_dropout_keeps_the_batch_whole_in_training(two_threads):
    """Dropout's masks follow the rows' order: DeepConvNet trains on one thread's path."""
    net = DeepConvNet(rng=0)
    assert parallel.parts_for(net, 100, train=True) is None
    assert len(parallel.parts_for(net, 100, train=False)) == 2
    assert parallel.parts_for(TwoLayerNet(784, 50, 10), 100, train=True) is None  # not asked
    assert parallel.parts_for(SimpleConvNet(rng=0), 2 * parallel.MIN_ROWS - 1, train=True) is None


def test_training_on_two_threads_is_reproducible_and_learns(two_threads):
    rng = np.random.default_rng(6)
    x = rng.random((200, 100))
    t = (x[:, :50].sum(axis=1) > x[:, 50:].sum(axis=1)).astype(int)  # a learnable rule

    def train():
        net = SimpleConvNet(**SMALL, hidden_size=16, output_size=2, weight_init_std="he", rng=7)
        trainer = Trainer(net, Adam(lr=0.01), x, t, x, t, epochs=15, batch_size=50, rng=0)
        return net, trainer.fit()

    first, history = train()
    second, _ = train()
    np.testing.assert_array_equal(first.flat_params, second.flat_params)
    assert history.epochs[-1]["train_acc"] > 0.8  # 0.87; 0.58 answers the larger class


def test_blas_threads_are_restored_after_the_parallel_pass(two_threads):
    before = [e["num_threads"] for e in threadpool_info() if e["user_api"] == "blas"]
    rng = np.random.default_rng(8)
    x, t = batch(rng, 40)
    SimpleConvNet(**SMALL, hidden_size=8, rng=0).gradient(x, t)
    after = [e["num_threads"] for e in threadpool_info() if e["user_api"] == "blas"]
    assert after == before and num_threads() == 2


def test_a_network_kept_whole_gets_the_same_numbers_on_two_threads():
    """DeepConvNet (dropout) trains on one path; inside it, the convolutions' groups and the
    pooling halves share the threads, and their sums keep one order: the same numbers."""
    rng = np.random.default_rng(10)
    x, t = rng.random((40, 784), dtype=np.float32), rng.integers(0, 10, 40)

    def run():
        net = DeepConvNet(rng=0)
        return net.gradient(x, t), net.last_loss

    (one, loss_one), (two, loss_two) = with_threads(1, run), with_threads(2, run)
    assert loss_two == loss_one
    for name in one:
        np.testing.assert_array_equal(two[name], one[name], err_msg=name)
