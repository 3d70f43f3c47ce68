"""Figure primitives shared by every part of the course (introduced in notebook 00_start_here).

Rules every figure in the course follows:

* it has a title and labelled axes;
* it is *returned* by a pure function (``make_...``) so tests can draw it with no
  notebook, and explorers can redraw it when a slider moves;
* a notebook shows it with :func:`show`, which displays it once and closes it.

Here: the palette, the figure size and resolution, :func:`new_figure`, :func:`show` and
:func:`to_png`; the pieces several parts draw with (class scatters and decision regions,
loss curves, attention heat maps, plain log ticks, the live loss plot of a training run);
and the one way of making whitespace visible in a figure, :func:`visible_whitespace`.
"""

import io

import matplotlib

import matplotlib.pyplot as plt
import numpy as np

# One palette for the whole course: class 0, class 1, class 2, ...
CLASS_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
FIGSIZE = (6.4, 4.0)
DPI = 100  # a 6.4-inch figure is 640 px: most of a laptop notebook column; 9 pt text is 12 px


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


# ---------------------------------------------------------------- whitespace made visible

# Labels of single characters (axis ticks, heat maps) and pieces inside running text (notebook
# 05's token boxes, where a lighter mark keeps the words readable), as the notebooks' prose says.
WHITESPACE = {"label": {" ": "␣", "\n": "⏎"}, "running text": {" ": "·", "\n": "↵"}}


def visible_whitespace(text: str, style: str = "label") -> str:
    """``text`` with spaces and new lines made visible, the one convention of every figure:
    ``"label"`` (a character on an axis) shows ``'␣'`` and ``'⏎'``; ``"running text"`` (a token
    inside a line of text, notebook 05) shows ``'·'`` and ``'↵'``."""
    for char, mark in WHITESPACE[style].items():
        text = text.replace(char, mark)
    return text


def character_ticks(ax, labels, rows: int | None = None, fontsize: float = 9) -> None:
    """Name the columns of ``ax`` (an image) by ``labels`` (a string, or one label per column),
    and its first ``rows`` rows (default: as many as the labels) the same way, whitespace made
    visible."""
    shown = [visible_whitespace(c) for c in labels]
    rows = len(shown) if rows is None else rows
    ax.set_xticks(range(len(shown)), shown, fontsize=fontsize)
    ax.set_yticks(range(rows), shown[:rows], fontsize=fontsize)


# ---------------------------------------------------------------- classes, losses, heat maps

def scatter_classes(ax, X: np.ndarray, y: np.ndarray, size: float = 14) -> None:
    """Scatter 2-D points ``X`` (shape ``(n, 2)``) coloured by integer class ``y`` (shape ``(n,)``)."""
    for k in np.unique(y):
        pts = X[y == k]
        ax.scatter(pts[:, 0], pts[:, 1], s=size, color=CLASS_COLORS[int(k) % len(CLASS_COLORS)],
                   edgecolor="white", linewidth=0.4, label=f"class {int(k)}")


def decision_regions(ax, predict, X: np.ndarray, y: np.ndarray, resolution: int = 150,
                     margin: float = 0.5) -> None:
    """Shade where ``predict`` says class 1 vs class 0, then scatter the data on top (notebooks 01-04).

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


def attention_heatmap(ax, weights, labels=None, title: str = "", highlight_row: int | None = None,
                      colorbar: bool = True):
    """Draw a ``(T_q, T_k)`` attention matrix (notebook 07): row = the token that looks, column =
    where it looks.

    ``labels`` (a string, or one label per position) names the positions on both axes, with
    spaces and new lines made visible (``␣``, ``⏎``); without it the axes count positions.
    ``colorbar`` adds a bar from 0 to 1 labelled "attention weight" (pass ``False`` when several
    maps share one, as in ``make_attention_heads``). Returns the image.
    """
    weights = np.asarray(weights, dtype=float)
    image = ax.imshow(weights, cmap="Blues", vmin=0.0, vmax=1.0)
    if labels is not None:
        if len(labels) != weights.shape[1]:
            raise ValueError(f"got {len(labels)} labels for {weights.shape[1]} positions")
        character_ticks(ax, labels, rows=weights.shape[0])
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


# ---------------------------------------------------------------- log axes with plain numbers

def plain_log_ticks(ax, most: int = 6) -> None:
    """Label the log-scaled axes of ``ax`` with a few plain, distinct numbers (2.2, 30,000; not
    2.2×10⁰ or 3×10⁴), at most ``most`` an axis, and no labels on the minor ticks (notebook 10).

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


# ---------------------------------------------------------------- a training run, live

class LiveLoss:
    """A loss plot that redraws in place while a model trains (notebooks 09 and 10): pass it as
    ``on_eval`` to ``helpers.training.train``. ``live.figure()`` returns the final plot as a Figure."""

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
