"""Convolution and pooling (chapter 7): im2col, col2im, Convolution, Pooling and Flatten.

Shapes follow the book: images are ``(N, C, H, W)`` (batch, channels, height,
width) and filters ``(FN, C, FH, FW)``. With padding ``P`` and stride ``S`` the
output of a window of ``FH x FW`` has::

    OH = (H + 2P - FH) / S + 1
    OW = (W + 2P - FW) / S + 1

(:func:`conv_output_size`). The stride must tile the padded input, that is
``H + 2P - FH`` must be a multiple of ``S``; otherwise the last row of windows
would silently drop input pixels, and a clear error says so.

**im2col** turns the convolution into one matrix product. Each window of the
(padded) input, ``C x FH x FW`` numbers, becomes one row of a matrix; each
filter becomes one column of another; the product holds every filter's
response at every window. :func:`im2col` returns the book's layout, one row per
output pixel, ``(N*OH*OW, C*FH*FW)``. The layers use :func:`im2col_batched`,
the same numbers arranged per image as ``(N, C*FH*FW, OH*OW)`` (one *column*
per output pixel): then ``W.reshape(FN, -1) @ col`` is already ``(N, FN,
OH*OW)``, the output in ``(N, FN, OH, OW)`` order, with no transpose to copy,
and the column matrix is built by copying rows of ``OW`` neighbouring pixels
(several times faster than the book's layout on a CPU; see
:func:`im2col_batched`).

Both are built from one strided *view* of the input (:func:`window_view`,
``as_strided``: no data copied, no Python loop over output pixels), copied once
into a contiguous matrix. :func:`col2im` goes back: it adds each column entry
to the input pixel it came from, looping over the ``FH*FW`` offsets inside a
window (as the book does), so that pixels shared by overlapping windows
(stride < filter size) receive the sum of their contributions.
"""

from __future__ import annotations

import numbers

import numpy as np

from dlscratch import fast, kernels
from dlscratch.backend import get_array_module, one_blas_thread
from dlscratch.layers.aliases import grad_alias, param_alias
from dlscratch.layers.base import Layer

__all__ = [
    "Convolution",
    "Flatten",
    "Pooling",
    "col2im",
    "col2im_batched",
    "conv_output_size",
    "im2col",
    "im2col_batched",
    "window_view",
]


# -- shapes and checks -----------------------------------------------------------------------------
def _positive_int(name: str, value) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _non_negative_int(name: str, value) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def conv_output_size(size: int, filter_size: int, stride: int = 1, pad: int = 0, *, what="input"):
    """``(size + 2*pad - filter_size) / stride + 1``, checked.

    Raises ValueError naming the sizes when the window is larger than the
    padded input, or when the stride does not tile it (the division is not exact).
    """
    padded = size + 2 * pad
    if filter_size > padded:
        raise ValueError(
            f"a window of {filter_size} does not fit the {what} of size {size} with pad {pad} "
            f"(padded size {padded}); use a smaller filter or more padding"
        )
    if (padded - filter_size) % stride:
        raise ValueError(
            f"stride {stride} does not tile the {what}: (size {size} + 2*pad {pad} - window "
            f"{filter_size}) = {padded - filter_size} is not a multiple of {stride}; "
            "change the stride, the padding or the window size"
        )
    return (padded - filter_size) // stride + 1


def _check_images(x, layer: str, channels: int | None = None):
    """x must be (N, C, H, W) with ``channels`` channels; returns its shape."""
    if getattr(x, "ndim", None) != 4:
        shape = getattr(x, "shape", None)
        raise ValueError(
            f"{layer} needs images of shape (N, C, H, W), got shape {shape}; reshape flat "
            "images, e.g. x.reshape(-1, 1, 28, 28)"
        )
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{layer} expects {channels} input channel(s), got input of shape {x.shape} "
            f"({x.shape[1]} channels); the filters' second axis must equal the channels"
        )
    return x.shape


def _pad_images(x, pad: int, value=0.0):
    """x (N, C, H, W) with ``pad`` rows/columns of ``value`` on each side of H and W."""
    if pad == 0:
        return x
    xp = get_array_module(x)
    N, C, H, W = x.shape
    out = xp.empty((N, C, H + 2 * pad, W + 2 * pad), dtype=x.dtype)
    out[...] = value
    out[:, :, pad : pad + H, pad : pad + W] = x
    return out


