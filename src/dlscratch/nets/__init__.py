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

    return MultiLayerNet(
        math.prod(input_shape),
        list(cfg.hidden),
        n_classes,
        activation=cfg.activation,
        activation_options=cfg.activation_options,
        weight_init_std=cfg.init,
        weight_decay_lambda=cfg.weight_decay,
        use_batchnorm=cfg.batchnorm,
        use_dropout=cfg.dropout > 0,
        dropout_ratio=cfg.dropout if cfg.dropout > 0 else 0.5,
        dtype=cfg.dtype,
        rng=rng,
        device=cfg.device,
    )


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
