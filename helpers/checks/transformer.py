"""Checkers of part 3, the transformer: notebooks 07_attention and 08_the_transformer."""

import numpy as np

from helpers.checks.compare import compare_mask, compare_naming_slips, compare_number, float32_room, returned_instead
from helpers.checks.engine import Case, CheckResult, checker, run_checks


# ---------------------------------------------------------------------------
# Notebook 07: attention
# ---------------------------------------------------------------------------

def _attention_weights_reference(Q, K, scale=True, axis=-1):
    scores = Q @ K.T / (np.sqrt(Q.shape[-1]) if scale is True else scale)
    scores = scores - scores.max(axis=axis, keepdims=True)
    e = np.exp(scores)
    return e / e.sum(axis=axis, keepdims=True)


def _score_sizes(Q, K):
    """For each query (row), the largest size of the terms its scores are summed from,
    ``(|Q| @ |K|^T) / sqrt(d)``: float32 rounds each score in proportion to it, and the
    softmax passes that rounding on to the weights."""
    return (np.abs(Q) @ np.abs(K).T / np.sqrt(Q.shape[-1])).max(axis=-1, keepdims=True)


@checker
def attention_weights(fn) -> CheckResult:
    """Checker for notebook 07: ``fn(Q, K)`` is ``softmax(Q K^T / sqrt(d))`` row by row, ``(n, d), (T, d) -> (n, T)``."""
    rng = np.random.default_rng(15)
    examples = [(np.array([[1.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
                 "the example: one query [1, 0] and keys [1, 0], [0, 1], [1, 1]"),
                (rng.normal(size=(3, 4)), rng.normal(size=(5, 4)), "3 hidden queries and 5 keys of size 4"),
                (rng.normal(size=(16, 64)) * 3, rng.normal(size=(16, 64)) * 3, "16 queries and keys of size 64"),
                (rng.normal(size=(2, 8)) * 40, rng.normal(size=(6, 8)) * 40, "large queries and keys (scores near 1000)")]
    cases = []
    for Q, K, label in examples:
        d = Q.shape[1]
        slips = [(_attention_weights_reference(Q, K, scale=1.0), "forgot to divide the scores by sqrt(d)"),
                 (_attention_weights_reference(Q, K, scale=float(d)), "divided by d instead of sqrt(d)"),
                 (_attention_weights_reference(Q, K, axis=0), "took the softmax down the columns (axis 0): each "
                                                              "row, one query, must sum to 1 over the keys")]
        slips = [slip for i, slip in enumerate(slips) if (i < 2 and d > 1) or (i == 2 and Q.shape[0] > 1)]
        cases.append(Case((Q, K), _attention_weights_reference(Q, K), label,
                          compare_naming_slips(slips, atol=float32_room(_score_sizes(Q, K)))))
    return run_checks("attention_weights", fn, cases, hint=[
        "each query compares itself with every key (a dot product), scaled by the square root of the "
        "size; then each row becomes probabilities.",
        "compute all the scores at once with one matrix product; the softmax goes along each row "
        "(axis=-1).",
        "scores = Q @ K.T / np.sqrt(d) has shape (n, T); subtract each row's largest score (axis=-1, "
        "keepdims=True), exponentiate, divide by each row's sum."])


def _causal_mask_slips(T):
    return [(np.triu(np.ones((T, T), dtype=bool)), "lets every position see the future and not the past "
                                                   "(upper triangle): use np.tril"),
            (np.tril(np.ones((T, T), dtype=bool), -1), "hides each position from itself (the diagonal is False): "
                                                       "a token may attend to itself")]


def _slip_or_mask(arr, expected, words):
    return words or returned_instead(arr, expected)


@checker
def causal_mask(fn) -> CheckResult:
    """Checker for notebook 07: ``fn(T)`` is a ``(T, T)`` boolean array, ``True`` where column ``j <= `` row ``i``."""
    cases = [Case((T,), np.tril(np.ones((T, T), dtype=bool)), label, compare_mask(_causal_mask_slips(T), _slip_or_mask))
             for T, label in [(3, "the example T = 3"), (4, "T = 4"), (1, "T = 1"), (64, "a hidden T = 64")]]
    return run_checks("causal_mask", fn, cases, hint=[
        "a query at position i may look at keys at positions up to and including i; which triangle of"
        " the T x T matrix is that?",
        "row i is the query's position, column j the key's: allowed when j <= i. np.tril(np.ones((T, "
        "T), dtype=bool)) does it."])


def _masked_attention_reference(Q, K, V, mask):
    import torch

    out = torch.nn.functional.scaled_dot_product_attention(
        *(torch.from_numpy(np.asarray(a, dtype=np.float64)) for a in (Q, K, V)), attn_mask=torch.from_numpy(mask))
    return out.numpy()


@checker
def masked_attention(fn) -> CheckResult:
    """Checker for notebook 07: ``fn(Q, K, V, mask)`` is ``softmax(Q K^T / sqrt(d), masked) V``, checked
    against ``torch.nn.functional.scaled_dot_product_attention``."""
    rng = np.random.default_rng(16)
    examples = []
    Q = K = np.eye(3)
    V = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    examples.append((Q, K, V, np.tril(np.ones((3, 3), dtype=bool)), "the example (Q = K = identity, causal mask)"))
    for T, d, label in [(5, 4, "a hidden causal T = 5, d = 4"), (32, 16, "a hidden causal T = 32, d = 16")]:
        examples.append((rng.normal(size=(T, d)), rng.normal(size=(T, d)), rng.normal(size=(T, 3)),
                         np.tril(np.ones((T, T), dtype=bool)), label))
    patchy = rng.random((6, 6)) < 0.5
    patchy[np.arange(6), np.arange(6)] = True
    examples.append((rng.normal(size=(6, 4)), rng.normal(size=(6, 4)), rng.normal(size=(6, 2)), patchy,
                     "a hidden mask that is not causal (each row allows some positions)"))
    examples.append((rng.normal(size=(4, 8)) * 30, rng.normal(size=(4, 8)) * 30, rng.normal(size=(4, 2)),
                     np.tril(np.ones((4, 4), dtype=bool)), "large scores (near 1000)"))
    cases = []
    for Q, K, V, mask, label in examples:
        scores = Q @ K.T / np.sqrt(Q.shape[1])
        unmasked = _masked_attention_reference(Q, K, V, np.ones_like(mask))
        weights = np.exp(scores - scores.max(axis=1, keepdims=True))
        after = (weights / weights.sum(axis=1, keepdims=True)) * mask
        zeroed = np.where(mask, scores, 0.0)
        w0 = np.exp(zeroed - zeroed.max(axis=1, keepdims=True))
        slips = [((w0 / w0.sum(axis=1, keepdims=True)) @ V, "set the forbidden scores to 0, which still gives them "
                                                             "weight (or ignored the mask): use -inf, "
                                                             "np.where(mask, scores, -np.inf)"),
                 (unmasked, "ignored the mask"),
                 (after @ V, "applied the mask after the softmax, so the rows no longer sum to 1: mask the "
                             "scores with -inf before the softmax"),
                 (_masked_attention_reference(Q * np.sqrt(np.sqrt(Q.shape[1])), K * np.sqrt(np.sqrt(Q.shape[1])), V, mask),
                  "forgot to divide the scores by sqrt(d)")]
        room = float32_room((_score_sizes(Q, K) + 1) * np.abs(V).max())  # weights' rounding, times the values
        cases.append(Case((Q, K, V, mask), _masked_attention_reference(Q, K, V, mask), label,
                          compare_naming_slips([s for s in slips if Q.shape[0] > 1], atol=room)))
    return run_checks("masked_attention", fn, cases, hint=[
        "the mask must act on the scores before the softmax, so forbidden keys get zero weight.",
        "a forbidden score set to -inf becomes exp(-inf) = 0 in the softmax; then weight the values.",
        "scores = Q @ K.T / np.sqrt(d); scores = np.where(mask, scores, -np.inf); softmax each row "
        "(subtract its max first); return weights @ V, shape (T, d_v)."])


# ---------------------------------------------------------------------------
# Notebook 08: the transformer
# ---------------------------------------------------------------------------

def _layer_norm_reference(x, gamma, beta, eps=1e-5, ddof=0, axis=-1, eps_outside=False):
    mean = x.mean(axis=axis, keepdims=True)
    var = x.var(axis=axis, keepdims=True, ddof=ddof)
    scale = np.sqrt(var) + eps if eps_outside else np.sqrt(var + eps)
    with np.errstate(divide="ignore", invalid="ignore"):     # the eps = 0 slip divides 0 by 0
        return (x - mean) / scale * gamma + beta


@checker
def layer_norm(fn) -> CheckResult:
    """Checker for notebook 08: ``fn(x, gamma, beta, eps=1e-5)`` normalises each row of ``x`` (the last axis)
    to mean 0 and variance 1, then scales by ``gamma`` and shifts by ``beta``; equals ``nn.LayerNorm``."""
    rng = np.random.default_rng(17)
    examples = [(np.array([[1.0, 2.0, 3.0]]), np.ones(3), np.zeros(3), "the example x = [[1, 2, 3]], gamma 1, beta 0"),
                (rng.normal(size=(4, 8)) * 5 + 3, rng.normal(size=8), rng.normal(size=8), "a hidden (4, 8) batch"),
                (rng.normal(size=(2, 3, 16)), rng.normal(size=16), rng.normal(size=16), "a hidden (B, T, C) = (2, 3, 16) batch"),
                (np.array([[5.0, 5.0, 5.0, 5.0], [1.0, 1.0 + 1e-3, 1.0, 1.0 - 1e-3]]), np.ones(4), np.full(4, 0.5),
                 "rows with no or tiny spread (eps matters)")]
    cases = []
    for x, gamma, beta, label in examples:
        slips = [(_layer_norm_reference(x, gamma, beta, ddof=1), "used the unbiased variance (ddof=1); layer norm "
                                                                 "divides by C, np.var's default"),
                 (_layer_norm_reference(x, gamma, beta, eps_outside=True), "added eps to the standard deviation; "
                                                                           "it goes inside the square root"),
                 ((x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5), "forgot gamma and beta"),
                 (_layer_norm_reference(x, gamma, beta, eps=0.0), "left out eps")]
        slips.append((_layer_norm_reference(x, gamma, beta, axis=0),
                      "normalised down the columns (axis 0); each row, one token, is normalised on its own"))
        slips = [(np.nan_to_num(w), words) for w, words in slips if np.isfinite(w).all()]
        cases.append(Case((x, gamma, beta), _layer_norm_reference(x, gamma, beta), label,
                          compare_naming_slips(slips, atol=1e-5, rtol=1e-4)))
    return run_checks("layer_norm", fn, cases, hint=[
        "each token's vector is normalised on its own: the statistics are taken over its C features, "
        "not over the batch.",
        "mean and variance along the last axis, keeping the axis; then scale by gamma and shift by "
        "beta.",
        "mean and variance over the last axis (axis=-1, keepdims=True; np.var divides by C); (x - "
        "mean) / np.sqrt(var + eps) * gamma + beta."])


def _count_slips(V, T, L, C):
    """The right count for ``(vocab_size, block_size, n_layer, n_embd)`` and the usual miscounts."""
    from helpers import gpt

    def count(bias=True):
        return gpt.count_parameters(gpt.GPTConfig(vocab_size=V, block_size=T, n_layer=L, n_head=1, n_embd=C, bias=bias))

    right = count()
    return right, [(right + V * C, "counted the language-model head separately; its weights are tied to the "
                                   "token embedding, one matrix counted once"),
                   (right - T * C, "left out the position embeddings (block_size x n_embd)"),
                   (count(bias=False), "left out the biases"),
                   (right - L * 2 * 2 * C, "left out the two layer norms in each block (weight and bias, C each)"),
                   (right - 2 * C, "left out the final layer norm"),
                   (right - L * (C * C + C), "counted the attention as 3 matrices (query, key, value); there is a "
                                             "fourth, the output projection"),
                   (right - L * (6 * C * C + 3 * C), "made the MLP 1x wide instead of 4x")]


def _compare_count(V, T, L, C):
    return compare_number(_count_slips(V, T, L, C)[1])


@checker
def gpt_parameter_count(fn) -> CheckResult:
    """Checker for notebook 08: ``fn(vocab_size, block_size, n_layer, n_embd)`` is the number of parameters of
    the course GPT (biases on, head tied to the token embedding), as ``helpers.gpt.count_parameters``."""
    from helpers import gpt

    examples = [((65, 64, 4, 128), "the example: nanoGPT's CPU sizes (65, 64, 4, 128)"),
                ((50257, 1024, 12, 768), "GPT-2 small (50257, 1024, 12, 768)"),
                ((78, 1, 1, 1), "a hidden tiny model (78, 1, 1, 1)"),
                ((512, 256, 6, 192), "a hidden model (512, 256, 6, 192)")]
    cases = [Case(args, gpt.count_parameters(gpt.GPTConfig(vocab_size=args[0], block_size=args[1], n_layer=args[2],
                                                           n_head=1, n_embd=args[3])), label, _compare_count(*args))
             for args, label in examples]
    return run_checks("gpt_parameter_count", fn, cases, hint=[
        "count the parameters of each part separately (embeddings, one block, the final layer norm) "
        "and remember the head shares the token embedding.",
        "one block has attention (four C x C matrices with biases), an MLP (C to 4C and back, with "
        "biases) and two layer norms (gamma and beta each).",
        "add up: token embedding V*C (the head shares it) + positions T*C + per block [attention "
        "4*(C*C + C), MLP C*4C + 4C + 4C*C + C, two layer norms 2*2C] + final layer norm 2C."])


# ---------------------------------------------------------------------------
