"""Figures of part 3, the transformer (notebooks 07_attention and 08_the_transformer).

Every head's attention map and the attention explorer (07), drawn with
``common.attention_heatmap``; the size explorer (08), whose counts come from
``gpt.parameters_by_part`` and ``gpt.flops_per_token``.
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
