"""Model files (.npz + JSON) and the book's pickled weights read safely."""

import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from dlscratch import MultiLayerNet, TwoLayerNet
from dlscratch.io import (
    BOOK_SHAPES,
    METADATA_KEY,
    LoadedModel,
    UnsafePickleError,
    convert_book_weights,
    load_book_weights,
    load_checkpoint,
    load_model,
    load_network,
    read_book_pickle,
    read_metadata,
    save_model,
)
from dlscratch.optim import OPTIMIZERS, Adam, get_optimizer
from shared_data import BOOK_WEIGHTS

needs_book_weights = pytest.mark.skipif(
    not BOOK_WEIGHTS.is_file(), reason=f"book weights not at {BOOK_WEIGHTS}"
)


# -- helpers ---------------------------------------------------------------------------------


def _data(rng, n=32, d=20, classes=5, dtype=np.float32):
    x = rng.standard_normal((n, d)).astype(dtype)
    t = rng.integers(0, classes, n)
    return x, t


def _train(net, opt, x, t, steps):
    for _ in range(steps):
        opt.update(net.params, net.gradient(x, t))


def _bn_dropout_net(seed=0, dtype=np.float32):
    return MultiLayerNet(
        20,
        [16, 12],
        5,
        activation="relu",
        use_batchnorm=True,
        use_dropout=True,
        dropout_ratio=0.3,
        weight_decay_lambda=1e-3,
        dtype=dtype,
        rng=seed,
    )


def _assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        assert sa[name].dtype == sb[name].dtype, name
        np.testing.assert_array_equal(sa[name], sb[name], err_msg=name)


@pytest.fixture(scope="module")
def mnist_test():
    from dlscratch.data import DataNotFoundError, load_mnist

    try:
        _, (x, t) = load_mnist(normalize=True, flatten=True, download=False)
    except DataNotFoundError as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"MNIST not available: {exc}")
    return x, t


# -- our format: round trips ------------------------------------------------------------------


def test_round_trip_batchnorm_dropout_with_optimizer(tmp_path, rng):
    x, t = _data(rng)
    net = _bn_dropout_net()
    opt = Adam(lr=0.01)
    _train(net, opt, x, t, steps=3)
    # BN running statistics have moved away from their initial 0 / 1
    assert not np.allclose(net.state_dict()["running_mean1"], 0)

    path = save_model(tmp_path / "ckpt.npz", net, optimizer=opt, metadata={"epoch": 3})
    ckpt = load_checkpoint(path)
    assert isinstance(ckpt, LoadedModel)
    loaded, lopt = ckpt.network, ckpt.optimizer

    assert type(loaded) is MultiLayerNet
    assert loaded.get_config() == net.get_config()
    _assert_same_state(net, loaded)
    np.testing.assert_array_equal(loaded.predict(x), net.predict(x))  # bit for bit

    assert type(lopt) is Adam and lopt.t == opt.t == 3
    assert lopt.hyperparameters() == opt.hyperparameters()
    for slot in ("m", "v"):
        assert set(lopt.state[slot]) == set(net.params)
        for name in net.params:
            np.testing.assert_array_equal(lopt.state[slot][name], opt.state[slot][name])
    assert ckpt.user == {"epoch": 3}

    # Resuming gives exactly the step the original would have taken (dropout masks included).
    _train(net, opt, x, t, steps=2)
    _train(loaded, lopt, x, t, steps=2)
    _assert_same_state(net, loaded)


