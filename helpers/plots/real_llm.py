"""Figures of notebook 14_a_real_llm: a real LLM opened up with the course's code.

One Q4_1 block and its 16 levels; rotary embeddings (a pair turning, and scores that depend
only on the distance); the time per generated token with and without a KV cache; an attention
map and the logit lens of SmolLM2; and the next-token explorer (prompt x temperature x top-k).
The computations are the concept modules' (``helpers.gguf``, ``helpers.llama``,
``helpers.generation``); these functions only draw.
"""

import numpy as np
import torch

from helpers.plots.common import CLASS_COLORS, attention_heatmap, new_figure, visible_whitespace


def token_labels(tokenizer, ids, width: int = 10) -> list[str]:
    """Each token id as short text for an axis: whitespace made visible, other control characters
    escaped (``\\t``, ``\\x04``), cut to ``width`` characters."""
    labels = []
    for i in ids:
        text = "".join(c if c.isprintable() or c in " \n" else c.encode("unicode_escape").decode()
                       for c in tokenizer.decode([int(i)]))
        text = visible_whitespace(text)
        labels.append(text if len(text) <= width else text[: width - 1] + "…")
    return labels


def make_q4_block(file, name: str = "blk.0.attn_q.weight", block_index: int = 0):
    """The 32 weights of one Q4_1 block of tensor ``name`` (dots) on the 16 values the block can
    hold (lines): ``q * d + m`` for ``q = 0..15``."""
    from helpers import gguf

    levels = gguf.block_levels(file, name, block_index)
    codes = gguf.block_codes(file, name, block_index)
    fig, ax = new_figure(width=7.0, height=3.6)
    for level in levels:
        ax.axhline(level, color="grey", lw=0.6, alpha=0.6)
    ax.plot(range(32), levels[codes], "o", color=CLASS_COLORS[0], ms=5)
    ax.set_xlabel("weight in the block (0-31)")
    ax.set_ylabel("value")
    d, m = levels[1] - levels[0], levels[0]
    ax.set_title(f"{name}, block {block_index}: 32 weights on 16 levels "
                 f"(m = {m:.4f}, d = {d:.5f})", fontsize=10)
    return fig


def make_rope_figure(head_dim: int = 64, theta: float = 100000.0, positions: int = 24):
    """Left: where pair 0 (the fastest hand, 1 radian per position) and pair 8 (a slower one) of a
    vector point, position after position. Right: ``q_m . k_n`` for one fixed query and key
    placed at positions ``m`` and ``n``: the same along every diagonal, because it depends only
    on ``m - n``."""
    from helpers import llama

    fig, (left, right) = new_figure(ncols=2, width=9.5, height=4.0)
    cos, sin = llama.rope_angles(torch.arange(positions), head_dim, theta)
    for pair, radius, shown, colour in ((0, 1.0, 7, CLASS_COLORS[0]), (8, 0.7, positions, CLASS_COLORS[1])):
        x, y = radius * cos[:shown, pair].numpy(), radius * sin[:shown, pair].numpy()
        left.plot(x, y, "o-", color=colour, ms=4, lw=0.8, label=f"pair {pair}, positions 0-{shown - 1}")
        for p in (0, shown - 1):
            left.annotate(str(p), (x[p], y[p]), fontsize=9, xytext=(5, -3), textcoords="offset points")
    left.set_aspect("equal")
    left.set_xlim(-1.25, 1.25)
    left.set_ylim(-1.25, 1.25)
    left.set_xlabel("first coordinate of the pair")
    left.set_ylabel("second coordinate")
    left.set_title("a fast pair and a slow pair, turned by position", fontsize=10)
    left.legend(fontsize=9, loc="lower left")
    generator = torch.Generator().manual_seed(0)
    q, k = torch.randn(head_dim, generator=generator), torch.randn(head_dim, generator=generator)
    qs = llama.apply_rope(q.expand(positions, head_dim), cos, sin)
    ks = llama.apply_rope(k.expand(positions, head_dim), cos, sin)
    scores = (qs @ ks.T).numpy()
    image = right.imshow(scores, cmap="RdBu_r", vmin=-np.abs(scores).max(), vmax=np.abs(scores).max())
    right.set_xlabel("position n of the key")
    right.set_ylabel("position m of the query")
    right.set_title("q_m . k_n: constant along each diagonal", fontsize=10)
    fig.colorbar(image, ax=right, shrink=0.8, label="score")
    return fig


