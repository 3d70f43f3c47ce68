"""Figures of part 5, adaptation (notebooks 11_fine_tuning and 12_model_families).

The fine-tuning explorer over the stored genre runs and the confusion matrix (11); the attention
masks of the model families (12), whose masks come from ``families.family_mask``.
"""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from helpers import families
from helpers.families import MASK_KINDS
from helpers.plots.common import DPI, character_ticks, new_figure, visible_whitespace


# ---------------------------------------------------------------- notebook 11: fine-tuning

METHOD_COLOURS = {"scratch": "#7f7f7f", "frozen": "#1f77b4", "lora": "#ff7f0e", "full": "#d62728"}
METHOD_LABELS = {"scratch": "from scratch", "frozen": "frozen + head", "lora": "LoRA", "full": "full fine-tuning"}


def make_finetune_explorer(runs: dict, baselines: dict, method: str = "all", per_genre: int = 320, steps: int = 200):
    """Notebook 11's explorer over the stored genre runs (``data/finetune_genre.json``'s ``"runs"``,
    named ``<method>-<per_genre>``). Left: held-out accuracy as training goes on, for the chosen
    number of passages per genre; right: accuracy after ``steps`` steps against the number of
    training passages. ``method`` is one of the methods or ``"all"``; ``baselines`` maps a name
    to an accuracy, or to ``{per_genre: accuracy}``, drawn in black (majority class, bag of
    characters, linear probe: at most three)."""
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
    if len(baselines) > 3:
        raise ValueError(f"at most three baselines, got {len(baselines)}")
    for (name, value), style in zip(baselines.items(), (":", "-.", "--")):
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


def forgetting_figure(curves: dict, references: dict | None = None):
    """Notebook 11's forgetting figure. ``curves`` maps a label to ``(history, colour)``, a history
    holding ``step``, ``answer_loss`` and ``lm_loss`` lists (``data/finetune_modernise.json`` and
    ``data/finetune_extra.json``). Left: the new task (loss on held-out answers); right: the old
    skill (language-model loss on the validation plays), with ``references`` (label -> loss) as
    dotted lines."""
    fig, (left, right) = new_figure(ncols=2, width=10.0, height=4.0)
    for label, (history, colour) in curves.items():
        style = "o--" if "LoRA" in label else "o-"
        left.plot(history["step"], history["answer_loss"], style, color=colour, label=label, markersize=4)
        right.plot(history["step"], history["lm_loss"], style, color=colour, label=label, markersize=4)
    for label, value in (references or {}).items():
        right.axhline(value, color="black", linestyle=":", linewidth=1)
        right.text(right.get_xlim()[1], value, f" {label}", va="center", fontsize=8)
    left.set_title("the new task: loss on held-out answers", fontsize=10)
    right.set_title("the old skill: loss on the validation plays", fontsize=10)
    for ax in (left, right):
        ax.set_xlabel("fine-tuning step")
        ax.set_ylabel("loss (nats per character)")
    fig.legend(*left.get_legend_handles_labels(), loc="outside lower center", ncols=3, fontsize=9)
    return fig


# ---------------------------------------------------------------- notebook 12: model families

def _outline_encoder_decoder(ax, source: int, size: int) -> None:
    """Outline and name the three blocks of an encoder-decoder's joint mask on ``ax``."""
    target = size - source
    for (x, y, w, h), name in (((0, 0, source, source), "encoder"), ((0, source, source, target), "cross"),
                               ((source, source, target, target), "decoder")):
        ax.add_patch(matplotlib.patches.Rectangle((x - 0.5, y - 0.5), w, h, fill=False, edgecolor="#1f77b4", lw=1.5))
        ax.text(x + w / 2 - 0.5, y + h / 2 - 0.5, name, ha="center", va="center", fontsize=9, color="#1f77b4",
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1})


