"""Figure helpers shared by every notebook (introduced in notebook 00_start_here).

Rules every figure in the course follows:

* it has a title and labelled axes;
* it is *returned* by a pure function (``make_...``) so tests can draw it with no
  notebook, and explorers can redraw it when a slider moves;
* a notebook shows it with :func:`show`, which displays it once and closes it.
"""

import io

import matplotlib

import matplotlib.pyplot as plt
import numpy as np

from helpers import data, nn_numpy

# One palette for the whole course: class 0, class 1, class 2, ...
CLASS_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
FIGSIZE = (6.4, 4.0)
DPI = 80  # small PNGs keep notebooks light and diffs readable


def new_figure(ncols: int = 1, nrows: int = 1, width: float | None = None, height: float | None = None):
    """A figure with ``nrows x ncols`` axes at the course's default size; returns ``(fig, axes)``."""
    w = width if width is not None else min(FIGSIZE[0] * (1 if ncols == 1 else 0.7 * ncols), 10.0)
    h = height if height is not None else FIGSIZE[1] * (1 if nrows == 1 else 0.8 * nrows)
    fig, axes = plt.subplots(nrows, ncols, figsize=(w, h), dpi=DPI, squeeze=False)
    fig.set_layout_engine("constrained")
    axes = axes.ravel()
    return fig, (axes[0] if axes.size == 1 else axes)


def show(fig) -> None:
    """Display ``fig`` once in a notebook and close it (so it is not drawn twice)."""
    from IPython.display import display

    display(fig)
    plt.close(fig)


def to_png(fig) -> bytes:
    """Render ``fig`` to PNG bytes (no timestamps, so equal figures give equal bytes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def scatter_classes(ax, X: np.ndarray, y: np.ndarray, size: float = 14) -> None:
    """Scatter 2-D points ``X`` (shape ``(n, 2)``) coloured by integer class ``y`` (shape ``(n,)``)."""
    for k in np.unique(y):
        pts = X[y == k]
        ax.scatter(pts[:, 0], pts[:, 1], s=size, color=CLASS_COLORS[int(k) % len(CLASS_COLORS)],
                   edgecolor="white", linewidth=0.4, label=f"class {int(k)}")


def decision_regions(ax, predict, X: np.ndarray, y: np.ndarray, resolution: int = 150,
                     margin: float = 0.5) -> None:
    """Shade where ``predict`` says class 1 vs class 0, then scatter the data on top.

    ``predict`` maps points of shape ``(m, 2)`` to probabilities of class 1, shape ``(m,)``.
    The 0.5 contour (the decision boundary) is drawn as a black line.
    """
    x0_min, x1_min = X.min(axis=0) - margin
    x0_max, x1_max = X.max(axis=0) + margin
    g0, g1 = np.meshgrid(np.linspace(x0_min, x0_max, resolution), np.linspace(x1_min, x1_max, resolution))
    grid = np.column_stack([g0.ravel(), g1.ravel()])
    p = np.asarray(predict(grid), dtype=float).reshape(g0.shape)
    cmap = matplotlib.colors.LinearSegmentedColormap.from_list("course", [CLASS_COLORS[0], "white", CLASS_COLORS[1]])
    ax.contourf(g0, g1, np.clip(p, 0, 1), levels=np.linspace(0, 1, 11), cmap=cmap, alpha=0.45)
    if np.nanmin(p) < 0.5 < np.nanmax(p):
        ax.contour(g0, g1, p, levels=[0.5], colors="black", linewidths=1.2)
    scatter_classes(ax, X, y)
    ax.set_xlim(x0_min, x0_max)
    ax.set_ylim(x1_min, x1_max)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")


def loss_curves(ax, curves: dict[str, list[float]], xlabel: str = "epoch", ylabel: str = "loss",
                log: bool = False) -> None:
    """Plot named loss curves (``{"train": [...], "validation": [...]}``) on ``ax``."""
    for i, (name, values) in enumerate(curves.items()):
        ax.plot(np.arange(1, len(values) + 1), values, label=name, color=CLASS_COLORS[i % len(CLASS_COLORS)])
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend()
    ax.grid(alpha=0.3)


# ---------------------------------------------------------------------------
# Notebook 00: the first slider
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# Notebook 01: neurons and layers
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# Notebook 02: learning from data
# ---------------------------------------------------------------------------

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
        ax_loss.set_title(f"learning rate {learning_rate:.3g}: DIVERGED")
        fig.text(0.5, 0.5, f"{run['message']}.\nTry a smaller learning rate.",
                 ha="center", va="center", fontsize=16, fontweight="bold", color=CLASS_COLORS[1],
                 bbox={"facecolor": "white", "edgecolor": CLASS_COLORS[1], "alpha": 0.9})
    else:
        ax_loss.set_title(f"learning rate {learning_rate:.3g}: loss {run['losses'][-1]:.4f} after {steps} steps")
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


# ---------------------------------------------------------------------------
# Notebook 03: backpropagation
# ---------------------------------------------------------------------------

def draw_graph(ax, root, grads=None, highlight=None, known=None):
    """Draw ``root``'s computation graph left to right: one box per ``Value`` with its label,
    operation, data and grad; arrows from inputs to results.

    ``grads`` overrides the grads shown (``{id(node): grad}``); nodes not in ``known`` (a set of
    ids) show their grad as "?"; ``highlight`` is a node drawn with a thick red border.
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
            pos[id(node)] = (d * 2.2, (len(nodes) - 1) / 2 - k)
    for node in order:
        for child in node._prev:
            (x0, y0), (x1, y1) = pos[id(child)], pos[id(node)]
            ax.annotate("", xy=(x1 - 0.75, y1), xytext=(x0 + 0.75, y0),
                        arrowprops={"arrowstyle": "->", "color": "grey", "lw": 1})
    for node in order:
        x, y = pos[id(node)]
        grad = (grads or {}).get(id(node), node.grad)
        grad_text = f"{grad:.4f}" if known is None or id(node) in known else "?"
        title = node.label or "·"
        if node._op:
            title += f" = {node._op}"
        edge = CLASS_COLORS[1] if node is highlight else "black"
        face = "#fff3cd" if node is highlight else ("#e8f0fe" if not node._prev else "white")
        ax.text(x, y, f"{title}\ndata {node.data:.4f}\ngrad {grad_text}", ha="center", va="center",
                fontsize=9, family="monospace",
                bbox={"boxstyle": "round,pad=0.35", "facecolor": face, "edgecolor": edge,
                      "linewidth": 2.5 if node is highlight else 1})
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ax.set_xlim(min(xs) - 1.1, max(xs) + 1.1)
    ax.set_ylim(min(ys) - 0.7, max(ys) + 0.7)
    ax.axis("off")


