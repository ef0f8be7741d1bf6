"""The compiled loops (dlscratch.kernels, Numba) against the layers' NumPy code.

tests/test_conv.py runs every layer test both ways (values against plain loops,
numerical gradients); here the two ways are compared with each other, value for
value, on the cases where they could part: padding, strides that skip pixels,
overlapping windows, float32, non-contiguous input, NaN, and two threads at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from dlscratch import kernels
from dlscratch.layers import Convolution, Pooling
from dlscratch.nets import SimpleConvNet

pytestmark = pytest.mark.skipif(
    not kernels.available, reason="Numba is not installed (pip install 'dlscratch[fast]')"
)


def both_ways(run):
    """run() with the compiled loops and with NumPy's code: (compiled, numpy)."""
    with kernels.use(True):
        compiled = run()
    with kernels.use(False):
        numpy = run()
    return compiled, numpy


def conv_pass(layer, x, dout):
    out = layer.forward(x).copy()
    dx = layer.backward(dout)
    return out, dx.copy(), layer.dW.copy(), layer.db.copy()


# (C, H, W, FN, FH, FW, stride, pad): padding wider than the filter's reach, rectangular
# images and filters, strides of 2 and 3, 1x1 filters
CONV_CASES = [
    (1, 28, 28, 30, 5, 5, 1, 0),
    (3, 9, 7, 4, 3, 3, 1, 1),
    (2, 8, 8, 3, 3, 3, 1, 2),
    (2, 11, 9, 5, 3, 3, 2, 1),
    (2, 9, 11, 3, 3, 2, 3, 0),
    (4, 6, 6, 2, 1, 1, 1, 0),
    (2, 5, 5, 3, 5, 5, 1, 2),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CONV_CASES)
def test_convolution_is_the_same_both_ways(case, dtype):
    C, H, W, FN, FH, FW, stride, pad = case
    rng = np.random.default_rng(sum(case))
    x = rng.standard_normal((6, C, H, W)).astype(dtype)
    layer = Convolution(
        rng.standard_normal((FN, C, FH, FW)).astype(dtype),
        rng.standard_normal(FN).astype(dtype),
        stride=stride,
        pad=pad,
    )
    dout = rng.standard_normal(layer.output_shape(x.shape)).astype(dtype)
    compiled, numpy = both_ways(lambda: conv_pass(layer, x, dout))
    for name, a, b in zip(("out", "dx", "dW", "db"), compiled, numpy):
        assert a.dtype == b.dtype == dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_convolution_takes_non_contiguous_input():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 8, 8, 2)).transpose(0, 3, 1, 2)  # (N, C, H, W), not contiguous
    layer = Convolution(rng.standard_normal((3, 2, 3, 3)), np.zeros(3), pad=1)
    dout = rng.standard_normal((4, 3, 8, 8))
    compiled, numpy = both_ways(lambda: conv_pass(layer, x, dout))
    for a, b in zip(compiled, numpy):
        np.testing.assert_array_equal(a, b)


def pool_pass(layer, x, dout):
    out = layer.forward(x).copy()
    return out, layer.arg_max.copy(), layer.backward(dout).copy()


