"""The networks of the book, and the registry that builds them from a run configuration.

:mod:`dlscratch.nets.base` holds :class:`Network` (layers, parameters, gradients, state)
and :data:`ARCHITECTURES`; :mod:`dlscratch.nets.mlp` the fully connected networks,
:mod:`dlscratch.nets.cnn` the convolutional ones of chapters 7-8. Each module registers
its networks for the run configuration (``dlscratch train --net NAME``).
"""

# The MLP registers first, so that the default network is listed first.
# isort: off
from dlscratch.nets.base import ARCHITECTURES, FlatDict, Network, ParameterDict
from dlscratch.nets.mlp import MultiLayerNet, SimpleNet, TwoLayerNet
from dlscratch.nets.cnn import DeepConvNet, SimpleConvNet

# isort: on

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