def neuron_expression():
    """The running example of notebook 03: ``o = tanh(x1 w1 + x2 w2 + b)``, built from labelled Values."""
    from helpers.autograd import Value

    x1, x2 = Value(2.0, label="x1"), Value(0.0, label="x2")
    w1, w2 = Value(-3.0, label="w1"), Value(1.0, label="w2")
    b = Value(6.8813735870195432, label="b")
    x1w1 = x1 * w1
    x1w1.label = "x1w1"
    x2w2 = x2 * w2
    x2w2.label = "x2w2"
    s = x1w1 + x2w2
    s.label = "sum"
    n = s + b
    n.label = "n"
    o = n.tanh()
    o.label = "o"
    return o


def make_backward_step(step: int = 0):
    """The backward pass of the neuron example after ``step`` nodes have passed their gradient
    back (0 = only d o / d o = 1 is known). Steps beyond the end show the finished pass."""
    from helpers import autograd

    root = neuron_expression()
    steps = autograd.backward_steps(root)
    step = int(min(max(step, 0), len(steps) - 1))
    state = steps[step]
    done = {id(root)}
    for earlier in steps[1:step + 1]:
        done.update(id(child) for child in earlier["node"]._prev)
    fig, ax = new_figure(width=10.0, height=4.2)
    draw_graph(ax, root, grads=state["grads"], highlight=state["node"], known=done)
    if state["node"] is None:
        what = "start: d o / d o = 1; every other gradient is still unknown"
    else:
        node = state["node"]
        what = f"'{node.label}' ({node._op}) passed its grad to " + ", ".join(c.label for c in node._prev)
    ax.set_title(f"Backward pass, step {step} of {len(steps) - 1}: {what}", fontsize=10)
    return fig


# ---------------------------------------------------------------------------
# Notebook 04: training networks
# ---------------------------------------------------------------------------

def make_training_explorer(hidden: int = 32, noise: float = 0.3, epochs: int = 100):
    """Train an MLP with two hidden layers of ``hidden`` neurons on 100 moons points with ``noise``
    for ``epochs`` full-batch Adam steps; show train/validation loss curves and decision regions."""
    import torch

    from helpers import mlp, toy_data

    X, y = toy_data.moons(n=100, noise=noise, seed=0)
    X_train, y_train, X_val, y_val = toy_data.train_val_split(X, y, val_fraction=0.5, seed=0)
    torch.manual_seed(0)
    model = mlp.MLP((2, hidden, hidden, 1))
    history = mlp.train_classifier(model, X_train, y_train, X_val, y_val, epochs=epochs, batch_size=None, lr=0.01)
    fig, (ax_loss, ax_map) = new_figure(ncols=2, width=9.6, height=4.0)
    loss_curves(ax_loss, {"train": history["train_loss"], "validation": history["val_loss"]}, log=True)
    best = int(np.argmin(history["val_loss"]))
    ax_loss.axvline(best + 1, color="grey", linestyle=":", linewidth=1)
    ax_loss.set_title(f"best validation loss {history['val_loss'][best]:.3f} at epoch {best + 1}")
    decision_regions(ax_map, lambda P: mlp.predict_proba(model, P), X_train, y_train)
    ax_map.scatter(X_val[:, 0], X_val[:, 1], s=18, facecolors="none", edgecolors="black", linewidths=0.6,
                   label="validation")
    ax_map.set_title(f"{hidden} neurons x 2, noise {noise:.2f}: train acc {history['train_acc'][-1]:.0%}, "
                     f"val acc {history['val_acc'][-1]:.0%}", fontsize=9)
    ax_map.legend(loc="lower right", fontsize=9)
    return fig


# ---------------------------------------------------------------------------
# Notebook 05: text to numbers
# ---------------------------------------------------------------------------

