"""Checkers of part 4, pretraining: notebooks 09_pretraining and 10_evaluation_and_data."""

import numpy as np

from helpers.checks.compare import (compare_arrays, compare_list, compare_naming_slips, looks_as_if, named_slip, nearly,
                                    short)
from helpers.checks.engine import Case, CheckResult, checker, run_checks


# ---------------------------------------------------------------------------
# Notebook 09: pretraining
# ---------------------------------------------------------------------------

def _schedule(step, lr, min_lr, warmup_steps, steps, warmup_from_zero=False, to_zero=False, from_start=False):
    if step < warmup_steps:
        return lr * (step if warmup_from_zero else step + 1) / warmup_steps
    done = step if from_start else step - warmup_steps
    span = (steps - 1) if from_start else (steps - 1 - warmup_steps)
    progress = min(done / max(1, span), 1.0)
    low = 0.0 if to_zero else min_lr
    return low + 0.5 * (1 + np.cos(np.pi * progress)) * (lr - low)


@checker
def warmup_cosine(fn) -> CheckResult:
    """Checker for notebook 09: ``fn(step, lr, min_lr, warmup_steps, steps)`` is the learning rate at
    ``step`` (counted from 0): ``lr * (step + 1) / warmup_steps`` during the warm-up, then a cosine
    from ``lr`` down to ``min_lr`` at the last step, ``steps - 1``; as ``helpers.training.learning_rate``."""
    settings = [(2e-3, 1e-4, 10, 100, "the example schedule (lr=2e-3, min_lr=1e-4, warmup_steps=10, steps=100)"),
                (2e-3, 1e-4, 200, 4800, "the shipped model's schedule (2e-3, 1e-4, 200, 4800)"),
                (0.5, 0.05, 1, 7, "a hidden short schedule (0.5, 0.05, 1, 7)")]
    cases = []
    for lr, min_lr, warmup, steps, label in settings:
        for step in sorted({0, warmup - 1, warmup, warmup + 1, (warmup + steps) // 2, steps - 2, steps - 1} - {-1}):
            args = (step, lr, min_lr, warmup, steps)
            slips = [(np.asarray(_schedule(*args, warmup_from_zero=True)),
                      "started the warm-up at 0: at step 0 the rate is lr * 1 / warmup_steps, so no step is wasted"),
                     (np.asarray(_schedule(*args, to_zero=True)), "decayed to 0 instead of to min_lr"),
                     (np.asarray(_schedule(*args, from_start=True)),
                      "measured the cosine's progress from step 0; it starts after the warm-up")]
            cases.append(Case(args, np.asarray(_schedule(*args)), f"{label} at step {step}",
                              compare_naming_slips(slips, atol=1e-12, rtol=1e-6)))
    return run_checks("warmup_cosine", fn, cases, hint=[
        "two phases: a straight ramp up for warmup_steps, then half a cosine wave from lr down to "
        "min_lr at the last step.",
        "in the ramp, step 0 already gets lr / warmup_steps; in the cosine part, progress goes from 0"
        " at the end of warm-up to 1 at the last step.",
        "if step < warmup_steps: return lr * (step + 1) / warmup_steps; otherwise progress = (step - "
        "warmup_steps) / (steps - 1 - warmup_steps), and the rate is min_lr + 0.5 * (1 + cos(pi * "
        "progress)) * (lr - min_lr)."])


def _clip_reference(grads, max_norm, per_array=False, always=False, l1=False):
    grads = [np.asarray(g, dtype=float) for g in grads]
    if per_array:
        return [g * min(1.0, max_norm / (np.sqrt((g ** 2).sum()) + 1e-6)) for g in grads]
    norm = sum(np.sqrt((g ** 2).sum()) for g in grads) if l1 else np.sqrt(sum((g ** 2).sum() for g in grads))
    scale = max_norm / (norm + 1e-6) if always else min(1.0, max_norm / (norm + 1e-6))
    return [g * scale for g in grads]


def _compare_gradient_lists(slips):
    def compare(got, expected):
        if not isinstance(got, (list, tuple)):
            return f"returned {short(got)}, which is not a list of arrays (one per gradient array)"
        if len(got) != len(expected):
            return f"returned {len(got)} arrays for {len(expected)} gradients"
        for i, (g, e) in enumerate(zip(got, expected)):
            problem = compare_arrays(g, e, atol=1e-7, rtol=1e-5)
            if problem:
                return looks_as_if(f"array {i}: {problem}", named_slip(got, expected, slips, nearly(1e-7, 1e-5)))
        return None

    return compare


@checker
def clip_by_global_norm(fn) -> CheckResult:
    """Checker for notebook 09: ``fn(grads, max_norm)`` scales a list of gradient arrays by
    ``min(1, max_norm / (total_norm + 1e-6))``, ``total_norm`` the norm of all of them together;
    as ``torch.nn.utils.clip_grad_norm_``."""
    rng = np.random.default_rng(18)
    examples = [([np.array([3.0, 0.0]), np.array([[0.0], [4.0]])], 1.0, "the example: [3, 0] and [[0], [4]], max_norm 1"),
                ([np.array([0.3, 0.4])], 1.0, "a gradient already shorter than max_norm (left alone)"),
                ([rng.normal(size=(8, 8)), rng.normal(size=8), rng.normal(size=(3, 8))], 2.0,
                 "hidden gradients of three layers, max_norm 2"),
                ([rng.normal(size=(64, 64)) * 10, rng.normal(size=64)], 0.5, "a hidden large gradient, max_norm 0.5")]
    cases = []
    for grads, max_norm, label in examples:
        slips = [(_clip_reference(grads, max_norm, per_array=True), "clipped each array on its own; the norm is "
                                                                    "taken over all of them together"),
                 (_clip_reference(grads, max_norm, always=True), "rescaled even when the norm was already below "
                                                                 "max_norm; clipping only ever shrinks"),
                 (_clip_reference(grads, max_norm, l1=True), "added up the arrays' norms; the global norm is the "
                                                             "square root of the sum of all squares")]
        cases.append(Case((grads, max_norm), _clip_reference(grads, max_norm), label, _compare_gradient_lists(slips)))
    return run_checks("clip_by_global_norm", fn, cases, hint=[
        "'global' means one norm for all the gradients together, as if they were one long vector; "
        "every gradient is scaled by the same factor.",
        "only shrink: when the total norm is below max_norm the factor is 1.",
        "total = np.sqrt(sum((g ** 2).sum() for g in grads)); scale = min(1, max_norm / (total + "
        "1e-6)); return [g * scale for g in grads] (new arrays, inputs unchanged)."])


# ---------------------------------------------------------------------------
# Notebook 10: evaluation and data
# ---------------------------------------------------------------------------

def _power_law_reference(x, y, linear=False, semilog=False, log10_exp=False):
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if linear:
        return np.polyfit(x, y, 1)[::-1]
    if semilog:
        b, log_a = np.polyfit(x, np.log(y), 1)
        return np.array([np.exp(log_a), b])
    if log10_exp:
        b, log_a = np.polyfit(np.log10(x), np.log10(y), 1)
        return np.array([np.exp(log_a), b])
    b, log_a = np.polyfit(np.log(x), np.log(y), 1)
    return np.array([np.exp(log_a), b])


@checker
def fit_power_law(fn) -> CheckResult:
    """Checker for notebook 10: ``fn(x, y)`` returns ``(a, b)`` with ``y ≈ a * x**b``, the least-squares
    line through ``(log x, log y)``; as ``helpers.experiments.fit_power_law``."""
    rng = np.random.default_rng(19)
    x_hidden = np.logspace(4, 7, 6)
    examples = [(np.array([1.0, 10.0, 100.0]), np.array([2.0, 1.0, 0.5]), "the example: y = 2 x^-0.301 exactly"),
                (np.array([1e4, 1e5, 1e6]), 3.0 * np.array([1e4, 1e5, 1e6]) ** -0.1,
                 "an exact power law y = 3 x^-0.1 over data sizes 1e4..1e6"),
                (x_hidden, 5.0 * x_hidden ** -0.07 * np.exp(rng.normal(0, 0.01, 6)),
                 "six hidden noisy points (not exactly on a line)")]
    cases = []
    for x, y, label in examples:
        slips = [(_power_law_reference(x, y, linear=True), "fitted a straight line to y against x, not on log scales"),
                 (_power_law_reference(x, y, semilog=True), "took the log of y but not of x"),
                 (_power_law_reference(x, y, log10_exp=True), "fitted on log10 scales but turned the intercept "
                                                              "back with exp; use 10**intercept (or ln throughout)"),
                 (_power_law_reference(x, y)[::-1], "returned (b, a); the order is (a, b)"),
                 (np.polyfit(np.log(x), np.log(y), 1), "returned np.polyfit's (slope, intercept) as they are; "
                                                       "return (np.exp(intercept), slope)"),
                 (np.array([np.log(_power_law_reference(x, y)[0]), _power_law_reference(x, y)[1]]),
                  "returned log a; a is the exponential of the intercept")]
        cases.append(Case((x, y), _power_law_reference(x, y), label, compare_naming_slips(slips, atol=1e-6, rtol=1e-4)))
    return run_checks("fit_power_law", fn, cases, hint=[
        "a power law y = a x^b is a straight line on log-log axes: fit a line to (log x, log y).",
        "b, log_a = np.polyfit(np.log(x), np.log(y), 1) fits log y = log_a + b log x; return "
        "(np.exp(log_a), b)."])


def _normalised(document: str) -> str:
    return " ".join(document.lower().split())


def _dedup_reference(documents, exact=False, keep_last=False, drop_all=False, normalised_out=False):
    key = (lambda d: d) if exact else _normalised
    if drop_all:
        counts = {}
        for d in documents:
            counts[key(d)] = counts.get(key(d), 0) + 1
        return [d for d in documents if counts[key(d)] == 1]
    seen, out = set(), []
    for d in (reversed(documents) if keep_last else documents):
        if key(d) not in seen:
            seen.add(key(d))
            out.append(_normalised(d) if normalised_out else d)
    return out[::-1] if keep_last else out


def _out_of_order(got, expected):
    """The right documents in the wrong order, in words; else ``None``."""
    if sorted(map(str, got)) == sorted(expected):
        return "kept the right documents but not in their original order (a set forgets the order)"
    return None


@checker
def deduplicate(fn) -> CheckResult:
    """Checker for notebook 10: ``fn(documents)`` keeps the first of every group of documents that are
    equal once lower-cased with runs of whitespace made single spaces (and trimmed), in their order,
    unchanged."""
    rng = np.random.default_rng(20)
    lines = ["To be, or not to be", "Exeunt", "My lord.", "Good night, sweet prince", "I will.", "Away!"]
    hidden = [lines[i] for i in rng.integers(0, len(lines), 40)]
    hidden = [d.upper() if rng.random() < 0.2 else d.replace(" ", "  ") if rng.random() < 0.2 else d for d in hidden]
    example = ["My lord.", "my  lord.", "Exeunt", "My lord.", "Away!"]
    examples = [(example, f"the example {example}"),
                (["Exeunt", "Away!", "To be"], "documents with no duplicates (all kept)"),
                ([], "an empty list"),
                (["  Good night\n", "good night", "GOOD NIGHT ", "Away!", "away!"], "copies differing in case, "
                                                                                    "spacing and line breaks"),
                (hidden, "a hidden list of 40 documents with many copies")]
    cases = []
    for documents, label in examples:
        slips = [(_dedup_reference(documents, exact=True), "only removed exact copies; normalise (lower-case, "
                                                           "collapse whitespace) before comparing"),
                 (_dedup_reference(documents, keep_last=True), "kept the last copy; keep the first"),
                 (_dedup_reference(documents, drop_all=True), "dropped every document that has a copy; keep one "
                                                              "of each"),
                 (_dedup_reference(documents, normalised_out=True), "returned the normalised text; return the "
                                                                    "documents unchanged")]
        compare = compare_list(slips, "documents", "documents", near_miss=_out_of_order)
        cases.append(Case((documents,), _dedup_reference(documents), label, compare))
    return run_checks("deduplicate", fn, cases, hint=[
        "two documents count as the same when they differ only in case and whitespace: make a key "
        "that forgets both.",
        "keep the first of each key, in the original order, and return the original text, not the "
        "key.",
        "keep a set of keys seen so far; for each document, key = ' '.join(doc.lower().split()); if "
        "the key is new, add it to the set and append the original document."])


# ---------------------------------------------------------------------------
