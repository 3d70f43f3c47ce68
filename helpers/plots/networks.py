"""Figures of part 1, networks (notebooks 00_start_here, 01_neurons_and_layers,
02_learning_from_data, 03_backpropagation and 04_training_networks).

Each ``make_...`` function returns a Figure for ``plots.show`` or an explorer; the science they
draw lives in the concept modules (``nn_numpy``, ``gradient_descent``, ``autograd``, ``mlp``).
"""

import textwrap

import matplotlib.pyplot as plt
import numpy as np

from helpers import nn_numpy
from helpers.plots.common import CLASS_COLORS, DPI, decision_regions, loss_curves, new_figure


# ---------------------------------------------------------------- notebook 00: the first slider

def make_first_slider(weight: float = 1.0, bias: float = 0.0):
    """A preview of notebook 01: the curve ``sigmoid(weight * x + bias)`` for x in [-6, 6]."""
    x = np.linspace(-6, 6, 301)
    y = nn_numpy.sigmoid(weight * x + bias)  # the overflow-safe sigmoid of notebook 01
    fig, ax = new_figure(height=3.2)
    ax.plot(x, y, color=CLASS_COLORS[0], linewidth=2)
    ax.axhline(0.5, color="grey", linewidth=0.8, linestyle="--")
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("input x")
    ax.set_ylabel("output  σ(w·x + b)")
    ax.set_title(f"One neuron's response: w = {weight:.2f}, b = {bias:.2f}")
    ax.grid(alpha=0.3)
    return fig


# ---------------------------------------------------------------- notebook 01: neurons and layers

def make_activations():
    """The three activation functions of notebook 01 side by side: sigmoid, tanh and ReLU."""
    z = np.linspace(-5, 5, 201)
    fig, axes = new_figure(ncols=3, width=9.0, height=2.8)
    for ax, (name, fn) in zip(axes, [("sigmoid", nn_numpy.sigmoid), ("tanh", nn_numpy.tanh), ("ReLU", nn_numpy.relu)]):
        ax.plot(z, fn(z), color=CLASS_COLORS[0], linewidth=2)
        ax.axhline(0, color="grey", linewidth=0.6)
        ax.axvline(0, color="grey", linewidth=0.6)
        ax.set_title(name)
        ax.set_xlabel("pre-activation z")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("activation a = f(z)")
    return fig


def make_neuron_boundary(w1: float = 1.0, w2: float = 1.0, b: float = 0.0):
    """One sigmoid neuron ``sigmoid(w1 x1 + w2 x2 + b)`` on the blobs data: shading, boundary and accuracy."""
    from helpers import toy_data

    X, y = toy_data.blobs(n=200, noise=0.6, seed=0)
    w = np.array([w1, w2], dtype=float)
    probs = nn_numpy.sigmoid(X @ w + b)
    accuracy = float(np.mean((probs > 0.5) == (y == 1)))
    fig, ax = new_figure(width=5.2, height=4.4)
    decision_regions(ax, lambda P: nn_numpy.sigmoid(P @ w + b), X, y)
    if w1 == 0 and w2 == 0:
        ax.text(0.5, 0.5, "both weights are 0:\nthe neuron ignores its inputs", transform=ax.transAxes,
                ha="center", va="center", fontsize=12, bbox={"facecolor": "white", "alpha": 0.8})
    ax.set_title(f"w = ({w1:.1f}, {w2:.1f}), b = {b:.1f}: accuracy {accuracy:.0%}")
    ax.legend(loc="lower right")
    return fig