TOKEN_COLORS = ["#cfe2f3", "#f4cccc", "#d9ead3", "#fff2cc", "#d9d2e9", "#fce5cd"]


def _shown(piece: str) -> str:
    """A token piece made visible inside running text (notebook 05's coloured boxes): spaces as
    '·', newlines as '↵', as that notebook's prose says. Labels of single characters (axes,
    ticks) use :func:`_shown_chars` instead."""
    return piece.replace(" ", "·").replace("\n", "↵")


def make_token_colours(text: str = "To be, or not to be: that is the question.", vocab_size: int = 512):
    """``text`` cut into tokens by the course tokenizer truncated to ``vocab_size``, each token a
    coloured box; the title gives the count and the characters per token."""
    from helpers import tokenizers
    from helpers.paths import data_path

    tokenizer = tokenizers.BPETokenizer.load(data_path("tokenizer_bpe512.json"))
    vocab_size = int(min(max(vocab_size, 256), tokenizer.vocab_size))
    tokenizer = tokenizer.truncated(vocab_size)
    text = text[:400]
    pieces = tokenizer.tokenize(text)
    fig, ax = new_figure(width=9.6, height=3.4)
    x, y, width, char_w = 0.0, 0.0, 64.0, 0.66  # char_w: one monospace character in axis units
    for k, piece in enumerate(pieces):
        shown = _shown(piece)
        if x + char_w * len(shown) > width:
            x, y = 0.0, y - 1.4
        ax.text(x, y, shown, family="monospace", fontsize=11, va="top",
                bbox={"boxstyle": "square,pad=0.15", "facecolor": TOKEN_COLORS[k % len(TOKEN_COLORS)],
                      "edgecolor": "grey", "linewidth": 0.5})
        x += char_w * len(shown) + 0.5
        if piece.endswith("\n"):
            x, y = 0.0, y - 1.4
    ax.set_xlim(-0.5, width + 2)
    ax.set_ylim(min(y - 1.6, -6), 1.0)
    ax.axis("off")
    if text:
        ax.set_title(f"{len(text)} characters -> {len(pieces)} tokens (vocabulary {vocab_size}): "
                     f"{len(text) / len(pieces):.2f} characters per token", fontsize=10)
    else:
        ax.set_title(f"type some text: the empty string has no tokens (vocabulary {vocab_size})", fontsize=10)
    return fig


# ---------------------------------------------------------------------------
# Notebook 06: next-token prediction
# ---------------------------------------------------------------------------

def _bigram_model():
    """The character bigram model of notebook 06 (add-one smoothing), cached after the first call."""
    global _BIGRAM
    try:
        return _BIGRAM
    except NameError:
        from helpers import data, language_model, tokenizers

        text = data.corpus_text("train")
        tok = tokenizers.CharTokenizer(text)
        counts = language_model.bigram_counts(tok.encode(text), tok.vocab_size)
        _BIGRAM = tok, counts, language_model.bigram_probs(counts, alpha=1.0)
        return _BIGRAM


def make_bigram_table(counts, chars, show=" \nabcdefghijklmnopqrstuvwxyz"):
    """Heat map of bigram counts for the characters in ``show`` (rows: current, columns: next)."""
    index = [chars.index(c) for c in show if c in chars]
    sub = counts[np.ix_(index, index)]
    labels = [_shown_chars(chars[i]) for i in index]
    fig, ax = new_figure(width=7.2, height=6.4)
    image = ax.imshow(np.log10(sub + 1), cmap="Blues")
    ax.set_xticks(range(len(index)), labels, fontsize=9)
    ax.set_yticks(range(len(index)), labels, fontsize=9)
    ax.set_xlabel("next character")
    ax.set_ylabel("current character")
    ax.set_title("How often each character follows another (log scale)")
    fig.colorbar(image, ax=ax, label="log10(count + 1)", shrink=0.8)
    return fig


def make_sampling_explorer(temperature: float = 1.0, top_k: int = 78, context: str = "h"):
    """The bigram model's next-character distribution after ``context`` (adjusted by temperature
    and top-k), and a sampled line that starts from ``context``."""
    from helpers import language_model

    tok, counts, probs = _bigram_model()
    if not context or context[-1] not in tok.stoi:
        context = "h"
    current = tok.stoi[context[-1]]
    top_k = int(min(max(top_k, 1), tok.vocab_size))
    adjusted = language_model.adjust(probs[current], temperature, top_k)
    order = np.argsort(adjusted)[::-1][:15]
    fig, (ax, ax_text) = new_figure(nrows=2, width=9.0, height=5.4)
    shown = [_shown_chars(tok.chars[i]) for i in order]
    ax.bar(range(len(order)), adjusted[order], color=CLASS_COLORS[0])
    ax.set_xticks(range(len(order)), shown)
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1)
    ax.set_title(f"Next character after {context[-1]!r}: temperature {temperature:.2f}, top-k {top_k} "
                 f"(the 15 most likely shown)", fontsize=10)
    ids = language_model.sample(probs, current, 160, temperature, top_k, seed=0)
    text = context[-1] + tok.decode(ids)
    ax_text.text(0.0, 1.0, "\n".join(text.split("\n")[:6]), family="monospace", fontsize=9, va="top",
                 transform=ax_text.transAxes, wrap=True)
    ax_text.axis("off")
    ax_text.set_title("a sample (seed 0)", fontsize=10)
    return fig