def window_view(x, FH: int, FW: int, stride: int = 1):
    """A read-only strided view of every ``FH x FW`` window of ``x``: no copy, no loop.

    x: (N, C, H, W), padded already. Returns shape (N, C, FH, FW, OH, OW) with
    ``view[n, c, i, j, y, x] == x[n, c, y*stride + i, x*stride + j]``: the pixel
    at offset (i, j) inside the window whose top-left corner is (y*stride, x*stride).
    """
    xp = get_array_module(x)
    N, C, H, W = x.shape
    OH = conv_output_size(H, FH, stride)
    OW = conv_output_size(W, FW, stride)
    sN, sC, sH, sW = x.strides
    shape = (N, C, FH, FW, OH, OW)
    strides = (sN, sC, sH, sW, sH * stride, sW * stride)
    if xp is np:
        return np.lib.stride_tricks.as_strided(x, shape, strides, writeable=False)
    return xp.lib.stride_tricks.as_strided(x, shape, strides)  # CuPy: no writeable flag


def _window_shape(x_shape, FH, FW, stride, pad):
    """Validate the arguments of im2col/col2im; return (N, C, H, W, OH, OW)."""
    FH, FW = _positive_int("FH", FH), _positive_int("FW", FW)
    stride, pad = _positive_int("stride", stride), _non_negative_int("pad", pad)
    if len(x_shape) != 4:
        raise ValueError(f"im2col needs images of shape (N, C, H, W), got shape {tuple(x_shape)}")
    N, C, H, W = x_shape
    OH = conv_output_size(H, FH, stride, pad, what=f"input height (shape {tuple(x_shape)})")
    OW = conv_output_size(W, FW, stride, pad, what=f"input width (shape {tuple(x_shape)})")
    return N, C, H, W, OH, OW


# -- im2col and col2im -----------------------------------------------------------------------------
def im2col(x, FH: int, FW: int, stride: int = 1, pad: int = 0):
    """The book's im2col: every window of ``x`` as one row of a matrix.

    x: (N, C, H, W) -> col: (N*OH*OW, C*FH*FW), where ``OH = (H + 2*pad - FH) //
    stride + 1`` (likewise OW). Row ``(n*OH + y)*OW + x`` holds the window of
    image n whose output pixel is (y, x), its entries in (C, FH, FW) order, so
    that a convolution is ``im2col(x) @ W.reshape(FN, -1).T``, shape
    (N*OH*OW, FN).
    """
    N, C, H, W, OH, OW = _window_shape(x.shape, FH, FW, stride, pad)
    view = window_view(_pad_images(x, pad), FH, FW, stride)  # (N, C, FH, FW, OH, OW)
    return view.transpose(0, 4, 5, 1, 2, 3).reshape(N * OH * OW, C * FH * FW)


def im2col_batched(x, FH: int, FW: int, stride: int = 1, pad: int = 0):
    """im2col per image, with one *column* per output pixel (the layout the layers use).

    x: (N, C, H, W) -> col: (N, C*FH*FW, OH*OW), the same numbers as
    :func:`im2col`: ``im2col(x) == col.transpose(0, 2, 1).reshape(-1, C*FH*FW)``.

    Why this layout: ``W.reshape(FN, -1) @ col`` (a batched matrix product) is
    then (N, FN, OH*OW), which is the output in (N, FN, OH, OW) order without
    a transpose; and the copy out of the strided view moves whole rows of OW
    neighbouring pixels instead of FW-long pieces. On a CPU both together make
    a convolution 2-10x faster than with the book's layout.
    """
    N, C, H, W, OH, OW = _window_shape(x.shape, FH, FW, stride, pad)
    xp = get_array_module(x)
    view = window_view(_pad_images(x, pad), FH, FW, stride)  # (N, C, FH, FW, OH, OW)
    col = xp.empty((N, C * FH * FW, OH * OW), dtype=x.dtype)
    col.reshape(view.shape)[...] = view
    return col