def make_network_diagram(layer_sizes=(2, 3, 1), names=None):
    """Circles for neurons, lines for weights: a fully connected network with ``layer_sizes``."""
    names = names or (["input"] + ["hidden"] * (len(layer_sizes) - 2) + ["output"])
    fig, ax = new_figure(width=5.6, height=3.6)
    tallest = max(layer_sizes)
    positions = []
    for i, size in enumerate(layer_sizes):
        ys = np.linspace(0, tallest - 1, size) if size > 1 else np.array([(tallest - 1) / 2])
        ys = ys if size == tallest else (tallest - 1) / 2 + (np.arange(size) - (size - 1) / 2)
        positions.append([(float(i), float(yy)) for yy in ys])
    for left, right in zip(positions[:-1], positions[1:]):
        for (x0, y0) in left:
            for (x1, y1) in right:
                ax.plot([x0, x1], [y0, y1], color="grey", linewidth=0.8, zorder=1)
    for i, layer in enumerate(positions):
        for (x, yy) in layer:
            ax.scatter([x], [yy], s=500, color=CLASS_COLORS[min(i, 2)], edgecolor="black", zorder=2)
        ax.text(i, -0.9, f"{names[i]}\n({layer_sizes[i]})", ha="center", va="top", fontsize=10)
    ax.set_xlim(-0.5, len(layer_sizes) - 0.5)
    ax.set_ylim(-1.8, tallest - 0.3)
    ax.axis("off")
    params = nn_numpy.count_parameters(layer_sizes)
    ax.set_title(f"A {'-'.join(map(str, layer_sizes))} network: {params} parameters (weights + biases)")
    return fig


def make_hidden_space(X, y, W1, b1, W2, b2):
    """Notebook 01's XOR network seen from its hidden layer: each point ``x`` drawn at its hidden
    values ``h = relu(x W1 + b1)`` (two hidden neurons), coloured by class, over the output
    neuron's regions; its decision boundary ``h W2 + b2 = 0`` is a straight line there."""
    H = nn_numpy.relu(nn_numpy.dense(X, W1, b1))   # (n, 2)
    W2, b2 = np.asarray(W2, dtype=float), np.asarray(b2, dtype=float)
    fig, ax = new_figure(width=4.8, height=4.4)
    decision_regions(ax, lambda P: nn_numpy.sigmoid(P @ W2 + b2)[:, 0], H, y, margin=0.4)
    ax.set_xlabel("hidden neuron 1: $h_1$")
    ax.set_ylabel("hidden neuron 2: $h_2$")
    ax.set_title("XOR in the hidden space: one line separates it", fontsize=10)
    ax.legend(loc="upper right", fontsize=9)
    return fig


# ---------------------------------------------------------------- notebook 02: learning from data

def make_loss_landscape(learning_rate: float = 0.1, steps: int = 20, start=(-1.0, -1.0)):
    """Gradient descent on the line-fitting loss of notebook 02: its path over the loss contours
    (left) and its loss per step (right). A rate that makes the loss explode is announced in the figure."""
    from helpers import gradient_descent as gd

    x, y = gd.line_data()
    run = gd.gradient_descent(lambda p: gd.line_loss(p, x, y), lambda p: gd.line_gradient(p, x, y),
                              start, learning_rate, steps)
    best = gd.least_squares(x, y)
    fig, (ax, ax_loss) = new_figure(ncols=2, width=9.6, height=4.0)
    ws, bs = np.meshgrid(np.linspace(-2, 5, 120), np.linspace(-3, 4, 120))
    losses = ((ws[..., None] * x + bs[..., None] - y) ** 2).mean(axis=-1)
    ax.contourf(ws, bs, np.log10(losses), levels=20, cmap="Blues_r")
    ax.contour(ws, bs, np.log10(losses), levels=20, colors="white", linewidths=0.3)
    path = run["path"]
    ax.plot(path[:, 0], path[:, 1], "o-", color=CLASS_COLORS[1], markersize=3, linewidth=1, label="gradient descent")
    ax.plot(*best, "*", color="gold", markersize=14, markeredgecolor="black", label="least-squares optimum")
    ax.set_xlim(-2, 5)
    ax.set_ylim(-3, 4)
    ax.set_xlabel("slope w")
    ax.set_ylabel("intercept b")
    ax.legend(loc="upper left", fontsize=9)
    ax.set_title("the loss landscape (darker = lower)")
    with np.errstate(all="ignore"):
        shown = np.clip(run["losses"], 1e-6, 1e12)
    ax_loss.semilogy(np.arange(len(shown)), shown, color=CLASS_COLORS[1])
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss (MSE, log scale)")
    ax_loss.grid(alpha=0.3)
    if run["status"] == "diverged":
        shout = "DIVERGED" if run["message"].startswith("Diverged") else "DIVERGING (slowly)"
        ax_loss.set_title(f"learning rate {learning_rate:.4g}: {shout}")
        said = textwrap.fill(f"{run['message']}.", 56)   # the slow-divergence sentence is long
        fig.text(0.5, 0.5, f"{said}\nTry a smaller learning rate.",
                 ha="center", va="center", fontsize=16 if shout == "DIVERGED" else 13, fontweight="bold",
                 color=CLASS_COLORS[1],
                 bbox={"facecolor": "white", "edgecolor": CLASS_COLORS[1], "alpha": 0.9})
    else:
        headline = run["message"].split(":")[0].lower()   # converged / converging / converging, slowly
        ax_loss.set_title(f"learning rate {learning_rate:.4g}: {headline}\n"
                          f"loss {run['losses'][-1]:.4f} after {len(run['losses']) - 1} steps", fontsize=10)
    return fig


def make_learning_rate_comparison(rates=(0.02, 0.5, 1.05), steps: int = 30):
    """Loss per step for a few learning rates on the same problem: too small, good, too large."""
    from helpers import gradient_descent as gd

    x, y = gd.line_data()
    fig, ax = new_figure(height=3.6)
    for i, rate in enumerate(rates):
        run = gd.gradient_descent(lambda p: gd.line_loss(p, x, y), lambda p: gd.line_gradient(p, x, y),
                                  (-1.0, -1.0), rate, steps)
        label = f"rate {rate:g}" + (" (diverged)" if run["status"] == "diverged" else "")
        ax.semilogy(np.arange(len(run["losses"])), np.clip(run["losses"], 1e-6, 1e12), label=label,
                    color=CLASS_COLORS[i % len(CLASS_COLORS)], linewidth=2)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (MSE, log scale)")
    ax.set_title("Too small crawls, too large explodes")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


# ---------------------------------------------------------------- notebook 03: backpropagation

GRAPH_FONT = 11  # points: the graph boxes are read from a notebook at 100 dpi


def draw_graph(ax, root, grads=None, highlight=None, known=None, fontsize: int = GRAPH_FONT):
    """Draw ``root``'s computation graph left to right: one box per ``Value`` with its label,
    operation, data and grad; arrows from inputs to results (two arrows where one input is used
    twice by one operation, as in ``a * a``).

    ``grads`` overrides the grads shown (``{id(node): grad}``); nodes not in ``known`` (a set of
    ids) show their grad as "?"; ``highlight`` is a node drawn with a thick red border, its
    inputs with an orange one.
    """
    from helpers import autograd

    order = autograd.topological_order(root)
    depth = {}
    for node in order:
        depth[id(node)] = 1 + max((depth[id(c)] for c in node._prev), default=-1)
    columns = {}
    for node in order:
        columns.setdefault(depth[id(node)], []).append(node)
    pos = {}
    for d, nodes in columns.items():
        for k, node in enumerate(nodes):
            pos[id(node)] = (d * 2.6, 1.25 * ((len(nodes) - 1) / 2 - k))
    receiving = {id(c) for c in (highlight._prev if highlight is not None else ())}
    boxes = {}
    for node in order:
        x, y = pos[id(node)]
        grad = (grads or {}).get(id(node), node.grad)
        grad_text = f"{grad:.4f}" if known is None or id(node) in known else "?"
        title = node.label or "·"
        if node._op:
            title += f" = {node._op}"
        edge = CLASS_COLORS[1] if node is highlight else ("#e69f00" if id(node) in receiving else "black")
        face = "#fff3cd" if node is highlight else ("#e8f0fe" if not node._prev else "white")
        boxes[id(node)] = ax.text(
            x, y, f"{title}\ndata {node.data:.4f}\ngrad {grad_text}", ha="center", va="center",
            fontsize=fontsize, family="monospace", zorder=2,
            bbox={"boxstyle": "round,pad=0.4", "facecolor": face, "edgecolor": edge,
                  "linewidth": 2.5 if node is highlight or id(node) in receiving else 1})
    for node in order:
        for k, child in enumerate(node._prev):
            bend = (0.3 if k == 0 else -0.3) if node._prev.count(child) > 1 else 0.0
            ax.annotate("", xy=pos[id(node)], xytext=pos[id(child)], zorder=1,
                        arrowprops={"arrowstyle": "-|>", "color": "grey", "lw": 1.2, "shrinkA": 2, "shrinkB": 2,
                                    "patchA": boxes[id(child)].get_bbox_patch(),
                                    "patchB": boxes[id(node)].get_bbox_patch(),
                                    "connectionstyle": f"arc3,rad={bend}"})
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ax.set_xlim(min(xs) - 1.2, max(xs) + 1.2)
    ax.set_ylim(min(ys) - 0.75, max(ys) + 0.75)
    ax.axis("off")


