"""Section 6.1: the update rules on a 2-D bowl and on MNIST."""

from __future__ import annotations

import numpy as np

from dlscratch.experiments.base import (
    experiment,
    plot_loss_curves,
    pyplot,
    train_iterations,
)
from dlscratch.nets import MultiLayerNet
from dlscratch.optim import SGD, AdaGrad, Adam, Momentum, RMSprop


def bowl(x, y):
    """The book's anisotropic ``f(x, y) = x^2 / 20 + y^2``: flat along x, steep along y."""
    return x**2 / 20.0 + y**2


def bowl_grad(x, y):
    """Analytic gradient ``(x / 10, 2 y)``."""
    return x / 10.0, 2.0 * y


def optimizers_2d():
    """The book's learning rates (section 6.1.7), plus RMSprop.

    RMSprop is not in the book's figure. Its first step is ``lr / sqrt(1 - decay)``
    long per coordinate (``10 lr`` with the default decay 0.99), so lr 0.15 makes
    it as long as AdaGrad's first step (1.5); later steps shrink less than
    AdaGrad's because old gradients are forgotten.
    """
    return {
        "SGD": SGD(lr=0.95),
        "Momentum": Momentum(lr=0.1),
        "AdaGrad": AdaGrad(lr=1.5),
        "Adam": Adam(lr=0.3),
        "RMSprop": RMSprop(lr=0.15, decay_rate=0.99),
    }


def descend_2d(optimizer, start=(-7.0, 2.0), steps=30):
    """Run ``optimizer`` on :func:`bowl` from ``start``; returns the path, shape (steps + 1, 2).

    The parameters are the dict ``{'x': array([x]), 'y': array([y])}`` and the
    gradients come from :func:`bowl_grad`: the library's optimizers need nothing more.
    """
    params = {
        "x": np.array([start[0]], dtype=np.float64),
        "y": np.array([start[1]], dtype=np.float64),
    }
    path = [(params["x"][0], params["y"][0])]
    for _ in range(steps):
        gx, gy = bowl_grad(params["x"], params["y"])
        optimizer.update(params, {"x": gx, "y": gy})
        path.append((params["x"][0], params["y"][0]))
    return np.array(path)


def sign_changes(values) -> int:
    """How often consecutive values have opposite signs."""
    s = np.sign(np.asarray(values))
    return int(np.sum(s[1:] * s[:-1] < 0))