def col2im_batched(col, x_shape, FH: int, FW: int, stride: int = 1, pad: int = 0):
    """The inverse of :func:`im2col_batched` for gradients: add each entry back to its pixel.

    col: (N, C*FH*FW, OH*OW) -> dx: x_shape = (N, C, H, W).

    Entry ``(n, (c, i, j), (y, x))`` came from pixel ``(y*stride + i, x*stride + j)``
    of the padded image; each such pixel receives the *sum* of all entries that
    came from it (several, when windows overlap), then the padding is cut off.
    The loop runs over the FH*FW offsets (i, j) only; each step adds a whole
    (N, C, OH, OW) slab with one vectorised operation.
    """
    N, C, H, W, OH, OW = _window_shape(x_shape, FH, FW, stride, pad)
    if col.shape != (N, C * FH * FW, OH * OW):
        raise ValueError(
            f"col2im_batched: col of shape {col.shape} does not fit images of shape "
            f"{tuple(x_shape)} with {FH}x{FW} windows, stride {stride}, pad {pad}: expected "
            f"{(N, C * FH * FW, OH * OW)}"
        )
    xp = get_array_module(col)
    col = col.reshape(N, C, FH, FW, OH, OW)
    Hp, Wp = H + 2 * pad, W + 2 * pad
    img = xp.zeros((N, C, Hp, Wp), dtype=col.dtype)
    y_span, x_span = stride * (OH - 1) + 1, stride * (OW - 1) + 1
    for i in range(FH):
        for j in range(FW):
            img[:, :, i : i + y_span : stride, j : j + x_span : stride] += col[:, :, i, j]
    if pad:
        img = img[:, :, pad : pad + H, pad : pad + W]
    return img


def col2im(col, x_shape, FH: int, FW: int, stride: int = 1, pad: int = 0):
    """The book's col2im: the inverse of :func:`im2col` for gradients.

    col: (N*OH*OW, C*FH*FW) -> dx: x_shape = (N, C, H, W). Each input pixel
    receives the sum of the entries that :func:`im2col` copied out of it (a
    pixel shared by overlapping windows appears in several rows).
    """
    N, C, H, W, OH, OW = _window_shape(x_shape, FH, FW, stride, pad)
    if col.shape != (N * OH * OW, C * FH * FW):
        raise ValueError(
            f"col2im: col of shape {col.shape} does not fit images of shape {tuple(x_shape)} "
            f"with {FH}x{FW} windows, stride {stride}, pad {pad}: expected "
            f"{(N * OH * OW, C * FH * FW)}"
        )
    batched = col.reshape(N, OH * OW, C * FH * FW).transpose(0, 2, 1)
    return col2im_batched(batched, x_shape, FH, FW, stride, pad)


