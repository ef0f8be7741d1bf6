"""Array backend: NumPy always, CuPy when asked for and installed.

This is the only module that imports CuPy. Everything else asks for the array
module of its data with :func:`get_array_module` (DeZero's pattern), so the same
layer code runs on the CPU and on an NVIDIA GPU.

Also holds the default floating dtype (float32 for training, which is about twice as
fast as float64 and accurate enough; gradient checks pass float64 explicitly).
"""

from __future__ import annotations

import contextlib
import os
import threading

import numpy as np

DEFAULT_DTYPE = np.float32

try:  # pragma: no cover - exercised only where CuPy and a GPU exist
    import cupy as _cupy  # type: ignore[import-not-found]

    try:
        _cupy.cuda.runtime.getDeviceCount()
        GPU_AVAILABLE = True
    except Exception:
        GPU_AVAILABLE = False
except Exception:  # ImportError, or a broken CUDA install
    _cupy = None
    GPU_AVAILABLE = False

DEVICES = ("cpu", "cuda")


def get_array_module(*arrays):
    """Return ``cupy`` if any of ``arrays`` lives on the GPU, else ``numpy``."""
    if _cupy is not None:
        for a in arrays:
            if isinstance(a, _cupy.ndarray):
                return _cupy
    return np


def xp_for(device: str):
    """The array module for ``device`` ('cpu' or 'cuda'); a clear error if unusable."""
    check_device(device)
    return _cupy if device == "cuda" else np


def check_device(device: str) -> str:
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cuda" and not GPU_AVAILABLE:
        raise RuntimeError(
            "device='cuda' needs CuPy and an NVIDIA GPU; install CuPy "
            "(pip install 'dlscratch[gpu]') or use device='cpu'"
        )
    return device


def to_device(a, device: str):
    """Copy array ``a`` to ``device`` ('cpu' -> NumPy, 'cuda' -> CuPy)."""
    check_device(device)
    if device == "cuda":
        return _cupy.asarray(a)
    return to_numpy(a)


def to_numpy(a):
    """Return ``a`` as a NumPy array (copies from the GPU when needed)."""
    if _cupy is not None and isinstance(a, _cupy.ndarray):
        return _cupy.asnumpy(a)
    return np.asarray(a)


#: Alignment in bytes of the arrays made by :func:`aligned_zeros` (a cache line).
ALIGNMENT = 64


def aligned_zeros(shape, dtype=DEFAULT_DTYPE, xp=np):
    """Zeros whose first element sits on a 64-byte boundary.

    NumPy guarantees only 16 bytes, and large arrays usually start 16 bytes past
    a page boundary; vector loops (AVX2 / AVX-512) run about 7 % faster over
    arrays aligned to a cache line. CuPy's allocations are aligned already.
    """
    if xp is not np:
        return xp.zeros(shape, dtype=dtype)
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    buf = np.zeros(n * dtype.itemsize + ALIGNMENT, dtype=np.uint8)
    start = -buf.ctypes.data % ALIGNMENT
    return buf[start : start + n * dtype.itemsize].view(dtype).reshape(shape)


_KERNELS: dict = {}


def elementwise_kernel(in_params: str, out_params: str, operation: str, name: str):
    """A compiled ``cupy.ElementwiseKernel`` (cached by its source), or None without CuPy.

    Lets other modules fuse several elementwise operations into one GPU kernel
    (Adam's update, for instance) without importing CuPy themselves.
    """
    if _cupy is None:
        return None
    key = (in_params, out_params, operation, name)
    kernel = _KERNELS.get(key)
    if kernel is None:
        kernel = _KERNELS[key] = _cupy.ElementwiseKernel(in_params, out_params, operation, name)
    return kernel


#: Environment variable with the default number of BLAS threads for the command line,
#: the estimator and the web app.
THREADS_ENV = "DLSCRATCH_THREADS"
#: Without it: one thread. Measured on a two-core machine (benchmarks/README.md): one
#: training epoch of the default network takes about as long with one thread as with two
#: on an idle machine, and several times longer with two when another process is busy.
DEFAULT_THREADS = 1


def default_threads() -> int:
    """``$DLSCRATCH_THREADS`` when set (a whole number >= 1), else :data:`DEFAULT_THREADS`."""
    text = os.environ.get(THREADS_ENV, "").strip()
    if not text:
        return DEFAULT_THREADS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{THREADS_ENV} must be a whole number >= 1, got {text!r}")
    return value


def set_num_threads(n: int | None):
    """Limit the threads of NumPy's BLAS (OpenBLAS, MKL, ...) to ``n``; returns a limiter or None.

    Uses ``threadpoolctl`` when it is installed (an optional dependency) and
    returns its limiter (``.restore_original_limits()`` undoes it); returns
    None when it is not, in which case set ``OMP_NUM_THREADS`` /
    ``OPENBLAS_NUM_THREADS`` before starting Python instead. ``None`` leaves the
    threads as they are.
    """
    if n is None:
        return None
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"number of threads must be a positive integer, got {n!r}")
    _THREADPOOLS["threads"] = n
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    # a fresh look at the loaded libraries each time (one loaded since is limited too),
    # kept for one_blas_thread
    controller = _THREADPOOLS["controller"] = ThreadpoolController()
    return controller.limit(limits=n, user_api="blas")


_THREADPOOLS: dict = {}


def num_threads() -> int:
    """The threads :func:`set_num_threads` last allowed (1 until it is called).

    The convolutional layers run their groups of images on this many threads
    when the compiled loops are in use (:func:`dlscratch.fast.each_group`).
    """
    return _THREADPOOLS.get("threads", 1)


_ONE_THREAD = {"depth": 0, "limiter": None}
_ONE_THREAD_LOCK = threading.Lock()


@contextlib.contextmanager
def one_blas_thread():
    """A context in which BLAS runs single-threaded, for many small matrix products.

    Does nothing unless :func:`set_num_threads` allowed more than one thread.
    The limit is the whole process's (BLAS has one setting): contexts entered by
    several threads at once, or nested, share one limit, lifted when the last
    of them exits.
    """
    controller = _THREADPOOLS.get("controller")
    if controller is None or _THREADPOOLS.get("threads", 1) < 2:
        yield
        return
    with _ONE_THREAD_LOCK:
        if _ONE_THREAD["depth"] == 0:
            _ONE_THREAD["limiter"] = controller.limit(limits=1, user_api="blas")
        _ONE_THREAD["depth"] += 1
    try:
        yield
    finally:
        with _ONE_THREAD_LOCK:
            _ONE_THREAD["depth"] -= 1
            if _ONE_THREAD["depth"] == 0:
                _ONE_THREAD["limiter"].restore_original_limits()
                _ONE_THREAD["limiter"] = None


def blas_info() -> list[dict]:
    """What BLAS NumPy runs on and with how many threads (``threadpoolctl``), or []."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("internal_api", "version", "architecture", "num_threads", "threading_layer")
    return [
        {k: info.get(k) for k in keys}
        for info in threadpool_info()
        if info.get("user_api") == "blas"
    ]


def resolve_dtype(dtype) -> np.dtype:
    """Validate a floating dtype given as a name or a NumPy dtype."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from exc
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt
