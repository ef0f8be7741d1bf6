"""Weight initialisers: scales, dtype, seeding, validation."""

import numpy as np
import pytest

from dlscratch.init import he_std, init_std, init_weight, xavier_std


def test_scales():
    assert xavier_std(100) == pytest.approx(0.1)
    assert he_std(100) == pytest.approx(np.sqrt(0.02))
    assert init_std("relu", 50) == he_std(50)
    assert init_std("sigmoid", 50) == xavier_std(50)
    assert init_std(0.01, 50) == 0.01


@pytest.mark.parametrize(
    "method, std", [(1.0, 1.0), (0.01, 0.01), ("xavier", 0.01), ("he", np.sqrt(2e-4))]
)
def test_init_weight_statistics(method, std):
    W = init_weight((10000, 100), method, rng=0)
    assert W.dtype == np.float32
    assert W.std() == pytest.approx(std, rel=0.01)
    assert abs(W.mean()) < 0.01 * std * 10


def test_seed_and_dtype():
    a = init_weight((3, 4), "he", rng=5, dtype=np.float64)
    b = init_weight((3, 4), "he", rng=np.random.default_rng(5), dtype=np.float64)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float64
    with pytest.raises(TypeError, match="float32 or float64"):
        init_weight((3, 4), "he", dtype=np.int32)


@pytest.mark.parametrize("bad", ["glorot", 0, -0.5, True, None])
def test_bad_methods(bad):
    with pytest.raises(ValueError, match="he|xavier|positive"):
        init_std(bad, 10)