def make_step_times(lengths, times: dict):
    """Seconds per generated token against the context length, for each entry of ``times``
    (``helpers.generation.step_times``)."""
    fig, ax = new_figure(width=6.4, height=3.8)
    for (label, seconds), colour in zip(times.items(), CLASS_COLORS):
        ax.plot(lengths, np.asarray(seconds) * 1000, "o-", color=colour, label=label)
    ax.set_xlabel("tokens already in the context")
    ax.set_ylabel("milliseconds for the next token")
    ax.set_ylim(bottom=0)
    ax.set_title("one generation step, SmolLM2 on this CPU", fontsize=10)
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def make_attention_map(model, tokenizer, text: str, layer: int, head: int):
    """Where each token of ``text`` attends in one ``layer`` and ``head`` of a ``helpers.llama.Llama``."""
    ids = tokenizer.encode(text)
    weights = model.attention_maps(torch.tensor([ids]))[layer, 0, head].numpy()
    fig, ax = new_figure(width=6.4, height=5.6)
    attention_heatmap(ax, weights, token_labels(tokenizer, ids), title=f"layer {layer}, head {head}")
    return fig


def make_logit_lens(model, tokenizer, text: str, layers=None):
    """The logit lens: for each of the last positions of ``text`` (columns) and each layer (rows),
    the token the model would predict if it stopped there, coloured by its probability."""
    ids = tokenizer.encode(text)
    n_layer = model.config.n_layer
    layers = list(range(0, n_layer + 1, 3)) + ([n_layer] if n_layer % 3 else []) if layers is None else list(layers)
    columns = list(range(max(0, len(ids) - 8), len(ids)))
    probs, tops = np.zeros((len(layers), len(columns))), [[""] * len(columns) for _ in layers]
    for c, position in enumerate(columns):
        p = model.logit_lens(torch.tensor([ids]), position)[layers, 0].softmax(-1)      # (layers, V)
        best = p.max(dim=-1)
        probs[:, c] = best.values.numpy()
        for r, token in enumerate(best.indices.tolist()):
            tops[r][c] = token_labels(tokenizer, [token], width=8)[0]
    fig, ax = new_figure(width=9.6, height=6.2)
    ax.imshow(probs, cmap="Greens", vmin=0.0, vmax=1.0, aspect="auto")
    for r in range(len(layers)):
        for c in range(len(columns)):
            ax.text(c, r, tops[r][c], ha="center", va="center", fontsize=9,
                    color="white" if probs[r, c] > 0.6 else "black")
    ax.set_xticks(range(len(columns)), token_labels(tokenizer, [ids[i] for i in columns]), fontsize=9, rotation=30)
    ax.set_yticks(range(len(layers)), [("embedding" if L == 0 else f"after block {L}") for L in layers], fontsize=9)
    ax.set_xlabel("input token (the prediction is for the token after it)")
    ax.set_title("logit lens: the top next token after each block (colour: its probability)", fontsize=10)
    return fig


def make_next_token_explorer(model, tokenizer, prompt: str = "The capital of France is", temperature: float = 1.0,
                             top_k: int = 0, shown: int = 12):
    """The next-token distribution after ``prompt`` as sampling sees it (``temperature``; ``top_k``
    = 0 keeps every token): the ``shown`` most likely tokens, and how many tokens can be drawn."""
    from helpers import generation

    fig, ax = new_figure(width=7.4, height=4.0)
    ids = tokenizer.encode(prompt) if prompt else []
    if not ids:
        ax.text(0.5, 0.5, "type a prompt: the model needs at least one token", ha="center", va="center")
        ax.axis("off")
        return fig
    ids = ids[-256:]
    probs = generation.next_token_distribution(model, ids, temperature, top_k or None)
    top = torch.topk(probs, shown)
    labels = token_labels(tokenizer, top.indices.tolist(), width=12)
    ax.barh(range(shown)[::-1], top.values.numpy(), color=CLASS_COLORS[0])
    ax.set_yticks(range(shown)[::-1], labels, fontsize=9)
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability of being drawn next")
    possible = int((probs > 0).sum())
    ax.set_title(f"temperature {temperature:.2f}, top-k {top_k or 'off'}: {possible:,} tokens possible, "
                 f"top one {float(top.values[0]):.0%}", fontsize=10)
    return fig
