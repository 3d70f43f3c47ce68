"""Checkers of part 2, text: notebooks 05_text_to_numbers and 06_next_token_prediction."""

import numpy as np

from helpers.checks.compare import compare_scalar, is_integer, kind_of, short, tensor_to_numpy
from helpers.checks.engine import Case, CheckResult, checker, run_checks


# ---------------------------------------------------------------------------
# Notebook 05: text to numbers
# ---------------------------------------------------------------------------

def _as_ids(got):
    """``(ids, None)`` for a list (tuple, 1-D array or tensor) of integer token ids, with ``ids``
    a list of Python ints; else ``(None, the problem in words)``."""
    if got is None:
        return None, "returned None: did you forget the `return` statement?"
    values = tensor_to_numpy(got) if hasattr(got, "detach") else got
    if isinstance(values, np.ndarray) and values.ndim == 1:
        values = list(values)  # NumPy integers stay integers
    if not isinstance(values, (list, tuple)):
        return None, f"returned {short(got)}, which is not a list of integer ids"
    for value in values:
        if not is_integer(value):
            return None, (f"returned {short(got)}, which is not a list of integer ids: {short(value)} is "
                          f"of type {kind_of(value)}. Token ids are whole numbers of an integer type (int)")
    return [int(v) for v in values], None


def _compare_counts(got, expected):
    if got is None:
        return "returned None: did you forget the `return` statement?"
    if not hasattr(got, "items"):
        return f"returned {short(got)}, but a dict {{(a, b): count}} was expected"
    if not all(isinstance(k, tuple) and len(k) == 2 for k in got.keys()):
        return "returned a dict whose keys are not pairs (a, b)"
    for key in got.keys():
        for value in key:
            if not is_integer(value):
                return (f"returned a dict with the key {short(key)}, which is not a pair of integer ids: "
                        f"{short(value)} is of type {kind_of(value)}. Token ids are whole numbers of an integer "
                        "type (int)")
    got = {k: v for k, v in got.items() if v}
    if got != dict(expected):
        missing = [p for p in expected if p not in got]
        wrong = [p for p in got if p in expected and got[p] != expected[p]]
        extra = [p for p in got if p not in expected]
        if wrong:
            p = wrong[0]
            return f"counted {p} {short(got[p])} times, expected {expected[p]}"
        if missing:
            return f"is missing the pair {missing[0]} (it occurs {expected[missing[0]]} times)"
        return f"counted the pair {extra[0]}, which does not occur"
    return None


@checker
def pair_counts(fn) -> CheckResult:
    """Checker for notebook 05: ``fn(ids)`` returns ``{(a, b): count}`` of adjacent pairs, overlaps included."""
    from collections import Counter

    rng = np.random.default_rng(11)
    def ref(ids):
        return dict(Counter(zip(ids, ids[1:])))
    examples = [([1, 2, 3, 1, 2], "the example [1, 2, 3, 1, 2]"), ([5, 5, 5], "overlapping pairs [5, 5, 5]"),
                ([7], "a single id"), ([], "an empty list")]
    big = [int(v) for v in rng.integers(0, 20, size=3000)]
    examples.append((big, "a hidden list of 3000 ids"))
    cases = [Case((ids,), ref(ids), label, _compare_counts) for ids, label in examples]
    return run_checks("pair_counts", fn, cases, hint=[
        "look at every two neighbouring ids, left to right; a dictionary (or collections.Counter) "
        "counts them.",
        "walk over zip(ids, ids[1:]) and count each pair; [5, 5, 5] has the pair (5, 5) twice."])


def _compare_ids(got, expected):
    ids, problem = _as_ids(got)
    if problem:
        return problem
    if ids != list(expected):
        return f"returned {short(ids)}, expected {short(list(expected))}"
    return None