# ---------------------------------------------------------------------------
# Notebook 07: attention
# ---------------------------------------------------------------------------

def attention_heatmap(ax, weights, labels=None, title: str = "", highlight_row: int | None = None,
                      colorbar: bool = True):
    """Draw a ``(T_q, T_k)`` attention matrix: row = the token that looks, column = where it looks.

    ``labels`` (a string, or one label per position) names the positions on both axes, with
    spaces and new lines made visible (``␣``, ``⏎``); without it the axes count positions.
    ``colorbar`` adds a bar from 0 to 1 labelled "attention weight" (pass ``False`` when several
    maps share one, as in :func:`make_attention_heads`). Returns the image.
    """
    weights = np.asarray(weights, dtype=float)
    image = ax.imshow(weights, cmap="Blues", vmin=0.0, vmax=1.0)
    if labels is not None:
        shown = [_shown_chars(c) for c in labels]
        if len(shown) != weights.shape[1]:
            raise ValueError(f"got {len(shown)} labels for {weights.shape[1]} positions")
        ax.set_xticks(range(len(shown)), shown, fontsize=9)
        ax.set_yticks(range(weights.shape[0]), shown[:weights.shape[0]], fontsize=9)
        ax.tick_params(length=2, pad=1)
    ax.set_xlabel("attends to (key position)")
    ax.set_ylabel("token (query position)")
    if highlight_row is not None:
        ax.axhline(highlight_row - 0.5, color=CLASS_COLORS[1], lw=1.5)
        ax.axhline(highlight_row + 0.5, color=CLASS_COLORS[1], lw=1.5)
    if title:
        ax.set_title(title, fontsize=10)
    if colorbar:   # a bar as tall as the map itself, whatever the figure's layout
        bar = ax.figure.colorbar(image, cax=ax.inset_axes([1.03, 0.0, 0.04, 1.0]), ticks=[0, 0.5, 1])
        bar.set_label("attention weight", labelpad=2)
    return image


def make_attention_heads(weights_by_head, labels=None, title: str = ""):
    """Every head's attention map for one text, two maps a row, sharing one colour bar (0 to 1).

    ``weights_by_head`` holds one ``(T, T)`` matrix per head; ``labels`` are the ``T`` characters
    (a string), drawn on both axes of every map.
    """
    maps = [np.asarray(w, dtype=float) for w in weights_by_head]
    ncols = min(2, len(maps))
    nrows = -(-len(maps) // ncols)
    fig, axes = new_figure(ncols=ncols, nrows=nrows, width=5.2 * ncols, height=4.9 * nrows)
    axes = np.atleast_1d(axes)
    for h, (ax, weights) in enumerate(zip(axes, maps)):
        image = attention_heatmap(ax, weights, labels, title=f"head {h}", colorbar=False)
        ax.set_xlabel("attends to (key)" if h >= len(maps) - ncols else "")
        ax.set_ylabel("query" if h % ncols == 0 else "")
    for ax in axes[len(maps):]:
        ax.axis("off")
    fig.colorbar(image, ax=list(axes), label="attention weight", ticks=[0, 0.25, 0.5, 0.75, 1], shrink=0.6)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def make_attention_explorer(model, tokenizer, text: str, position: int = 20, head: int = 0, layer: int = 0,
                            scale: bool = True, causal: bool = True):
    """Where head ``head`` of ``layer`` looks from the character at ``position`` of ``text``.

    Left: every position's weights (the heat map; the chosen row outlined). Right: the chosen
    row as bars. ``scale`` and ``causal`` switch the ``sqrt(d_head)`` division and the mask.
    """
    from helpers import attention

    ids = tokenizer.encode(text)[: model.config.block_size]
    chars = tokenizer.decode(ids)
    T = len(ids)
    n_head = model.config.n_head
    position = int(min(max(position, 0), T - 1))
    head = int(min(max(head, 0), n_head - 1))
    weights = attention.head_weights(model, ids, layer, head, scale=scale, causal=causal).numpy()
    row = weights[position]
    fig, (ax_map, ax_row) = plt.subplots(1, 2, figsize=(10.4, 5.0), dpi=DPI, layout="constrained",
                                         gridspec_kw={"width_ratios": [1.25, 1]})   # room for 32 labelled rows
    fig.get_layout_engine().set(wspace=0.05)   # a gap between the colour bar's label and the bars' axis
    attention_heatmap(ax_map, weights, chars, highlight_row=position,
                      title=f"head {head}: every token's weights ({'scaled' if scale else 'NOT scaled'}, "
                            f"{'causal mask' if causal else 'NO mask'})")
    future = np.arange(T) > position
    colors = [CLASS_COLORS[1] if f else CLASS_COLORS[0] for f in future]
    ax_row.bar(range(T), row, color=colors)
    ax_row.set_xticks(range(T), [_shown_chars(c) for c in chars], fontsize=9)
    ax_row.set_ylim(0, 1)
    ax_row.set_ylabel("attention weight")
    ax_row.set_xlabel("key position (red: the future)")
    best = int(row.argmax())
    ax_row.set_title(f"from {_shown_chars(chars[position])!r} (position {position}):\nmost weight {row[best]:.2f} "
                     f"on {_shown_chars(chars[best])!r} (position {best})", fontsize=10)
    if not causal and row[future].sum() > 0.01:
        ax_row.text(0.5, 0.93, f"without the mask {row[future].sum():.0%} of the weight is on the future:\n"
                               "in training that would let the model read the answer",
                    transform=ax_row.transAxes, ha="center", va="top", fontsize=9, color=CLASS_COLORS[1])
    return fig


# ---------------------------------------------------------------------------
# Notebook 08: the transformer
# ---------------------------------------------------------------------------

def model_size(n_layer: int, n_head: int, n_embd: int, block_size: int, vocab_size: int) -> dict:
    """Parameter counts by part, training FLOPs per token and memory (bytes) of a course GPT.

    Memory: fp32 weights are 4 bytes a parameter; training with AdamW keeps weights, gradients
    and two moment estimates, 16 bytes a parameter (activations come on top, growing with batch
    size and context).
    """
    from helpers import gpt

    config = gpt.GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=n_head,
                           n_embd=n_embd)
    C = n_embd
    parts = {"token embedding (= head)": vocab_size * C, "position embedding": block_size * C,
             "attention": n_layer * (4 * C * C + 4 * C), "MLP": n_layer * (8 * C * C + 5 * C),
             "layer norms": (2 * n_layer + 1) * 2 * C}
    total = gpt.count_parameters(config)
    assert sum(parts.values()) == total
    return {"parts": parts, "total": total, "flops_per_token": gpt.flops_per_token(config),
            "inference_bytes": 4 * total, "training_bytes": 16 * total}


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000:
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"