def make_mask_gallery(text: str = "To be or not", seed: int = 0):
    """Notebook 12's gallery: the masks of the families for the characters of ``text`` (rows: the
    position that looks; columns: what it may see; green: allowed). Top: causal (GPT),
    bidirectional (BERT), prefix LM (first half the prefix); bottom: encoder-decoder (first half
    the source, its three blocks outlined), permutation (XLNet's content stream, order drawn with
    ``seed``), and the same permutation mask with rows and columns sorted by the order."""
    T = len(text)
    fig, axes = new_figure(nrows=2, ncols=3, width=10.0, height=7.2)
    kinds = [MASK_KINDS[0], MASK_KINDS[1], MASK_KINDS[4], MASK_KINDS[5], MASK_KINDS[2]]
    for ax, kind in zip(axes, kinds):
        mask, order = families.family_mask(kind, T, seed)
        ax.imshow(mask, cmap="Greens", vmin=0, vmax=1.4)
        character_ticks(ax, text)
        ax.set_title(kind, fontsize=10)
        if kind == MASK_KINDS[5]:
            _outline_encoder_decoder(ax, T // 2, T)
    mask, order = families.family_mask(MASK_KINDS[2], T, seed)
    ax = axes[5]
    ax.imshow(families.sorted_by_order(mask, order), cmap="Greens", vmin=0, vmax=1.4)
    character_ticks(ax, [text[p] for p in order])
    ax.set_title("permutation, sorted by its order", fontsize=10)
    for ax in axes[3:]:
        ax.set_xlabel("may see")
    for ax in axes[::3]:
        ax.set_ylabel("looks")
    return fig


def make_mask_explorer(kind: str = MASK_KINDS[0], position: int = 5, seed: int = 0, text: str = "To be or not"):
    """The mask of ``kind`` for the characters of ``text`` (one row per position that looks, one
    column per position it may see), with ``position``'s row outlined, and under it the text with
    the characters that position may use in colour; for the two streams, the query at
    ``position`` (which predicts its character) is shown."""
    T = len(text)
    if not 0 <= position < T:
        raise ValueError(f"position must be between 0 and {T - 1}")
    mask, order = families.family_mask(kind, T, seed)
    two_stream = mask.shape[0] == 2 * T
    row = T + position if two_stream else position
    labels = list(text) + ([f"?{c}" for c in text] if two_stream else [])
    fig, (ax, strip) = plt.subplots(2, 1, figsize=(6.0, 6.0), dpi=DPI, gridspec_kw={"height_ratios": [7, 1]},
                                    layout="constrained")
    ax.imshow(mask, cmap="Greens", vmin=0, vmax=1.4)
    if kind == MASK_KINDS[5]:
        _outline_encoder_decoder(ax, T // 2, T)
    ax.add_patch(matplotlib.patches.Rectangle((-0.5, row - 0.5), mask.shape[1], 1, fill=False, edgecolor="red", lw=2))
    character_ticks(ax, labels)
    ax.set_xlabel("may see")
    ax.set_ylabel("looks")
    ordered = f"; order {order}" if order is not None else ""
    ax.set_title(f"{kind}{ordered}", fontsize=9)
    visible = mask[row, :T]
    strip.axis("off")
    for i, ch in enumerate(visible_whitespace(text)):
        colour = "#2ca02c" if visible[i] else "#dddddd"
        edge = "red" if i == position else "none"
        strip.add_patch(matplotlib.patches.Rectangle((i, 0), 0.9, 0.9, color=colour, ec=edge, lw=2))
        strip.text(i + 0.45, 0.45, ch, ha="center", va="center", fontsize=10)
    strip.set_xlim(-0.2, max(T, 12) + 0.2)
    strip.set_ylim(-0.1, 1.0)
    strip.set_aspect("equal")
    who = f"the query for position {position}" if two_stream else f"position {position}"
    strip.set_title(f"{who} ({text[position]!r}) sees the green characters "
                    f"({int(visible.sum())} of {T})", fontsize=9)
    return fig
