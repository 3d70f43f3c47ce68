"""Counting bigrams, cross-entropy and sampling (introduced in notebook 06_next_token_prediction).

A language model gives, for every context, a probability for each possible next token. The
simplest useful one looks at one token of context: a **bigram** model, which is a table
``P[a, b] = P(next = b | current = a)`` estimated by counting.
"""

import functools
import string

import numpy as np

# Notebook 06 reads its 2-D character embedding by these groups (every other character: "other").
CHARACTER_GROUPS = {"lowercase vowels": "aeiou", "lowercase consonants": "bcdfghjklmnpqrstvwxyz",
                    "uppercase letters": string.ascii_uppercase}


def character_group(ch: str) -> str:
    """The name of the :data:`CHARACTER_GROUPS` group that holds ``ch``, or ``"other"``."""
    return next((name for name, members in CHARACTER_GROUPS.items() if ch in members), "other")


def group_distances(embedding, chars) -> np.ndarray:
    """Mean Euclidean distance between the vectors of two characters of group ``i`` and group ``j``
    (rows ``embedding[k]`` for ``chars[k]``; two different characters when ``i == j``), for the
    groups of :data:`CHARACTER_GROUPS` in order; shape ``(groups, groups)``."""
    embedding = np.asarray(embedding, dtype=float)
    index = [[k for k, ch in enumerate(chars) if ch in members] for members in CHARACTER_GROUPS.values()]
    distance = np.linalg.norm(embedding[:, None] - embedding[None], axis=-1)
    out = np.zeros((len(index), len(index)))
    for i, a in enumerate(index):
        for j, b in enumerate(index):
            block = distance[np.ix_(a, b)]
            out[i, j] = block[~np.eye(len(a), dtype=bool)].mean() if i == j else block.mean()
    return out


def bigram_counts(ids, vocab_size: int) -> np.ndarray:
    """``N[a, b]`` = how often token ``b`` follows token ``a`` in ``ids``; shape ``(V, V)``."""
    ids = np.asarray(ids)
    counts = np.zeros((vocab_size, vocab_size))
    np.add.at(counts, (ids[:-1], ids[1:]), 1)
    return counts


def bigram_probs(counts: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """Rows of ``counts + alpha`` normalised to probabilities (``alpha`` > 0 smooths away zeros)."""
    smoothed = counts + alpha
    return smoothed / smoothed.sum(axis=1, keepdims=True)


def cross_entropy(probs: np.ndarray, ids) -> float:
    """Mean negative log-probability, in nats, that the bigram table ``probs`` gives each next token."""
    ids = np.asarray(ids)
    with np.errstate(divide="ignore"):
        return float(-np.mean(np.log(probs[ids[:-1], ids[1:]])))


def adjust(probs, temperature: float = 1.0, top_k: int | None = None) -> np.ndarray:
    """Re-shape a next-token distribution for sampling.

    ``temperature`` < 1 sharpens it (towards the most likely token), > 1 flattens it (towards
    uniform); ``top_k`` keeps only the ``k`` most likely tokens (an int of at least 1; tokens
    tied at the cut-off are kept). Returns probabilities summing to 1. A temperature so
    small that every ``log(p) / temperature`` overflows gives its limit, greedy choice: all the
    probability on the most likely token, shared equally by tokens tied for most likely.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be above 0, got {temperature}")
    if top_k is not None:
        from helpers.gpt import whole_number   # the course's one check for counts: 2.5, 2.0 and True are refused

        top_k = whole_number(top_k, "top_k", 1, hint=" (or None for all tokens)")
    probs = np.asarray(probs, dtype=float)
    with np.errstate(divide="ignore", over="ignore"):
        log_probs = np.log(probs)
        logits = log_probs / temperature
    if top_k is not None and top_k < len(probs):
        cutoff = np.sort(logits)[-top_k]
        logits = np.where(logits >= cutoff, logits, -np.inf)
    if logits.max() == -np.inf and probs.max() > 0:
        # Every logit overflowed to -inf (e.g. temperature 1e-320): take the limit as the
        # temperature goes to 0, the most likely token(s), compared in the same (log) space.
        logits = np.where(log_probs == log_probs.max(), 0.0, -np.inf)
    logits = logits - logits.max()
    weights = np.exp(logits)
    return weights / weights.sum()


def sample(probs: np.ndarray, start: int, length: int, temperature: float = 1.0, top_k: int | None = None,
           seed: int = 0) -> list[int]:
    """Generate ``length`` token ids from the bigram table ``probs``, starting after token ``start``."""
    rng = np.random.default_rng(seed)
    out, current = [], start
    for _ in range(length):
        current = int(rng.choice(len(probs), p=adjust(probs[current], temperature, top_k)))
        out.append(current)
    return out


@functools.lru_cache(maxsize=None)
def corpus_bigram(split: str = "train", alpha: float = 1.0):
    """``(tokenizer, counts, probs)``: notebook 06's character bigram model of the corpus ``split``
    (a ``CharTokenizer`` of its characters, :func:`bigram_counts` and :func:`bigram_probs` with
    add-``alpha`` smoothing). Computed once per ``(split, alpha)``, then cached: treat the arrays
    as read-only."""
    from helpers import data, tokenizers

    text = data.corpus_text(split)
    tok = tokenizers.CharTokenizer(text)
    counts = bigram_counts(tok.encode(text), tok.vocab_size)
    return tok, counts, bigram_probs(counts, alpha=alpha)