def make_size_explorer(n_layer: int = 4, n_head: int = 4, n_embd: int = 128, block_size: int = 64,
                       vocab_size: int = 78):
    """Architecture knobs in; parameters by part, FLOPs per token and memory out."""
    fig, ax = new_figure(width=8.0, height=4.0)
    if n_embd % n_head:
        ax.text(0.5, 0.5, f"n_embd = {n_embd} is not divisible by n_head = {n_head}:\n"
                          f"each head gets n_embd / n_head dimensions, so pick sizes that divide",
                ha="center", va="center", fontsize=11, color=CLASS_COLORS[1], transform=ax.transAxes)
        ax.axis("off")
        ax.set_title("not a valid architecture")
        return fig
    size = model_size(n_layer, n_head, n_embd, block_size, vocab_size)
    names, counts = list(size["parts"]), list(size["parts"].values())
    ax.barh(names, counts, color=CLASS_COLORS[: len(names)])
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(1, max(counts) * 30)
    for i, n in enumerate(counts):
        ax.text(max(n, 1) * 1.2, i, f"{n:,} ({n / size['total']:.0%})", va="center", fontsize=9)
    ax.set_xlabel("parameters (log scale)")
    ax.set_title(f"{size['total']:,} parameters: weights {_bytes(size['inference_bytes'])} (fp32), "
                 f"training state {_bytes(size['training_bytes'])};\n"
                 f"{size['flops_per_token']:,} training FLOPs per token "
                 f"(head size {n_embd // n_head})", fontsize=10)
    return fig


# ---------------------------------------------------------------------------
# Notebook 09: pretraining
# ---------------------------------------------------------------------------

class LiveLoss:
    """A loss plot that redraws in place while a model trains: pass it as ``on_eval`` to
    ``helpers.training.train``. ``live.figure()`` returns the final plot as a Figure."""

    def __init__(self, title: str = "training", reference: dict | None = None):
        from IPython.display import display

        self.title, self.reference = title, dict(reference or {})
        self.history = {"step": [], "train": [], "val": []}
        self.handle = display(self._placeholder(), display_id=True)   # None outside a notebook

    def _placeholder(self):
        from IPython.display import Markdown

        return Markdown(f"*{self.title}: the plot appears at the first evaluation…*")

    def figure(self):
        fig, ax = new_figure(height=3.4)
        steps = self.history["step"]
        ax.plot(steps, self.history["train"], "o-", label="training plays")
        ax.plot(steps, self.history["val"], "o-", label="held-out plays")
        for i, (name, value) in enumerate(self.reference.items()):
            ax.axhline(value, color="grey", linestyle=["--", ":", "-."][i % 3], label=f"{name} ({value:.2f})")
        ax.set_xlabel("step")
        ax.set_ylabel("loss (nats per character)")
        ax.set_title(self.title)
        ax.legend(fontsize=9)
        return fig

    def __call__(self, step, history):
        self.history = {k: list(v) for k, v in history.items()}
        if self.handle is not None:
            fig = self.figure()
            self.handle.update(fig)
            plt.close(fig)


def make_schedule(steps: int = 4800, lr: float = 2e-3, min_lr: float = 1e-4, warmup_steps: int = 200):
    """The learning rate at every step: linear warm-up, then cosine decay (``training.learning_rate``)."""
    from helpers import training

    config = training.TrainConfig(steps=steps, lr=lr, min_lr=min_lr, warmup_steps=warmup_steps)
    rates = [training.learning_rate(s, config) for s in range(steps)]
    fig, ax = new_figure(height=3.0)
    ax.plot(rates)
    ax.axvline(warmup_steps, color="grey", linestyle=":", label=f"end of warm-up (step {warmup_steps})")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.set_title(f"warm-up to {lr:g}, cosine decay to {min_lr:g}")
    ax.legend()
    return fig