# -- layers ----------------------------------------------------------------------------------------
class Convolution(Layer):
    """A convolution layer: ``FN`` filters slid over the input (section 7.4).

    W: (FN, C, FH, FW) filters, b: (FN,) one bias per filter.
    x: (N, C, H, W) -> out: (N, FN, OH, OW), ``OH = (H + 2*pad - FH) / stride + 1``::

        out[n, f, y, x] = sum_{c,i,j} W[f, c, i, j] * xpad[n, c, y*stride + i, x*stride + j] + b[f]

    Computed as in the book, by im2col and one matrix product, here in the
    per-image column layout of :func:`im2col_batched`::

        col = im2col_batched(x)         # (N, C*FH*FW, OH*OW)
        out = W.reshape(FN, -1) @ col   # (N, FN, OH*OW) -> reshape (N, FN, OH, OW)

    Backward, with ``dout`` reshaped to (N, FN, OH*OW)::

        dW   = sum_n dout[n] @ col[n].T        # (FN, C*FH*FW) -> reshape (FN, C, FH, FW)
        db   = dout.sum(axis=(0, 2))           # (FN,)
        dcol = W.reshape(FN, -1).T @ dout      # (N, C*FH*FW, OH*OW)
        dx   = col2im_batched(dcol)            # (N, C, H, W)

    Speed: on the CPU the batch goes through these lines a few images at a
    time (:func:`dlscratch.fast.image_groups`), so that the columns, ``C*FH*FW``
    times the size of the input, stay in the cache instead of making a round
    trip through main memory; backward builds each group's columns again
    rather than keeping the whole batch's. The layout choice is explained in
    :func:`im2col_batched`. A network's predictions skip this method: they run its
    convolutions with the channels last (:mod:`dlscratch.nets.channels_last`), the
    same sums in another order. The attributes of :class:`~dlscratch.layers.Layer`
    apply: gradients go into ``grad_out`` when a network provides it, and the
    first layer of a network (``input_grad = False``) skips ``dcol`` and col2im.

    Book aliases: ``.W``, ``.b``, ``.dW``, ``.db``, ``.stride``, ``.pad``.
    """

    row_wise = True  # each row on its own: see Layer.row_wise

    def __init__(self, W, b, stride: int = 1, pad: int = 0) -> None:
        super().__init__()
        if getattr(W, "ndim", None) != 4 or getattr(b, "shape", None) != (W.shape[0],):
            raise ValueError(
                "Convolution needs filters W (FN, C, FH, FW) and biases b (FN,), got "
                f"{getattr(W, 'shape', None)} and {getattr(b, 'shape', None)}"
            )
        self.stride = _positive_int("stride", stride)
        self.pad = _non_negative_int("pad", pad)
        self.params = {"W": W, "b": b}
        self.grads = {"W": None, "b": None}
        self.x = None  # the input, kept for backward (which builds its columns again)

    @property
    def filter_shape(self):
        """(FN, C, FH, FW)."""
        return tuple(self.params["W"].shape)

    def output_shape(self, x_shape):
        """(N, FN, OH, OW) for an input of ``x_shape`` (N, C, H, W); checks the sizes."""
        FN, C, FH, FW = self.filter_shape
        N, _, H, W = x_shape
        OH = conv_output_size(H, FH, self.stride, self.pad, what=f"input height of {x_shape}")
        OW = conv_output_size(W, FW, self.stride, self.pad, what=f"input width of {x_shape}")
        return (N, FN, OH, OW)

    def _columns(self, x, part):
        """im2col of the images ``x[part]``: (n, C*FH*FW, OH*OW).

        With the compiled loops (:mod:`dlscratch.kernels`) the columns are written
        into the calling thread's scratch buffer (:func:`dlscratch.fast.scratch`):
        valid until that thread builds the next group's.
        """
        FN, C, FH, FW = self.filter_shape
        if not kernels.active(x):
            return im2col_batched(x[part], FH, FW, self.stride, self.pad)
        _, _, OH, OW = self.output_shape(x.shape)
        cols = fast.scratch((part.stop - part.start, C * FH * FW, OH * OW), x.dtype)
        return kernels.im2col(x[part], FH, FW, self.stride, self.pad, OH, OW, out=cols)

    def _groups(self, x):
        """The batch split into groups of images (see the class docstring)."""
        FN, C, FH, FW = self.filter_shape
        N, _, OH, OW = self.output_shape(x.shape)
        col_bytes = C * FH * FW * OH * OW * x.dtype.itemsize
        return fast.image_groups(N, col_bytes, get_array_module(x))

    def forward(self, x, *, train: bool = False):
        FN, C, FH, FW = self.filter_shape
        _check_images(x, repr(self), C)
        N, FN, OH, OW = self.output_shape(x.shape)
        xp = get_array_module(x)
        W = self.params["W"].reshape(FN, -1)  # (FN, C*FH*FW)
        out = xp.empty((N, FN, OH * OW), dtype=xp.result_type(x.dtype, W.dtype))
        b = self.params["b"].reshape(FN, 1)

        def group(part):
            col = self._columns(x, part)  # (n, C*FH*FW, OH*OW)
            xp.matmul(W, col, out=out[part])  # (n, FN, OH*OW)
            out[part] += b  # while the group's output is still in the cache

        with one_blas_thread():  # small products: see fast.image_groups
            fast.each_group(self._groups(x), group, parallel=kernels.active(x))
        self.x = x
        return out.reshape(N, FN, OH, OW)

    def backward(self, dout):
        if self.x is None:
            raise RuntimeError("Convolution.backward called before forward")
        xp = get_array_module(dout)
        FN, C, FH, FW = self.filter_shape
        x = self.x
        N = x.shape[0]
        _, _, OH, OW = self.output_shape(x.shape)
        dout = dout.reshape(N, FN, -1)  # (N, FN, OH*OW)
        W_T = fast.transposed(self.params["W"].reshape(FN, -1))  # (C*FH*FW, FN)
        dx = xp.empty(x.shape, dtype=dout.dtype) if self.input_grad else None
        compiled = kernels.active(x)

        def group(part):
            col = self._columns(x, part)  # the group's columns, built again
            if dx is not None:
                dcol = xp.matmul(W_T, dout[part])  # (n, C*FH*FW, OH*OW)
                if compiled:  # col2im as one loop, straight into dx: see dlscratch.kernels
                    kernels.col2im(dcol, FH, FW, self.stride, self.pad, OH, OW, out=dx[part])
                else:
                    dx[part] = col2im_batched(dcol, x[part].shape, FH, FW, self.stride, self.pad)
            # the group's share of dW: one small product per image, summed over the images
            return xp.matmul(dout[part], col.transpose(0, 2, 1)).sum(axis=0)  # (FN, C*FH*FW)

        with one_blas_thread():
            shares = fast.each_group(self._groups(x), group, parallel=compiled)
        dW = self.grad_out.get("W")
        if dW is None:
            dW = xp.empty(self.filter_shape, dtype=dout.dtype)
        dW_flat = dW.reshape(FN, -1)  # (FN, C*FH*FW)
        dW_flat[...] = 0
        for share in shares:  # in the groups' order, whatever thread computed each
            dW_flat += share
        db = self.grad_out.get("b")
        if db is None:
            db = xp.empty(FN, dtype=dout.dtype)
        fast.channel_sums(dout, out=db)  # = dout.sum(axis=(0, 2)), fast: see dlscratch.fast
        self.grads["W"], self.grads["b"] = dW, db
        return dx

    # book aliases
    W = param_alias("W")
    b = param_alias("b")
    dW = grad_alias("W")
    db = grad_alias("b")

    def __repr__(self) -> str:
        FN, C, FH, FW = self.filter_shape
        return f"Convolution({FN}x{C}x{FH}x{FW}, stride={self.stride}, pad={self.pad})"