def test_round_trip_two_layer_net_float64(tmp_path, rng):
    x, t = _data(rng, dtype=np.float64)
    net = TwoLayerNet(20, 7, 5, dtype=np.float64, rng=1)
    _train(net, get_optimizer("sgd", lr=0.5), x, t, steps=2)
    path = save_model(tmp_path / "two", net)  # suffix added
    assert path == tmp_path / "two.npz" and path.is_file()
    loaded = load_model(tmp_path / "two")  # found with or without the suffix
    assert type(loaded) is TwoLayerNet and loaded.dtype == np.float64
    assert loaded.get_config() == net.get_config()
    _assert_same_state(net, loaded)
    np.testing.assert_array_equal(loaded.predict(x), net.predict(x))
    assert load_checkpoint(path).optimizer is None


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_resumes_identically(tmp_path, rng, name):
    x, t = _data(rng)
    net = MultiLayerNet(20, [8], 5, rng=3)
    opt = get_optimizer(name, lr=0.05)
    _train(net, opt, x, t, steps=2)
    opt.lr = 0.02  # as a schedule would: the current value is what gets saved
    ckpt = load_checkpoint(save_model(tmp_path / "m.npz", net, optimizer=opt))
    assert type(ckpt.optimizer) is type(opt) and ckpt.optimizer.lr == 0.02
    _train(net, opt, x, t, steps=2)
    _train(ckpt.network, ckpt.optimizer, x, t, steps=2)
    _assert_same_state(net, ckpt.network)


def test_metadata_inside_and_beside(tmp_path):
    net = MultiLayerNet(10, [4], 3, rng=0)
    opt = Adam()
    summary = {"epochs": 2, "val_acc": [0.5, 0.75], "np": np.float32(0.5)}
    path = save_model(tmp_path / "net.npz", net, optimizer=opt, metadata=summary)
    sidecar = tmp_path / "net.json"
    on_disk = json.loads(sidecar.read_text())
    with np.load(path, allow_pickle=False) as npz:
        raw = npz[METADATA_KEY]
        names = set(npz.files)
    assert raw.dtype == np.uint8
    inside = json.loads(raw.tobytes().decode("utf-8"))
    assert inside == on_disk == read_metadata(path)
    assert inside["config"] == net.get_config()
    assert inside["dtype"] == "float32"
    assert inside["numpy_version"] == np.__version__
    from dlscratch import __version__

    assert inside["dlscratch_version"] == __version__
    assert inside["optimizer"]["type"] == "Adam" and inside["optimizer"]["t"] == 0
    assert inside["optimizer"]["hyperparameters"] == {"lr": 0.001, "beta1": 0.9, "beta2": 0.999}
    assert inside["user"] == {"epochs": 2, "val_acc": [0.5, 0.75], "np": 0.5}
    assert inside["parameters"] == {"W1": [10, 4], "b1": [4], "W2": [4, 3], "b2": [3]}
    assert names == {"W1", "b1", "W2", "b2", METADATA_KEY}  # Adam has no state before a step


def test_optimizer_state_keys(tmp_path, rng):
    x, t = _data(rng, d=10, classes=3)
    net = MultiLayerNet(10, [4], 3, rng=0)
    opt = get_optimizer("momentum", lr=0.1)
    _train(net, opt, x, t, steps=1)
    path = save_model(tmp_path / "m.npz", net, optimizer=opt)
    with np.load(path, allow_pickle=False) as npz:
        optim_keys = sorted(k for k in npz.files if k.startswith("optim/"))
    assert optim_keys == ["optim/v/W1", "optim/v/W2", "optim/v/b1", "optim/v/b2"]


def test_run_directory(tmp_path, rng):
    run = tmp_path / "run1"
    run.mkdir()
    net = MultiLayerNet(6, [5], 2, rng=0)
    path = save_model(run, net)
    assert path == run / "model.npz" and (run / "model.json").is_file()
    x, _ = _data(rng, d=6, classes=2)
    np.testing.assert_array_equal(load_model(run).predict(x), net.predict(x))
    np.testing.assert_array_equal(load_network(run).predict(x), net.predict(x))


def test_non_json_metadata_is_refused_before_writing(tmp_path):
    net = MultiLayerNet(6, [5], 2, rng=0)
    with pytest.raises(TypeError, match="JSON"):
        save_model(tmp_path / "m.npz", net, metadata={"f": object()})
    assert list(tmp_path.iterdir()) == []


# -- atomic writes ----------------------------------------------------------------------------