def make_generation_explorer(models: dict, tokenizer, temperature: float = 0.8, checkpoint: int = -1,
                             prompt: str = "ROMEO:\n", length: int = 300, seed: int = 0):
    """Text sampled from one of ``models`` (``{label: model}``, in training order) after ``prompt``.

    ``checkpoint`` indexes the models (-1 = the last). Characters the tokenizer does not know are
    dropped from the prompt, with a note; an empty prompt starts from a new line.
    """
    import torch

    labels = list(models)
    index = int(checkpoint) if -len(labels) <= int(checkpoint) < len(labels) else -1
    label = labels[index]
    model = models[label]
    kept = "".join(c for c in prompt if c in tokenizer.stoi)
    note = f"  (dropped {len(prompt) - len(kept)} unknown character(s) from the prompt)" if len(kept) < len(prompt) else ""
    kept = kept[-model.config.block_size:] or "\n"
    idx = torch.tensor([tokenizer.encode(kept)])
    out = model.generate(idx, length, temperature=max(float(temperature), 1e-3),
                         generator=torch.Generator().manual_seed(seed))
    text = tokenizer.decode(out[0].tolist())
    fig, ax = new_figure(width=9.0, height=5.2)
    ax.text(0.0, 1.0, "\n".join(text.split("\n")[:18]), family="monospace", fontsize=9, va="top",
            transform=ax.transAxes)
    ax.axis("off")
    ax.set_title(f"{label}, temperature {temperature:.2f}{note}", fontsize=10)
    return fig


# ---------------------------------------------------------------------------
# Notebook 10: evaluation and data
# ---------------------------------------------------------------------------

SWEEP_FAMILIES = {
    "amount of data": ["fraction-1/256", "fraction-1/64", "fraction-1/16", "fraction-1/4", "baseline"],
    "noisy text": ["baseline", "noise-0.03", "noise-0.1", "noise-0.3"],
    "duplicated text": ["baseline", "duplicates"],
    "one genre or all": ["genre-comedies", "genre-all"],
    "model size": ["size-1x32", "baseline", "size-3x96", "size-4x128"],
}
SWEEP_LABELS = {"baseline": "all data, 2 layers x 64 (baseline)", "fraction-1/256": "1/256 of the data",
                "fraction-1/64": "1/64 of the data", "fraction-1/16": "1/16 of the data",
                "fraction-1/4": "1/4 of the data", "noise-0.03": "3% noise", "noise-0.1": "10% noise",
                "noise-0.3": "30% noise", "duplicates": "4 plays x 9 copies", "genre-comedies": "comedies only",
                "genre-all": "all genres, same size", "size-1x32": "1 layer x 32", "size-3x96": "3 layers x 96",
                "size-4x128": "4 layers x 128"}


def make_sweep_explorer(runs: dict, experiment: str = "amount of data", curves: str = "held-out"):
    """The learning curves of one family of stored runs (``data/sweeps.json``'s ``"runs"``).

    ``experiment`` is a key of :data:`SWEEP_FAMILIES`; ``curves`` is ``"held-out"``, ``"training"``
    or ``"both"`` (training dashed). The legend gives each run's final held-out loss.
    """
    if experiment not in SWEEP_FAMILIES:
        raise ValueError(f"unknown experiment {experiment!r}; choose one of {list(SWEEP_FAMILIES)}")
    if curves not in ("held-out", "training", "both"):
        raise ValueError(f"curves must be 'held-out', 'training' or 'both', not {curves!r}")
    names = [n for n in SWEEP_FAMILIES[experiment] if n in runs]
    fig, ax = new_figure(width=7.2, height=4.0)
    colours = plt.cm.viridis(np.linspace(0.0, 0.85, max(2, len(names))))
    for colour, name in zip(colours, names):
        history = runs[name]["history"]
        label = f"{SWEEP_LABELS.get(name, name)}: {runs[name]['final']['validation']:.3f}"
        if curves in ("held-out", "both"):
            ax.plot(history["step"], history["val"], "-", color=colour, label=label)
        if curves in ("training", "both"):
            ax.plot(history["step"], history["train"], "--", color=colour,
                    label=None if curves == "both" else label)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per character)")
    shown = {"held-out": "held-out loss", "training": "training loss",
             "both": "held-out (solid) and training (dashed) loss"}[curves]
    ax.set_title(f"{experiment}: {shown}", fontsize=10)
    ax.legend(fontsize=9, title="final held-out loss", title_fontsize=9)
    return fig


def plain_log_ticks(ax, most: int = 6) -> None:
    """Label the log-scaled axes of ``ax`` with a few plain, distinct numbers (2.2, 30,000; not
    2.2×10⁰ or 3×10⁴), at most ``most`` an axis, and no labels on the minor ticks.

    Call it after plotting: the ticks are chosen for the axes' limits at the time of the call.
    Over a few decades the ticks are powers of ten (every second one over many), or 1 and 3,
    or 1, 2 and 5 times a power of ten; over less than a decade, evenly spaced round numbers
    (1.8, 1.9, 2.0).
    """
    from matplotlib.ticker import NullFormatter

    for axis, limits in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        if axis.get_scale() != "log":
            continue
        ticks = _log_ticks(min(limits), max(limits), most)
        axis.set_ticks(ticks, [_plain_number(t, ticks) for t in ticks])
        axis.set_minor_formatter(NullFormatter())


