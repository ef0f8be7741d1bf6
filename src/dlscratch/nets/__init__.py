"""The networks: the fully connected ones of chapters 4-6 and the registry that builds them.

:mod:`dlscratch.nets.base` holds :class:`Network` (layers, parameters, gradients, state);
:mod:`dlscratch.nets.mlp` the fully connected networks.
"""

from dlscratch.nets.base import ARCHITECTURES, FlatDict, Network, ParameterDict
from dlscratch.nets.cnn import DeepConvNet, SimpleConvNet
from dlscratch.nets.mlp import MultiLayerNet, SimpleNet, TwoLayerNet


def _image_shape(input_shape) -> tuple:
    """(C, H, W) of one sample: a flat 784 is one 28x28 MNIST channel."""
    import math

    shape = tuple(input_shape)
    if len(shape) == 3:
        return shape
    side = math.isqrt(math.prod(shape))
    if side * side != math.prod(shape):
        raise ValueError(
            f"a convolutional network needs images (C, H, W) or a flat square image; "
            f"got samples of shape {shape}"
        )
    return (1, side, side)


@ARCHITECTURES.register("simple-cnn")
def simple_cnn(cfg, *, rng=None, input_shape=(1, 28, 28), n_classes=10) -> SimpleConvNet:
    """Chapter 7's SimpleConvNet: conv 30x5x5 - ReLU - pool 2x2 - affine - ReLU - affine."""
    return SimpleConvNet(
        input_dim=_image_shape(input_shape),
        hidden_size=cfg.hidden_sizes[0],
        output_size=n_classes,
        weight_init_std=cfg.init,
        weight_decay_lambda=cfg.weight_decay,
        dtype=cfg.dtype,
        rng=rng,
        device=cfg.device,
    )


simple_cnn.defaults = {"hidden": (100,), "dropout": 0.0}
simple_cnn.fixed = {"activation": "relu", "batchnorm": False, "dropout": 0.0}
simple_cnn.hidden_layers = 1


@ARCHITECTURES.register("deep-cnn")
def deep_cnn(cfg, *, rng=None, input_shape=(1, 28, 28), n_classes=10) -> DeepConvNet:
    """Chapter 8's DeepConvNet: six 3x3 convolutions, three pools, affine 50, dropout 0.5."""
    return DeepConvNet(
        input_dim=_image_shape(input_shape),
        hidden_size=cfg.hidden_sizes[0],
        output_size=n_classes,
        dropout_ratio=cfg.dropout_ratio,
        weight_init_std=cfg.init,
        weight_decay_lambda=cfg.weight_decay,
        dtype=cfg.dtype,
        rng=rng,
        device=cfg.device,
    )


deep_cnn.defaults = {"hidden": (50,), "dropout": 0.5}
deep_cnn.fixed = {"activation": "relu", "batchnorm": False}
deep_cnn.hidden_layers = 1


NETWORKS = {
    "MultiLayerNet": MultiLayerNet,
    "TwoLayerNet": TwoLayerNet,
    "SimpleConvNet": SimpleConvNet,
    "DeepConvNet": DeepConvNet,
}


def build_network(config: dict, **overrides) -> Network:
    """Rebuild a network from :meth:`Network.get_config` (weights freshly initialised)."""
    config = dict(config)
    cls_name = config.pop("class", "MultiLayerNet")
    if cls_name not in NETWORKS:
        raise ValueError(f"unknown network class {cls_name!r}: expected one of {list(NETWORKS)}")
    config.update(overrides)
    return NETWORKS[cls_name](**config)


__all__ = [
    "ARCHITECTURES",
    "NETWORKS",
    "DeepConvNet",
    "SimpleConvNet",
    "ParameterDict",
    "FlatDict",
    "MultiLayerNet",
    "Network",
    "SimpleNet",
    "TwoLayerNet",
    "build_network",
]
