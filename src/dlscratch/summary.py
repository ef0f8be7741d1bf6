"""A table of a network's layers, their output shapes and parameter counts (as Keras's
``model.summary()``)::

    >>> from dlscratch.nets import MultiLayerNet
    >>> print(summary(MultiLayerNet(784, [100], 10, rng=0)))
    Layer          Type       Output shape       Params
    ---------------------------------------------------
    input                     (None, 784)             0
    Affine1        Affine     (None, 100)        78,500
    Activation1    Relu       (None, 100)             0
    Affine2        Affine     (None, 10)          1,010
    ---------------------------------------------------
    Total params: 79,510 (310.6 KiB float32)
    Buffers (not trained): 0

The output shapes come from one forward pass (inference mode) of a batch of one zero
sample, so the table holds for any :class:`~dlscratch.nets.Network`, convolutional ones
included; ``None`` stands for the batch size.
"""

from __future__ import annotations

import numpy as np

__all__ = ["summary"]


def summary(net, input_shape=None) -> str:
    """The layers of ``net`` with output shapes and parameter counts, as text.

    Parameters
    ----------
    net : Network
        Anything with ``layers`` (an ordered ``name -> Layer`` mapping) and ``dtype``.
    input_shape : tuple of int, optional
        The shape of one sample, e.g. ``(784,)`` or ``(1, 28, 28)``; by default the
        network's own ``input_dim`` (convolutional networks) or ``(input_size,)``.
    """
    from dlscratch.backend import to_device, to_numpy

    shape = _input_shape(net, input_shape)
    dtype = np.dtype(getattr(net, "dtype", np.float32))
    x = to_device(np.zeros((1, *shape), dtype=dtype), getattr(net, "device", "cpu"))
    rows = [("input", "", _shape_text(x.shape), 0)]
    for name, layer in net.layers.items():
        try:
            x = layer.forward(x, train=False)
        except Exception as exc:  # name the layer, keep the cause
            raise ValueError(
                f"layer {name} ({type(layer).__name__}) cannot take input of shape "
                f"{_shape_text(x.shape)}: {exc}; pass the right input_shape"
            ) from exc
        count = sum(int(p.size) for p in layer.params.values())
        rows.append((name, type(layer).__name__, _shape_text(x.shape), count))
    to_numpy(x)  # the pass is finished (on a GPU too) before anything is reported

    total = sum(r[3] for r in rows)
    buffers = sum(
        int(b.size) for layer in net.layers.values() for b in getattr(layer, "buffers", {}).values()
    )
    header = ("Layer", "Type", "Output shape", "Params")
    texts = [(a, b, c, f"{d:,}") for a, b, c, d in rows]
    widths = [max(len(r[i]) for r in [header, *texts]) for i in range(4)]
    widths = [max(w, m) for w, m in zip(widths, (12, 8, 14, 8))]

    def line(r) -> str:
        return (
            f"{r[0]:<{widths[0]}}   {r[1]:<{widths[1]}}   {r[2]:<{widths[2]}}   {r[3]:>{widths[3]}}"
        )

    rule = "-" * len(line(header))
    size = _bytes_text(total * dtype.itemsize)
    lines = [line(header), rule, *map(line, texts), rule]
    lines.append(f"Total params: {total:,} ({size} {dtype.name})")
    lines.append(f"Buffers (not trained): {buffers:,}")
    return "\n".join(lines)


def _input_shape(net, input_shape) -> tuple:
    if input_shape is None:
        input_shape = getattr(net, "input_dim", None)
    if input_shape is None and getattr(net, "input_size", None) is not None:
        input_shape = (net.input_size,)
    if input_shape is None:
        raise ValueError(
            f"{type(net).__name__} does not say what one sample's shape is; pass "
            "input_shape, e.g. summary(net, input_shape=(784,))"
        )
    if isinstance(input_shape, int):
        input_shape = (input_shape,)
    shape = tuple(input_shape)
    if not shape or not all(isinstance(s, (int, np.integer)) and s >= 1 for s in shape):
        raise ValueError(
            f"input_shape must be the shape of one sample, positive ints such as (1, 28, 28), "
            f"got {input_shape!r}"
        )
    return tuple(int(s) for s in shape)


def _shape_text(shape) -> str:
    return "(" + ", ".join(["None", *map(str, shape[1:])]) + ")"


def _bytes_text(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
