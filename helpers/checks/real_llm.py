"""Checkers of notebook 14_a_real_llm: a rotary embedding, one grouped-query attention step with a
KV cache, a prediction of the cache's size, and an attention head with a bug to find.

The references are the course's own pieces (``helpers.llama``), which the notebook and
``tests/test_llama.py`` check against PyTorch and Hugging Face ``transformers``. Hints come in
tiers: a nudge first, more on each failed run (or ``checks.hint(name)``), the answer last.
"""

import math

import numpy as np
import torch

from helpers.checks.compare import as_array, compare_naming_slips, compare_scalar, looks_as_if, named_slip, nearly
from helpers.checks.engine import Case, CheckResult, checker, run_checks


def _tensor(rng, *shape, scale=1.0):
    return torch.from_numpy(rng.normal(size=shape) * scale)


# ---------------------------------------------------------------------------
# Exercise 1: a rotary embedding
# ---------------------------------------------------------------------------

def _rotary_reference(x, positions, theta, interleaved=False, backwards=False, half_freq=False,
                      ignore_positions=False, inverted=False):
    x = np.asarray(x, dtype=float)
    T, d = x.shape
    i = np.arange(d // 2)
    exponent = i / d if half_freq else 2 * i / d
    freqs = theta ** exponent if inverted else theta ** -exponent
    where = np.arange(T) if ignore_positions else np.asarray(positions, dtype=float)
    angles = where[:, None] * freqs[None, :]                               # (T, d/2)
    cos, sin = np.cos(angles), np.sin(angles)
    sin = -sin if backwards else sin
    if interleaved:
        a, b = x[:, 0::2], x[:, 1::2]
        out = np.empty_like(x)
        out[:, 0::2], out[:, 1::2] = a * cos - b * sin, a * sin + b * cos
        return out
    a, b = x[:, : d // 2], x[:, d // 2:]
    return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=1)


@checker
def rotary_embedding(fn) -> CheckResult:
    """Checker for notebook 14: ``fn(x, positions, theta)`` rotates each pair ``(x_i, x_{i+d/2})`` of
    every row of ``x`` ``(T, d)`` by ``positions[t] * theta ** (-2i / d)`` (rotate-half RoPE), as
    ``helpers.llama.apply_rope(x, *helpers.llama.rope_angles(positions, d, theta))``."""
    rng = np.random.default_rng(41)
    examples = [(_tensor(rng, 3, 4), torch.arange(3), 10000.0, "the example: 3 positions, d = 4"),
                (_tensor(rng, 5, 8), torch.tensor([7, 8, 9, 10, 11]), 10000.0,
                 "5 tokens at positions 7-11 (after 7 cached ones), d = 8"),
                (_tensor(rng, 1, 2), torch.tensor([3]), 10.0, "one pair at position 3, theta = 10"),
                (_tensor(rng, 16, 64, scale=3.0), torch.arange(100, 116), 100000.0,
                 "16 hidden rows of SmolLM2's head size 64 at positions 100-115, theta = 100000")]
    cases = []
    for x, positions, theta, label in examples:
        args = (x.numpy(), positions.numpy(), theta)
        slips = [(_rotary_reference(*args, interleaved=True),
                  "rotated adjacent pairs (x_0, x_1), (x_2, x_3), ... (Meta's layout); here coordinate i pairs "
                  "with coordinate i + d/2 (rotate half), as in the un-permuted rows"),
                 (_rotary_reference(*args, backwards=True), "rotated the wrong way: the first half becomes "
                                                            "x1 cos - x2 sin and the second x1 sin + x2 cos"),
                 (_rotary_reference(*args, half_freq=True), "used theta ** (-i / d); pair i turns at "
                                                            "theta ** (-2 i / d)"),
                 (_rotary_reference(*args, inverted=True), "multiplied by theta ** (2 i / d); the frequency is "
                                                           "its inverse, theta ** (-2 i / d)"),
                 (_rotary_reference(*args, ignore_positions=True), "used the row numbers 0..T-1 instead of the "
                                                                   "positions given (a cached step starts later)")]
        cases.append(Case((x, positions, theta), _rotary_reference(*args), label,
                          compare_naming_slips(slips, atol=1e-5 * float(x.abs().max()), rtol=1e-4)))
    return run_checks("rotary_embedding", fn, cases, hint=[
        "each row t turns: pair i is (x[t, i], x[t, i + d/2]), and its angle is positions[t] times a frequency "
        "that falls from 1 (pair 0) to almost 0 (the last pair).",
        "freqs = theta ** (-torch.arange(0, d, 2) / d) has d/2 entries; angles = positions[:, None] * freqs is "
        "(T, d/2); rotate (x1, x2) = (x[:, :d//2], x[:, d//2:]) by them.",
        "return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=1) with cos, sin = angles.cos(), "
        "angles.sin() (positions as float64)."])


# ---------------------------------------------------------------------------
# Exercise 2: one grouped-query attention step with a KV cache
# ---------------------------------------------------------------------------

def _step_reference(q, k_new, v_new, k_cache, v_cache, tile=False, skip_new=False, unscaled=False,
                    heads_softmax=False):
    q, k_new, v_new, k_cache, v_cache = (np.asarray(a, dtype=float) for a in (q, k_new, v_new, k_cache, v_cache))
    k_all = np.concatenate([k_cache, k_new[:, None]], axis=1)             # (n_kv, L + 1, d)
    v_all = np.concatenate([v_cache, v_new[:, None]], axis=1)
    k, v = (k_cache, v_cache) if skip_new else (k_all, v_all)
    group = q.shape[0] // k.shape[0]
    index = np.arange(q.shape[0]) % k.shape[0] if tile else np.arange(q.shape[0]) // group
    k, v = k[index], v[index]                                              # (n_head, L(+1), d)
    scores = np.einsum("hd,hld->hl", q, k) / (1.0 if unscaled else math.sqrt(q.shape[-1]))
    axis = 0 if heads_softmax else -1
    w = np.exp(scores - scores.max(axis=axis, keepdims=True))
    w = w / w.sum(axis=axis, keepdims=True)
    return [np.einsum("hl,hld->hd", w, v), k_all, v_all]


def _compare_step(args):
    n_head, n_kv = args[0].shape[0], args[1].shape[0]
    L = args[3].shape[1]
    expected_out = _step_reference(*args)[0]
    slips = [(_step_reference(*args, tile=True)[0],
              "gave query head h the key/value head h % n_kv_head (torch.repeat tiles the heads); query head h "
              "belongs to group h // (n_head // n_kv_head): use repeat_interleave"),
             (_step_reference(*args, unscaled=True)[0], "forgot to divide the scores by sqrt(d)"),
             (_step_reference(*args, heads_softmax=True)[0], "took the softmax across the heads; each head's "
                                                             "weights must sum to 1 over the positions")]
    if L > 0:
        slips.append((_step_reference(*args, skip_new=True)[0], "attended to the cached positions only: add the "
                                                                "new key and value first, the token attends to "
                                                                "itself too"))
    slips = [(w, words) for w, words in slips if n_head != n_kv or "h % n_kv_head" not in words]

    def compare(got, expected):
        if not isinstance(got, (list, tuple)) or len(got) != 3:
            kind = f"{len(got)} items" if isinstance(got, (list, tuple)) else _short_kind(got)
            return (f"returned {kind}, which is not a list of arrays (out, k_cache, v_cache): return all three, "
                    "the output and the two caches with the new position added")
        for name, part, want in zip(("out", "k_cache", "v_cache"), got, expected):
            try:
                shape = as_array(part).shape
            except TypeError as exc:
                return f"returned as {name} something that is not an array: {exc}"
            if shape != want.shape:
                return (f"returned {name} of shape {shape}, expected shape {want.shape}"
                        + (" (the old positions, then the new one)" if name != "out" else ""))
        for name, part, want in zip(("k_cache", "v_cache"), got[1:], expected[1:]):
            if not np.allclose(as_array(part), want, atol=1e-6, rtol=1e-5):     # copies: exact
                return (f"returned a {name} that is not the old one with the new {name[0]} added at the end "
                        "(position L): torch.cat([cache, new[:, None]], dim=1)")
        problem = compare_naming_slips(slips, atol=1e-5, rtol=1e-4)(got[0], expected_out)
        return None if problem is None else f"got the caches right but not the output: {problem}"

    return compare


def _short_kind(got):
    if isinstance(got, float) and math.isnan(got):
        return "NaN"
    if isinstance(got, str):
        return f"the text {got[:30]!r}"
    return f"a {type(got).__name__}"


@checker
def gqa_cached_step(fn) -> CheckResult:
    """Checker for notebook 14: ``fn(q, k_new, v_new, k_cache, v_cache)`` is one generation step of
    grouped-query attention: ``q`` ``(n_head, d)``, the new token's key and value ``(n_kv_head, d)``,
    the caches ``(n_kv_head, L, d)``. Returns ``(out (n_head, d), k_cache, v_cache)``, the caches
    with the new position appended; query head ``h`` reads key/value head ``h // (n_head // n_kv_head)``."""
    rng = np.random.default_rng(42)
    shapes = [(4, 2, 8, 3, "the example: 4 query heads, 2 key/value heads, d = 8, 3 cached positions"),
              (9, 3, 64, 20, "SmolLM2's heads: 9 queries, 3 keys/values, d = 64, 20 cached positions"),
              (2, 1, 4, 0, "the first token: an empty cache (L = 0)"),
              (3, 3, 4, 5, "as many key/value heads as query heads (plain multi-head attention)")]
    cases = []
    for n_head, n_kv, d, L, label in shapes:
        args = (_tensor(rng, n_head, d), _tensor(rng, n_kv, d), _tensor(rng, n_kv, d), _tensor(rng, n_kv, L, d),
                _tensor(rng, n_kv, L, d))
        cases.append(Case(args, _step_reference(*args), label, _compare_step(args)))
    return run_checks("gqa_cached_step", fn, cases, hint=[
        "first append: the new key and value become position L of the caches; then each query head attends to "
        "all L + 1 positions of its group's key/value head.",
        "group = n_head // n_kv_head; k = k_cache.repeat_interleave(group, dim=0) is (n_head, L + 1, d) (the same "
        "for v); scores (n_head, L + 1) = (k @ q[:, :, None])[..., 0] / sqrt(d).",
        "k_cache = torch.cat([k_cache, k_new[:, None]], dim=1) (and v); repeat both with repeat_interleave; "
        "weights = torch.softmax(scores, dim=-1); out = (weights[:, None, :] @ v)[:, 0]; "
        "return out, k_cache, v_cache."])


# ---------------------------------------------------------------------------
# Exercise 3 (predict, then run): the KV cache's size
# ---------------------------------------------------------------------------

KV_TOKENS = 2048


def _kv_megabytes(layers=30, kv_heads=3, head_dim=64, tokens=KV_TOKENS, nbytes=4, both=2):
    return both * layers * kv_heads * head_dim * tokens * nbytes / 1e6


def _compare_megabytes(got, expected):
    problem = compare_scalar(got, expected, atol=0.0, rtol=0.02)
    if problem is None or compare_scalar(got, expected * 1e6 / 2 ** 20, atol=0.0, rtol=0.02) is None:
        return None                                                      # MB or MiB both count
    try:
        value = float(as_array(got).reshape(-1)[0])
    except (TypeError, IndexError, ValueError):
        return problem
    slips = [(_kv_megabytes(both=1), "counted only the keys (or only the values): the cache holds both"),
             (_kv_megabytes(kv_heads=9), "counted 9 heads: SmolLM2 stores 3 key/value heads, shared by its 9 "
                                         "query heads; that is the point of grouped-query attention"),
             (_kv_megabytes(layers=1), "counted one layer: every one of the 30 blocks keeps its own keys and values"),
             (_kv_megabytes(nbytes=1), "counted one byte per number: float32 takes 4"),
             (_kv_megabytes(head_dim=576 // 3), "used a width of 576 / 3 per head; each head has 64 numbers"),
             (_kv_megabytes() * 8, "counted bits, not bytes")]
    return looks_as_if(problem, named_slip(value, expected, slips, nearly(0.0, 0.02)))


@checker
def kv_cache_size(fn) -> CheckResult:
    """Checker for notebook 14: ``fn()`` returns the learner's prediction of the megabytes SmolLM2's
    KV cache takes for 2,048 tokens in float32: keys and values, 30 layers, 3 key/value heads of
    64 numbers, 4 bytes each (``helpers.llama.kv_cache_bytes``); within 2%, in MB or MiB."""
    cases = [Case((), _kv_megabytes(), "your prediction (MB for 2,048 tokens)", _compare_megabytes)]
    return run_checks("kv_cache_size", fn, cases, hint=[
        "for each token, each of the 30 layers stores one key and one value per key/value head.",
        "a key is head_dim = 64 numbers, and there are n_kv_head = 3 of them per layer (not 9); float32 is "
        "4 bytes.",
        "2 * 30 * 3 * 64 * 2048 * 4 bytes = 94.4 MB."])


# ---------------------------------------------------------------------------
# Exercise 4 (find the bug): one attention head with rotary embeddings
# ---------------------------------------------------------------------------

def _head_reference(x, wq, wk, wv, positions, theta, rotate_v=False, rotate_k=True, causal=True):
    x, wq, wk, wv = (np.asarray(a, dtype=float) for a in (x, wq, wk, wv))
    q, k, v = x @ wq, x @ wk, x @ wv
    q = _rotary_reference(q, positions, theta)
    k = _rotary_reference(k, positions, theta) if rotate_k else k
    v = _rotary_reference(v, positions, theta) if rotate_v else v
    scores = q @ k.T / math.sqrt(q.shape[-1])
    if causal:
        scores = np.where(np.tril(np.ones(scores.shape, dtype=bool)), scores, -np.inf)
    w = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return (w / w.sum(axis=-1, keepdims=True)) @ v


@checker
def rope_attention(fn) -> CheckResult:
    """Checker for notebook 14 (find the bug): ``fn(x, wq, wk, wv, positions, theta)`` is one causal attention head
    with rotary embeddings on the queries and keys (not the values): ``x`` ``(T, C)``, the weights
    ``(C, d)``, the output ``(T, d)``."""
    rng = np.random.default_rng(43)
    examples = [(5, 8, 4, torch.arange(5), "the example: 5 tokens, C = 8, d = 4"),
                (12, 16, 16, torch.arange(40, 52), "12 hidden tokens at positions 40-51, d = 16"),
                (1, 4, 2, torch.tensor([9]), "a single token at position 9")]
    cases = []
    for T, C, d, positions, label in examples:
        args = (_tensor(rng, T, C), _tensor(rng, C, d, scale=0.5), _tensor(rng, C, d, scale=0.5),
                _tensor(rng, C, d, scale=0.5), positions, 10000.0)
        plain = (*(a.numpy() for a in args[:4]), positions.numpy(), 10000.0)
        slips = [(_head_reference(*plain, rotate_v=True),
                  "still gives what the broken code gives: which of q, k and v need a position, for their "
                  "dot products to see the distance between tokens?"),
                 (_head_reference(*plain, rotate_k=False), "left the keys unrotated: both queries and keys turn"),
                 (_head_reference(*plain, causal=False), "dropped the causal mask: a token may not see later ones")]
        cases.append(Case(args, _head_reference(*plain), label, compare_naming_slips(slips, atol=1e-5, rtol=1e-4)))
    return run_checks("rope_attention", fn, cases, hint=[
        "shift every position by the same amount (positions + 5): the output of a correct head does not change, "
        "because only distances matter. Does the given code pass that test?",
        "which of q, k and v should carry the position? Look at the line that rotates.",
        "rotate only q and k: q, k = (llama.apply_rope(t, cos, sin) for t in (q, k)); v stays x @ wv: the "
        "values carry content, not positions."])