class Pooling(Layer):
    """Pooling (section 7.5): the maximum (or mean) of each ``pool_h x pool_w`` window.

    x: (N, C, H, W) -> out: (N, C, OH, OW), ``OH = (H + 2*pad - pool_h) / stride + 1``,
    each channel on its own. ``stride`` defaults to the window size (windows
    side by side, the usual 2x2 pool with stride 2 halves H and W).

    The book builds the windows with im2col and takes each row's maximum. The
    same result comes from looping over the ``pool_h * pool_w`` offsets (i, j)
    inside a window: the strided slice ``x[:, :, i::stride, j::stride]`` holds
    the (i, j) entry of every window, so::

        out = max over (i, j) of x[:, :, i::stride, j::stride]     ("max")
        out = mean over (i, j) of the same slices                  ("avg")

    with no copy of the windows. Backward routes each ``dout`` entry to where
    it came from: for max pooling to the window's arg-max (the first maximum,
    as ``argmax`` picks it, remembered in forward), for average pooling to
    every pixel of the window in equal shares ``1 / (pool_h * pool_w)``.
    Overlapping windows (stride < window) add up their contributions.

    Padding: max pooling pads with -inf (padding is never the maximum; the
    book's im2col pads with 0, which matters only for negative inputs), average
    pooling with 0 (padding counts in the mean, as in PyTorch's default).
    """

    row_wise = True  # each row on its own: see Layer.row_wise

    MODES = ("max", "avg")

    def __init__(self, pool_h: int, pool_w: int, stride=None, pad: int = 0, mode="max") -> None:
        super().__init__()
        self.pool_h = _positive_int("pool_h", pool_h)
        self.pool_w = _positive_int("pool_w", pool_w)
        self.stride = self.pool_h if stride is None else _positive_int("stride", stride)
        if stride is None and self.pool_w != self.pool_h:
            raise ValueError(
                f"a {pool_h}x{pool_w} pool needs an explicit stride (the default is the window "
                "size, which differs between height and width)"
            )
        self.pad = _non_negative_int("pad", pad)
        if mode not in self.MODES:
            raise ValueError(f"pooling mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode
        self.arg_max = None  # (N, C, OH, OW): index i*pool_w + j of each window's maximum
        self.x_shape = None

    def output_shape(self, x_shape):
        N, C, H, W = x_shape
        OH = conv_output_size(H, self.pool_h, self.stride, self.pad, what=f"input of {x_shape}")
        OW = conv_output_size(W, self.pool_w, self.stride, self.pad, what=f"input of {x_shape}")
        return (N, C, OH, OW)

    def _slices(self, OH, OW):
        """(k, (slice_h, slice_w)) for each offset k = i*pool_w + j inside the window."""
        y_span, x_span = self.stride * (OH - 1) + 1, self.stride * (OW - 1) + 1
        for i in range(self.pool_h):
            for j in range(self.pool_w):
                yield (
                    i * self.pool_w + j,
                    (
                        slice(i, i + y_span, self.stride),
                        slice(j, j + x_span, self.stride),
                    ),
                )

    def forward(self, x, *, train: bool = False):
        _check_images(x, repr(self))
        N, C, OH, OW = self.output_shape(x.shape)
        xp = get_array_module(x)
        self.x_shape = x.shape
        fill = -np.inf if self.mode == "max" else 0.0
        xpad = _pad_images(x, self.pad, fill)
        out = None
        if self.mode == "avg":
            for _, (sy, sx) in self._slices(OH, OW):
                window_entry = xpad[:, :, sy, sx]
                out = window_entry.copy() if out is None else xp.add(out, window_entry, out=out)
            out /= self.pool_h * self.pool_w
            return out
        index_dtype = np.uint8 if self.pool_h * self.pool_w <= 256 else np.int32
        if kernels.active(x):  # the loop below as one compiled pass: see dlscratch.kernels
            out = np.empty((N, C, OH, OW), dtype=x.dtype)
            arg = self.arg_max = np.empty((N, C, OH, OW), dtype=index_dtype)
            sizes = (self.pool_h, self.pool_w, self.stride)
            fast.each_group(
                fast.split_batch(N), lambda p: kernels.max_pool(xpad[p], *sizes, out[p], arg[p])
            )
            return out
        arg = xp.zeros((N, C, OH, OW), dtype=index_dtype)
        new_arg = xp.empty_like(arg)
        greater = xp.empty(arg.shape, dtype=bool)
        for k, (sy, sx) in self._slices(OH, OW):
            window_entry = xpad[:, :, sy, sx]
            if out is None:
                out = window_entry.copy()
                continue
            xp.greater(window_entry, out, out=greater)  # strictly: ties keep the first maximum
            # arg = k where greater: k exceeds every earlier offset, so a maximum does it
            # (several times faster than a masked assignment).
            xp.multiply(greater, index_dtype(k), out=new_arg)
            xp.maximum(arg, new_arg, out=arg)
            xp.maximum(out, window_entry, out=out)
        self.arg_max = arg
        return out

    def backward(self, dout):
        if self.x_shape is None or (self.mode == "max" and self.arg_max is None):
            raise RuntimeError("Pooling.backward called before forward")
        xp = get_array_module(dout)
        N, C, H, W = self.x_shape
        _, _, OH, OW = dout.shape
        shape = (N, C, H + 2 * self.pad, W + 2 * self.pad)
        compiled = self.mode == "max" and kernels.active(dout)
        # max pooling with windows side by side writes every pixel once below: no zeros needed
        # (the compiled loop writes its own zeros)
        tiled = self.mode == "max" and self.pad == 0 and self.stride == self.pool_h == self.pool_w
        empty = compiled or tiled
        dx = xp.empty(shape, dtype=dout.dtype) if empty else xp.zeros(shape, dtype=dout.dtype)
        if compiled:  # the routing below as one compiled pass: see dlscratch.kernels
            arg, sizes = self.arg_max, (self.pool_h, self.pool_w, self.stride)
            fast.each_group(
                fast.split_batch(N),
                lambda p: kernels.max_pool_backward(dout[p], arg[p], *sizes, dx[p]),
            )
        elif self.mode == "avg":
            share = dout / (self.pool_h * self.pool_w)
            for _, (sy, sx) in self._slices(OH, OW):
                dx[:, :, sy, sx] += share
        elif self.stride >= self.pool_h and self.stride >= self.pool_w:
            # windows do not overlap: each pixel gets at most one entry, written directly
            for k, (sy, sx) in self._slices(OH, OW):
                xp.multiply(dout, self.arg_max == k, out=dx[:, :, sy, sx])
        else:
            routed = xp.empty_like(dout)
            for k, (sy, sx) in self._slices(OH, OW):
                xp.multiply(dout, self.arg_max == k, out=routed)
                dx[:, :, sy, sx] += routed
        if self.pad:
            dx = dx[:, :, self.pad : self.pad + H, self.pad : self.pad + W]
        return dx

    def __repr__(self) -> str:
        return (
            f"Pooling({self.mode} {self.pool_h}x{self.pool_w}, stride={self.stride}, "
            f"pad={self.pad})"
        )


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1*d2*...); backward restores the shape.

    The book instead lets Affine flatten its input (which :class:`Affine` also does);
    Flatten makes the step visible in a network's list of layers.
    """

    row_wise = True  # each row on its own: see Layer.row_wise

    def __init__(self) -> None:
        super().__init__()
        self.x_shape = None

    def forward(self, x, *, train: bool = False):
        if getattr(x, "ndim", 0) < 1:
            shape = getattr(x, "shape", None)
            raise ValueError(f"Flatten needs a batch (N, ...), got shape {shape}")
        self.x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout):
        if self.x_shape is None:
            raise RuntimeError("Flatten.backward called before forward")
        return dout.reshape(self.x_shape)
