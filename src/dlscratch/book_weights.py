"""The book's trained weights, recognised by their arrays and loaded into our networks.

The book ships three pickles of NumPy arrays (read here only through the
restricted unpickler :func:`dlscratch.io.read_book_pickle`; nothing in a file
can run code):

=========================== ================================================ ===============
file                        network                                          arrays
=========================== ================================================ ===============
``sample_weight.pkl``       chapter 3's 784-50-100-10 sigmoid network        W1..W3, b1..b3
``params.pkl`` (chapter 7)  :class:`~dlscratch.nets.SimpleConvNet`           W1 (30,1,5,5)..
``deep_convnet_params.pkl`` :class:`~dlscratch.nets.DeepConvNet` (chapter 8) W1..W8, b1..b8
=========================== ================================================ ===============

:func:`identify_book_weights` tells them apart by the names and shapes of the
arrays (not by the file name), and :func:`load_book_network` returns the built
network. The book's Dropout is not inverted (it multiplies by ``1 - ratio``
at test time), so the DeepConvNet is built with ``dropout_scale="book"``: its
test-time outputs, and therefore its accuracy, equal the book code's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlscratch.io import (  # noqa: F401  (the file names are re-exported)
    BOOK_SHAPES,
    DEEP_CONVNET_FILE,
    SIMPLE_CONVNET_FILE,
    read_book_pickle,
)

#: Recognised kinds, in the order they are tried.
KINDS = ("mlp", "simple_convnet", "deep_convnet")



def _simple_convnet_shapes(W1_shape) -> dict | None:
    """The SimpleConvNet shapes implied by a filter bank W1 (FN, C, FS, FS) on 28x28 images."""
    if len(W1_shape) != 4 or W1_shape[2] != W1_shape[3]:
        return None
    FN, C, FS, _ = W1_shape
    conv = 28 - FS + 1
    if conv < 2 or conv % 2:
        return None
    return {"W1": tuple(W1_shape), "b1": (FN,), "W2": (FN * (conv // 2) ** 2, None)}


def _deep_convnet_shapes(hidden: int = 50, output: int = 10) -> dict:
    from dlscratch.nets import DeepConvNet

    net = DeepConvNet(hidden_size=hidden, output_size=output, dtype=np.float64, rng=0)
    return {name: tuple(p.shape) for name, p in net.params.items()}


def identify_book_weights(arrays: dict) -> str:
    """Which network the arrays belong to: 'mlp', 'simple_convnet' or 'deep_convnet'.

    Decided by the names and shapes of the arrays. Raises ValueError, listing
    the names and shapes found and what each network expects, when none fits.
    """
    shapes = {str(k): tuple(getattr(v, "shape", ())) for k, v in arrays.items()}
    if shapes == {k: tuple(v) for k, v in BOOK_SHAPES.items()}:
        return "mlp"
    names = set(shapes)
    if names == {"W1", "b1", "W2", "b2", "W3", "b3"}:
        implied = _simple_convnet_shapes(shapes["W1"])
        W2, W3 = shapes["W2"], shapes["W3"]
        if (
            implied is not None
            and shapes["b1"] == implied["b1"]
            and len(W2) == 2
            and W2[0] == implied["W2"][0]
            and shapes["b2"] == (W2[1],)
            and len(W3) == 2
            and W3[0] == W2[1]
            and shapes["b3"] == (W3[1],)
        ):
            return "simple_convnet"
    if names == {f"{p}{i}" for p in "Wb" for i in range(1, 9)}:
        W8 = shapes["W8"]
        if len(W8) == 2 and shapes == _deep_convnet_shapes(W8[0], W8[1]):
            return "deep_convnet"
    found = ", ".join(f"{k} {v}" for k, v in sorted(shapes.items()))
    raise ValueError(
        f"these arrays match none of the book's networks: found {found or 'nothing'}. "
        "Expected the 784-50-100-10 network (W1 (784, 50) ... b3 (10,)), SimpleConvNet "
        "(W1 (FN, 1, FS, FS), W2 (FN*((28-FS+1)/2)**2, H), W3 (H, 10)) or DeepConvNet "
        "(W1..W8, b1..b8 of chapter 8's shapes)"
    )


def _check_arrays(path, arrays: dict) -> None:
    for name, a in arrays.items():
        if not isinstance(a, np.ndarray) or not np.issubdtype(a.dtype, np.floating):
            found = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
            raise ValueError(f"{path}: {name!r} must be a floating-point array, found {found}")
        if not np.isfinite(a).all():
            raise ValueError(f"{path}: parameter {name!r} contains NaN or infinity")


def network_for(kind: str, arrays: dict, *, dtype=None, device: str = "cpu"):
    """A network of ``kind`` holding ``arrays`` (checked by :func:`identify_book_weights`).

    ``dtype`` defaults to the arrays' own (float64 for the book's CNN files, so
    that the outputs equal the book code's to rounding).
    """
    from dlscratch.nets import DeepConvNet, MultiLayerNet, SimpleConvNet

    if dtype is None:
        dtype = np.result_type(*arrays.values())
    if kind == "mlp":
        net = MultiLayerNet(
            784,
            [50, 100],
            10,
            activation="sigmoid",
            weight_init_std=0.01,
            dtype=dtype,
            rng=0,
            device=device,
        )
    elif kind == "simple_convnet":
        FN, C, FS, _ = arrays["W1"].shape
        net = SimpleConvNet(
            input_dim=(C, 28, 28),
            conv_param={"filter_num": FN, "filter_size": FS, "pad": 0, "stride": 1},
            hidden_size=arrays["W2"].shape[1],
            output_size=arrays["W3"].shape[1],
            dtype=dtype,
            rng=0,
            device=device,
        )
    elif kind == "deep_convnet":
        hidden, output = arrays["W8"].shape
        net = DeepConvNet(
            hidden_size=hidden,
            output_size=output,
            dropout_scale="book",
            dtype=dtype,
            rng=0,
            device=device,
        )
    else:
        raise ValueError(f"unknown kind {kind!r}: expected one of {KINDS}")
    net.load_state_dict(arrays)
    return net


def load_book_network(path, *, dtype=None, device: str = "cpu"):
    """Read one of the book's weight pickles safely and return the network it belongs to.

    Parameters
    ----------
    path : str or Path
        ``sample_weight.pkl``, the chapter 7 ``params.pkl`` (our
        ``simple_convnet_params.pkl``) or ``deep_convnet_params.pkl``.
    dtype : float32 | float64, optional
        Default: the arrays' dtype (float32 for ``sample_weight.pkl``, float64
        for the CNN files).
    device : 'cpu' or 'cuda'

    Returns
    -------
    Network
        MultiLayerNet (784-50-100-10, sigmoid), SimpleConvNet, or DeepConvNet
        with the book's (non-inverted) dropout.
    """
    path = Path(path)
    arrays = read_book_pickle(path)
    try:
        kind = identify_book_weights(arrays)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    _check_arrays(path, arrays)
    return network_for(kind, arrays, dtype=dtype, device=device)