def _log_ticks(lo: float, hi: float, most: int) -> list[float]:
    """Between 2 and ``most`` round numbers in ``[lo, hi]`` (``0 < lo < hi``) for a log axis."""
    from matplotlib.ticker import MaxNLocator

    exponents = range(int(np.floor(np.log10(lo))) - 1, int(np.ceil(np.log10(hi))) + 2)
    powers = [10.0 ** k for k in exponents if lo <= 10.0 ** k <= hi]
    if len(powers) > most:                                  # many decades: every second (third, ...) power
        powers = powers[::-(-len(powers) // most)]
    if len(powers) >= 3:
        return powers
    for mantissas in ((1, 3), (1, 2, 5)):
        ticks = [m * 10.0 ** k for k in exponents for m in mantissas if lo <= m * 10.0 ** k <= hi]
        if 3 <= len(ticks) <= most:
            return ticks
    # Less than a decade: round numbers, evenly spaced in value.
    for bins in range(min(most, 5), 1, -1):
        ticks = [float(t) for t in MaxNLocator(nbins=bins, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
                 if lo <= t <= hi]
        if 2 <= len(ticks) <= most:
            return ticks
    return [lo, hi]


def _plain_number(value: float, ticks) -> str:
    """``value`` written plainly, with the fewest decimals that keep every one of ``ticks`` distinct."""
    for decimals in range(0, 7):
        labels = [f"{t:,.{decimals}f}" for t in ticks]
        if len(set(labels)) == len(labels) and all(abs(float(lab.replace(",", "")) - t) <= 1e-9 * abs(t)
                                                   for lab, t in zip(labels, ticks)):
            return f"{value:,.{decimals}f}"
    return f"{value:.3g}"


def _play_title(slug: str, title: str | None) -> str:
    """The stored title, or one made from the slug where the corpus had none (``measure-for-measure``)."""
    return title if title and title != slug else data.title_from_slug(slug)


def make_play_losses(plays: dict, characters: int = 20_000):
    """The shipped model's loss on each play (``data/sweeps.json``'s ``"plays"``: ``{slug: {"title",
    "loss", "seen", ...}}``, measured on each play's first ``characters``), one bar a play from
    the lowest loss up: seen plays blue, unseen red, each bar labelled with the play's title."""
    order = sorted(plays, key=lambda slug: plays[slug]["loss"])
    losses = [plays[s]["loss"] for s in order]
    fig, ax = new_figure(width=10.0, height=4.4)
    colours = [CLASS_COLORS[0] if plays[s]["seen"] else CLASS_COLORS[1] for s in order]
    ax.bar(range(len(order)), losses, color=colours)
    ax.set_xticks(range(len(order)), [_play_title(s, plays[s].get("title"))[:30] for s in order], rotation=90,
                  fontsize=9)
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.set_ylim(1.1, max(losses) + 0.05)
    ax.set_ylabel("loss (nats per character)")
    ax.set_title(f"The shipped model on each play's first {characters:,} characters: seen (blue), unseen (red)",
                 fontsize=10)
    return fig


# ---------------------------------------------------------------- notebook 11: fine-tuning

METHOD_COLOURS = {"scratch": "#7f7f7f", "frozen": "#1f77b4", "lora": "#ff7f0e", "full": "#d62728"}
METHOD_LABELS = {"scratch": "from scratch", "frozen": "frozen + head", "lora": "LoRA", "full": "full fine-tuning"}


def make_finetune_explorer(runs: dict, baselines: dict, method: str = "all", per_genre: int = 320, steps: int = 200):
    """Notebook 11's explorer over the stored genre runs (``data/finetune_genre.json``'s ``"runs"``,
    named ``<method>-<per_genre>``). Left: held-out accuracy as training goes on, for the chosen
    number of passages per genre; right: accuracy after ``steps`` steps against the number of
    training passages. ``method`` is one of the methods or ``"all"``; ``baselines`` maps a name
    to an accuracy, or to ``{per_genre: accuracy}``, drawn in black (majority class, bag of
    characters)."""
    methods = [m for m in METHOD_LABELS if method in ("all", m)]
    sizes = sorted({r["per_genre"] for r in runs.values()})
    if not methods or per_genre not in sizes:
        raise ValueError(f"method must be 'all' or one of {list(METHOD_LABELS)} and per_genre one of {sizes}")
    available = runs[f"{methods[0]}-{per_genre}"]["history"]["step"]
    if steps not in available:
        raise ValueError(f"steps must be one of {available}, got {steps}")
    fig, (left, right) = new_figure(ncols=2, width=10.0, height=4.0)
    for m in methods:
        history = runs[f"{m}-{per_genre}"]["history"]
        left.plot(history["step"], np.array(history["accuracy"]) * 100, "o-", color=METHOD_COLOURS[m],
                  label=METHOD_LABELS[m])
        at = history["step"].index(steps)
        left.plot([steps], [history["accuracy"][at] * 100], "o", ms=12, mfc="none", color=METHOD_COLOURS[m])
        by_size = [runs[f"{m}-{n}"]["history"]["accuracy"][runs[f"{m}-{n}"]["history"]["step"].index(steps)] * 100
                   for n in sizes]
        right.plot(sizes, by_size, "o-", color=METHOD_COLOURS[m], label=METHOD_LABELS[m])
    for (name, value), style in zip(baselines.items(), (":", "-.")):
        by_size = value if isinstance(value, dict) else {n: value for n in sizes}   # one number, or one per size
        left.axhline(by_size[per_genre] * 100, color="black", linestyle=style, linewidth=1, label=name)
        right.plot(sizes, [by_size[n] * 100 for n in sizes], color="black", linestyle=style, linewidth=1, label=name)
    for ax in (left, right):
        ax.set_ylabel("held-out accuracy (%)")
        ax.set_ylim(25, 70)
    left.set_xlabel("training step")
    left.set_title(f"{per_genre} training passages per genre", fontsize=10)
    right.set_xscale("log")
    right.set_xticks(sizes, [str(n) for n in sizes])
    right.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    right.set_xlabel("training passages per genre")
    right.set_title(f"after {steps} steps", fontsize=10)
    # one legend under both panels (they share their lines), where it can hide no point
    fig.legend(*left.get_legend_handles_labels(), loc="outside lower center", ncols=3, fontsize=9)
    return fig


def confusion_figure(matrix, classes, title: str = ""):
    """A confusion matrix as a labelled heat map: rows the true class, columns the prediction."""
    matrix = np.asarray(matrix)
    fig, ax = new_figure(width=4.6, height=3.8)
    ax.imshow(matrix, cmap="Blues")
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                    color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted genre")
    ax.set_ylabel("true genre")
    ax.set_title(title, fontsize=10)
    return fig


# ---------------------------------------------------------------- notebook 12: model families

MASK_KINDS = ("causal (GPT)", "bidirectional (BERT)", "permutation (XLNet content)", "two streams (XLNet)")


def family_mask(kind: str, T: int, seed: int = 0):
    """``(mask, order)``: the attention mask of one of :data:`MASK_KINDS` for ``T`` positions (a
    two-stream mask is ``2T x 2T``); ``order`` is the factorisation order drawn with ``seed``
    (``None`` for the first two)."""
    import torch

    from helpers import families, gpt

    if kind not in MASK_KINDS:
        raise ValueError(f"kind must be one of {MASK_KINDS}, got {kind!r}")
    if kind == MASK_KINDS[0]:
        return gpt.causal_mask(T).numpy(), None
    if kind == MASK_KINDS[1]:
        return gpt.bidirectional_mask(T).numpy(), None
    order = torch.randperm(T, generator=torch.Generator().manual_seed(seed)).tolist()
    if kind == MASK_KINDS[2]:
        return gpt.permutation_mask(order).numpy(), order
    return families.two_stream_mask(order).numpy(), order


def make_mask_explorer(kind: str = MASK_KINDS[0], position: int = 5, seed: int = 0, text: str = "To be or not"):
    """The mask of ``kind`` for the characters of ``text`` (one row per position that looks, one
    column per position it may see), with ``position``'s row outlined, and under it the text with
    the characters that position may use in colour; for the two streams, the query at
    ``position`` (which predicts its character) is shown."""
    T = len(text)
    if not 0 <= position < T:
        raise ValueError(f"position must be between 0 and {T - 1}")
    mask, order = family_mask(kind, T, seed)
    two_stream = mask.shape[0] == 2 * T
    row = T + position if two_stream else position
    labels = list(_shown_chars(text)) + ([f"?{c}" for c in _shown_chars(text)] if two_stream else [])
    fig, (ax, strip) = plt.subplots(2, 1, figsize=(6.0, 6.0), dpi=DPI, gridspec_kw={"height_ratios": [7, 1]},
                                    layout="constrained")
    ax.imshow(mask, cmap="Greens", vmin=0, vmax=1.4)
    ax.add_patch(matplotlib.patches.Rectangle((-0.5, row - 0.5), mask.shape[1], 1, fill=False, edgecolor="red", lw=2))
    ax.set_xticks(range(len(labels)), labels, fontsize=9)
    ax.set_yticks(range(len(labels)), labels, fontsize=9)
    ax.set_xlabel("may see")
    ax.set_ylabel("looks")
    ordered = f"; order {order}" if order is not None else ""
    ax.set_title(f"{kind}{ordered}", fontsize=9)
    visible = mask[row, :T]
    strip.axis("off")
    for i, ch in enumerate(_shown_chars(text)):
        colour = "#2ca02c" if visible[i] else "#dddddd"
        edge = "red" if i == position else "none"
        strip.add_patch(matplotlib.patches.Rectangle((i, 0), 0.9, 0.9, color=colour, ec=edge, lw=2))
        strip.text(i + 0.45, 0.45, ch, ha="center", va="center", fontsize=10)
    strip.set_xlim(-0.2, max(T, 12) + 0.2)
    strip.set_ylim(-0.1, 1.0)
    strip.set_aspect("equal")
    what = "its query sees" if two_stream else "sees"
    strip.set_title(f"position {position} ({text[position]!r}) {what} the green characters "
                    f"({int(visible.sum())} of {T})", fontsize=9)
    return fig


def _shown_chars(text: str) -> str:
    """Characters made visible as labels, the one convention of every character figure: a space
    as '␣', a new line as '⏎'."""
    return text.replace(" ", "␣").replace("\n", "⏎")