@checker
def merge(fn) -> CheckResult:
    """Checker for notebook 05: ``fn(ids, pair, new_id)`` replaces each occurrence of ``pair``, left to
    right and without overlaps, by ``new_id``, returning a new list."""
    from helpers import tokenizers

    rng = np.random.default_rng(12)
    examples = [([1, 2, 3, 1, 2], (1, 2), 99, "the example [1, 2, 3, 1, 2] with (1, 2) -> 99"),
                ([5, 5, 5], (5, 5), 9, "overlapping occurrences [5, 5, 5] with (5, 5) -> 9"),
                ([1, 3, 1], (1, 2), 9, "a pair that does not occur"),
                ([], (1, 2), 9, "an empty list")]
    big = [int(v) for v in rng.integers(0, 4, size=2000)]
    examples.append((big, (1, 1), 300, "a hidden list of 2000 ids"))
    cases = [Case((ids, pair, new), tokenizers.merge(ids, pair, new), label, _compare_ids)
             for ids, pair, new, label in examples]
    return run_checks("merge", fn, cases, hint=[
        "walk through the list once; at each position, decide: is this the pair (then one new id) or "
        "not (then the id itself)?",
        "walk with an index i: if ids[i], ids[i + 1] is the pair, append new_id and jump by 2, else "
        "append ids[i] and step by 1."])


# ---------------------------------------------------------------------------
# Notebook 06: next-token prediction
# ---------------------------------------------------------------------------

def _softmax_reference(logits, temperature):
    z = np.asarray(logits, dtype=float) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@checker
def softmax_with_temperature(fn) -> CheckResult:
    """Checker for notebook 06: ``fn(logits, temperature)`` is ``softmax(logits / temperature)`` along
    the last axis, without overflow for large logits."""
    rng = np.random.default_rng(13)
    examples = [(np.array([1.0, 2.0, 3.0]), 1.0, "the example logits [1, 2, 3], temperature 1"),
                (np.array([1.0, 2.0, 3.0]), 0.5, "temperature 0.5 (sharper)"),
                (np.array([1.0, 2.0, 3.0]), 100.0, "temperature 100 (almost uniform)"),
                (rng.normal(size=(4, 6)) * 3, 0.7, "a hidden batch of shape (4, 6): softmax along the last axis"),
                (np.array([1000.0, 999.0, -1000.0]), 1.0, "huge logits [1000, 999, -1000]")]
    cases = [Case((z, t), _softmax_reference(z, t), label) for z, t, label in examples]
    return run_checks("softmax_with_temperature", fn, cases, hint=[
        "temperature divides the logits before anything else; then it is an ordinary softmax along "
        "the last axis.",
        "an ordinary softmax that never overflows subtracts the largest logit first; keep the axes "
        "with keepdims=True.",
        "divide the logits by the temperature, subtract the largest (along the last axis, "
        "keepdims=True) so exp never overflows, exponentiate, divide by the sum."])


@checker
def perplexity(fn) -> CheckResult:
    """Checker for notebook 06: ``fn(loss)`` turns a mean cross-entropy in nats into a perplexity, ``e**loss``."""
    import torch

    cases = [Case((np.log(78.0),), 78.0, "the example loss ln(78) = 4.357", compare_scalar),
             Case((0.0,), 1.0, "a loss of 0 (a perfect model)", compare_scalar),
             Case((2.4724,), float(np.exp(2.4724)), "a hidden loss of 2.4724", compare_scalar),
             Case((torch.tensor(1.5),), float(np.exp(1.5)), "a loss given as a PyTorch tensor", compare_scalar)]
    return run_checks("perplexity", fn, cases, hint=[
        "perplexity undoes the logarithm in the loss: which function is the inverse of the natural "
        "log?",
        "perplexity = e to the power of the loss in nats: math.exp(float(loss)) or np.exp(loss)."])


@checker
def mean_nll(fn) -> CheckResult:
    """Checker for notebook 06: ``fn(p)`` is the mean of ``-ln p`` over the probabilities ``p`` that a model
    gave the true next tokens."""
    rng = np.random.default_rng(14)
    examples = [(np.array([0.5, 0.25]), "the example p = [0.5, 0.25]"), (np.array([1.0]), "a certain prediction p = [1]"),
                (rng.uniform(0.01, 1, size=1000), "hidden probabilities of 1000 tokens")]
    cases = [Case((p,), float(-np.mean(np.log(p))), label, compare_scalar) for p, label in examples]
    return run_checks("mean_nll", fn, cases, hint=[
        "the loss of one prediction is minus the log of the probability given to the right answer; "
        "the loss of many is their average.",
        "take -np.log of each probability (natural log), then the mean."])


# ---------------------------------------------------------------------------
