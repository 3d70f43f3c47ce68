"""Figures of part 2, text (notebooks 05_text_to_numbers and 06_next_token_prediction).

Tokens as coloured boxes (05); the bigram table, the map of a 2-D character embedding and the
sampling explorer (06), drawn from ``language_model.corpus_bigram``. Whitespace is made visible
by ``common.visible_whitespace``.
"""

import numpy as np

from helpers.plots.common import CLASS_COLORS, character_ticks, new_figure, visible_whitespace


# ---------------------------------------------------------------- notebook 05: text to numbers

TOKEN_COLORS = ["#cfe2f3", "#f4cccc", "#d9ead3", "#fff2cc", "#d9d2e9", "#fce5cd"]


def make_token_colours(text: str = "To be, or not to be: that is the question.", vocab_size: int = 512):
    """``text`` cut into tokens by the course tokenizer truncated to ``vocab_size``, each token a
    coloured box (spaces as '·', new lines as '↵', as notebook 05 says); the title gives the
    count and the characters per token."""
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
        shown = visible_whitespace(piece, "running text")
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


# ---------------------------------------------------------------- notebook 06: next-token prediction

def make_bigram_table(counts, chars, show=" \nabcdefghijklmnopqrstuvwxyz"):
    """Heat map of bigram counts for the characters in ``show`` (rows: current, columns: next)."""
    index = [chars.index(c) for c in show if c in chars]
    sub = counts[np.ix_(index, index)]
    fig, ax = new_figure(width=7.2, height=6.4)
    image = ax.imshow(np.log10(sub + 1), cmap="Blues")
    character_ticks(ax, [chars[i] for i in index])
    ax.set_xlabel("next character")
    ax.set_ylabel("current character")
    ax.set_title("How often each character follows another (log scale)")
    fig.colorbar(image, ax=ax, label="log10(count + 1)", shrink=0.8)
    return fig


def make_embedding_map(embedding, chars):
    """Each character drawn at its 2-D embedding vector, coloured by its group in
    ``language_model.CHARACTER_GROUPS`` (others grey), with a legend."""
    from helpers.language_model import CHARACTER_GROUPS, character_group

    embedding = np.asarray(embedding, dtype=float)
    colours = dict(zip(CHARACTER_GROUPS, CLASS_COLORS)) | {"other": "grey"}
    fig, ax = new_figure(width=6.4, height=5.0)
    for (x, y), ch in zip(embedding, chars):
        ax.text(x, y, visible_whitespace(ch), color=colours[character_group(ch)], fontsize=10,
                ha="center", va="center", family="monospace")
    for name, colour in colours.items():
        ax.scatter([], [], color=colour, marker="s", label=name)
    pad = 0.5
    ax.set_xlim(embedding[:, 0].min() - pad, embedding[:, 0].max() + pad)
    ax.set_ylim(embedding[:, 1].min() - pad, embedding[:, 1].max() + pad)
    ax.set_xlabel("embedding dimension 1")
    ax.set_ylabel("embedding dimension 2")
    ax.set_title("Each character at its 2-D embedding vector")
    ax.legend(loc="best", fontsize=8)
    return fig


def make_sampling_explorer(temperature: float = 1.0, top_k: int = 78, context: str = "h"):
    """The bigram model's next-character distribution after ``context`` (adjusted by temperature
    and top-k), and a sampled line that starts from ``context``."""
    from helpers import language_model

    tok, counts, probs = language_model.corpus_bigram()
    if not context or context[-1] not in tok.stoi:
        context = "h"
    current = tok.stoi[context[-1]]
    top_k = int(min(max(top_k, 1), tok.vocab_size))
    adjusted = language_model.adjust(probs[current], temperature, top_k)
    order = np.argsort(adjusted)[::-1][:15]
    fig, (ax, ax_text) = new_figure(nrows=2, width=9.0, height=5.4)
    shown = [visible_whitespace(tok.chars[i]) for i in order]
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
