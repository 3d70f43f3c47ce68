"""Counting bigrams, cross-entropy and sampling (introduced in notebook 06_next_token_prediction),
and longer count tables, n-grams (notebook 07_attention).

A language model gives, for every context, a probability for each possible next token. The
simplest useful one looks at one token of context: a **bigram** model, which is a table
``P[a, b] = P(next = b | current = a)`` estimated by counting. An **n-gram** model conditions on
the last ``n - 1`` tokens (a bigram on 1, a trigram on 2); :func:`ngram_statistics` counts them
for every ``n`` at once, :func:`add_alpha_loss` and :func:`interpolated_loss` score two ways of
smoothing the counts.
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


# ---------------------------------------------------------------- n-gram tables (notebook 07)

def context_keys(ids, k: int, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(contexts, next)``: each run of ``k`` tokens of ``ids`` as one integer (base
    ``vocab_size``), and the token after it; ``len(ids) - k`` of each. ``vocab_size ** (k + 1)``
    must fit in int64 (``k <= 9`` for 78 characters)."""
    ids = np.asarray(ids, dtype=np.int64)
    if vocab_size ** (k + 1) >= 2 ** 63:
        raise ValueError(f"{k} tokens of context over {vocab_size} tokens do not fit in one int64 key")
    context = np.zeros(len(ids) - k, dtype=np.int64)
    for i in range(k):
        context = context * vocab_size + ids[i: len(ids) - k + i]
    return context, ids[k:]


def _lookup(table, counts, keys):
    """How often each key occurs, from a sorted table of unique keys and their counts (0 if never)."""
    if len(table) == 0:
        return np.zeros(len(keys), dtype=np.int64)
    i = np.minimum(np.searchsorted(table, keys), len(table) - 1)
    return np.where(table[i] == keys, counts[i], 0)


def ngram_statistics(train_ids, eval_ids, vocab_size: int, max_context: int, first: int | None = None) -> list:
    """Counts from ``train_ids`` for scoring ``eval_ids``, for every context length
    ``k = 0 .. max_context`` (the ``(k + 1)``-gram). Entry ``k`` is a dict of arrays over the
    scored positions of ``eval_ids`` (from position ``first``, default ``max_context``, the same
    for every ``k``): ``pair`` = count(context, next), ``context`` = count(context), ``followers``
    = how many different tokens follow the context in training; ``seen``, how many different
    contexts of length ``k`` the training text holds; ``train_loss``, the raw counts' mean
    cross-entropy on ``train_ids`` itself (every position from ``k`` on). Below ``max_context``
    also Kneser-Ney's counts: ``preceded`` = how many different tokens precede (context, next),
    ``around`` = how many different (before, after) pairs surround the context, ``continued`` =
    how many different next tokens have a ``preceded`` count."""
    first = max_context if first is None else first
    if first < max_context:
        raise ValueError(f"first ({first}) must be at least max_context ({max_context})")
    stats, previous = [], None
    for k in range(max_context + 1):
        context, nxt = context_keys(train_ids, k, vocab_size)
        pairs, pair_counts = np.unique(context * vocab_size + nxt, return_counts=True)
        contexts, context_counts = np.unique(context, return_counts=True)
        followed, followers = np.unique(pairs // vocab_size, return_counts=True)
        c, y = context_keys(eval_ids, k, vocab_size)
        c, y = c[first - k:], y[first - k:]
        # the raw counts' loss on the text they were counted from: -mean log(count(c, y) / count(c))
        train_loss = (context_counts @ np.log(context_counts) - pair_counts @ np.log(pair_counts)) / len(context)
        stats.append({"pair": _lookup(pairs, pair_counts, c * vocab_size + y).astype(float),
                      "context": _lookup(contexts, context_counts, c).astype(float),
                      "followers": _lookup(followed, followers, c).astype(float), "seen": len(contexts),
                      "train_loss": float(train_loss)})
        if previous is not None:   # Kneser-Ney's counts for order k - 1: how many tokens precede it
            size = vocab_size ** k
            ends, preceded = np.unique(pairs % size, return_counts=True)            # (context', next)
            middles, around = np.unique((pairs // vocab_size) % (size // vocab_size), return_counts=True)
            starts, continued = np.unique(ends // vocab_size, return_counts=True)
            previous["preceded"] = _lookup(ends, preceded, previous["keys"]).astype(float)
            previous["around"] = _lookup(middles, around, previous["keys"] // vocab_size).astype(float)
            previous["continued"] = _lookup(starts, continued, previous["keys"] // vocab_size).astype(float)
            del previous["keys"]
        previous = stats[-1]
        previous["keys"] = c * vocab_size + y
    del previous["keys"]
    return stats


def add_alpha_loss(stats: list, n: int, alpha: float, vocab_size: int) -> float:
    """Mean cross-entropy (nats) of the ``n``-gram table with add-``alpha`` smoothing:
    ``(count(context, next) + alpha) / (count(context) + alpha * V)``. ``alpha = 0`` on the text
    the table was counted from gives its training loss."""
    s = stats[n - 1]
    return float(-np.log((s["pair"] + alpha) / (s["context"] + alpha * vocab_size)).mean())


def interpolated_probs(stats: list, n: int, discount: float, vocab_size: int) -> np.ndarray:
    """The probability the ``n``-gram table gives each scored next token, with **interpolated
    absolute discounting**: every seen count gives up ``discount`` (``D``), and the mass freed
    goes to the ``(n - 1)``-gram's probability, recursively down to uniform:

        P_k(y | c) = (max(count(c, y) - D, 0) + D * followers(c) * P_(k-1)(y | c')) / count(c)

    (``c'`` is ``c`` without its oldest token; an unseen context falls back to ``P_(k-1)``)."""
    p = np.full(len(stats[0]["pair"]), 1.0 / vocab_size)
    for s in stats[:n]:
        seen = s["context"] > 0
        mixed = (np.maximum(s["pair"] - discount, 0.0) + discount * s["followers"] * p) / np.maximum(s["context"], 1)
        p = np.where(seen, mixed, p)
    return p


def kneser_ney_probs(stats: list, n: int, discount: float, vocab_size: int) -> np.ndarray:
    """As :func:`interpolated_probs`, but every order below ``n`` counts *how many different tokens
    precede* a run instead of how often it occurs (interpolated Kneser-Ney): "Francisco" is
    frequent, yet "isco" follows few contexts, so it should get little weight after new ones."""
    p = np.full(len(stats[0]["pair"]), 1.0 / vocab_size)
    for k, s in enumerate(stats[:n]):
        top = k == n - 1
        pair, context, followers = ((s["pair"], s["context"], s["followers"]) if top
                                    else (s["preceded"], s["around"], s["continued"]))
        seen = context > 0
        mixed = (np.maximum(pair - discount, 0.0) + discount * followers * p) / np.maximum(context, 1)
        p = np.where(seen, mixed, p)
    return p


def interpolated_loss(stats: list, n: int, discount: float, vocab_size: int, kneser_ney: bool = False) -> float:
    """Mean cross-entropy (nats) of :func:`interpolated_probs` (or :func:`kneser_ney_probs`)."""
    probs = (kneser_ney_probs if kneser_ney else interpolated_probs)(stats, n, discount, vocab_size)
    return float(-np.log(probs).mean())
