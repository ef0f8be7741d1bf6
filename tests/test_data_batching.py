"""Mini-batching, float conversion and train/validation splits."""

from __future__ import annotations

import numpy as np
import pytest

from dlscratch.data import (
    BatchSampler,
    iterate_minibatches,
    sample_minibatch,
    shuffle_dataset,
    to_float,
    train_val_split,
)


@pytest.fixture
def data():
    x = np.arange(103 * 4, dtype=np.uint8).reshape(103, 4)  # row i starts with 4*i mod 256
    t = np.arange(103, dtype=np.int64)
    return x, t


def test_epoch_visits_every_sample_exactly_once(data):
    x, t = data
    batches = list(iterate_minibatches(x, t, 10, rng=0))
    assert [len(tb) for _, tb in batches] == [10] * 10 + [3]
    seen = np.concatenate([tb for _, tb in batches])
    assert sorted(seen.tolist()) == list(range(103))
    assert seen.tolist() != list(range(103))  # shuffled
    for xb, tb in batches:
        np.testing.assert_array_equal(xb, x[tb])  # rows stay paired with labels
        assert xb.dtype == np.uint8


def test_drop_last(data):
    x, t = data
    batches = list(iterate_minibatches(x, t, 10, rng=0, drop_last=True))
    assert len(batches) == 10 and all(len(tb) == 10 for _, tb in batches)
    assert len(BatchSampler(103, 10, drop_last=True)) == 10
    assert len(BatchSampler(103, 10)) == 11
    assert len(BatchSampler(100, 10)) == 10


def test_seed_determinism_and_successive_epochs_differ(data):
    x, t = data
    a = [tb.tolist() for _, tb in iterate_minibatches(x, t, 16, rng=np.random.default_rng(7))]
    b = [tb.tolist() for _, tb in iterate_minibatches(x, t, 16, rng=np.random.default_rng(7))]
    c = [tb.tolist() for _, tb in iterate_minibatches(x, t, 16, rng=np.random.default_rng(8))]
    assert a == b and a != c
    sampler = BatchSampler(103, 16, rng=3)
    first, second = [np.concatenate(list(sampler)) for _ in range(2)]
    assert sorted(first.tolist()) == sorted(second.tolist()) == list(range(103))
    assert first.tolist() != second.tolist()


def test_no_shuffle_keeps_order(data):
    x, t = data
    seen = np.concatenate([tb for _, tb in iterate_minibatches(x, t, 25, shuffle=False)])
    assert seen.tolist() == list(range(103))


def test_random_mode_draws_with_replacement_like_the_book():
    sampler = BatchSampler(50, 40, mode="random", rng=np.random.default_rng(0))
    batches = list(sampler)
    assert len(batches) == len(sampler) == 1  # max(50 // 40, 1)
    expected = np.random.default_rng(0).choice(50, 40)
    np.testing.assert_array_equal(batches[0], expected)
    assert len(np.unique(batches[0])) < 40  # duplicates: drawn with replacement
    assert len(BatchSampler(60000, 100, mode="random")) == 600


def test_sample_minibatch_matches_rng_choice(data):
    x, t = data
    xb, tb = sample_minibatch(x, t, 12, rng=np.random.default_rng(5))
    mask = np.random.default_rng(5).choice(103, 12)
    np.testing.assert_array_equal(tb, t[mask])
    np.testing.assert_array_equal(xb, x[mask])
    assert xb.shape == (12, 4)


@pytest.mark.parametrize("bad", [0, -3])
def test_non_positive_batch_size(data, bad):
    with pytest.raises(ValueError, match=f"batch_size must be positive, got {bad}"):
        list(iterate_minibatches(*data, bad, rng=0))


def test_batch_size_larger_than_data(data):
    with pytest.raises(
        ValueError,
        match=r"batch_size \(200\) is larger than the number of "
        r"samples \(103\)",
    ):
        list(iterate_minibatches(*data, 200, rng=0))
    with pytest.raises(ValueError, match=r"batch_size \(104\)"):
        sample_minibatch(*data, 104, rng=0)


@pytest.mark.parametrize("bad", [2.5, True, "8"])
def test_batch_size_must_be_int(data, bad):
    with pytest.raises(TypeError, match="batch_size must be an int"):
        list(iterate_minibatches(*data, bad, rng=0))


