"""Data parallelism: one batch split among threads (``--threads 2`` and more).

Most layers treat the rows of a batch independently: row 7's output depends on
row 7's input only, and the loss is the *mean* of one loss per row. The batch
can then be cut into parts, each part run forward and backward on its own
thread, and the parts' gradients added up. That is how a network uses a
second core for the whole step, the memory-bound loops included, instead of
only inside the matrix products.

Each thread runs a :class:`Replica` of the network: its own layer objects (so
that the caches ``forward`` keeps for ``backward`` do not collide) holding the
*same* parameter arrays, and its own gradient buffer laid out like the
network's :attr:`~dlscratch.nets.Network.flat_grads`.

Why the sum of the parts is the batch's gradient: with ``N`` rows split into
parts of ``n_k`` rows, the loss is ``L = (1/N) sum_i l_i = sum_k (n_k/N) L_k``,
``L_k`` the mean over part k. Replica k starts its backward pass with
``dout = n_k/N`` instead of 1, so it computes ``(n_k/N) dL_k/dW``, and the
gradient buffers add up to ``dL/dW``. The numbers equal the one-thread ones
up to the rounding of that final sum (a bias gradient, say, is added up as
two half-sums instead of one).

A network takes this path when :func:`dlscratch.backend.num_threads` is 2 or
more, its class allows it (``parallel_batches``), every layer declares
``row_wise`` (not dropout, whose random masks follow the batch's order, nor
batch norm, whose statistics span the batch), and the batch is large enough.
Prediction splits too, whatever the layers: in inference mode every layer of this
library is row-wise (dropout scales or passes its input, batch norm uses its running
statistics).
"""

from __future__ import annotations

import copy
import math
import weakref

import numpy as np

from dlscratch import fast
from dlscratch.backend import get_array_module, num_threads, one_blas_thread
from dlscratch.nets import channels_last

#: Fewest rows per part: below this the threads' start-up costs more than they save.
MIN_ROWS = 16


def parts_for(net, n_rows: int, *, train: bool) -> list | None:
    """The row slices to split a batch of ``n_rows`` into, or None to run it whole."""
    threads = num_threads()
    if threads < 2 or not getattr(net, "parallel_batches", False) or n_rows < 2 * MIN_ROWS:
        return None
    if fast.in_worker() or net.flat_grads is None or get_array_module(net.flat_grads) is not np:
        return None
    if train and not all(getattr(layer, "row_wise", False) for layer in _all_layers(net)):
        return None
    return fast.split_batch(n_rows, min(threads, n_rows // MIN_ROWS))


def _all_layers(net):
    return [*net.layers.values(), net.last_layer]


class Replica:
    """A network's layers again, sharing its parameter and buffer arrays, with their
    own caches and a gradient buffer of their own."""

    def __init__(self, net) -> None:
        shared = {
            id(a): a
            for layer in _all_layers(net)
            for a in (*layer.params.values(), *layer.buffers.values())
        }
        self.source = _fingerprint(net)
        self.layers = copy.deepcopy(net.layers, shared)  # `shared` arrays stay the same objects
        self.last_layer = copy.deepcopy(net.last_layer)
        xp = get_array_module(net.flat_grads)
        self.flat_grads = xp.zeros_like(net.flat_grads)
        self.grads = []  # (layer of the replica, key, view into self.flat_grads)
        twin = {id(a): b for a, b in zip(net.layers.values(), self.layers.values())}
        for (_, start, shape), (layer, key) in zip(net._grads.layout, net._param_owner.values()):
            view = self.flat_grads[start : start + math.prod(shape)].reshape(shape)
            twin[id(layer)].grad_out[key] = view
            self.grads.append((twin[id(layer)], key, view))

    def matches(self, net) -> bool:
        return self.source == _fingerprint(net)

    def loss_and_gradient(self, x, t, share: float) -> float:
        """Forward and backward on rows ``x`` (their loss times ``share`` is returned);
        :attr:`flat_grads` then holds ``share`` times their mean gradient."""
        for layer in self.layers.values():
            x = layer.forward(x, train=True)
        loss = float(self.last_layer.forward(x, t))
        dout = self.last_layer.backward(share)
        for layer in reversed(self.layers.values()):
            dout = layer.backward(dout)
        for layer, key, view in self.grads:
            if layer.grads[key] is not view:  # a layer that ignored grad_out
                view[...] = layer.grads[key]
        return share * loss

    def predict(self, x):
        return channels_last.forward(self.layers.values(), x)


def _fingerprint(net) -> tuple:
    """What a replica depends on: the layer objects and the very arrays they hold."""
    return tuple(
        (
            id(layer),
            layer.input_grad,
            tuple((k, id(a)) for k, a in layer.params.items()),
            tuple((k, id(a)) for k, a in layer.buffers.items()),
        )
        for layer in net.layers.values()
    ) + (id(net.last_layer), id(net.flat_grads))


_REPLICAS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def replicas(net, count: int) -> list:
    """``count`` replicas of ``net``, kept between calls and rebuilt when its layers or
    arrays change (kept outside the network, so that they are never saved with it)."""
    kept = [r for r in _REPLICAS.get(net, []) if r.matches(net)]
    while len(kept) < count:
        kept.append(Replica(net))
    _REPLICAS[net] = kept
    return kept[:count]


def gradient(net, x, t, parts) -> float:
    """Fill ``net``'s gradient buffer with the batch's gradient, computed in ``parts``
    on threads; returns the batch's mean loss (without weight decay)."""
    n = x.shape[0]
    workers = replicas(net, len(parts))

    def run(job):
        worker, part = job
        return worker.loss_and_gradient(x[part], t[part], (part.stop - part.start) / n)

    with one_blas_thread():  # one BLAS thread per part: the parts are the parallelism
        losses = fast.each_group(list(zip(workers, parts)), run)
    flat = net.flat_grads
    flat[...] = workers[0].flat_grads
    for worker in workers[1:]:
        flat += worker.flat_grads
    for layer, key in net._param_owner.values():  # the layers' own gradients: the sums
        layer.grads[key] = layer.grad_out[key]
    return sum(losses)


def predict(net, x, parts):
    """Scores of the batch ``x``, computed in ``parts`` on threads."""
    jobs = list(zip(replicas(net, len(parts)), parts))
    with one_blas_thread():
        scores = fast.each_group(jobs, lambda job: job[0].predict(x[job[1]]))
    return get_array_module(x).concatenate(scores, axis=0)