@experiment(
    "optimizers-2d",
    title="Update rules on x²/20 + y²",
    section="6.1",
    summary="SGD(0.95), Momentum(0.1), AdaGrad(1.5), Adam(0.3) and RMSprop, 30 steps from (-7, 2) "
    "on contours",
    shows="SGD zig-zags across the steep y direction while crawling along the flat x direction; "
    "Momentum rolls like a ball, and AdaGrad, RMSprop and Adam scale each coordinate's step "
    "and head for the minimum.",
)
def run_optimizers_2d(ctx):
    start, steps = (-7.0, 2.0), 30
    optimizers = optimizers_2d()
    ctx.config.update(
        start=list(start), steps=steps, optimizers={k: repr(v) for k, v in optimizers.items()}
    )
    paths = {name: descend_2d(opt, start, steps) for name, opt in optimizers.items()}
    rows = []
    for name, path in paths.items():
        # The book plots the 30 points *before* each update; the final point is path[-1].
        dist = float(np.hypot(*path[-1]))
        changes = sign_changes(path[:steps, 1])
        ctx.summary[name] = {
            "final": path[-1].tolist(),
            "distance": dist,
            "f": float(bowl(*path[-1])),
            "y_sign_changes": changes,
        }
        rows += [[name, i, x, y] for i, (x, y) in enumerate(path)]
    ctx.write_csv("paths", ["optimizer", "step", "x", "y"], rows)
    s = ctx.summary
    ctx.compare("SGD: sign changes of y in the 30 plotted points", s["SGD"]["y_sign_changes"], 29)
    ctx.compare("AdaGrad: sign changes of y", s["AdaGrad"]["y_sign_changes"], 0)
    book = {
        "SGD": "zig-zags, crawls along x",
        "Momentum": "rolls past and back like a ball",
        "AdaGrad": "nearer than SGD",
        "Adam": "nearer than SGD",
        "RMSprop": "(not in the book)",
    }
    for name in paths:
        ctx.compare(f"{name}: distance from (0, 0) after 30 steps", s[name]["distance"], book[name])
    nearer = [n for n in paths if n != "SGD" and s[n]["distance"] < s["SGD"]["distance"]]
    ctx.finding(
        f"{', '.join(nearer)} end nearer the minimum than SGD "
        f"({s['SGD']['distance']:.2f} away after 30 steps)."
    )

    plt = pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(13, 8))
    xs, ys = np.arange(-10, 10, 0.1), np.arange(-5, 5, 0.1)
    X, Y = np.meshgrid(xs, ys)
    Z = bowl(X, Y)
    Z[Z > 7] = 0  # as the book: flatten the outer contours
    for ax, (name, path) in zip(axes.ravel(), paths.items()):
        ax.contour(X, Y, Z, colors="0.6", linewidths=0.8)
        ax.plot(path[:steps, 0], path[:steps, 1], "o-", color="red", ms=3, lw=1)
        ax.plot(0, 0, "+", color="k", ms=10)
        ax.set_xlim(-10, 10)
        ax.set_ylim(-10, 10)
        ax.set_title(f"{name}  ({optimizers[name]!r})", fontsize=9)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    ax = axes.ravel()[-1]
    for name, path in paths.items():
        ax.semilogy(np.hypot(path[:, 0], path[:, 1]), label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("distance from (0, 0)")
    ax.set_title("distance from the minimum")
    ax.legend(fontsize=8)
    fig.tight_layout()
    ctx.save_figure(fig, "optimizers-2d")


def mnist_optimizers():
    """The book's ``optimizer_compare_mnist.py`` settings (library defaults), plus RMSprop."""
    return {
        "SGD": lambda: SGD(lr=0.01),
        "Momentum": lambda: Momentum(lr=0.01),
        "AdaGrad": lambda: AdaGrad(lr=0.01),
        "Adam": lambda: Adam(lr=0.001),
        "RMSprop": lambda: RMSprop(lr=0.01),
    }


@experiment(
    "optimizers-mnist",
    title="Update rules on MNIST",
    section="6.1.8",
    needs_mnist=True,
    summary="4x100 ReLU nets, batch 128, 2000 iterations: loss curves per optimizer",
    shows="On MNIST plain SGD learns slowest; Momentum, AdaGrad, RMSprop and Adam bring the loss "
    "down much faster.",
)
def run_optimizers_mnist(ctx):
    (x_train, t_train), (x_test, t_test) = ctx.mnist()
    iterations = ctx.pick(150, 2000)
    batch_size = 128
    n_test = ctx.pick(1000, len(x_test))
    x_test, t_test = x_test[:n_test], t_test[:n_test]
    hidden = [100, 100, 100, 100]
    ctx.config.update(
        iterations=iterations,
        batch_size=batch_size,
        hidden=hidden,
        activation="relu",
        weight_init="he",
        test_samples=n_test,
        sampling="random with replacement",
        note="every network starts from the same weights and sees the same batches",
    )
    losses, acc = {}, {}
    for name, make in mnist_optimizers().items():
        net = MultiLayerNet(784, hidden, 10, rng=ctx.rng("init"))
        opt = make()
        log = train_iterations(
            net,
            opt,
            x_train,
            t_train,
            iterations=iterations,
            batch_size=batch_size,
            rng=ctx.rng("batches"),
        )
        losses[name] = np.array(log.losses)
        acc[name] = float(net.accuracy(x_test, t_test))
        ctx.log(f"{name}: final loss {np.mean(losses[name][-100:]):.4f}, test acc {acc[name]:.4f}")
    tail = min(100, iterations)
    for name in losses:
        ctx.summary[name] = {
            "first_loss": float(losses[name][0]),
            f"mean_loss_last_{tail}": float(np.mean(losses[name][-tail:])),
            "test_accuracy": acc[name],
        }
    order = sorted(losses, key=lambda n: np.mean(losses[n][-tail:]))
    for name in losses:
        ctx.compare(
            f"{name}: mean loss, last {tail} iterations",
            ctx.summary[name][f"mean_loss_last_{tail}"],
            "highest (slowest)" if name == "SGD" else "well below SGD",
        )
    ctx.finding("Ranked by final loss: " + " < ".join(order) + ".")
    ctx.write_csv("losses", ["iteration", *losses], zip(range(1, iterations + 1), *losses.values()))

    plot_loss_curves(
        ctx,
        losses,
        markers={"SGD": "o", "Momentum": "x", "AdaGrad": "s", "Adam": "D", "RMSprop": "^"},
        ylim=(0, 1),
        title=f"MNIST, 4x100 ReLU, batch {batch_size}",
        stem="optimizers-mnist",
    )
