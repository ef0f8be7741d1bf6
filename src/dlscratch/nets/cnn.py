"""The convolutional networks of chapters 7 and 8: SimpleConvNet and DeepConvNet.

Both take images as (N, C, H, W) or flattened as (N, C*H*W) (MNIST as the
loaders return it, (N, 784)), and name their parameters as the book does:
``W1``/``b1`` for the first layer with weights, ``W2``/``b2`` for the next, and so on.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from dlscratch.backend import to_device
from dlscratch.init import init_std
from dlscratch.layers import Affine, Convolution, Dropout, Pooling, Relu
from dlscratch.layers.conv import conv_output_size
from dlscratch.nets.base import ARCHITECTURES, Network

#: The six 3x3 convolutions of the book's DeepConvNet (chapter 8); the fourth pads by 2.
DEEP_CONV_PARAMS = (
    {"filter_num": 16, "filter_size": 3, "pad": 1, "stride": 1},
    {"filter_num": 16, "filter_size": 3, "pad": 1, "stride": 1},
    {"filter_num": 32, "filter_size": 3, "pad": 1, "stride": 1},
    {"filter_num": 32, "filter_size": 3, "pad": 2, "stride": 1},
    {"filter_num": 64, "filter_size": 3, "pad": 1, "stride": 1},
    {"filter_num": 64, "filter_size": 3, "pad": 1, "stride": 1},
)

_CONV_KEYS = ("filter_num", "filter_size", "pad", "stride")



def _check_input_dim(input_dim) -> tuple:
    dims = tuple(input_dim) if isinstance(input_dim, (tuple, list)) else None
    if (
        dims is None
        or len(dims) != 3
        or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in dims)
        or min(dims) < 1
    ):
        raise ValueError(
            f"input_dim must be (channels, height, width) of positive integers, "
            f"e.g. (1, 28, 28); got {input_dim!r}"
        )
    return tuple(int(d) for d in dims)


def _check_conv_param(conv_param, where: str = "conv_param") -> dict:
    if not isinstance(conv_param, dict):
        raise ValueError(f"{where} must be a dict with keys {_CONV_KEYS}, got {conv_param!r}")
    unknown = [k for k in conv_param if k not in _CONV_KEYS]
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid keys are {list(_CONV_KEYS)}")
    out = {"pad": 0, "stride": 1, **conv_param}
    for key in _CONV_KEYS:
        if key not in out:
            raise ValueError(f"{where} needs {key!r} (keys: {list(_CONV_KEYS)})")
        v = out[key]
        low = 0 if key == "pad" else 1
        if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < low:
            raise ValueError(f"{where}[{key!r}] must be an integer >= {low}, got {v!r}")
        out[key] = int(v)
    return {k: out[k] for k in _CONV_KEYS}


def _check_size(name: str, value) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class ConvNetBase(Network):
    """What both convolutional networks share: image input and the book's layer names."""

    input_dim: tuple = (1, 28, 28)
    #: im2col columns grow with the batch (DeepConvNet: 0.45 GB for 1000 images), so
    #: evaluation runs 100 images at a time.
    eval_batch_size = 100
    #: With ``--threads 2`` a batch is split between two replicas of the network, one per
    #: core (:mod:`dlscratch.nets.parallel`): a SimpleConvNet step then takes about
    #: 0.7 of the one-thread time (benchmarks/README.md).
    parallel_batches = True
    #: Where the book has "relu - pool", pool first (False: the book's order). Max
    #: pooling and ReLU commute: ``max(relu(a), relu(b)) == relu(max(a, b))`` exactly,
    #: since both only pick numbers; the gradients agree too, as each window's gradient
    #: goes to its first maximum, and only when that maximum is positive (a test
    #: compares both orders). Pooling first, the ReLU's forward and backward touch a
    #: quarter of the numbers (benchmarks/README.md).
    pool_before_relu: bool = True
    # Every ReLU here takes the fresh output of a convolution, pooling or affine layer,
    # which that layer does not keep: the ReLUs work in place (Relu(inplace=True)).

    def _relu_and_pool(self, relu_name: str, pool_name: str):
        """Add the ReLU and the 2x2 max pool, in the order :attr:`pool_before_relu` says."""
        pair = [(relu_name, Relu(inplace=True)), (pool_name, Pooling(2, 2, stride=2))]
        for name, layer in reversed(pair) if self.pool_before_relu else pair:
            self.layers[name] = layer

    def _as_input(self, x):
        """x: (N, C*H*W) or (N, C, H, W) -> (N, C, H, W), validated and cast to the dtype."""
        x = super()._as_input(x)  # rank >= 2, C*H*W features, dtype, finite
        if x.shape[1:] == self.input_dim:
            return x
        if x.ndim == 4:
            raise ValueError(
                f"this network expects images of shape (N, {', '.join(map(str, self.input_dim))}),"
                f" got {x.shape}"
            )
        return x.reshape(x.shape[0], *self.input_dim)

    def _shape_input(self, x):
        """Flat rows (N, C*H*W) as images (N, C, H, W): what the Trainer's fast path feeds."""
        if x.ndim == 2:
            return x.reshape(x.shape[0], *self.input_dim)
        return x

    def _arr(self, a):
        return to_device(np.asarray(a, dtype=self.dtype), self.device)

    def describe(self) -> str:
        """The layers in order, e.g. "Conv 30x5x5 - Relu - Pool 2x2 - Affine 4320->100 - ..."."""
        parts = []
        for layer in self.layers.values():
            if isinstance(layer, Convolution):
                FN, C, FH, FW = layer.filter_shape
                pad = f" pad {layer.pad}" if layer.pad else ""
                stride = f" stride {layer.stride}" if layer.stride != 1 else ""
                parts.append(f"Conv {FN}x{FH}x{FW}{pad}{stride}")
            elif isinstance(layer, Pooling):
                parts.append(f"Pool {layer.pool_h}x{layer.pool_w}")
            elif isinstance(layer, Affine):
                parts.append(f"Affine {layer.in_features}->{layer.out_features}")
            elif isinstance(layer, Dropout):
                parts.append(f"Dropout {layer.ratio:g}")
            else:
                parts.append(type(layer).__name__)
        return " - ".join(parts)