BACKWARD_EXAMPLES = {"shared": "f = (a·b)·(a + b): a and b used twice",
                     "neuron": "o = tanh(x1·w1 + x2·w2 + b): a neuron"}


def make_backward_step(step: int = 0, example: str = "shared"):
    """The backward pass of one of notebook 03's examples (``BACKWARD_EXAMPLES``: the graph that
    is not a tree, ``autograd.shared_expression``, or the neuron, ``autograd.neuron_expression``)
    after ``step`` nodes have passed their gradient back (0 = only d out / d out = 1 is known).
    Under the graph, the arithmetic of the step: each input's grad += local derivative x the node's
    grad. Steps beyond the end show the finished pass."""
    from helpers import autograd

    root = autograd.neuron_expression() if example == "neuron" else autograd.shared_expression()
    steps = autograd.backward_steps(root)
    step = int(min(max(step, 0), len(steps) - 1))
    state = steps[step]
    done = {id(root)}
    for earlier in steps[1:step + 1]:
        done.update(id(child) for child in earlier["node"]._prev)
    fig = plt.figure(figsize=(11.0, 5.6), dpi=DPI, layout="constrained")
    grid = fig.add_gridspec(2, 1, height_ratios=[5, 1])
    ax, ax_text = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    draw_graph(ax, root, grads=state["grads"], highlight=state["node"], known=done)
    ax_text.axis("off")
    node = state["node"]
    if node is None:
        what = f"start: d{root.label}/d{root.label} = 1; every other gradient is still unknown"
        lines = [f"{root.label}.grad = 1, because {root.label} changes one for one with itself.",
                 "Move the slider: each step, one node adds (local derivative × its own grad) to its inputs."]
    else:
        what = f"'{node.label}' ({node._op}) passes its grad to " + " and ".join(c.label for c in node._prev)
        before = steps[step - 1]["grads"]
        lines, running = [], dict(before)
        for child, local, words in autograd.local_derivatives(node):
            add = local * state["grads"][id(node)]
            old = running[id(child)]
            running[id(child)] = old + add
            lines.append(f"{child.label}.grad += {words} × {node.label}.grad = {local:.4g} × "
                         f"{state['grads'][id(node)]:.4g} = {add:.4g}    ({child.label}.grad: {old:.4g} → "
                         f"{old + add:.4g})")
    ax_text.text(0.01, 0.95, "\n".join(lines), ha="left", va="top", fontsize=GRAPH_FONT + 1, family="monospace",
                 transform=ax_text.transAxes)
    ax.set_title(f"Backward pass, step {step} of {len(steps) - 1}: {what}", fontsize=GRAPH_FONT + 1)
    return fig