def test_mismatched_lengths_and_bad_mode(data):
    x, t = data
    with pytest.raises(ValueError, match="103 inputs but 102 labels"):
        list(iterate_minibatches(x, t[:-1], 10))
    with pytest.raises(ValueError, match="mode must be one of epoch, random"):
        BatchSampler(10, 2, mode="stream")
    with pytest.raises(TypeError, match="rng must be"):
        BatchSampler(10, 2, rng="seed")


def test_to_float():
    xb = np.array([[0, 1, 128, 255]], dtype=np.uint8)
    out = to_float(xb)
    assert out.dtype == np.float32 and out.shape == (1, 4)
    np.testing.assert_array_equal(out, xb.astype(np.float32) / 255.0)
    assert out[0, 3] == 1.0 and out[0, 0] == 0.0
    assert to_float(xb, np.float64).dtype == np.float64
    already = np.array([0.5], np.float32)
    assert to_float(already) is already  # no copy, no rescale
    with pytest.raises(TypeError, match="floating"):
        to_float(xb, np.int32)
    ints = to_float(np.array([1, 300], np.int16))  # other numbers: cast, not rescaled
    assert ints.dtype == np.float32 and ints.tolist() == [1.0, 300.0]
    with pytest.raises(TypeError, match="uint8 pixels or a numeric array"):
        to_float(np.array(["a", "b"]))


def test_split_sizes_disjoint_and_complete(data):
    x, t = data
    (x_tr, t_tr), (x_val, t_val) = train_val_split(x, t, 0.2, rng=0)
    assert len(t_val) == int(103 * 0.2) == 20 and len(t_tr) == 83
    assert set(t_tr.tolist()).isdisjoint(t_val.tolist())
    assert sorted(np.concatenate([t_tr, t_val]).tolist()) == list(range(103))
    np.testing.assert_array_equal(x_tr, x[t_tr])
    (_, t_tr2), (_, t_val2) = train_val_split(x, t, 0.2, rng=0)
    np.testing.assert_array_equal(t_val, t_val2)


def test_split_by_size_and_without_shuffle(data):
    x, t = data
    (_, t_tr), (_, t_val) = train_val_split(x, t, val_size=30, shuffle=False)
    assert t_val.tolist() == list(range(30)) and t_tr.tolist() == list(range(30, 103))


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_fraction_out_of_range(data, fraction):
    with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 1\)"):
        train_val_split(*data, fraction)


def test_split_too_small(data):
    with pytest.raises(ValueError, match="gives 0 validation samples; need 1 to 102"):
        train_val_split(*data, 0.001)
    with pytest.raises(ValueError, match="val_size=103"):
        train_val_split(*data, val_size=103)


def test_shuffle_dataset_keeps_pairs(data):
    x, t = data
    xs, ts = shuffle_dataset(x, t, rng=1)
    np.testing.assert_array_equal(xs, x[ts])
    assert ts.tolist() != t.tolist()


def test_stratified_split_keeps_every_class_share():
    # 90 of class 0, 9 of class 1, 1 of class 2: a plain 20% split often loses the rare ones.
    t = np.array([0] * 90 + [1] * 9 + [2] * 1)
    x = np.arange(100).reshape(100, 1)  # x[i] == i identifies each sample
    (x_tr, t_tr), (x_va, t_va) = train_val_split(x, t, 0.2, rng=0, stratify=True)
    assert len(x_va) == 20 and len(x_tr) == 80
    assert np.bincount(t_va, minlength=3).tolist() == [18, 2, 0]  # 18, 1.8 -> 2, 0.2 -> 0
    assert np.bincount(t_tr, minlength=3).tolist() == [72, 7, 1]
    assert sorted(np.concatenate([x_tr, x_va]).ravel().tolist()) == list(range(100))
    np.testing.assert_array_equal(t[x_va.ravel()], t_va)  # pairs stay together
    assert not np.all(np.diff(t_va) >= 0)  # shuffled, not grouped by class
    one_hot = np.eye(3)[t]
    (_, oh_tr), (_, oh_va) = train_val_split(x, one_hot, val_size=10, rng=1, stratify=True)
    assert oh_va.sum(axis=0).tolist() == [9, 1, 0] and len(oh_tr) == 90
    again = train_val_split(x, t, 0.2, rng=0, stratify=True)[1][0]
    np.testing.assert_array_equal(again, x_va)  # same seed, same split
