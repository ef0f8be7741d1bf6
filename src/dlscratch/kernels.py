"""Compiled loops for the convolutional layers (optional: Numba).

Convolution and pooling are, at heart, loops over pixels. The layers in
:mod:`dlscratch.layers.conv` write them as a handful of whole-array NumPy
operations over strided views, which reads like the book and runs everywhere,
but each operation makes its own pass over memory: a 2x2 max pool of a
SimpleConvNet batch makes a dozen. When `Numba <https://numba.pydata.org>`_ is
installed (``pip install 'dlscratch[fast]'``), the layers call the plain loops
below instead, compiled to machine code: one pass each, several times faster
(``benchmarks/bench_cnn.py``). The matrix products stay with NumPy's BLAS.

For inference, :mod:`dlscratch.nets.channels_last` runs convolutions on images
stored channels last, ``(N, H, W, C)``, with three more loops: :func:`im2col_rows`,
:func:`max_pool_rows` and :func:`bias_relu`.

Every function here computes what the NumPy code it replaces computes (the same
numbers, but for the rounding of sums of three or more overlapping windows);
the tests run the layers both ways and compare. The loops release the GIL
(``nogil``), so threads can run them side by side, and they are single-threaded
themselves.

``DLSCRATCH_KERNELS=numpy`` or :func:`use` turns them off.
:func:`active` says whether the layers use them for a given array: only for
NumPy arrays on the CPU, and only when Numba imports.

The first call of each function compiles it (about a second), and the machine
code is cached on disk for the next process.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import warnings

import numpy as np

__all__ = [
    "ENV",
    "active",
    "available",
    "bias_relu",
    "col2im",
    "enabled",
    "im2col",
    "im2col_rows",
    "max_pool",
    "max_pool_backward",
    "max_pool_rows",
    "use",
]

#: Environment variable: ``numpy`` turns the compiled loops off (``numba``, the default,
#: uses them when Numba is installed).
ENV = "DLSCRATCH_KERNELS"
_CHOICES = ("numba", "numpy")


#: Whether Numba can be imported (it is not imported until a kernel is first needed).
available: bool = importlib.util.find_spec("numba") is not None
_STATE: dict = {"on": None}  # None: not decided yet (read from the environment on first use)


def enabled() -> bool:
    """Whether the compiled loops are switched on: :func:`use`, else ``$DLSCRATCH_KERNELS``.

    Raises ValueError for a value of the environment variable other than
    ``numba`` or ``numpy`` (the command line checks it before it starts).
    """
    if _STATE["on"] is None:
        text = os.environ.get(ENV, "").strip().lower() or "numba"
        if text not in _CHOICES:
            raise ValueError(
                f"{ENV} must be one of {', '.join(_CHOICES)}, got {text!r}; set it to numpy "
                "to turn the compiled loops off, or unset it"
            )
        _STATE["on"] = text == "numba"
    return _STATE["on"]


def active(x=None) -> bool:
    """Whether the layers use the compiled loops (for array ``x``, when given).

    Only for NumPy arrays of float32 or float64 (integer images and CuPy arrays
    take the NumPy code). The first call imports Numba; if that fails, a warning
    says why and the layers use the NumPy code from then on.
    """
    if not (available and enabled() and _imports()):
        return False
    return x is None or (isinstance(x, np.ndarray) and x.dtype in _FLOATS)


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _imports() -> bool:
    global available
    if "numba" not in _STATE:
        try:
            import numba  # noqa: F401
        except Exception as exc:  # noqa: BLE001 - a broken install must not stop training
            available = False
            warnings.warn(
                f"Numba is installed but does not import ({type(exc).__name__}: {exc}); "
                "convolution and pooling use NumPy's loops instead (slower). Reinstall it "
                f"with pip install 'dlscratch[fast]', or set {ENV}=numpy to silence this",
                RuntimeWarning,
                stacklevel=3,
            )
            return False
        _STATE["numba"] = True
    return True


@contextlib.contextmanager
def use(flag: bool):
    """``with kernels.use(False):`` runs the NumPy code instead, then restores the setting."""
    previous = enabled()
    _STATE["on"] = bool(flag)
    try:
        yield
    finally:
        _STATE["on"] = previous


_KERNELS: dict = {}


def _kernel(name: str, *sizes):
    """The loop ``name`` compiled for these constants (window sizes, stride, padding, and
    for some loops a channel count or whether a ReLU follows).

    Each combination is compiled on its own, with the sizes as constants: the
    compiler then unrolls the small window loops, which makes a 2x2 max pool
    about twenty times faster than the same loop with the sizes as arguments.
    """
    key = (name, *sizes)
    kernel = _KERNELS.get(key)
    if kernel is None:
        kernel = _KERNELS[key] = _BUILDERS[name](*sizes)
    return kernel


def _jit(function):
    import numba

    return numba.njit(cache=True, nogil=True)(function)


def _build_im2col(FH, FW, stride, pad):
    from numba import uint64  # an unsigned index: no check for negative indices in the loop

    def im2col_loop(x, OH, OW, col):
        N, C, H, W = x.shape
        for n in range(N):
            for c in range(C):
                for i in range(FH):
                    for j in range(FW):
                        row = (c * FH + i) * FW + j
                        for oy in range(OH):
                            y = oy * stride + i - pad
                            for ox in range(OW):
                                x_ = ox * stride + j - pad
                                if 0 <= y < H and 0 <= x_ < W:
                                    col[n, row, oy * OW + ox] = x[n, c, uint64(y), uint64(x_)]
                                else:  # the padding
                                    col[n, row, oy * OW + ox] = 0

    return _jit(im2col_loop)


def _build_col2im(FH, FW, stride, pad):
    from numba import uint64

    def col2im_loop(col, OH, OW, dx):
        N, C, H, W = dx.shape
        for n in range(N):
            for c in range(C):
                dx[n, c] = 0
                for i in range(FH):
                    for j in range(FW):
                        row = (c * FH + i) * FW + j
                        for oy in range(OH):
                            y = oy * stride + i - pad
                            if not 0 <= y < H:
                                continue
                            for ox in range(OW):
                                x_ = ox * stride + j - pad
                                if 0 <= x_ < W:  # what fell on the padding is dropped
                                    dx[n, c, uint64(y), uint64(x_)] += col[n, row, oy * OW + ox]

    return _jit(col2im_loop)


def _build_max_pool(ph, pw, stride):
    def max_pool_loop(x, out, arg):
        N, C, OH, OW = out.shape
        for n in range(N):
            for c in range(C):
                image, maxima, where = x[n, c], out[n, c], arg[n, c]
                for oy in range(OH):
                    for ox in range(OW):
                        y0, x0 = oy * stride, ox * stride
                        best = image[y0, x0]
                        k_best = 0
                        for i in range(ph):
                            for j in range(pw):
                                v = image[y0 + i, x0 + j]
                                # strictly greater: ties keep the first maximum; a NaN
                                # wins and stays, as NumPy's maximum propagates it
                                if v > best or (v != v and best == best):
                                    best = v
                                    k_best = i * pw + j
                        maxima[oy, ox] = best
                        where[oy, ox] = k_best

    return _jit(max_pool_loop)


def _build_max_pool_backward(ph, pw, stride):
    def max_pool_backward_loop(dout, arg, dx):
        N, C, OH, OW = dout.shape
        H, W = dx.shape[2], dx.shape[3]
        # windows side by side, covering the image: each pixel is in exactly one
        tiled = stride == ph and stride == pw and OH * ph == H and OW * pw == W
        for n in range(N):
            for c in range(C):
                image, grads, where = dx[n, c], dout[n, c], arg[n, c]
                if not tiled:
                    image[:, :] = 0
                for oy in range(OH):
                    for ox in range(OW):
                        y0, x0 = oy * stride, ox * stride
                        if tiled:
                            for i in range(ph):
                                for j in range(pw):
                                    image[y0 + i, x0 + j] = 0
                        k = where[oy, ox]
                        i = k // pw
                        image[y0 + i, x0 + k - i * pw] += grads[oy, ox]

    return _jit(max_pool_backward_loop)


def _build_im2col_rows(FH, FW, stride, pad, fixed_C):
    from numba import uint64

    def im2col_rows_loop(x, channels, OH, OW, r0, r1, col):
        # fixed_C: the channel count compiled in (single-channel images: their 3-number
        # runs are best unrolled, 3x faster), or 0 to read it at run time (long runs:
        # faster as a loop, measured)
        C = fixed_C if fixed_C else channels
        N, H, WC = x.shape  # channels-last images, each row of pixels flat: (N, H, W*C)
        W = WC // C
        run = FW * C  # one window row: FW neighbouring pixels, C channels each
        n, oy, ox = r0 // (OH * OW), (r0 // OW) % OH, r0 % OW  # row r0's output pixel
        for r in range(r0, r1):  # row r is output pixel (n, oy, ox), in that order
            x0 = ox * stride - pad  # the window's first column
            inside = x0 >= 0 and x0 + FW <= W
            dst = uint64(r - r0)
            for i in range(FH):
                y = oy * stride + i - pad
                start = i * run
                if y < 0 or y >= H:  # a row of padding
                    for k in range(run):
                        col[dst, uint64(start + k)] = 0
                elif inside:  # one contiguous run of the input row
                    src = x0 * C
                    for k in range(run):
                        col[dst, uint64(start + k)] = x[uint64(n), uint64(y), uint64(src + k)]
                else:  # the window hangs over the left or right edge
                    for j in range(FW):
                        xx = x0 + j
                        at = start + j * C
                        if 0 <= xx < W:
                            for c in range(C):
                                col[dst, uint64(at + c)] = x[
                                    uint64(n), uint64(y), uint64(xx * C + c)
                                ]
                        else:
                            for c in range(C):
                                col[dst, uint64(at + c)] = 0
            ox += 1  # the next output pixel
            if ox == OW:
                ox = 0
                oy += 1
                if oy == OH:
                    oy = 0
                    n += 1

    return _jit(im2col_rows_loop)


def _build_max_pool_rows(ph, pw, stride, relu):
    from numba import uint64

    def max_pool_rows_loop(x, out):
        N, OH, OW, C = out.shape  # channels-last: the channel loop is the inner one
        for n in range(N):
            for oy in range(OH):
                for ox in range(OW):
                    y0, x0 = oy * stride, ox * stride
                    for c in range(C):
                        out[n, oy, ox, c] = x[n, y0, x0, c]
                    for i in range(ph):
                        for j in range(pw):
                            if i == 0 and j == 0:
                                continue
                            for c in range(C):
                                v = x[n, uint64(y0 + i), uint64(x0 + j), c]
                                best = out[n, oy, ox, c]
                                # as max_pool: the first maximum; a NaN wins and stays
                                if v > best or (v != v and best == best):
                                    out[n, oy, ox, c] = v
                    if relu:  # max(out, 0); a NaN stays NaN, as with np.maximum
                        for c in range(C):
                            if out[n, oy, ox, c] < 0:
                                out[n, oy, ox, c] = 0

    return _jit(max_pool_rows_loop)


def _build_bias_relu(relu):
    def bias_relu_loop(out, b):
        R, F = out.shape
        for r in range(R):
            for f in range(F):
                v = out[r, f] + b[f]
                if relu and v < 0:  # max(v, 0); a NaN stays NaN, as with np.maximum
                    v = 0
                out[r, f] = v

    return _jit(bias_relu_loop)


_BUILDERS = {
    "im2col": _build_im2col,
    "im2col_rows": _build_im2col_rows,
    "col2im": _build_col2im,
    "max_pool": _build_max_pool,
    "max_pool_backward": _build_max_pool_backward,
    "max_pool_rows": _build_max_pool_rows,
    "bias_relu": _build_bias_relu,
}


def im2col(x, FH, FW, stride, pad, OH, OW, out):
    """:func:`dlscratch.layers.conv.im2col_batched` as one loop, padding included.

    x: (N, C, H, W) unpadded -> ``out`` (N, C*FH*FW, OH*OW), a buffer reused between
    calls. Pixels of the padding are written as 0.
    """
    _kernel("im2col", FH, FW, stride, pad)(np.ascontiguousarray(x), OH, OW, out)
    return out


def col2im(col, FH, FW, stride, pad, OH, OW, out):
    """:func:`dlscratch.layers.conv.col2im_batched` as one loop: the padding is never built.

    col: (N, C*FH*FW, OH*OW) -> ``out`` (N, C, H, W): each pixel gets the sum of the
    column entries that came from it.
    """
    _kernel("col2im", FH, FW, stride, pad)(np.ascontiguousarray(col), OH, OW, out)
    return out


def max_pool(x, ph, pw, stride, out, arg):
    """Max pooling of ``x`` (N, C, H, W, padded already) into ``out`` and ``arg`` (N, C, OH, OW).

    ``arg`` gets each window's arg-max as the offset ``i*pw + j`` (the first maximum).
    """
    _kernel("max_pool", ph, pw, stride)(np.ascontiguousarray(x), out, arg)
    return out, arg


def max_pool_backward(dout, arg, ph, pw, stride, dx):
    """Route ``dout`` (N, C, OH, OW) to the arg-max pixels of ``dx`` (N, C, H, W); the rest 0."""
    _kernel("max_pool_backward", ph, pw, stride)(np.ascontiguousarray(dout), arg, dx)
    return dx


# -- channels-last order (inference: dlscratch.nets.channels_last) ---------------------------------
def im2col_rows(x, FH, FW, stride, pad, OH, OW, r0, r1, out):
    """Rows ``r0:r1`` of the channels-last im2col matrix of ``x``.

    x: (N, H, W, C) unpadded, channels last -> ``out`` (r1 - r0, FH*FW*C). Row ``r``
    is output pixel ``(n, oy, ox)`` with ``r = (n*OH + oy)*OW + ox``; its entries
    run in (FH, FW, C) order, so that one window row, FW pixels of C channels, is
    one contiguous run of the input. Pixels of the padding are written as 0.
    """
    N, H, W, C = x.shape
    flat_rows = np.ascontiguousarray(x).reshape(N, H, W * C)
    loop = _kernel("im2col_rows", FH, FW, stride, pad, 1 if C == 1 else 0)
    loop(flat_rows, C, OH, OW, r0, r1, out)
    return out


def max_pool_rows(x, ph, pw, stride, out, relu: bool = False):
    """Max pooling in channels-last order: x (N, H, W, C) -> ``out`` (N, OH, OW, C).

    No padding; each window's value is its first maximum, as :func:`max_pool`'s.
    ``relu``: then ``max(out, 0)``, in the same pass.
    """
    _kernel("max_pool_rows", ph, pw, stride, bool(relu))(np.ascontiguousarray(x), out)
    return out


def bias_relu(out, b, relu: bool):
    """``out += b`` in place for ``out`` (R, F) and ``b`` (F,), then ``max(out, 0)`` if ``relu``."""
    _kernel("bias_relu", bool(relu))(out, b)
    return out
