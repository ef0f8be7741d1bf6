"""Array backend: NumPy always, CuPy when asked for and installed.

This is the only module that imports CuPy. Everything else asks for the array
module of its data with :func:`get_array_module` (DeZero's pattern), so the same
layer code runs on the CPU and on an NVIDIA GPU.

Also holds the default floating dtype (float32 for training, as the issue of
speed demands; gradient checks pass float64 explicitly).
"""

from __future__ import annotations

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


def resolve_dtype(dtype) -> np.dtype:
    """Validate a floating dtype given as a name or a NumPy dtype."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from exc
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt
