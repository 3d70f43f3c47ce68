"""Checkers of part 5, adaptation: notebooks 11_fine_tuning and 12_model_families."""

import math

import numpy as np

from helpers.checks.compare import (as_array, compare_arrays, compare_mask, compare_naming_slips, compare_number,
                                    compare_scalar, named_slip, nearly, returned_instead)
from helpers.checks.engine import Case, CheckResult, check_prediction, checker, run_checks


# ---------------------------------------------------------------------------
# Notebook 11: fine-tuning
# ---------------------------------------------------------------------------

def _lora_reference(base, A, B, scale, x):
    return base(x) + scale * (x @ A.T) @ B.T


def _lora_layer_case(cls):
    """The function the :func:`lora_linear` checker runs: builds the learner's layer on a seeded
    ``nn.Linear`` and returns what the case ``what`` asks about (so generic wrong answers get the
    usual messages)."""
    import torch
    from torch import nn

    def run(what, d_in, d_out, rank, alpha, seed):
        torch.manual_seed(seed)
        base = nn.Linear(d_in, d_out)
        layer = cls(base, rank, alpha)
        if not isinstance(layer, nn.Module):
            return layer
        x = torch.randn(5, d_in, generator=torch.Generator().manual_seed(seed + 1))
        if what == "fresh":
            return layer(x).detach()
        if what == "trainable":
            return sum(p.numel() for p in layer.parameters() if p.requires_grad)
        if what == "gradient":
            layer(x).pow(2).sum().backward()
            grad = layer.B.grad
            return 0.0 if grad is None else float(grad.abs().sum() > 0)
        g = torch.Generator().manual_seed(seed + 2)
        with torch.no_grad():
            layer.A.copy_(torch.randn(rank, d_in, generator=g))
            layer.B.copy_(torch.randn(d_out, rank, generator=g))
        if what == "forward":
            return layer(x).detach()
        merged = layer.merged()
        if not isinstance(merged, nn.Linear):
            return f"merged() returned a {type(merged).__name__}, not an nn.Linear"
        return merged(x).detach()

    return run


def _lora_cases(d_in, d_out, rank, alpha, seed, label):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    base = nn.Linear(d_in, d_out).requires_grad_(False)
    x = torch.randn(5, d_in, generator=torch.Generator().manual_seed(seed + 1))
    g = torch.Generator().manual_seed(seed + 2)
    A, B = torch.randn(rank, d_in, generator=g), torch.randn(d_out, rank, generator=g)
    with torch.no_grad():
        forward = _lora_reference(base, A, B, alpha / rank, x)
        scale_slips = [(_lora_reference(base, A, B, alpha, x), "scaled by alpha; the scale is alpha / rank"),
                       (_lora_reference(base, A, B, 1.0, x), "left out the scale alpha / rank"),
                       (_lora_reference(base, A, B, rank / alpha, x), "scaled by rank / alpha; it is alpha / rank"),
                       (base(x), "left out the update: the output must be base(x) + scale * x A^T B^T")]
        fresh = base(x)
    args = (d_in, d_out, rank, alpha, seed)
    trainable = rank * (d_in + d_out)
    count_slips = [(trainable + d_in * d_out + d_out, "left the base layer trainable: freeze it "
                                                      "(base.requires_grad_(False)); only A and B train"),
                   (rank * d_in, "made only A a trainable nn.Parameter; B must be one too"),
                   (rank * d_out, "made only B a trainable nn.Parameter; A must be one too"),
                   (d_in * d_out + d_out, "trained the base layer instead of A and B")]
    return [
        Case(("trainable", *args), trainable, f"{label}: the count of trainable numbers",
             compare_number(count_slips)),
        Case(("fresh", *args), fresh, f"{label}, fresh from __init__: the output must equal the base layer's",
             _compare_outputs(fresh=True)),
        Case(("gradient", *args), 1.0, f"{label}, fresh: does B get a gradient?", _gradient_compare),
        Case(("forward", *args), forward, f"{label} with A and B set to random values: forward",
             _compare_outputs(scale_slips)),
        Case(("merged", *args), forward, f"{label} with A and B set: merged()(x) must equal forward(x)",
             _compare_outputs([(wrong, "merged with a weight that " + words.replace(
                 "the output must be base(x) + scale * x A^T B^T", "must be W + scale * B A"))
                 for wrong, words in scale_slips])),
    ]


def _compare_outputs(slips=(), fresh=False, atol=1e-4):
    """Compare a layer's output ``(N, out)`` with the expected one; a wrong one is told its slip."""
    def compare(got, expected):
        if isinstance(got, str):                        # merged() did not return an nn.Linear
            return got
        try:
            arr = as_array(got).astype(float)
        except (TypeError, ValueError) as exc:
            return str(exc)
        want = as_array(expected).astype(float)
        if arr.shape != want.shape:
            return f"returned an output of shape {arr.shape}, expected {want.shape}"
        if not np.isfinite(arr).all():
            return "returned an output with NaN or infinity in it"
        if np.allclose(arr, want, atol=atol, rtol=1e-4):
            return None
        off = float(np.abs(arr - want).max())
        if fresh:
            return (f"returned an output that differs from the base layer's by up to {off:.3g}: a fresh LoRA "
                    "layer must compute exactly what the base layer did. B starts at zero (A random), so "
                    "the update B A is zero until training moves it")
        for wrong, words in slips:
            if np.allclose(arr, as_array(wrong).astype(float), atol=atol, rtol=1e-4):
                return f"returned an output off by up to {off:.3g}. It looks as if you {words}"
        return f"returned an output off by up to {off:.3g} from base(x) + (alpha / rank) * x A^T B^T"
    return compare


def _gradient_compare(got, expected):
    if isinstance(got, float) and got == expected:
        return None
    if isinstance(got, float) and got == 0.0:
        return ("gave B no gradient: with A zero as well as B, neither ever receives one. Start A "
                "random (torch.randn(rank, in) / sqrt(in)) and only B at zero")
    return compare_scalar(got, expected)


@checker
def lora_linear(cls) -> CheckResult:
    """Checker for notebook 11: ``cls(base, rank, alpha)`` is a LoRA layer like
    ``helpers.lora.LoRALinear``: the frozen ``base`` plus trainable ``A`` ``(rank, in)`` (random) and
    ``B`` ``(out, rank)`` (zero); ``forward(x) = base(x) + alpha / rank * x A^T B^T``; ``merged()``
    an ``nn.Linear`` computing the same."""
    examples = [(192, 192, 4, 8.0, 0, "the shipped model's query layer (192 -> 192, rank 4, alpha 8)"),
                (192, 768, 4, 8.0, 1, "the MLP's first layer (192 -> 768, rank 4, alpha 8)"),
                (7, 3, 2, 3.0, 2, "a hidden small layer (7 -> 3, rank 2, alpha 3)")]
    cases = [case for *args, label in examples for case in _lora_cases(*args, label)]
    fn = _lora_layer_case(cls) if isinstance(cls, type) else cls
    return run_checks("lora_linear", fn, cases, hint=[
        "three pieces: __init__ freezes base and makes A and B nn.Parameters; forward adds the "
        "low-rank update to base(x); merged folds the update into one weight.",
        "A is (rank, in) and random, B is (out, rank) and zero, so a fresh layer changes nothing; "
        "the update is (alpha / rank) * (x @ A.T) @ B.T; the merged weight is W + (alpha / rank) * B @ A.",
        "self.base = base.requires_grad_(False); self.scale = alpha / rank; self.A = "
        "nn.Parameter(torch.randn(rank, base.in_features) / math.sqrt(base.in_features)); self.B = "
        "nn.Parameter(torch.zeros(base.out_features, rank)); forward returns self.base(x) + self.scale"
        " * (x @ self.A.T) @ self.B.T; merged() makes nn.Linear(in, out), copies in base.weight + "
        "self.scale * self.B @ self.A and the bias, under torch.no_grad()."])


@checker
def mcnemar_prediction(fn) -> CheckResult:
    """Checker for notebook 11's predict-then-run question: two methods right on 200 and 180 of
    360 passages, disagreeing on 40 passages (30 to 10) in the first case and on 100 (60 to 40)
    in the second. Which difference does McNemar's test call significant (p < 0.05)?"""
    return check_prediction(
        "mcnemar_prediction", fn, "first", choices=("first", "second", "both", "neither"),
        why="The accuracies are the same in both cases, but McNemar's test reads only the disagreements. "
            "30 to 10 is very unlikely from a fair coin (p = 0.002); 60 to 40 happens by chance about "
            "one time in 18 (p = 0.057). Many disagreements mean two methods that are each noisy, "
            "so the same gap in accuracy proves less.",
        hint=["the two cases have the same accuracies: what differs is how many passages the methods "
              "disagree on.",
              "under 'equally good', each disagreement is a coin toss: is 30 heads of 40 or 60 of 100 "
              "the more surprising?"])


def _mcnemar_reference(a, b, n_all=False, one_sided=False, strict=False, uncapped=False):
    a_only = sum(x and not y for x, y in zip(a, b))
    b_only = sum(y and not x for x, y in zip(a, b))
    n = len(a) if n_all else a_only + b_only
    k = min(a_only, b_only)
    tail = sum(math.comb(n, i) for i in range(k if strict else k + 1)) / 2 ** n if n else 1.0
    p = tail if one_sided else 2 * tail
    return p if uncapped else min(1.0, p)


@checker
def mcnemar_p(fn) -> CheckResult:
    """Checker for notebook 11's find-the-bug exercise: ``fn(correct_a, correct_b)`` is McNemar's
    exact two-sided p-value, as ``helpers.finetune.mcnemar`` (the given code used every item, not
    only the ones the two methods disagree on)."""
    rng = np.random.default_rng(24)
    hidden_a = (rng.random(360) < 0.55).tolist()
    hidden_b = [x if rng.random() < 0.8 else not x for x in hidden_a]
    examples = [(([True] * 6 + [False] * 4, [True] * 3 + [False] * 7), "the example: A right on 6, B on 3 of 10"),
                (([True, True, False, False], [True, True, False, False]), "two methods that agree everywhere"),
                (([True] * 30 + [False] * 10, [False] * 10 + [True] * 20 + [False] * 10),
                 "40 items: A alone right on 10, B alone never"),
                (([True, False] * 20, [False, True] * 20), "40 items, 20 disagreements each way"),
                ((hidden_a, hidden_b), "360 hidden items")]
    cases = []
    for (a, b), label in examples:
        slips = [(_mcnemar_reference(a, b, n_all=True), "changed nothing that matters: it still gives what the "
                                                        "broken code gives. The items both methods got right, or both "
                                                        "wrong, say nothing about which is better; n counts only the "
                                                        "disagreements"),
                 (_mcnemar_reference(a, b, one_sided=True), "computed one tail; the test is two-sided: double it"),
                 (_mcnemar_reference(a, b, strict=True), "left k itself out of the tail: sum i from 0 to k"),
                 (_mcnemar_reference(a, b, uncapped=True), "did not cap the p-value at 1")]
        cases.append(Case((a, b), _mcnemar_reference(a, b), label, compare_naming_slips(slips, atol=1e-9, rtol=1e-6)))
    return run_checks("mcnemar_p", fn, cases, hint=[
        "which items can tell two methods apart: all of them, or only some?",
        "an item both got right (or both wrong) is a tie: it says nothing. Only the disagreements "
        "count, so the binomial has n = a_only + b_only trials.",
        "change n = len(correct_a) to n = a_only + b_only."])


# ---------------------------------------------------------------------------
# Notebook 12: model families
# ---------------------------------------------------------------------------

def _permutation_mask_reference(order, strict=False, transpose=False, order_as_rank=False):
    order = list(order)
    T = len(order)
    rank = np.empty(T, dtype=int)
    if order_as_rank:
        rank[:] = order
    else:
        rank[order] = np.arange(T)
    mask = rank[None, :] < rank[:, None] if strict else rank[None, :] <= rank[:, None]
    return mask.T if transpose else mask


def _compare_permutation_mask(order):
    slips = [(_permutation_mask_reference(order, transpose=True), "swapped rows and columns: row i is the "
                                                                  "position that looks, column j the one it may see"),
             (_permutation_mask_reference(order, strict=True), "hid each position from itself; here (the content "
                                                               "stream) a position may see itself"),
             (_permutation_mask_reference(order, order_as_rank=True), "still give what the broken code gives: it "
                                                                      "uses order[i] as position i's turn, but "
                                                                      "order[k] is the position whose turn is k")]
    return compare_mask(slips)


@checker
def permutation_mask(fn) -> CheckResult:
    """Checker for notebook 12: ``fn(order)`` is the ``(T, T)`` boolean mask with ``mask[i, j]`` True
    when position ``j`` comes no later than position ``i`` in the factorisation ``order``; as
    ``helpers.gpt.permutation_mask``."""
    rng = np.random.default_rng(22)
    examples = [([2, 0, 1], "the example order [2, 0, 1]"), ([0, 1, 2, 3], "the order 0, 1, 2, 3 (the causal mask)"),
                ([3, 2, 1, 0], "right to left"), ([0], "a single position"),
                (rng.permutation(8).tolist(), "a hidden order of 8 positions")]
    cases = [Case((order,), _permutation_mask_reference(order), label, _compare_permutation_mask(order))
             for order, label in examples]
    return run_checks("permutation_mask", fn, cases, hint=[
        "first find, for each position, when its turn comes in the order (its rank).",
        "position i may attend to position j when j's turn comes no later than i's.",
        "first rank[order[k]] = k (when each position's turn comes); then mask[i, j] = rank[j] <= "
        "rank[i]: rank[None, :] <= rank[:, None]."])


def _reply_log_probs_reference(model, prompt, replies, mistake=None):
    """The mean log-probability of each reply's tokens given the prompt and the reply's earlier
    tokens (float64), or what a known ``mistake`` computes instead."""
    import torch

    scores = []
    for reply in replies:
        ids = torch.tensor([list(prompt) + list(reply)])
        with torch.no_grad():
            logits = model(ids)[0][0].double()                               # (P + R, V)
        P = len(prompt)
        if mistake == "unshifted":                                           # position t read for token t
            rows, targets = torch.arange(P, ids.shape[1]), ids[0, P:]
        elif mistake == "prompt":                                            # the prompt's tokens counted too
            rows, targets = torch.arange(ids.shape[1] - 1), ids[0, 1:]
        else:                                                                # position t predicts token t + 1
            rows, targets = torch.arange(P - 1, ids.shape[1] - 1), ids[0, P:]
        table = {"raw logits": logits, "probabilities": torch.softmax(logits, -1)}.get(
            mistake, torch.log_softmax(logits, -1))
        picked = table[rows, targets]
        scores.append(float(picked.sum() if mistake == "sum" else picked.mean()))
    return np.array(scores)


def _tiny_scorer(seed: int, vocab: int = 11):
    """A random tiny GPT for the checker's cases: equal (``==``) to a copy with the same weights, so
    the engine can tell whether the learner's function changed it."""
    import torch

    from helpers import gpt

    class TinyGPT(gpt.GPT):
        __hash__ = gpt.GPT.__hash__

        def __eq__(self, other):
            mine, theirs = self.state_dict(), getattr(other, "state_dict", dict)()
            return mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)

    torch.manual_seed(seed)
    return TinyGPT(gpt.GPTConfig(vocab_size=vocab, block_size=32, n_layer=1, n_head=2, n_embd=16)).eval()


