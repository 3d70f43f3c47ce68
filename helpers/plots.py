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

# One palette for the whole course: class 0, class 1, class 2, ...
CLASS_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
FIGSIZE = (6.4, 4.0)
DPI = 80  # small PNGs keep notebooks light and diffs readable


def new_figure(ncols: int = 1, nrows: int = 1, width: float | None = None, height: float | None = None):
    """A figure with ``nrows x ncols`` axes at the course's default size; returns ``(fig, axes)``."""
    w = width if width is not None else FIGSIZE[0] * (1 if ncols == 1 else 0.75 * ncols)
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
    y = 1.0 / (1.0 + np.exp(-(weight * x + bias)))
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
# (section reserved for notebook 01's figures)


# ---------------------------------------------------------------------------
# Notebook 02: learning from data
# ---------------------------------------------------------------------------
# (section reserved for notebook 02's figures)


# ---------------------------------------------------------------------------
# Notebook 03: backpropagation
# ---------------------------------------------------------------------------
# (section reserved for notebook 03's figures)


# ---------------------------------------------------------------------------
# Notebook 04: training networks
# ---------------------------------------------------------------------------
# (section reserved for notebook 04's figures)
