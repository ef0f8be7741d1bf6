"""The networks: the fully connected ones of chapters 4-6 and the registry that builds them.

:mod:`dlscratch.nets.base` holds :class:`Network` (layers, parameters, gradients, state);
:mod:`dlscratch.nets.mlp` the fully connected networks.
"""

from dlscratch.nets.base import FlatDict, Network, ParameterDict
from dlscratch.nets.cnn import DeepConvNet, SimpleConvNet
from dlscratch.nets.mlp import MultiLayerNet, SimpleNet, TwoLayerNet
from dlscratch.registry import Registry

#: Networks a run configuration can name (``dlscratch train --net NAME``): each entry is a
#: function ``(config, rng=, input_shape=, n_classes=) -> Network``.
ARCHITECTURES = Registry("network")


@ARCHITECTURES.register("mlp")
def mlp(cfg, *, rng=None, input_shape=(1, 28, 28), n_classes=10) -> MultiLayerNet:
    """The fully connected network of chapters 5-6 (``hidden``, ``activation``, ...)."""
    import math

    dropout = cfg.dropout_ratio
    return MultiLayerNet(
        math.prod(input_shape),
        list(cfg.hidden_sizes),
        n_classes,
        activation=cfg.activation,
        activation_options=cfg.activation_options,
        weight_init_std=cfg.init,
        weight_decay_lambda=cfg.weight_decay,
        use_batchnorm=cfg.batchnorm,
        use_dropout=dropout > 0,
        dropout_ratio=dropout if dropout > 0 else 0.5,
        dtype=cfg.dtype,
        rng=rng,
        device=cfg.device,
    )


mlp.defaults = {"hidden": (100, 100), "dropout": 0.0}


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
