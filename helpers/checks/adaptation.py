"""Checkers of part 5, adaptation: notebooks 11_fine_tuning and 12_model_families."""

import numpy as np

from helpers.checks.compare import (as_array, compare_list, compare_mask, compare_number, named_slip, nearly,
                                    returned_instead)
from helpers.checks.engine import Case, CheckResult, checker, run_checks


# ---------------------------------------------------------------------------
# Notebook 11: fine-tuning
# ---------------------------------------------------------------------------

@checker
def lora_parameter_count(fn) -> CheckResult:
    """Checker for notebook 11: ``fn(n_layer, n_embd, rank, n_targets)`` is the number of trainable
    numbers LoRA adds to the course GPT: ``n_layer * n_targets * rank * 2 * n_embd``, as
    ``helpers.finetune.count_trainable`` after ``helpers.lora.add_lora``."""
    examples = [((4, 192, 4, 2), "the example: the shipped model, rank 4 on query and value"),
                ((12, 768, 8, 4), "GPT-2 small's sizes, rank 8 on all four attention matrices"),
                ((1, 3, 1, 1), "a hidden tiny model (1 layer, width 3, rank 1, one target)"),
                ((6, 384, 16, 2), "a hidden model (6 layers, width 384, rank 16, two targets)")]
    cases = []
    for (L, C, r, n), label in examples:
        right = L * n * r * 2 * C
        slips = [(L * n * C * C, "counted the full C x C matrix; LoRA trains two thin ones, A (r x C) and B (C x r)"),
                 (L * n * r * C, "counted only one of the two matrices A and B"),
                 (n * r * 2 * C, "counted one layer; every block gets its own LoRA matrices"),
                 (L * r * 2 * C, "counted one target matrix per block; multiply by the number of targets"),
                 (L * n * (r * 2 * C + C), "added a bias; LoRA's update has none (the frozen layer keeps its own)"),
                 (L * n * r * r * 2, "multiplied rank by rank; A is rank x in and B is out x rank")]
        cases.append(Case((L, C, r, n), right, label, compare_number(slips)))
    return run_checks("lora_parameter_count", fn, cases, hint=[
        "LoRA adds two small matrices beside each wrapped layer: how big is each one, and how many "
        "layers are wrapped?",
        "each wrapped C x C layer gets A (rank x C) and B (C x rank): 2 * rank * C numbers; there are"
        " n_targets of them in each of n_layer blocks."])


def _confusion_reference(labels, predictions, n_classes, transpose=False, normalise=False):
    matrix = np.zeros((n_classes, n_classes), dtype=int)
    for true, predicted in zip(labels, predictions):
        matrix[true, predicted] += 1
    matrix = matrix.T if transpose else matrix
    if normalise:
        return matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    return matrix


def _compare_confusion(labels, predictions, n_classes):
    slips = [(_confusion_reference(labels, predictions, n_classes, transpose=True),
              "put the predicted class in the rows; rows are the true class, columns the prediction"),
             (_confusion_reference(labels, predictions, n_classes, normalise=True),
              "turned counts into fractions; count the passages")]

    def compare(got, expected):
        try:
            arr = as_array(got)
        except TypeError as exc:
            return str(exc)
        if arr.shape != expected.shape:
            hint = " (a class nobody predicted still needs its column)" if arr.ndim == 2 else ""
            return f"returned shape {arr.shape}, expected {expected.shape}{hint}"
        if np.array_equal(arr, expected):
            return None
        return returned_instead(arr, expected, named_slip(arr, expected, slips, nearly()))

    return compare


@checker
def confusion_matrix(fn) -> CheckResult:
    """Checker for notebook 11: ``fn(labels, predictions, n_classes)`` is an ``(n_classes, n_classes)``
    array of counts, row = true class, column = predicted class."""
    rng = np.random.default_rng(21)
    hidden_labels = rng.integers(0, 4, 50).tolist()
    hidden_predictions = [t if rng.random() < 0.6 else int(rng.integers(0, 4)) for t in hidden_labels]
    examples = [(([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3), "the example"),
                (([1, 1, 1], [1, 1, 1], 3), "every passage of class 1, all right (classes 0 and 2 never appear)"),
                (([0, 1, 2], [2, 2, 2], 3), "a classifier that always says 2"),
                ((hidden_labels, hidden_predictions, 4), "50 hidden passages, 4 classes")]
    cases = [Case(args, _confusion_reference(*args), label, _compare_confusion(*args)) for args, label in examples]
    return run_checks("confusion_matrix", fn, cases, hint=[
        "one row per true class, one column per predicted class; each (true, predicted) pair adds one"
        " to a cell.",
        "start from np.zeros((n_classes, n_classes), dtype=int) and add 1 at [true, predicted] for "
        "every pair of zip(labels, predictions)."])


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
             (_permutation_mask_reference(order, order_as_rank=True), "used order[i] as position i's turn; order[k] "
                                                                      "is the position whose turn is k, so its turn "
                                                                      "is rank[order[k]] = k")]
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


def _pairs_reference(turns, same_speaker=False, wrap=False, swapped=False, disjoint=False):
    step = 2 if disjoint else 1
    following = turns[1:] + (turns[:1] if wrap else [])
    pairs = [(a[1], b[1]) for a, b in list(zip(turns, following))[::step] if same_speaker or a[0] != b[0]]
    return [(b, a) for a, b in pairs] if swapped else pairs


def _compare_pairs(turns):
    slips = [(_pairs_reference(turns, same_speaker=True), "kept a speaker answering themself; skip two turns "
                                                          "by the same speaker"),
             (_pairs_reference(turns, wrap=True), "paired the last speech with the first; the dialogue does not "
                                                  "wrap around"),
             (_pairs_reference(turns, swapped=True), "returned (reply, speech); the speech comes first"),
             (_pairs_reference(turns, disjoint=True), "used each speech once; a reply is also the speech the next "
                                                      "reply answers")]
    return compare_list(slips, "(speech, reply) pairs", "pairs", normalise=_as_pairs)


def _as_pairs(got):
    return [tuple(p) if isinstance(p, (list, tuple)) else p for p in got]


@checker
def dialogue_pairs(fn) -> CheckResult:
    """Checker for notebook 12: ``fn(turns)``, with ``turns`` a list of ``(speaker, speech)``, returns
    ``(speech, reply)`` for every two consecutive turns by different speakers, in order."""
    rng = np.random.default_rng(23)
    names = ["HAMLET", "HORATIO", "GHOST"]
    hidden = [(names[int(rng.integers(0, 3))], f"line {i}") for i in range(30)]
    examples = [([("ANNE", "Who goes there?"), ("BEN", "A friend."), ("BEN", "Long live the king!"),
                  ("CLEO", "Ben?")], "the example"),
                ([("A", "one"), ("B", "two"), ("A", "three")], "three turns, two speakers"),
                ([("A", "alone")], "a single speech (no pairs)"),
                ([], "no turns at all"),
                (hidden, "30 hidden turns")]
    cases = [Case((turns,), _pairs_reference(turns), label, _compare_pairs(turns)) for turns, label in examples]
    return run_checks("dialogue_pairs", fn, cases, hint=[
        "look at each two neighbouring turns; keep them as (speech, reply) only when the speakers "
        "differ.",
        "for (a, speech), (b, reply) in zip(turns, turns[1:]): keep (speech, reply) when a != b."])
