"""The book's own API (dlscratch.book), exercised with the book's code as printed."""

import re
import warnings

import numpy as np
import pytest

from dlscratch.book import MultiLayerNet, MultiLayerNetExtend, Trainer
from dlscratch.optim import OPTIMIZERS
from shared_data import needs_mnist


@pytest.fixture(scope="module")
def mnist():
    from dlscratch.data import load_mnist

    return load_mnist(normalize=True)


@needs_mnist
def test_the_books_trainer_call_with_dropout_and_batchnorm(mnist, capsys):
    (x_train, t_train), (x_test, t_test) = mnist
    x_train = x_train[:1000]
    t_train = t_train[:1000]

    network = MultiLayerNetExtend(input_size=784, hidden_size_list=[100, 100], output_size=10,
                                  use_dropout=True, dropout_ration=0.2, use_batchnorm=True)
    trainer = Trainer(network, x_train, t_train, x_test, t_test,
                      epochs=5, mini_batch_size=100,
                      optimizer='Adam', optimizer_param={'lr': 0.001},
                      evaluate_sample_num_per_epoch=1000, verbose=True)
    trainer.train()

    train_acc_list, test_acc_list = trainer.train_acc_list, trainer.test_acc_list
    assert len(train_acc_list) == len(test_acc_list) == 5  # one per epoch
    assert len(trainer.train_loss_list) == 50  # epochs * train_size / mini_batch_size
    # the book's call seeds nothing, so the weights differ from run to run: chance is 0.1,
    # 5 epochs on 1000 images reach 0.75-0.85; the margin keeps the test from flaking
    assert test_acc_list[-1] > 0.6 and train_acc_list[-1] > test_acc_list[0]
    assert trainer.train_loss_list[-1] < trainer.train_loss_list[0]
    out = capsys.readouterr().out
    assert out.count("train loss:") == 50
    epochs = re.findall(r"=== epoch:(\d+), train acc:([\d.]+), test acc:([\d.]+) ===", out)
    assert [int(e) for e, _, _ in epochs] == [1, 2, 3, 4, 5]
    assert float(epochs[-1][2]) == test_acc_list[-1]
    final = out.split("=============== Final Test Accuracy ===============\n")[1]
    assert final == f"test acc:{network.accuracy(x_test, t_test)}\n"
    layers = [type(layer).__name__ for layer in network.layers.values()]
    assert layers.count("BatchNormalization") == 2 and layers.count("Dropout") == 2
    assert {layer.scale for layer in network.layers.values() if hasattr(layer, "scale")} == {
        "book"
    }


@needs_mnist
@pytest.mark.slow
def test_overfit_dropout_as_in_the_book(mnist):
    # ch06/overfit_dropout.py, as printed, plus rng=0 for the network's weights and dropout
    # and for the Trainer's batches (a reproducible run), and accuracies
    # measured on 1000 test images per epoch (the book's option; all 10000 take a minute)
    (x_train, t_train), (x_test, t_test) = mnist
    x_train = x_train[:300]
    t_train = t_train[:300]

    use_dropout = True
    dropout_ratio = 0.2

    network = MultiLayerNetExtend(input_size=784, hidden_size_list=[100, 100, 100, 100, 100, 100],
                                  output_size=10, use_dropout=use_dropout,
                                  dropout_ration=dropout_ratio, rng=0)
    trainer = Trainer(network, x_train, t_train, x_test, t_test,
                      epochs=301, mini_batch_size=100,
                      optimizer='sgd', optimizer_param={'lr': 0.01}, verbose=False, rng=0,
                      evaluate_sample_num_per_epoch=1000)
    trainer.train()

    train_acc_list, test_acc_list = trainer.train_acc_list, trainer.test_acc_list
    assert len(train_acc_list) == 301
    # the book's figure ends near train 0.67 / test 0.55: slow learning, a narrow gap
    assert 0.5 < train_acc_list[-1] < 0.85 and 0.4 < test_acc_list[-1] < 0.65
    assert 0.05 < train_acc_list[-1] - test_acc_list[-1] < 0.25
    assert 0.4 < trainer.final_test_acc < 0.65  # on all 10000 test images


def test_iterations_and_random_batches_follow_the_book():
    rng = np.random.default_rng(0)
    x = rng.random((300, 20), dtype=np.float32)
    t = rng.integers(0, 3, 300)
    runs = []
    for _ in range(2):
        net = MultiLayerNet(20, [10], 3, rng=1)
        trainer = Trainer(net, x, t, x[:50], t[:50], epochs=3, verbose=False, rng=7)
        trainer.train()
        runs.append(trainer.train_loss_list)
        assert trainer.max_iter == 9 and trainer.iter_per_epoch == 3.0
        assert len(trainer.train_acc_list) == 3 and len(trainer.train_loss_list) == 9
    assert runs[0] == runs[1]  # same seeds, same batches: the same run
    small = Trainer(MultiLayerNet(20, [10], 3, rng=1), x[:30], t[:30], x, t, epochs=4,
                    verbose=False)
    assert small.iter_per_epoch == 1 and small.max_iter == 4  # max(30 / 100, 1)