def _compare_scores(slips, atol=1e-4, rtol=1e-4):
    """One score per reply, to float32 room; a wrong answer is named by the slip it is."""

    def compare(got, expected):
        problem = compare_arrays(got, expected, atol=atol, rtol=rtol)
        if problem is None:
            return None
        try:
            arr = as_array(got)
        except TypeError:
            return problem
        words = named_slip(arr, expected, slips, nearly(atol, rtol)) if arr.shape == expected.shape else None
        return returned_instead(arr, expected, words) if words else problem

    return compare


@checker
def reply_log_prob(fn) -> CheckResult:
    """Checker for notebook 12 (build): ``fn(model, prompt_ids, replies)`` returns, for each reply (a
    list of token ids), the mean log-probability the causal ``model`` gives its tokens, each given
    the prompt and the reply's tokens before it: the score sample-and-rank sorts by."""
    rng = np.random.default_rng(24)
    examples = [(0, [1, 2, 3], [[4, 5], [6], [7, 8, 9]], "the example: prompt [1, 2, 3], three replies"),
                (1, [5], [[5, 5, 5, 5]], "a one-token prompt and one reply"),
                (2, rng.integers(0, 11, 9).tolist(), [rng.integers(0, 11, n).tolist() for n in (1, 6, 12, 3)],
                 "a hidden prompt of 9 tokens and four replies of 1 to 12 tokens")]
    slips = [("sum", "summed the log-probabilities: take their mean, or a longer reply always scores lower"),
             ("prompt", "counted the prompt's tokens too: score only the reply's tokens"),
             ("unshifted", "read each reply token's log-probability at its own position: the logits at "
                           "position t are the prediction for token t + 1"),
             ("raw logits", "averaged the raw logits: take log_softmax over the vocabulary first"),
             ("probabilities", "averaged probabilities: take the log (log_softmax), not softmax")]
    cases = []
    for seed, prompt, replies, label in examples:
        model = _tiny_scorer(seed)
        wrong = [(_reply_log_probs_reference(model, prompt, replies, m), words) for m, words in slips]
        cases.append(Case((model, prompt, replies), _reply_log_probs_reference(model, prompt, replies), label,
                          _compare_scores(wrong)))
    return run_checks("reply_log_prob", fn, cases, hint=[
        "for each reply, run the model once on the prompt followed by the reply, and look at the "
        "positions whose next token is a reply token.",
        "logits, _ = model(torch.tensor([prompt + reply])); log_probs = torch.log_softmax(logits[0], -1). "
        "The first reply token is predicted at position len(prompt) - 1.",
        "picked = log_probs[torch.arange(P - 1, P + R - 1), torch.tensor(reply)] with P = len(prompt), "
        "R = len(reply); the score is picked.mean().item(); return one score per reply."])


@checker
def predict_two_stream_count(fn) -> CheckResult:
    """Checker for notebook 12 (predict, then run): how many entries of XLNet's two-stream mask
    (``helpers.families.two_stream_mask``) are True for 12 characters, whatever the order."""
    return check_prediction("predict_two_stream_count", fn, 156, rel=0.001, why=(
        "The content stream is a permutation mask: sorted by the order it is the causal mask, 12 * 13 / 2 = 78 "
        "entries. Each query sees the content strictly before it in the order, 11 * 12 / 2 = 66, plus itself, "
        "12. 78 + 66 + 12 = 156 = T(T + 1) for every order: a permutation moves what a position sees, not how "
        "much is seen in all."), hint=[
        "count the four blocks separately. Does the count depend on the order? Sort the rows and columns by "
        "the order and look at the shape.",
        "sorted by the order, the content block is the causal mask (T(T + 1) / 2 entries); the query stream "
        "sees strictly earlier content (T(T - 1) / 2) and itself (T).",
        "for T = 12: 78 + 66 + 12."])
