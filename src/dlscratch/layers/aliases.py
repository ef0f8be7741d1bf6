"""The book's attribute names on layers: ``layer.W``, ``layer.dW``, ``bn.gamma`` ...

Our layers keep their arrays in the ``params`` and ``grads`` dicts (so a
network can find and pack them); the book's code reads ``affine.W`` and
``conv.dW``. These properties give both: reading returns the very array in the
dict, and assigning writes into it *in place* (shape, real and finite values
checked, as ``net.params[name] = ...`` does), so an array that is a view into a
network's flat buffer stays one.
"""

from __future__ import annotations

from dlscratch.checks import assign_in_place


def param_alias(key: str):
    """A property for ``params[key]``: read the array, or assign values in place."""

    def get(layer):
        return layer.params[key]

    def set_(layer, value):
        assign_in_place(layer.params[key], value, f"{type(layer).__name__}.{key}")

    return property(get, set_, doc=f"``params[{key!r}]`` (assignment copies in place)")


def grad_alias(key: str):
    """A read-only property for ``grads[key]`` (None before the first backward)."""
    return property(lambda layer: layer.grads[key], doc=f"``grads[{key!r}]``")