def make_gradient_costs(costs: dict):
    """Notebook 03's measurement (``autograd.gradient_costs``): the time of one gradient, in forward
    passes, against the number of parameters, for numerical differences and for backpropagation."""
    params = np.asarray(costs["params"], dtype=float)
    forward = np.asarray(costs["forward_s"])
    fig, ax = new_figure(width=7.0, height=4.2)
    ax.loglog(params, np.asarray(costs["numerical_s"]) / forward, "o-", color=CLASS_COLORS[1], linewidth=2,
              label="numerical differences (measured)")
    ax.loglog(params, 2 * params, ":", color=CLASS_COLORS[1], label="2 × parameters (two passes each)")
    ax.loglog(params, np.asarray(costs["backprop_s"]) / forward, "o-", color=CLASS_COLORS[0], linewidth=2,
              label="backpropagation (measured)")
    ax.set_xlabel("parameters of the network (2-h-1, log scale)")
    ax.set_ylabel("time of one gradient / time of one forward pass")
    ax.set_title("The cost of every gradient at once")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=9)
    return fig


# ---------------------------------------------------------------- notebook 04: training networks

def make_training_explorer(hidden: int = 32, noise: float = 0.3, epochs: int = 100):
    """An MLP with two hidden layers of ``hidden`` neurons trained on 100 moons points with
    ``noise`` for ``epochs`` full-batch Adam steps (``mlp.train_on_moons``): train/validation
    loss curves and decision regions."""
    from helpers import mlp

    run = mlp.train_on_moons(hidden, noise, epochs)
    history, (X_train, y_train), (X_val, y_val) = run["history"], run["train"], run["validation"]
    fig, (ax_loss, ax_map) = new_figure(ncols=2, width=9.6, height=4.0)
    loss_curves(ax_loss, {"train": history["train_loss"], "validation": history["val_loss"]}, log=True)
    best = int(np.argmin(history["val_loss"]))
    ax_loss.axvline(best + 1, color="grey", linestyle=":", linewidth=1)
    ax_loss.set_title(f"best validation loss {history['val_loss'][best]:.3f} at epoch {best + 1}")
    decision_regions(ax_map, lambda P: mlp.predict_proba(run["model"], P), X_train, y_train)
    scatter_held_out(ax_map, X_val, y_val)
    ax_map.set_title(f"{hidden} neurons x 2, noise {noise:.2f}: train acc {history['train_acc'][-1]:.0%}, "
                     f"val acc {history['val_acc'][-1]:.0%}", fontsize=9)
    ax_map.legend(loc="lower right", fontsize=9)
    return fig


def scatter_held_out(ax, X: np.ndarray, y: np.ndarray, name: str = "validation") -> None:
    """Held-out points ``X (n, 2)`` as hollow circles in their class's colour, labelled
    "class k, validation", over the filled training points of ``decision_regions``."""
    for k in np.unique(y):
        pts = X[y == k]
        ax.scatter(pts[:, 0], pts[:, 1], s=24, facecolors="none", edgecolors=CLASS_COLORS[int(k) % len(CLASS_COLORS)],
                   linewidths=1.3, label=f"class {int(k)}, {name}")


def learning_rate_sweep(ax, results: dict[str, dict[float, list[float]]], ylabel: str = "validation loss") -> None:
    """``results[optimizer][rate]`` is one final loss per seed: the mean against the rate (log
    scale), with a bar from the lowest to the highest seed, and each optimizer's best rate ringed."""
    for i, (name, by_rate) in enumerate(results.items()):
        rates = np.array(sorted(by_rate))
        runs = [np.asarray(by_rate[r], dtype=float) for r in rates]
        mean = np.array([r.mean() for r in runs])
        low, high = mean - [r.min() for r in runs], [r.max() for r in runs] - mean
        color = CLASS_COLORS[i % len(CLASS_COLORS)]
        ax.errorbar(rates, mean, yerr=[low, high], marker="o", capsize=3, color=color, label=name)
        best = int(np.argmin(mean))
        ax.scatter([rates[best]], [mean[best]], s=160, facecolors="none", edgecolors=color, linewidths=1.5)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel(ylabel)
    ax.legend()
    ax.grid(alpha=0.3)