def test_optimizer_names_as_the_book_spells_them():
    x = np.random.default_rng(0).random((100, 4), dtype=np.float32)
    t = np.arange(100) % 2
    for name in ("SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam", "sgd", "adam"):
        trainer = Trainer(MultiLayerNet(4, [5], 2, rng=0), x, t, x, t, epochs=1, verbose=False,
                          optimizer=name, optimizer_param={"lr": 0.05})
        assert type(trainer.optimizer) is OPTIMIZERS[name.lower()]
        assert trainer.optimizer.lr == 0.05
    # the book's defaults when optimizer_param leaves them out
    trainer = Trainer(MultiLayerNet(4, [5], 2), x, t, x, t, optimizer="Adam",
                      optimizer_param={}, verbose=False)
    assert trainer.optimizer.lr == 0.001
    trainer = Trainer(MultiLayerNet(4, [5], 2), x, t, x, t, verbose=False)
    assert type(trainer.optimizer).__name__ == "SGD" and trainer.optimizer.lr == 0.01
    with pytest.raises(ValueError, match="unknown optimizer 'Adamax'.*adam"):
        Trainer(MultiLayerNet(4, [5], 2), x, t, x, t, optimizer="Adamax")
    with pytest.raises(ValueError, match="momentum"):
        Trainer(MultiLayerNet(4, [5], 2), x, t, x, t, optimizer="Momentum",
                optimizer_param={"lr": 0.1, "momentun": 0.9})


def test_book_argument_names_build_dlscratch_networks():
    from dlscratch import nets
    from dlscratch.init import he_std, xavier_std

    net = MultiLayerNetExtend(784, [100, 50], 10, activation="sigmoid", weight_init_std="sigmoid",
                              weight_decay_lambda=0.1, rng=0)
    assert isinstance(net, nets.MultiLayerNet)
    assert net.weight_decay_lambda == 0.1 and net.activation == "sigmoid"
    assert net.params["W1"].std() == pytest.approx(xavier_std(784), rel=0.02)
    relu = MultiLayerNet(784, [100], 10, rng=0)  # weight_init_std='relu' means He
    assert relu.params["W1"].std() == pytest.approx(he_std(784), rel=0.02)
    config = MultiLayerNetExtend(784, [20], 10, use_dropout=True, dropout_ration=0.3).get_config()
    assert config["class"] == "MultiLayerNet" and config["dropout_ratio"] == 0.3
    assert nets.build_network(config).hidden_size_list == [20]


def test_train_flg_and_the_books_dropout_at_test_time():
    x = np.ones((4, 6), dtype=np.float32)
    net = MultiLayerNetExtend(6, [50], 3, use_dropout=True, dropout_ration=0.5, rng=0)
    y_test = net.predict(x)
    assert np.array_equal(net.predict(x, train_flg=False), y_test)
    # the book's form: testing scales by (1 - ratio) instead of scaling kept units in training
    hidden = net.layers["Activation1"].forward(net.layers["Affine1"].forward(x))
    expected = (hidden * 0.5) @ net.params["W2"] + net.params["b2"]
    np.testing.assert_allclose(y_test, expected, rtol=1e-5)
    assert not np.array_equal(net.predict(x, train_flg=True), y_test)
    assert net.loss(x, np.zeros(4, dtype=int), train_flg=True) > 0


def test_numerical_gradient_on_float32_warns_and_float64_matches_the_book():
    rng = np.random.default_rng(0)
    x = rng.random((3, 8))
    t = np.array([0, 1, 2])
    net32 = MultiLayerNet(8, [5], 3, rng=0)
    with pytest.warns(UserWarning, match=r"float32.*dtype=np\.float64.*1e-10"):
        net32.numerical_gradient(x, t)

    network = MultiLayerNetExtend(8, [5], 3, use_batchnorm=True, dtype=np.float64, rng=0)
    x_batch = x[:3]
    t_batch = t[:3]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grad_numerical = network.numerical_gradient(x_batch, t_batch)
    grad_backprop = network.gradient(x_batch, t_batch)
    for key in grad_numerical.keys():
        diff = np.average(np.abs(grad_backprop[key] - grad_numerical[key]))
        assert diff < 1e-8, key  # the book prints values around 1e-10 to 1e-13
