"""The speed work of the layers, in one place.

The layers read like the book; where a NumPy idiom is several times faster than the
obvious expression at training sizes, the layer calls a function from here instead,
with a one-line pointer. Each function computes exactly what its docstring's formula
says (up to floating-point rounding), so a reader can take it on trust:

* :func:`sum_over_batch` - ``a.sum(axis=0)`` as one BLAS matrix-vector product;
* :func:`channel_sums` - ``a.sum(axis=(0, 2))`` of (N, C, L) maps, the same way;
* :func:`relu` - ``max(x, 0)`` against an array of zeros (NumPy's vectorised loop);
* :func:`transposed` - ``W.T`` as a contiguous copy, which OpenBLAS multiplies faster;
* :func:`all_finite` - "no NaN or infinity" from row sums, cheaper than ``isfinite``;
* :func:`image_groups` - a convolution's batch in groups whose im2col columns fit
  the CPU's cache;
* :func:`each_group` - those groups shared among threads (``--threads 2``), and
  :func:`scratch`, a buffer per thread for their columns.

The compiled loops of :mod:`dlscratch.kernels` (optional: Numba) are the rest of
the layers' speed work: im2col, col2im and max pooling as single passes.

The other speed work lives with what it speeds up: the flat parameter buffer in
:mod:`dlscratch.nets.base` (one buffer per network, so an optimizer updates every
parameter in a handful of operations), the batch split among threads of
:mod:`dlscratch.nets.parallel`, inference with the channels last
(:mod:`dlscratch.nets.channels_last`) and the in-place update rules of
:mod:`dlscratch.optim`.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from dlscratch.backend import get_array_module, num_threads

_ONES: dict = {}


def ones(n, dtype, xp=np):
    """A read-only vector of ``n`` ones, kept between calls (NumPy only; saves an allocation)."""
    if xp is not np:
        return xp.ones(n, dtype=dtype)
    key = (n, np.dtype(dtype))
    vector = _ONES.get(key)
    if vector is None:
        if len(_ONES) > 32:  # many batch sizes (e.g. a last short batch per epoch)
            _ONES.clear()
        vector = _ONES[key] = np.ones(n, dtype=dtype)
        vector.flags.writeable = False
    return vector


def sum_over_batch(a, out=None):
    """``a.sum(axis=0)`` for a (N, D) array, computed as the product ``ones(N) @ a``.

    One BLAS matrix-vector product is several times faster than NumPy's reduction
    over the first axis at training sizes (the values agree up to rounding).
    ``out``: optional (D,) array to write into.
    """
    xp = get_array_module(a)
    return xp.matmul(ones(a.shape[0], a.dtype, xp), a, out=out)


def channel_sums(a, out=None):
    """``a.sum(axis=(0, 2))`` for an (N, C, L) array (a convolution's bias gradient).

    Two matrix-vector products, ``(a.reshape(N*C, L) @ ones(L))`` and then the
    sum over the batch, about four times faster than NumPy's reduction over
    two axes. ``out``: optional (C,) array to write into.
    """
    xp = get_array_module(a)
    N, C, L = a.shape
    per_image = (a.reshape(N * C, L) @ ones(L, a.dtype, xp)).reshape(N, C)
    return sum_over_batch(per_image, out=out)


def relu(x, zeros_cache: dict, inplace: bool = False):
    """``max(x, 0)``, compared against a cached array of zeros rather than the scalar 0.

    NumPy then runs its vectorised array-array loop, about three times faster at
    training sizes. ``zeros_cache`` is a dict the calling layer keeps (one entry).
    ``inplace``: write the result into ``x`` (a float array) instead of a new array.
    """
    xp = get_array_module(x)
    if x.dtype.kind != "f":
        return xp.maximum(x, 0.0)
    zeros = zeros_cache.get("zeros")
    fits = zeros is not None and get_array_module(zeros) is xp
    if not (fits and zeros.shape == x.shape and zeros.dtype == x.dtype):
        zeros = zeros_cache["zeros"] = xp.zeros_like(x)
    return xp.maximum(x, zeros, out=x if inplace else None)


def transposed(W):
    """``W.T``, as a contiguous copy on the CPU.

    OpenBLAS multiplies small matrices up to twice as slowly when the right operand
    is transposed; copying ``W.T`` (M x D) costs far less than that.
    """
    if get_array_module(W) is np:
        return np.ascontiguousarray(W.T)
    return W.T


def all_finite(x) -> bool:
    """Whether ``x`` (N, ...) holds no NaN or infinity - cheaply.

    One matrix-vector product forms the row sums (a NaN or an infinity makes its
    row's sum non-finite), which costs a fraction of a full ``isfinite(x).all()``;
    only when a sum is not finite (which huge finite values can also cause) is the
    exact test run.
    """
    xp = get_array_module(x)
    rows = x.reshape(x.shape[0], -1)
    sums = rows @ ones(rows.shape[1], rows.dtype, xp)
    if math.isfinite(float(sums.sum())):
        return True
    return bool(xp.isfinite(x).all())


#: Bytes of im2col columns a convolution works on at a time on the CPU (:func:`image_groups`).
CACHE_BYTES = 2 * 1024 * 1024


def image_groups(n_images: int, col_bytes_per_image: int, xp=np) -> list:
    """Slices splitting a batch of ``n_images`` into groups of about :data:`CACHE_BYTES` of columns.

    A convolution's im2col columns hold every input pixel ``FH*FW`` times:
    45 MB for a batch of 100 at DeepConvNet's second layer. Built for the whole
    batch at once, they are written out to main memory and read back by the
    matrix product, and that traffic, not the arithmetic, sets the time. Built
    a few images at a time into one small buffer, they stay in the cache
    between the copy and the product: a DeepConvNet forward pass takes about
    0.7 of the time (benchmarks/README.md). The products per group are
    the same products, so the results are identical. Each group's products are
    small, so the layer runs them with one BLAS thread
    (:func:`dlscratch.backend.one_blas_thread`): with two, waking the second
    thread costs more than it saves (measured: twice the time).

    On a GPU (``xp`` not NumPy) there is one group: the whole batch.
    """
    if xp is not np or n_images == 0:
        return [slice(0, n_images)]
    size = max(1, CACHE_BYTES // max(1, int(col_bytes_per_image)))
    return [slice(lo, min(n_images, lo + size)) for lo in range(0, n_images, size)]


_WORKERS: dict = {}


def each_group(groups, work, *, parallel: bool = True) -> list:
    """``[work(part) for part in groups]``, shared among :func:`~dlscratch.backend.num_threads`.

    With one thread (the default), or ``parallel=False``, the groups run one after
    the other in the calling thread. With more, a pool of worker threads takes
    them; the results come back in the order of ``groups`` either way, so that
    whatever the caller sums from them is summed in the same order, and the
    numbers do not depend on the thread count. The work must release the GIL to
    gain anything: the compiled loops and BLAS do, most of NumPy's small
    operations do not (the layers pass ``parallel=False`` without the compiled
    loops; threads then made a network slower, measured). Called from one of the
    workers (:func:`in_worker`), it runs the groups itself.
    """
    threads = num_threads()
    if not parallel or threads < 2 or len(groups) < 2 or in_worker():
        return [work(part) for part in groups]
    pool = _WORKERS.get(threads)
    if pool is None:
        pool = _WORKERS[threads] = ThreadPoolExecutor(
            threads, thread_name_prefix="dlscratch", initializer=_mark_worker
        )
    return list(pool.map(work, groups))


_WORKER = threading.local()


def _mark_worker() -> None:
    _WORKER.inside = True


def in_worker() -> bool:
    """Whether the calling thread is one of :func:`each_group`'s workers.

    Work that a worker starts runs in that worker, one group after the other:
    the threads are shared out once, at the outermost level (a network's batch,
    else a layer's groups), and a worker never waits for its own pool.
    """
    return getattr(_WORKER, "inside", False)


def split_batch(n_images: int, parts: int | None = None) -> list:
    """``n_images`` split into ``parts`` (default: :func:`~dlscratch.backend.num_threads`)
    slices of nearly equal size, for :func:`each_group`."""
    parts = max(1, min(n_images, num_threads() if parts is None else parts))
    bounds = [n_images * k // parts for k in range(parts + 1)]
    return [slice(lo, hi) for lo, hi in zip(bounds, bounds[1:])]


_SCRATCH = threading.local()


def scratch(shape, dtype):
    """An uninitialised NumPy array of ``shape``, reused by the calling thread.

    For columns that live only while one group of images is worked on: every
    call from the same thread returns (a view of) the same memory, grown as
    needed, so the next call overwrites it. About 2 MB per thread
    (:data:`CACHE_BYTES`), kept between calls instead of allocated anew.
    """
    dtype = np.dtype(dtype)
    size = math.prod(shape) * dtype.itemsize
    memory = getattr(_SCRATCH, "memory", None)
    if memory is None or memory.size < size:
        memory = _SCRATCH.memory = np.empty(max(size, 1), dtype=np.uint8)
    return memory[:size].view(dtype).reshape(shape)
