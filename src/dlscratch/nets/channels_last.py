"""Inference in channels-last order: a network's convolutions without transposes.

The layers keep the book's image layout, ``(N, C, H, W)``: channels first. For
training that is the natural order (backward needs each layer's own arrays).
For inference a convolution stack runs faster with the channels *last*,
``(N, H, W, C)``, and this module runs a network's leading convolution, max
pooling and ReLU layers that way, then hands the rest of the network the usual
``(N, C, H, W)`` array. Why it is faster:

* **im2col copies long runs.** One window row, ``FW`` neighbouring pixels of
  ``C`` channels each, lies in one contiguous run of the input:
  :func:`dlscratch.kernels.im2col_rows` copies ``FW*C`` numbers at a time
  instead of one row of ``OW`` pixels per channel.
* **The product writes the output in place.** With the columns as rows,
  ``(pixels, FH*FW*C) @ (FH*FW*C, FN)`` is already the next layer's
  channels-last input. The product runs in chunks of rows (:func:`chunk_rows`),
  a size OpenBLAS multiplies faster than one tall matrix.
* **Bias and ReLU in one pass**, while the group of rows is still in the cache
  (:func:`dlscratch.kernels.bias_relu`), and max pooling with the channels as
  the inner, vectorised loop (:func:`dlscratch.kernels.max_pool_rows`).

The arithmetic is the same as the layers': each output is the same sum of
``W * x`` products plus the bias, only added up in (FH, FW, C) order instead of
(C, FH, FW), so the scores agree to rounding (``tests/test_channels_last.py``
compares them in float64 and float32, and the book's DeepConvNet weights give
the same test accuracy). It is for predictions only: :meth:`dlscratch.nets.Network.predict`
(and so ``accuracy``) takes it when the compiled loops are on
(:func:`dlscratch.kernels.active`). The layers' own ``forward`` is not called for
the run, so a prediction does not leave what backward needs in them; backward belongs
after ``loss`` or ``gradient``, which run every layer's ``forward`` (as the book's
``gradient`` does: loss, then backward through the layers).

Which layers it takes (:func:`leading_run`): a :class:`~dlscratch.layers.Convolution`
(any size, stride, padding), max :class:`~dlscratch.layers.Pooling` without padding,
and :class:`~dlscratch.layers.Relu`, from the first layer on, when there are two
convolutions or more among them (DeepConvNet's six; not SimpleConvNet's one). The
first other layer (an Affine, Flatten, Dropout, average pooling...) ends the run; it
and every layer after it run as usual.
"""

from __future__ import annotations

import numpy as np

from dlscratch import fast, kernels
from dlscratch.backend import one_blas_thread
from dlscratch.layers import Convolution, Pooling, Relu

#: Multiply-adds per matrix product, at most: a group's columns times the filters runs as a
#: stack of (rows, FH*FW*C) @ (FH*FW*C, FN) products of about this size. OpenBLAS
#: multiplies products of up to 100*100*100 multiply-adds with its small-matrix kernels,
#: which skip the copies into its packed layout; measured, 105-115 GFLOP/s in chunks of
#: this size against 80-95 for larger ones or one tall product (benchmarks/README.md).
PRODUCT_SIZE = 600_000


