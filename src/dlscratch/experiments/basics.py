"""Chapters 3-4 without data: activation curves, numerical derivatives, gradients, descent."""

from __future__ import annotations

import numpy as np

from dlscratch import functions as F
from dlscratch.experiments.base import experiment, pyplot
from dlscratch.gradient import gradient_descent, numerical_diff, numerical_gradient


def function_1(x):
    """The book's ``0.01 x^2 + 0.1 x`` (section 4.3.2); derivative ``0.02 x + 0.1``."""
    return 0.01 * x**2 + 0.1 * x


def function_2(x):
    """The book's ``x0^2 + x1^2`` (section 4.3.3); gradient ``(2 x0, 2 x1)``."""
    return float(np.sum(x**2))


@experiment(
    "activations",
    title="Activation functions",
    section="3.2",
    summary="step, sigmoid, ReLU and tanh curves; step vs sigmoid",
    shows="The step function jumps from 0 to 1 while the sigmoid bends smoothly through 0.5; "
    "ReLU passes positive inputs unchanged and tanh is the sigmoid's zero-centred cousin.",
)
def run_activations(ctx):
    x = np.arange(-5.0, 5.0, 0.1)
    curves = {
        "step": F.step_function(x),
        "sigmoid": F.sigmoid(x),
        "relu": F.relu(x),
        "tanh": F.tanh(x),
    }
    ctx.config.update(x_range=[-5.0, 5.0], x_step=0.1)
    ctx.write_csv("activations", ["x", *curves], zip(x, *curves.values()))

    probe = np.array([-1.0, 1.0, 2.0])
    ctx.compare(
        "sigmoid([-1, 1, 2])", F.sigmoid(probe), [0.26894142, 0.73105858, 0.88079708], digits=8
    )
    ctx.compare("step([-1, 1, 2])", F.step_function(probe).astype(int), [0, 1, 1])
    ctx.compare("relu([-1, 1, 2])", F.relu(probe), [0.0, 1.0, 2.0])
    ctx.summary.update(
        sigmoid_at_0=float(F.sigmoid(np.array(0.0))),
        tanh_at_0=float(F.tanh(np.array(0.0))),
        max_abs_sigmoid_minus_tanh_identity=float(
            np.max(np.abs(F.tanh(x) - (2 * F.sigmoid(2 * x) - 1)))
        ),
    )
    ctx.finding(
        "tanh(x) = 2 sigmoid(2x) - 1 holds to "
        f"{ctx.summary['max_abs_sigmoid_minus_tanh_identity']:.1e} on the grid."
    )

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ax = axes[0]
    ax.plot(x, curves["sigmoid"], label="sigmoid")
    ax.plot(x, curves["step"], "k--", label="step")
    ax.set_ylim(-0.1, 1.1)
    ax.set_title("step vs sigmoid")
    ax = axes[1]
    ax.plot(x, curves["relu"], color="tab:green")
    ax.set_ylim(-1.0, 5.5)
    ax.set_title("ReLU")
    axes[0].set_ylabel("h(x)")
    ax = axes[2]
    ax.plot(x, curves["tanh"], color="tab:red", label="tanh")
    ax.plot(x, curves["sigmoid"], color="tab:blue", alpha=0.5, label="sigmoid")
    ax.set_ylim(-1.1, 1.1)
    ax.set_title("tanh vs sigmoid")
    for ax in axes:
        ax.axhline(0, color="0.8", lw=0.8, zorder=0)
        ax.axvline(0, color="0.8", lw=0.8, zorder=0)
        ax.set_xlabel("x")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left")
    fig.tight_layout()
    ctx.save_figure(fig, "activations")


@experiment(
    "numerical-diff",
    title="Numerical differentiation",
    section="4.3",
    summary="0.01x^2+0.1x with its tangent lines at 5 and 10; error of forward vs central "
    "differences",
    shows="The central difference with h = 1e-4 recovers the slopes 0.2 and 0.3 of the tangents; "
    "too small an h drowns in rounding error, and the central difference beats the forward one.",
)
def run_numerical_diff(ctx):
    x = np.arange(0.0, 20.0, 0.1)
    y = function_1(x)
    slopes = {a: numerical_diff(function_1, a) for a in (5, 10)}
    ctx.config.update(h=1e-4, points=[5, 10])
    ctx.compare("numerical_diff(f, 5)", slopes[5], 0.1999999999990898, "exact: 0.2", digits=16)
    ctx.compare("numerical_diff(f, 10)", slopes[10], 0.2999999999986347, "exact: 0.3", digits=16)
    ctx.summary.update(slope_at_5=slopes[5], slope_at_10=slopes[10])

    # Error of the forward and central differences against the exact 0.3 at x = 10.
    hs = np.logspace(-16, 0, 65)
    forward = np.array([abs((function_1(10 + h) - function_1(10)) / h - 0.3) for h in hs])
    central = np.array([abs(numerical_diff(function_1, 10, h=h) - 0.3) for h in hs])
    best = hs[int(np.argmin(central))]
    forward_err = abs((function_1(10 + 1e-4) - function_1(10)) / 1e-4 - 0.3)
    ctx.summary.update(
        central_error_at_10=float(abs(slopes[10] - 0.3)),
        forward_error_at_10=float(forward_err),
        best_h_central=float(best),
        float32_of_1e_50=float(np.float32(1e-50)),
    )
    ctx.compare("np.float32(1e-50)", ctx.summary["float32_of_1e_50"], 0.0, "why h = 1e-50 fails")
    ctx.finding(
        f"At h = 1e-4 the central difference is off by {ctx.summary['central_error_at_10']:.1e}, "
        f"the forward difference by {forward_err:.1e}."
    )
    ctx.write_csv(
        "function",
        ["x", "f", "tangent_5", "tangent_10"],
        zip(x, y, *(slopes[a] * (x - a) + function_1(a) for a in (5, 10))),
    )
    ctx.write_csv(
        "difference-error", ["h", "forward_error", "central_error"], zip(hs, forward, central)
    )

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    ax.plot(x, y, label="f(x) = 0.01x² + 0.1x")
    for a, style in ((5, "--"), (10, ":")):
        ax.plot(
            x,
            slopes[a] * (x - a) + function_1(a),
            style,
            label=f"tangent at x={a} (slope {slopes[a]:.4f})",
        )
        ax.plot([a], [function_1(a)], "ko", ms=4)
    ax.set_xlabel("x")
    ax.set_ylabel("f(x)")
    ax.set_ylim(-1, 6.5)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("tangent lines by numerical differentiation")
    ax = axes[1]
    ax.loglog(hs, np.maximum(forward, 1e-18), label="forward (f(x+h)-f(x))/h")
    ax.loglog(hs, np.maximum(central, 1e-18), label="central (f(x+h)-f(x-h))/2h")
    ax.axvline(1e-4, color="0.5", ls="--", lw=1)
    ax.text(1.3e-4, 1e-14, "h = 1e-4", color="0.4", fontsize=8)
    ax.set_xlabel("h")
    ax.set_ylabel("|error| of f'(10)")
    ax.legend(fontsize=8, loc="best")
    ax.set_title("rounding vs truncation error")
    fig.tight_layout()
    ctx.save_figure(fig, "numerical-diff")


@experiment(
    "gradient-field",
    title="The gradient as a vector field",
    section="4.4",
    summary="the (negative) gradient arrows of x0^2 + x1^2",
    shows="Every negative-gradient arrow of x0² + x1² points at the minimum (0, 0), "
    "and the arrows grow longer the farther they are from it.",
)
def run_gradient_field(ctx):
    grid = np.arange(-2.0, 2.5, 0.25)
    X0, X1 = np.meshgrid(grid, grid)
    points = np.stack([X0.ravel(), X1.ravel()], axis=1)
    grads = np.array([numerical_gradient(function_2, p.copy()) for p in points])
    ctx.config.update(grid=[-2.0, 2.25, 0.25], h=1e-4)
    ctx.write_csv(
        "gradients", ["x0", "x1", "df_dx0", "df_dx1"], np.concatenate([points, grads], axis=1)
    )

    for p, book in (([3.0, 4.0], [6.0, 8.0]), ([0.0, 2.0], [0.0, 4.0]), ([3.0, 0.0], [6.0, 0.0])):
        g = numerical_gradient(function_2, np.array(p))
        ctx.compare(f"gradient at ({p[0]:g}, {p[1]:g})", g, book, digits=8)
    # Angle between -grad and the direction to the minimum, over the grid (origin excluded).
    away = np.linalg.norm(points, axis=1) > 0
    cos = np.sum(-grads[away] * -points[away], axis=1) / (
        np.linalg.norm(grads[away], axis=1) * np.linalg.norm(points[away], axis=1)
    )
    max_angle = float(np.degrees(np.arccos(np.clip(cos, -1, 1))).max())
    exact_err = float(np.max(np.abs(grads - 2 * points)))
    ctx.summary.update(max_angle_to_minimum_deg=max_angle, max_error_vs_exact=exact_err)
    ctx.claim(
        "Every negative-gradient arrow points at the minimum (0, 0).",
        max_angle < 1e-3,
        f"largest angle {max_angle:.1e}°",
    )
    ctx.finding(
        f"The largest angle between -∇f and the direction to (0, 0) is {max_angle:.1e}°; "
        f"the numerical gradient differs from 2x by at most {exact_err:.1e}."
    )

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    fine = np.linspace(-2.2, 2.2, 200)
    F0, F1 = np.meshgrid(fine, fine)
    ax.contour(F0, F1, F0**2 + F1**2, levels=8, colors="0.85", linewidths=0.8)
    ax.quiver(points[:, 0], points[:, 1], -grads[:, 0], -grads[:, 1], angles="xy", color="#666666")
    ax.plot([0], [0], "r+", ms=10)
    ax.set_xlim(-2, 2)
    ax.set_ylim(-2, 2)
    ax.set_xlabel("x0")
    ax.set_ylabel("x1")
    ax.set_aspect("equal")
    ax.set_title("-∇f for f(x0, x1) = x0² + x1²")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    ctx.save_figure(fig, "gradient-field")


@experiment(
    "gradient-descent",
    title="Gradient descent and the learning rate",
    section="4.4.1",
    summary="the path from (-3, 4) at lr 0.1, and what lr 10 and 1e-10 do",
    shows="With lr 0.1 gradient descent walks straight to the minimum of x0² + x1²; "
    "lr 10 blows up and lr 1e-10 barely moves.",
)
def run_gradient_descent(ctx):
    init = np.array([-3.0, 4.0])
    steps = 100
    lrs = [1e-10, 0.01, 0.1, 0.5, 10.0]
    ctx.config.update(init=init.tolist(), step_num=steps, learning_rates=lrs)
    paths = {lr: gradient_descent(function_2, init, lr=lr, step_num=steps)[1] for lr in lrs}
    # The book's printed finals (its function and central difference are ours).
    book = {
        0.1: [-6.11110793e-10, 8.14814391e-10],
        10.0: [-2.58983747e13, -1.29524862e12],
        1e-10: [-2.99999994, 3.99999992],
    }
    for lr in (0.1, 10.0, 1e-10):
        ctx.compare(f"x after 100 steps, lr={lr:g}", paths[lr][-1], book[lr], digits=9)
    for lr in lrs:
        ctx.summary[f"distance_lr_{lr:g}"] = float(np.linalg.norm(paths[lr][-1]))
    start = float(np.linalg.norm(init))
    ctx.claim(
        "lr 0.1 reaches the minimum, lr 10 blows up and lr 1e-10 barely moves.",
        ctx.summary["distance_lr_0.1"] < 1e-6
        and ctx.summary["distance_lr_10"] > 1e6
        and abs(ctx.summary["distance_lr_1e-10"] - start) < 1e-6,
        f"distances from (0, 0) after {steps} steps: "
        f"{ctx.summary['distance_lr_0.1']:.1e}, {ctx.summary['distance_lr_10']:.1e}, "
        f"{ctx.summary['distance_lr_1e-10']:.7g} (start {start:g})",
    )
    ctx.finding(
        "Distance from the minimum after 100 steps: "
        + ", ".join(f"lr {lr:g}: {np.linalg.norm(paths[lr][-1]):.2g}" for lr in lrs)
        + "."
    )
    header = ["step"] + [f"{c}_lr_{lr:g}" for lr in lrs for c in ("x0", "x1")]
    ctx.write_csv(
        "paths",
        header,
        [[i, *np.concatenate([paths[lr][i] for lr in lrs])] for i in range(steps + 1)],
    )

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    ax = axes[0]
    ax.plot([-5, 5], [0, 0], "--b", lw=0.8)
    ax.plot([0, 0], [-5, 5], "--b", lw=0.8)
    ax.plot(paths[0.1][:, 0], paths[0.1][:, 1], "o", ms=4)
    ax.set_xlim(-3.5, 3.5)
    ax.set_ylim(-4.5, 4.5)
    ax.set_xlabel("X0")
    ax.set_ylabel("X1")
    ax.set_title("path from (-3, 4), lr = 0.1, 100 steps")
    ax = axes[1]
    for lr in lrs:
        d = np.linalg.norm(paths[lr], axis=1)
        ax.semilogy(np.arange(steps + 1), np.maximum(d, 1e-300), label=f"lr = {lr:g}")
    ax.set_xlabel("step")
    ax.set_ylabel("distance from the minimum")
    ax.set_title("learning rate: too small, right, too large")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    ctx.save_figure(fig, "gradient-descent")
