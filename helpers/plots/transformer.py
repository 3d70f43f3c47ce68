"""Figures of part 3, the transformer (notebooks 07_attention and 08_the_transformer).

Every head's attention map and the attention explorer (07), drawn with
``common.attention_heatmap``, the count tables' losses and how far each head looks back (07);
the size explorer (08), whose counts come from ``gpt.parameters_by_part`` and
``gpt.flops_per_token``.
"""

import matplotlib.pyplot as plt
import numpy as np

from helpers.plots.common import CLASS_COLORS, DPI, attention_heatmap, new_figure, visible_whitespace


# ---------------------------------------------------------------- notebook 07: attention

def make_attention_heads(weights_by_head, labels=None, title: str = ""):
    """Every head's attention map for one text, two maps a row, sharing one colour bar (0 to 1).

    ``weights_by_head`` holds one ``(T, T)`` matrix per head; ``labels`` are the ``T`` characters
    (a string), drawn on both axes of every map.
    """
    maps = [np.asarray(w, dtype=float) for w in weights_by_head]
    ncols = min(2, len(maps))
    nrows = -(-len(maps) // ncols)
    fig, axes = new_figure(ncols=ncols, nrows=nrows, width=5.6 * ncols, height=5.2 * nrows)
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
    fig, (ax_map, ax_row) = plt.subplots(1, 2, figsize=(11.2, 5.4), dpi=DPI, layout="constrained",
                                         gridspec_kw={"width_ratios": [1.25, 1]})   # room for 32 labelled rows
    fig.get_layout_engine().set(wspace=0.05)   # a gap between the colour bar's label and the bars' axis
    attention_heatmap(ax_map, weights, chars, highlight_row=position,
                      title=f"head {head}: every token's weights ({'scaled' if scale else 'NOT scaled'}, "
                            f"{'causal mask' if causal else 'NO mask'})")
    future = np.arange(T) > position
    colors = [CLASS_COLORS[1] if f else CLASS_COLORS[0] for f in future]
    ax_row.bar(range(T), row, color=colors)
    ax_row.set_xticks(range(T), [visible_whitespace(c) for c in chars], fontsize=9)
    ax_row.set_ylim(0, 1)
    ax_row.set_ylabel("attention weight")
    ax_row.set_xlabel("key position (red: the future)")
    best = int(row.argmax())
    ax_row.set_title(f"from {visible_whitespace(chars[position])!r} (position {position}):\nmost weight "
                     f"{row[best]:.2f} on {visible_whitespace(chars[best])!r} (position {best})", fontsize=10)
    if not causal and row[future].sum() > 0.01:
        ax_row.text(0.5, 0.93, f"without the mask {row[future].sum():.0%} of the weight is on the future:\n"
                               "in training that would let the model read the answer",
                    transform=ax_row.transAxes, ha="center", va="top", fontsize=9, color=CLASS_COLORS[1])
    return fig


def make_ngram_losses(rows, model_losses: dict | None = None):
    """Held-out loss of the count tables against n (``rows``: ``data/ngrams.json``'s, with
    ``heldout_add_alpha`` and ``heldout_kneser_ney``), their training loss, and a dashed line
    per attention model in ``model_losses`` (name -> held-out loss)."""
    fig, ax = new_figure(width=7.6, height=3.8)
    n = [r["n"] for r in rows]
    ax.plot(n, [r["train_loss"] for r in rows], "o:", color="grey", label="table, on its own training plays")
    ax.plot(n, [r["heldout_add_alpha"] for r in rows], "o-", color=CLASS_COLORS[1], label="held out, add-0.1")
    ax.plot(n, [r["heldout_kneser_ney"] for r in rows], "o-", color=CLASS_COLORS[0],
            label="held out, Kneser-Ney (D tuned on training plays)")
    for i, (name, loss) in enumerate((model_losses or {}).items()):
        ax.axhline(loss, color=CLASS_COLORS[2 + i], linestyle="--", label=f"{name}: {loss:.2f}")
    best = min(rows, key=lambda r: r["heldout_kneser_ney"])
    ax.annotate(f"best table: n = {best['n']}, {best['heldout_kneser_ney']:.2f}",
                (best["n"], best["heldout_kneser_ney"]), xytext=(0, 22), textcoords="offset points",
                ha="center", fontsize=9, arrowprops={"arrowstyle": "->", "color": "grey"})
    ax.set_ylim(0, 3.5)
    ax.set_xticks(n)
    ax.set_xlabel("n (the table predicts from the last n - 1 characters)")
    ax.set_ylabel("loss (nats per character)")
    ax.set_title("Count tables: more context helps until the table runs out of data", fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
    return fig


def _layer_head_map(ax, values, title: str, label: str, vmax: float, fmt: str):
    """One layer x head grid of ``values`` ``(n_layer, n_head)``, each cell printed, with a colour bar."""
    values = np.asarray(values, dtype=float)
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax)
    for (layer, head), v in np.ndenumerate(values):
        ax.text(head, layer, format(v, fmt), ha="center", va="center", fontsize=9,
                color="white" if v > 0.6 * vmax else "black")
    ax.set_xticks(range(values.shape[1]))
    ax.set_yticks(range(values.shape[0]))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(title, fontsize=10)
    fig = ax.figure
    fig.colorbar(image, ax=ax, label=label, shrink=0.9)


def make_look_back(distance, line_start, context: int):
    """How far each head of a model looks back: the attention-weighted mean distance per layer x
    head (``attention.look_back``) and the weight on the start of the current line
    (``attention.weight_on_latest`` of the new line), both ``(n_layer, n_head)``."""
    fig, (ax_far, ax_line) = new_figure(ncols=2, width=10.0, height=3.9)
    distance = np.asarray(distance, dtype=float)
    _layer_head_map(ax_far, distance, f"mean distance looked back (context {context} characters)",
                    "characters back", vmax=max(32.0, float(distance.max())), fmt=".1f")
    _layer_head_map(ax_line, line_start, "weight on the new line that starts the current line",
                    "attention weight", vmax=1.0, fmt=".2f")
    return fig


def make_head_on_text(weights, text: str, title: str = ""):
    """One head's ``(T, T)`` attention map for a text of up to about 64 characters, large enough
    for a readable character on every row and column, with its colour bar."""
    fig, ax = new_figure(width=8.4, height=7.8)
    attention_heatmap(ax, weights, text, title=title)
    return fig


# ---------------------------------------------------------------- notebook 08: the transformer

def model_size(n_layer: int, n_head: int, n_embd: int, block_size: int, vocab_size: int) -> dict:
    """Parameter counts by part (``gpt.parameters_by_part``), training FLOPs per token and memory
    (bytes) of a course GPT: what the size explorer draws.

    Memory: fp32 weights are 4 bytes a parameter; training with AdamW keeps weights, gradients
    and two moment estimates, 16 bytes a parameter (activations come on top, growing with batch
    size and context).
    """
    from helpers import gpt

    config = gpt.GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=n_head,
                           n_embd=n_embd)
    total = gpt.count_parameters(config)
    return {"parts": gpt.parameters_by_part(config), "total": total, "flops_per_token": gpt.flops_per_token(config),
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


# --- notebook 08: the stored architecture experiments (data/architecture.json) and the fair race


def make_positions_experiment(record: dict):
    """Learned positions vs none: held-out curves (left) and the order test (right), from
    ``data/architecture.json``'s ``positions`` record."""
    fig, (ax_curve, ax_order) = new_figure(ncols=2, width=10.0, height=3.6)
    labels = {"learned": "learned position table", "none": "no positions (NoPE)"}
    for i, (name, run) in enumerate(record["runs"].items()):
        ax_curve.plot(run["history"]["step"], run["history"]["val"], marker="o", markersize=3,
                      color=CLASS_COLORS[i], label=labels.get(name, name))
    ax_curve.set_xlabel("step")
    ax_curve.set_ylabel("held-out loss (nats per character)")
    ax_curve.set_title("training with and without positions")
    ax_curve.legend(fontsize=9)
    names = list(record["runs"])
    for j, kind in enumerate(("in order", "shuffled")):
        values = [record["runs"][n]["order_test"][kind] for n in names]
        ax_order.bar(np.arange(len(names)) + 0.38 * (j - 0.5), values, width=0.38,
                     color=CLASS_COLORS[2 + j], label=f"context {kind}")
    ax_order.set_xticks(range(len(names)), [labels.get(n, n) for n in names], fontsize=9)
    ax_order.set_ylabel("loss on the next character")
    ax_order.set_title("shuffle all but the last character: who notices?")
    ax_order.legend(fontsize=9)
    return fig


def make_norm_experiment(record: dict, unigram: float | None = None):
    """Pre-LN vs post-LN GPTs of 2 and 8 blocks: held-out loss against step, from
    ``data/architecture.json``'s ``norm`` record; ``unigram`` draws the loss of predicting the
    character frequencies only."""
    fig, ax = new_figure(width=8.0, height=3.8)
    styles = {"pre": "-", "post": "--"}
    for i, (name, run) in enumerate(record["runs"].items()):
        if run["history"] is None:
            continue
        ax.plot(run["history"]["step"], run["history"]["val"], styles[run["norm"]], marker="o", markersize=3,
                color=CLASS_COLORS[i % len(CLASS_COLORS)], label=name)
    if unigram is not None:
        ax.axhline(unigram, color="grey", linestyle=":", label=f"character frequencies only ({unigram:.2f})")
    ax.set_xlabel("step")
    ax.set_ylabel("held-out loss (nats per character)")
    ax.set_title("pre-LN (solid) and post-LN (dashed), constant rate, no warm-up unless stated")
    ax.legend(fontsize=8)
    return fig


def make_fair_race(sweeps: dict, names=("size-1x32", "baseline", "size-3x96", "size-4x128"), compute=None):
    """Notebook 10's size sweep (``data/sweeps.json``): held-out loss against steps (left) and against
    training compute, 6 x parameters x characters (right, log scale: points along one 1,200-step schedule).
    ``compute``, the runs of ``data/sweeps_compute.json``, adds each bigger model trained on its own schedule
    with the baseline's whole budget (a star at its end)."""
    fig, (ax_step, ax_flops) = new_figure(ncols=2, width=10.0, height=3.6)
    batch = sweeps["train"]["batch_size"] * sweeps["model"]["block_size"]        # characters per step
    for i, name in enumerate(names):
        run = sweeps["runs"][name]
        steps, val = np.array(run["history"]["step"]), run["history"]["val"]
        label = f"{run['parameters']:,} parameters"
        ax_step.plot(steps, val, marker="o", markersize=3, color=CLASS_COLORS[i], label=label)
        ax_flops.plot(6 * run["parameters"] * steps * batch, val, marker="o", markersize=3, color=CLASS_COLORS[i],
                      label=label)
    ax_step.set_xlabel("step (16 windows of 64 characters)")
    ax_step.set_ylabel("held-out loss (nats per character)")
    ax_step.set_title("per step: the bigger, the lower")
    ax_flops.set_xscale("log")
    ax_flops.set_xlabel("training FLOPs (6 x parameters x characters)")
    for name, run in (compute or {}).items():
        base = name.removesuffix("-equal-compute")
        color = CLASS_COLORS[names.index(base)] if base in names else "black"
        ax_flops.plot([run["flops"]], [run["history"]["val"][-1]], marker="*", markersize=12, color=color,
                      linestyle="none", markeredgecolor="black")
    if compute:
        ax_flops.plot([], [], marker="*", markersize=10, color="white", markeredgecolor="black", linestyle="none",
                      label="own schedule, baseline's budget")
        ax_flops.legend(fontsize=8)
    ax_flops.set_title("per FLOP: points along one 1,200-step schedule")
    ax_step.legend(fontsize=8)
    return fig