def chunk_rows(K: int, FN: int) -> int:
    """Rows per product for columns of ``K`` entries and ``FN`` filters: 8 to 128."""
    return max(8, min(128, PRODUCT_SIZE // (K * FN)))


def _takes(layer) -> bool:
    """Whether this module runs ``layer`` channels-last (never a subclass, whose forward
    may compute something else)."""
    if type(layer) is Pooling:
        return layer.mode == "max" and layer.pad == 0
    return type(layer) in (Convolution, Relu)


def leading_run(layers, x) -> int:
    """How many of ``layers``, from the first, :func:`forward` runs channels-last on ``x``.

    The longest leading run of convolutions, max pools without padding and ReLUs,
    when the compiled loops are active for ``x`` (N, C, H, W), the first layer is a
    convolution taking its C channels, and the run holds two convolutions or more;
    otherwise 0. With one convolution the order gains nothing: its input comes
    channels-first and its output must go back, and SimpleConvNet's predictions took
    5-6 ms per 100 images that way against 3.5-4.3 ms through the layers.
    """
    layers = list(layers)
    if not (
        layers
        and isinstance(layers[0], Convolution)
        and kernels.active(x)
        and x.ndim == 4
        and x.shape[1] == layers[0].filter_shape[1]
    ):
        return 0
    count = 0
    while count < len(layers) and _takes(layers[count]):
        count += 1
    convolutions = sum(isinstance(layer, Convolution) for layer in layers[:count])
    return count if convolutions >= 2 else 0


def forward(layers, x):
    """Run ``layers`` (a sequence) on ``x`` in inference mode; returns the last output.

    x: the first layer's input. The first :func:`leading_run` layers run channels-last
    (the module docstring), the others their own ``forward(x, train=False)``.
    """
    layers = list(layers)
    count = leading_run(layers, x)
    if count:
        x = _run(layers[:count], x)
    for layer in layers[count:]:
        x = layer.forward(x, train=False)
    return x


def _run(layers, x):
    """Convolution, pooling and ReLU layers on NCHW images, channels-last inside."""
    shape = x.shape  # (N, C, H, W) of the layer's input, for its size checks
    h = np.ascontiguousarray(x.transpose(0, 2, 3, 1))  # (N, H, W, C)
    i = 0
    while i < len(layers):
        layer = layers[i]
        relu = i + 1 < len(layers) and isinstance(layers[i + 1], Relu)
        if isinstance(layer, Convolution):
            shape = layer.output_shape(shape)  # checks that the windows tile the input
            h = _convolve(layer, h, shape, relu)
        elif isinstance(layer, Pooling):
            shape = layer.output_shape(shape)
            h = _max_pool(layer, h, shape, relu)
        else:  # a ReLU after a ReLU: max(h, 0) in place (h is this module's own array)
            relu = False
            np.maximum(h, 0, out=h)
        i += 2 if relu else 1  # a ReLU right after a layer is done in that layer's pass
    return np.ascontiguousarray(h.transpose(0, 3, 1, 2))  # (N, C, H, W)


def _max_pool(layer: Pooling, h, out_shape, relu: bool):
    """Max pooling (and the ReLU after it) of channels-last ``h`` (N, H, W, C)."""
    N, C, OH, OW = out_shape
    out = np.empty((N, OH, OW, C), dtype=h.dtype)
    sizes = (layer.pool_h, layer.pool_w, layer.stride)
    fast.each_group(
        fast.split_batch(N), lambda p: kernels.max_pool_rows(h[p], *sizes, out[p], relu)
    )
    return out


def _convolve(layer: Convolution, h, out_shape, relu: bool):
    """One convolution (and the ReLU after it) of channels-last ``h`` (N, H, W, C)."""
    FN, C, FH, FW = layer.filter_shape
    N, _, OH, OW = out_shape
    W, b = layer.params["W"], layer.params["b"]
    dtype = np.result_type(h.dtype, W.dtype)
    K = FH * FW * C
    filters = np.ascontiguousarray(W.transpose(2, 3, 1, 0).reshape(K, FN), dtype=dtype)
    bias = np.ascontiguousarray(b, dtype=dtype)
    rows = N * OH * OW
    out = np.empty((rows, FN), dtype=dtype)  # (N, OH, OW, FN): the next layer's input
    chunk = chunk_rows(K, FN)
    per_group = max(1, fast.CACHE_BYTES // (K * out.itemsize) // chunk) * chunk
    groups = [slice(r, min(rows, r + per_group)) for r in range(0, rows, per_group)]
    sizes = (FH, FW, layer.stride, layer.pad, OH, OW)

    def group(part):
        n = part.stop - part.start
        col = kernels.im2col_rows(h, *sizes, part.start, part.stop, fast.scratch((n, K), dtype))
        whole = n - n % chunk
        if whole:  # a stack of (chunk, K) @ (K, FN) products
            chunks = out[part.start : part.start + whole].reshape(-1, chunk, FN)
            np.matmul(col[:whole].reshape(-1, chunk, K), filters, out=chunks)
        if whole < n:
            np.matmul(col[whole:], filters, out=out[part.start + whole : part.stop])
        kernels.bias_relu(out[part], bias, relu)

    with one_blas_thread():  # small products: see fast.image_groups
        fast.each_group(groups, group)
    return out.reshape(N, OH, OW, FN)