class SimpleConvNet(ConvNetBase):
    """Chapter 7's network: conv - ReLU - pool - affine - ReLU - affine - softmax.

    ::

        x (N, C, H, W)
        Conv1   W1 (FN, C, FS, FS), b1 (FN,)    -> (N, FN, OH, OW)
        Pool1 (2x2, stride 2), Relu1            -> (N, FN, OH/2, OW/2)
        Affine2 W2 (FN*OH/2*OW/2, hidden), b2   -> (N, hidden)
        Relu2
        Affine3 W3 (hidden, output), b3         -> (N, output) scores
        SoftmaxWithLoss

    With the defaults (MNIST, 30 filters of 5x5): OH = OW = 24, and W2 is (4320, 100).

    The book applies the ReLU and then the pool; here the pool comes first
    (:attr:`pool_before_relu`). Max pooling and ReLU commute exactly, outputs
    and gradients alike, and the ReLU then sees a quarter of the numbers.

    Parameters
    ----------
    input_dim : (C, H, W)
    conv_param : dict with 'filter_num', 'filter_size', 'pad', 'stride'
    hidden_size, output_size : int
    weight_init_std : float | 'he' | 'xavier'
        The book's 0.01 (a fixed standard deviation for every layer); 'he' or
        'xavier' scale each layer by its fan-in (C*FS*FS for the convolution).
    weight_decay_lambda : float
        L2 penalty on W1, W2, W3.
    dtype, rng, device : as for :class:`~dlscratch.nets.MultiLayerNet`.
    """

    def __init__(
        self,
        input_dim=(1, 28, 28),
        conv_param=None,
        hidden_size: int = 100,
        output_size: int = 10,
        weight_init_std=0.01,
        weight_decay_lambda: float = 0.0,
        dtype=np.float32,
        rng=None,
        device: str = "cpu",
    ) -> None:
        super().__init__(dtype=dtype, weight_decay_lambda=weight_decay_lambda)
        if conv_param is None:
            conv_param = {"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1}
        self.input_dim = _check_input_dim(input_dim)
        self.conv_param = _check_conv_param(conv_param)
        self.hidden_size = _check_size("hidden_size", hidden_size)
        self.output_size = _check_size("output_size", output_size)
        init_std(weight_init_std, 1)  # validates early
        self.weight_init_std = weight_init_std
        self.device = device
        rng = np.random.default_rng(rng)

        C, H, W = self.input_dim
        FN, FS = self.conv_param["filter_num"], self.conv_param["filter_size"]
        pad, stride = self.conv_param["pad"], self.conv_param["stride"]
        conv_h = conv_output_size(H, FS, stride, pad, what=f"input height of {self.input_dim}")
        conv_w = conv_output_size(W, FS, stride, pad, what=f"input width of {self.input_dim}")
        pool_h = conv_output_size(conv_h, 2, 2, what=f"convolution output ({conv_h}x{conv_w})")
        pool_w = conv_output_size(conv_w, 2, 2, what=f"convolution output ({conv_h}x{conv_w})")
        pool_size = FN * pool_h * pool_w
        self.input_size = C * H * W

        def weight(shape, fan_in):
            std = init_std(weight_init_std, fan_in)
            return self._arr(std * rng.standard_normal(shape))

        zeros = self._arr
        self.layers["Conv1"] = Convolution(
            weight((FN, C, FS, FS), C * FS * FS), zeros(np.zeros(FN)), stride, pad
        )
        self._relu_and_pool("Relu1", "Pool1")
        self.layers["Affine2"] = Affine(
            weight((pool_size, self.hidden_size), pool_size), zeros(np.zeros(self.hidden_size))
        )
        self.layers["Relu2"] = Relu(inplace=True)
        self.layers["Affine3"] = Affine(
            weight((self.hidden_size, self.output_size), self.hidden_size),
            zeros(np.zeros(self.output_size)),
        )
        self._collect_params()

    def get_config(self) -> dict:
        """Constructor arguments that rebuild this architecture (see ``build_network``)."""
        return {
            "class": "SimpleConvNet",
            "input_dim": list(self.input_dim),
            "conv_param": dict(self.conv_param),
            "hidden_size": self.hidden_size,
            "output_size": self.output_size,
            "weight_init_std": self.weight_init_std,
            "weight_decay_lambda": self.weight_decay_lambda,
            "dtype": self.dtype.name,
        }


class DeepConvNet(ConvNetBase):
    """Chapter 8's deep network (99.3%+ on MNIST).

    ::

        conv - relu - conv - relu - pool -
        conv - relu - conv - relu - pool -
        conv - relu - conv - relu - pool -
        affine - relu - dropout - affine - dropout - softmax

    (each "relu - pool" is computed as "pool - relu", which is the same
    function, with a quarter of the work: :attr:`pool_before_relu`).

    Six 3x3 convolutions of 16, 16, 32, 32, 64, 64 filters (pad 1, the fourth
    pad 2, as in the book's code), three 2x2 max pools, then affine layers of
    ``hidden_size`` (50) and ``output_size`` units. For MNIST the image goes
    28 -> pool 14 -> conv4 16 -> pool 8 -> pool 4, so W7 is (64*4*4, 50).
    Parameters ``W1``...``W6`` (convolutions), ``W7``, ``W8`` (affine), and
    biases ``b1``...``b8``, He-initialised (``std = sqrt(2 / fan_in)``, fan-in
    ``C*3*3`` for a convolution).

    Parameters
    ----------
    input_dim : (C, H, W)
    conv_params : six dicts ('filter_num', 'filter_size', 'pad', 'stride'), default the book's
    hidden_size, output_size : int
    dropout_ratio : float
        Dropout after the hidden affine layer and after the last one (0.5).
    dropout_scale : 'inverted' | 'book'
        'inverted' (default) scales in training; 'book' is the book's form,
        which scales by ``1 - ratio`` at test time (needed to reproduce the
        book's trained weights; see :class:`~dlscratch.layers.Dropout`).
    weight_init_std : 'he' (default) | 'xavier' | float
    weight_decay_lambda, dtype, rng, device : as for the other networks.
    """

    def __init__(
        self,
        input_dim=(1, 28, 28),
        conv_params=None,
        hidden_size: int = 50,
        output_size: int = 10,
        dropout_ratio: float = 0.5,
        dropout_scale: str = "inverted",
        weight_init_std="he",
        weight_decay_lambda: float = 0.0,
        dtype=np.float32,
        rng=None,
        device: str = "cpu",
    ) -> None:
        super().__init__(dtype=dtype, weight_decay_lambda=weight_decay_lambda)
        if conv_params is None:
            conv_params = DEEP_CONV_PARAMS
        if not isinstance(conv_params, (list, tuple)) or len(conv_params) != 6:
            raise ValueError(f"conv_params must be a list of six dicts, got {conv_params!r}")
        self.conv_params = [
            _check_conv_param(p, f"conv_params[{i}]") for i, p in enumerate(conv_params)
        ]
        self.input_dim = _check_input_dim(input_dim)
        self.hidden_size = _check_size("hidden_size", hidden_size)
        self.output_size = _check_size("output_size", output_size)
        if not isinstance(dropout_ratio, numbers.Real) or not 0 <= dropout_ratio < 1:
            raise ValueError(f"dropout_ratio must be in [0, 1), got {dropout_ratio!r}")
        if dropout_scale not in Dropout.SCALES:
            raise ValueError(
                f"dropout_scale must be one of {Dropout.SCALES}, got {dropout_scale!r}"
            )
        init_std(weight_init_std, 1)
        self.dropout_ratio = float(dropout_ratio)
        self.dropout_scale = dropout_scale
        self.weight_init_std = weight_init_std
        self.device = device
        rng = np.random.default_rng(rng)

        C, H, W = self.input_dim
        self.input_size = C * H * W
        shape = self.input_dim
        for i, p in enumerate(self.conv_params, start=1):
            FN, FS = p["filter_num"], p["filter_size"]
            fan_in = shape[0] * FS * FS
            std = init_std(weight_init_std, fan_in)
            Wc = self._arr(std * rng.standard_normal((FN, shape[0], FS, FS)))
            conv = Convolution(Wc, self._arr(np.zeros(FN)), p["stride"], p["pad"])
            self.layers[f"Conv{i}"] = conv
            shape = conv.output_shape((1, *shape))[1:]
            if i % 2 == 0:
                self._relu_and_pool(f"Relu{i}", f"Pool{i // 2}")
                shape = self.layers[f"Pool{i // 2}"].output_shape((1, *shape))[1:]
            else:
                self.layers[f"Relu{i}"] = Relu(inplace=True)
        flat = int(np.prod(shape))
        sizes = [(flat, self.hidden_size), (self.hidden_size, self.output_size)]
        for i, (fan_in, fan_out) in enumerate(sizes, start=7):
            std = init_std(weight_init_std, fan_in)
            Wa = self._arr(std * rng.standard_normal((fan_in, fan_out)))
            self.layers[f"Affine{i}"] = Affine(Wa, self._arr(np.zeros(fan_out)))
            if i == 7:
                self.layers["Relu7"] = Relu(inplace=True)
            self.layers[f"Dropout{i - 6}"] = Dropout(
                self.dropout_ratio, rng=rng.spawn(1)[0], scale=dropout_scale
            )
        self._collect_params()

    def get_config(self) -> dict:
        """Constructor arguments that rebuild this architecture (see ``build_network``)."""
        return {
            "class": "DeepConvNet",
            "input_dim": list(self.input_dim),
            "conv_params": [dict(p) for p in self.conv_params],
            "hidden_size": self.hidden_size,
            "output_size": self.output_size,
            "dropout_ratio": self.dropout_ratio,
            "dropout_scale": self.dropout_scale,
            "weight_init_std": self.weight_init_std,
            "weight_decay_lambda": self.weight_decay_lambda,
            "dtype": self.dtype.name,
        }


# -- the registered networks: `dlscratch train --net simple-cnn|deep-cnn` --------------------


def _image_shape(input_shape) -> tuple:
    """(C, H, W) of one sample: a flat 784 is one 28x28 MNIST channel."""
    shape = tuple(input_shape)
    if len(shape) == 3:
        return shape
    size = math.prod(shape)
    side = math.isqrt(size)
    if side * side != size:
        raise ValueError(
            f"a convolutional network needs images (C, H, W) or a flat square image; "
            f"got samples of shape {shape}"
        )
    return (1, side, side)


def _from_config(cls, cfg, rng, input_shape, n_classes, **extra):
    return cls(
        input_dim=_image_shape(input_shape),
        hidden_size=cfg.hidden_sizes[0],
        output_size=n_classes,
        weight_init_std=cfg.weight_init,
        weight_decay_lambda=cfg.weight_decay,
        dtype=cfg.dtype,
        rng=rng,
        device=cfg.device,
        **extra,
    )


@ARCHITECTURES.register("simple-cnn")
def simple_cnn(cfg, *, rng=None, input_shape=(1, 28, 28), n_classes=10) -> SimpleConvNet:
    """Chapter 7's SimpleConvNet: conv 30x5x5 - ReLU - pool 2x2 - affine - ReLU - affine."""
    return _from_config(SimpleConvNet, cfg, rng, input_shape, n_classes)


simple_cnn.defaults = {"hidden": (100,), "dropout": 0.0, "init": 0.01}  # the book's
simple_cnn.fixed = {"activation": "relu", "batchnorm": False, "dropout": 0.0}
simple_cnn.hidden_layers = 1


@ARCHITECTURES.register("deep-cnn")
def deep_cnn(cfg, *, rng=None, input_shape=(1, 28, 28), n_classes=10) -> DeepConvNet:
    """Chapter 8's DeepConvNet: six 3x3 convolutions, three pools, affine 50, dropout 0.5."""
    return _from_config(DeepConvNet, cfg, rng, input_shape, n_classes,
                        dropout_ratio=cfg.dropout_ratio)


deep_cnn.defaults = {"hidden": (50,), "dropout": 0.5, "init": "he"}
deep_cnn.fixed = {"activation": "relu", "batchnorm": False}
deep_cnn.hidden_layers = 1