# (H, W, ph, pw, stride, pad): side by side, gaps between windows, overlapping, padded
POOL_CASES = [
    (24, 24, 2, 2, 2, 0),
    (9, 9, 3, 3, 3, 0),
    (7, 7, 1, 1, 2, 0),
    (7, 9, 3, 3, 2, 0),
    (8, 8, 3, 3, 1, 1),
    (6, 8, 2, 4, 2, 0),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pooling_is_the_same_both_ways(case, dtype):
    H, W, ph, pw, stride, pad = case
    rng = np.random.default_rng(sum(case))
    # rounded values: many ties, which must go to the first maximum both ways
    x = np.round(rng.standard_normal((3, 4, H, W)), 1).astype(dtype)
    layer = Pooling(ph, pw, stride=stride, pad=pad)
    dout = rng.standard_normal(layer.output_shape(x.shape)).astype(dtype)
    (out_c, arg_c, dx_c), (out_n, arg_n, dx_n) = both_ways(lambda: pool_pass(layer, x, dout))
    np.testing.assert_array_equal(out_c, out_n)
    np.testing.assert_array_equal(arg_c, arg_n)
    assert dx_c.dtype == dx_n.dtype == dtype
    overlapping = stride < max(ph, pw)
    if overlapping:  # sums of overlapping windows may round differently
        eps = np.finfo(dtype).eps
        np.testing.assert_allclose(dx_c, dx_n, rtol=16 * eps, atol=16 * eps)
    else:
        np.testing.assert_array_equal(dx_c, dx_n)


def test_max_pooling_propagates_nan_both_ways():
    x = np.arange(32, dtype=np.float64).reshape(1, 2, 4, 4)
    x[0, 0, 1, 1] = np.nan  # in the first window, not its first pixel
    x[0, 1, 3, 2] = np.nan  # in the last window of the second channel
    compiled, numpy = both_ways(lambda: Pooling(2, 2).forward(x))
    for out in (compiled, numpy):
        assert np.isnan(out[0, 0, 0, 0]) and np.isnan(out[0, 1, 1, 1])
        assert np.isfinite(out).sum() == out.size - 2
    np.testing.assert_array_equal(compiled, numpy)


def test_simple_conv_net_gradient_is_the_same_both_ways():
    rng = np.random.default_rng(0)
    x = rng.random((20, 784), dtype=np.float32)
    t = rng.integers(0, 10, 20)
    net = SimpleConvNet(rng=0)
    compiled, numpy = both_ways(lambda: {k: v.copy() for k, v in net.gradient(x, t).items()})
    assert compiled.keys() == numpy.keys()
    for key in compiled:
        np.testing.assert_array_equal(compiled[key], numpy[key], err_msg=key)


def test_two_threads_at_once_get_what_one_gets():
    """The loops release the GIL; two threads running layers side by side share nothing."""
    rng = np.random.default_rng(2)
    inputs = [rng.standard_normal((8, 3, 12, 12)) for _ in range(2)]
    W, b = rng.standard_normal((5, 3, 3, 3)), rng.standard_normal(5)

    def run(x):
        conv, pool = Convolution(W, b, pad=1), Pooling(2, 2)
        for _ in range(20):
            h = pool.forward(conv.forward(x))
            dx = conv.backward(pool.backward(np.ones_like(h)))
        return h, dx

    with kernels.use(True):
        alone = [run(x) for x in inputs]
        results = [None, None]

        def work(i):
            results[i] = run(inputs[i])

        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for (h, dx), (h1, dx1) in zip(results, alone):
        np.testing.assert_array_equal(h, h1)
        np.testing.assert_array_equal(dx, dx1)


def _kernels_env(value):
    env = {**os.environ, kernels.ENV: value}
    return env


def test_environment_variable_turns_the_loops_off():
    code = "from dlscratch import kernels; print(kernels.active())"
    for value, expected in (("numpy", "False"), ("NUMBA", "True"), ("", "True")):
        result = subprocess.run(
            [sys.executable, "-c", code], env=_kernels_env(value), capture_output=True, text=True
        )
        assert result.stdout.strip() == expected, (value, result.stderr)


def test_command_line_refuses_an_unknown_value_with_status_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "dlscratch.cli", "runs", "list", str(tmp_path)],
        env=_kernels_env("fortran"),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "DLSCRATCH_KERNELS must be one of numba, numpy, got 'fortran'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_numba_that_does_not_import_means_numpy_and_a_warning(tmp_path):
    fake = tmp_path / "numba"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('llvmlite is missing (a test)')\n")
    code = (
        "import warnings, numpy as np\n"
        "from dlscratch import kernels\n"
        "from dlscratch.layers import Convolution, Pooling\n"
        "rng = np.random.default_rng(0)\n"
        "x = rng.standard_normal((2, 3, 6, 6))\n"
        "conv = Convolution(rng.standard_normal((4, 3, 3, 3)), np.zeros(4), pad=1)\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    out = Pooling(2, 2).forward(conv.forward(x))\n"
        "print(kernels.active(), out.shape, len(caught), caught[0].message if caught else '')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    active, rest = result.stdout.split(" ", 1)
    assert active == "False"
    assert rest.startswith("(2, 4, 3, 3) 1 Numba is installed but does not import")
    assert "llvmlite is missing (a test)" in rest


@pytest.mark.parametrize("dtype", [np.uint8, np.int64])
def test_integer_images_take_the_numpy_code(dtype):
    rng = np.random.default_rng(9)
    x = rng.integers(0, 255, (3, 2, 7, 7)).astype(dtype)
    assert not kernels.active(x)
    layer = Convolution(rng.standard_normal((3, 2, 3, 3)), np.zeros(3), pad=1)
    compiled, numpy = both_ways(lambda: layer.forward(x).copy())
    np.testing.assert_array_equal(compiled, numpy)
    pooled = both_ways(lambda: Pooling(7, 7).forward(x).copy())
    np.testing.assert_array_equal(*pooled)