def test_failed_write_leaves_previous_file_and_no_temp(tmp_path, monkeypatch):
    old = MultiLayerNet(6, [5], 2, rng=0)
    path = save_model(tmp_path / "m.npz", old)
    before = path.read_bytes(), (tmp_path / "m.json").read_bytes()

    def broken_savez(file, *args, **kwargs):
        Path(file.name).write_bytes(b"PK\x03\x04 half a zip")  # something partial on disk
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_model(path, MultiLayerNet(6, [5], 2, rng=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.npz"]
    assert (path.read_bytes(), (tmp_path / "m.json").read_bytes()) == before

    with pytest.raises(OSError):
        save_model(tmp_path / "new.npz", old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.npz"]


# -- errors -----------------------------------------------------------------------------------


def test_shape_mismatch_names_parameter_and_shapes(tmp_path):
    path = save_model(tmp_path / "m.npz", MultiLayerNet(784, [50, 100], 10, rng=0))
    other = MultiLayerNet(784, [60, 100], 10, rng=0)
    with pytest.raises(ValueError, match=r"'W1': expected shape \(784, 60\), found \(784, 50\)"):
        load_model(path, network=other)


def test_architecture_mismatch_lists_parameters(tmp_path):
    path = save_model(tmp_path / "m.npz", MultiLayerNet(8, [4], 3, rng=0))
    with pytest.raises(ValueError, match=r"m\.npz: .*missing \['gamma1', 'beta1'"):
        load_model(path, network=MultiLayerNet(8, [4], 3, use_batchnorm=True))


def test_file_inconsistent_with_its_own_config(tmp_path):
    net = MultiLayerNet(8, [4], 3, rng=0)
    path = save_model(tmp_path / "m.npz", net)
    meta = read_metadata(path)
    meta["config"]["hidden_size_list"] = [6]
    arrays = dict(net.state_dict())
    arrays[METADATA_KEY] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"m\.npz.*'W1': expected shape \(8, 6\), found \(8, 4\)"):
        load_model(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_model(tmp_path / "nope.npz")
    with pytest.raises(FileNotFoundError, match="no model.npz in directory"):
        load_model(tmp_path)


def test_not_an_npz(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"this is not a zip archive at all" * 10)
    with pytest.raises(ValueError, match="not a dlscratch model file") as exc:
        load_model(bad)
    assert "pickle" not in str(exc.value)  # never the advice to load it unsafely
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="not a dlscratch model file"):
        load_model(empty)
    single = tmp_path / "single.npz"
    with open(single, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(ValueError, match="single .npy array"):
        load_model(single)


def test_npz_without_metadata(tmp_path):
    plain = tmp_path / "plain.npz"
    np.savez(plain, W1=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="no '__metadata__' entry"):
        load_model(plain)


def test_truncated_and_corrupted_files(tmp_path):
    net = MultiLayerNet(30, [20], 4, rng=0)
    path = save_model(tmp_path / "m.npz", net)
    data = path.read_bytes()

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.npz"):
        load_model(truncated)

    # Flip bytes in the middle of W1's data: the zip CRC check catches it.
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("W1.npy")
    offset = info.header_offset + 30 + len(info.filename) + 200
    corrupt = bytearray(data)
    corrupt[offset : offset + 8] = bytes(b ^ 0xFF for b in corrupt[offset : offset + 8])
    flipped = tmp_path / "flipped.npz"
    flipped.write_bytes(bytes(corrupt))
    with pytest.raises(ValueError, match="corrupt"):
        load_model(flipped)


def test_object_arrays_are_never_unpickled(tmp_path):
    net = MultiLayerNet(4, [3], 2, rng=0)
    path = save_model(tmp_path / "m.npz", net)
    arrays = dict(np.load(path, allow_pickle=False))
    arrays["W1"] = np.array([object()] * 12, dtype=object).reshape(4, 3)
    with open(path, "wb") as f:
        np.savez(f, **arrays)  # savez pickles the object array
    with pytest.raises(ValueError, match="'W1' holds Python objects"):
        load_model(path)


def test_unknown_optimizer_type(tmp_path):
    net = MultiLayerNet(4, [3], 2, rng=0)
    path = save_model(tmp_path / "m.npz", net, optimizer=Adam())
    arrays = dict(np.load(path, allow_pickle=False))
    meta = json.loads(arrays[METADATA_KEY].tobytes())
    meta["optimizer"]["type"] = "Lion"
    arrays[METADATA_KEY] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="unknown optimizer type 'Lion'"):
        load_checkpoint(path)
    assert type(load_model(path)) is MultiLayerNet  # the network alone still loads


def test_newer_format_version_refused(tmp_path):
    net = MultiLayerNet(4, [3], 2, rng=0)
    path = save_model(tmp_path / "m.npz", net)
    arrays = dict(np.load(path, allow_pickle=False))
    meta = json.loads(arrays[METADATA_KEY].tobytes())
    meta["format_version"] = 99
    arrays[METADATA_KEY] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="format version 99.*upgrade"):
        load_model(path)


# -- the book's pickle ------------------------------------------------------------------------


class _RunsShell:
    """Pickles to ``os.system(command)``: what an unsafe loader would execute."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _CallsEval:
    def __reduce__(self):
        import builtins

        return (builtins.eval, ("1 + 1",))


def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    payload = {"W1": np.zeros((784, 50), np.float32), "b1": _RunsShell(f"touch {marker}")}
    evil.write_bytes(pickle.dumps(payload, protocol=3))
    with pytest.raises(UnsafePickleError, match=r"(posix|os)\.system") as info:
        load_book_weights(evil)
    assert isinstance(info.value, ValueError)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 5])
def test_pickle_calling_eval_is_refused(tmp_path, protocol):
    evil = tmp_path / "eval.pkl"
    evil.write_bytes(pickle.dumps({"x": _CallsEval()}, protocol=protocol))
    with pytest.raises(UnsafePickleError, match=r"(builtins|__builtin__)\.eval"):
        read_book_pickle(evil)


def test_codecs_encode_only_for_latin1(tmp_path):
    # protocol 2 array pickles call _codecs.encode(data, 'latin1'); any other codec is refused
    payload = pickle.dumps({"x": np.ones(2, np.float32)}, protocol=2)
    evil = tmp_path / "codec.pkl"
    evil.write_bytes(payload.replace(b"latin1", b"rot_13"))
    with pytest.raises(UnsafePickleError, match="rot_13"):
        read_book_pickle(evil)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickled_arrays_of_every_protocol_are_read(tmp_path, protocol):
    arrays = {
        "a": np.arange(6, dtype=np.float32).reshape(2, 3),
        "b": np.linspace(0, 1, 4),
        "s": np.float32(2.5),
    }
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps(arrays, protocol=protocol))
    back = read_book_pickle(path)
    assert set(back) == set(arrays)
    for key, value in arrays.items():
        assert back[key].dtype == value.dtype
        np.testing.assert_array_equal(back[key], value)


def test_book_pickle_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pkl"):
        load_book_weights(tmp_path / "missing.pkl")
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"\x00\x01 not a pickle")
    with pytest.raises(ValueError, match="not a readable pickle"):
        load_book_weights(junk)
    listed = tmp_path / "list.pkl"
    listed.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(ValueError, match="EMPTY_LIST, which arrays never need"):
        load_book_weights(listed)

    good = {k: np.zeros(s, np.float32) for k, s in BOOK_SHAPES.items()}
    wrong = dict(good, W2=np.zeros((50, 99), np.float32))
    wrong_path = tmp_path / "wrong.pkl"
    wrong_path.write_bytes(pickle.dumps(wrong))
    with pytest.raises(ValueError, match=r"'W2': expected shape \(50, 100\), found \(50, 99\)"):
        load_book_weights(wrong_path)
    missing = {k: v for k, v in good.items() if k != "b3"}
    missing_path = tmp_path / "missing_key.pkl"
    missing_path.write_bytes(pickle.dumps(missing))
    with pytest.raises(ValueError, match=r"missing \['b3'\]"):
        load_book_weights(missing_path)


@needs_book_weights
def test_book_weights_shapes_and_values():
    net = load_book_weights(BOOK_WEIGHTS)
    assert type(net) is MultiLayerNet
    assert net.get_config()["hidden_size_list"] == [50, 100]
    assert net.activation == "sigmoid" and net.dtype == np.float32
    raw = read_book_pickle(BOOK_WEIGHTS)
    for name, shape in BOOK_SHAPES.items():
        assert net.params[name].shape == shape
        np.testing.assert_array_equal(net.params[name], raw[name])


@needs_book_weights
@pytest.mark.slow
def test_book_weights_accuracy_and_converter(tmp_path, mnist_test):
    x, t = mnist_test
    net = load_book_weights(BOOK_WEIGHTS)
    pred = net.predict(x).argmax(axis=1)
    assert int((pred == t).sum()) == 9352
    assert net.accuracy(x, t, batch_size=100) == 0.9352

    out = convert_book_weights(BOOK_WEIGHTS, tmp_path / "book")
    assert out == tmp_path / "book.npz"
    meta = read_metadata(out)
    assert meta["user"]["source"] == "sample_weight.pkl"
    assert len(meta["user"]["source_sha256"]) == 64
    converted = load_network(out)
    np.testing.assert_array_equal(converted.predict(x), net.predict(x))
    assert converted.accuracy(x, t) == 0.9352


def test_book_weights_are_found_beside_the_data_or_through_their_own_variable(
    tmp_path, monkeypatch
):
    from dlscratch.io import find_book_weights

    root = tmp_path / "shared"
    (root / "datasets").mkdir(parents=True)
    (root / "weights").mkdir()
    beside = root / "weights" / "sample_weight.pkl"
    beside.write_bytes(b"placeholder")
    elsewhere = tmp_path / "mine.pkl"
    elsewhere.write_bytes(b"placeholder")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DLSCRATCH_WEIGHTS", raising=False)
    monkeypatch.setenv("DLSCRATCH_DATA", str(root / "datasets"))
    assert find_book_weights() == beside
    monkeypatch.setenv("DLSCRATCH_WEIGHTS", str(elsewhere))  # the variable comes first
    assert find_book_weights() == elsewhere
    assert find_book_weights(root / "weights") == beside  # an explicit folder wins
    with pytest.raises(FileNotFoundError, match="weights file not found: .*nope.pkl"):
        find_book_weights(tmp_path / "nope.pkl")


def test_nowhere_to_be_found_lists_each_place_once(tmp_path, monkeypatch):
    from dlscratch.io import find_book_weights

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DLSCRATCH_WEIGHTS", str(tmp_path / "a.pkl"))
    monkeypatch.setenv("DLSCRATCH_DATA", str(tmp_path / "datasets"))
    with pytest.raises(FileNotFoundError) as exc:
        find_book_weights()
    message = str(exc.value)
    lines = [line for line in message.splitlines() if line.startswith("  - ")]
    assert len(lines) == len(set(lines)) == 3  # the variable, beside the data, the user cache
    assert str(tmp_path / "a.pkl") in message and "set DLSCRATCH_WEIGHTS" in message
    assert "ch03/sample_weight.pkl" in message  # where the file comes from
    assert "shared" not in message  # the installed package knows nothing of a checkout


@pytest.mark.skipif(not BOOK_WEIGHTS.is_file(), reason="book weights missing")
def test_load_book_weights_without_a_path(monkeypatch):
    from dlscratch.io import load_book_weights

    monkeypatch.setenv("DLSCRATCH_WEIGHTS", str(BOOK_WEIGHTS))
    net = load_book_weights()
    assert net.hidden_size_list == [50, 100] and net.activation == "sigmoid"
