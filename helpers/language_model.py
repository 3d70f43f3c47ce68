"""Counting bigrams, cross-entropy and sampling (introduced in notebook 06_next_token_prediction).

A language model gives, for every context, a probability for each possible next token. The
simplest useful one looks at one token of context: a **bigram** model, which is a table
``P[a, b] = P(next = b | current = a)`` estimated by counting.
"""

import numpy as np


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
    uniform); ``top_k`` keeps only the ``k`` most likely tokens. Returns probabilities summing to 1.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be above 0, got {temperature}")
    probs = np.asarray(probs, dtype=float)
    with np.errstate(divide="ignore"):
        logits = np.log(probs) / temperature
    if top_k is not None and top_k < len(probs):
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        cutoff = np.sort(logits)[-top_k]
        logits = np.where(logits >= cutoff, logits, -np.inf)
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
