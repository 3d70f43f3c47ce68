"""Checkers of part 2, text: notebooks 05_text_to_numbers and 06_next_token_prediction."""

import numpy as np

from helpers.checks.compare import as_array, compare_scalar, is_integer, kind_of, named_slip, short, tensor_to_numpy
from helpers.checks.engine import Case, CheckResult, check_prediction, checker, run_checks


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


UTF8_QUESTION = "Grüße, 世界 👋"


@checker
def predict_utf8_bytes(fn) -> CheckResult:
    """Checker for notebook 05: the learner's prediction of how many UTF-8 bytes ``UTF8_QUESTION`` is."""
    sizes = [len(ch.encode("utf-8")) for ch in UTF8_QUESTION]
    why = (f"{len(UTF8_QUESTION)} characters, {sum(sizes)} bytes: UTF-8 spends 1 byte on each of the "
           f"{sizes.count(1)} ASCII characters (letters, comma, spaces), 2 on ü and on ß, 3 on 世 and on 界, "
           "and 4 on the emoji. Byte-level BPE starts from these bytes, so it can encode any text.")
    return check_prediction("predict_utf8_bytes", fn, sum(sizes), why, rel=0.01, hint=[
        "count bytes, not characters: plain English letters take 1 byte each in UTF-8; what about ü, 世, 👋?",
        "UTF-8 uses 1 byte for ASCII, 2 for most accented Latin letters, 3 for Chinese characters, 4 for emoji."])


def _replay(text, merges, order, start=None):
    """What encoding gives when the merges are applied in ``order`` (a list of ranks) to ``start``
    (by default the UTF-8 bytes of ``text``)."""
    from helpers import tokenizers

    ids = list(text.encode("utf-8")) if start is None else start
    for rank in order:
        ids = tokenizers.merge(ids, tuple(merges[rank]), 256 + rank)
    return ids


def _most_frequent_first(text, merges):
    """A wrong encoder: at each step it merges the known pair that is most frequent in this text."""
    from helpers import tokenizers

    rank = {tuple(pair): r for r, pair in enumerate(merges)}
    ids = list(text.encode("utf-8"))
    while True:
        counts = {pair: c for pair, c in tokenizers.pair_counts(ids).items() if pair in rank}
        if not counts:
            return ids
        pair = min(counts, key=lambda q: (-counts[q], rank[q]))
        ids = tokenizers.merge(ids, pair, 256 + rank[pair])


def _encode_slips(text, merges):
    return [(_replay(text, merges, range(len(merges) - 1, -1, -1)), "applied the merges from the last learned "
             "to the first: replay them in the order they were learned (merge 0 first)"),
            (_most_frequent_first(text, merges), "merged the pair that is most frequent in the text being "
             "encoded: encoding does not count again, it replays the learned merges in their order"),
            (_replay(text, merges, range(len(merges)), [ord(ch) for ch in text]), "started from the characters' "
             "code points (ord): start from the UTF-8 bytes, list(text.encode('utf-8'))"),
            (list(text.encode("utf-8")), "applied no merge at all"),
            (_replay(text, [(a, b) for a, b in merges], [r for r in range(len(merges)) if max(merges[r]) < 256]),
             "applied only the merges of two bytes: a later merge joins tokens made by earlier ones")]


def _compare_encoding(text, merges):
    def compare(got, expected):
        ids, problem = _as_ids(got)
        if problem:
            return problem
        if ids == expected:
            return None
        from helpers.checks.compare import exactly, returned_instead

        # on a short text two slips can give the same ids: name every one that fits
        words = [named_slip(ids, expected, [slip], exactly) for slip in _encode_slips(text, merges)]
        return returned_instead(ids, expected, "; or you ".join(w for w in words if w) or None, 80)
    return compare


@checker
def bpe_encode(fn) -> CheckResult:
    """Checker for notebook 05: ``fn(text, merges)`` encodes ``text`` with byte-level BPE: its UTF-8
    bytes, then each merge ``merges[r]`` (a pair of ids, made into id ``256 + r``) in learned order."""
    from helpers import tokenizers
    from helpers.paths import data_path

    shipped = [tuple(pair) for pair in tokenizers.BPETokenizer.load(data_path("tokenizer_bpe512.json")).merges]
    toy = tokenizers.train_merges(b"aaabdaaabac", 3)
    examples = [("aaabdaaabac", toy, "the toy 'aaabdaaabac' with its 3 merges"),
                ("ababc", [(98, 99), (97, 98)], "'ababc' with the merges [(98, 99), (97, 98)], where the "
                                                 "order matters"),
                ("Café", [(195, 169), (102, 256)], "'Café' (é is two bytes) with the merges "
                                                    "[(195, 169), (102, 256)]"),
                ("", shipped, "the empty text"),
                ("O Romeo, Romeo! wherefore art thou Romeo?\nDeny thy father and refuse thy name;", shipped,
                 "a hidden line with the course tokenizer's 256 merges"),
                ("naïve café, 漢字 and 🎭 too", shipped, "hidden text beyond English, with the course's merges")]
    cases = [Case((text, merges), tokenizers.BPETokenizer(merges).encode(text), label,
                  _compare_encoding(text, merges)) for text, merges, label in examples]
    return run_checks("bpe_encode", fn, cases, hint=[
        "encoding does not learn anything new: it starts from the text's UTF-8 bytes and replays the learned "
        "merges, one after the other.",
        "ids = list(text.encode('utf-8')); then for each merge, in the order learned, replace that pair "
        "everywhere by its new id (merge r becomes id 256 + r).",
        "for rank, pair in enumerate(merges): ids = tokenizers.merge(ids, tuple(pair), 256 + rank); or loop: "
        "among the neighbouring pairs that are merges, merge the one with the lowest rank, until none is left."])


def _decode_per_token(ids, vocab):
    return "".join(vocab[i].decode("utf-8", errors="replace") for i in ids)


@checker
def bpe_decode(fn) -> CheckResult:
    """Checker for notebook 05 (find the bug): ``fn(ids, vocab)`` joins the tokens' bytes, then decodes
    them as UTF-8, showing invalid bytes as U+FFFD (``errors="replace"``)."""
    from helpers import tokenizers
    from helpers.checks.compare import exactly, returned_instead
    from helpers.paths import data_path

    bpe = tokenizers.BPETokenizer.load(data_path("tokenizer_bpe512.json"))

    def compare_text(ids):
        def compare(got, expected):
            if not isinstance(got, str):
                return f"returned {short(got)}, which is not text: decode returns a str, not a number or a list"
            if got == expected:
                return None
            slip = [(_decode_per_token(ids, bpe.vocab), "still gives what the broken code gives: look at the "
                     "characters that come out as �, and at how many bytes those characters take in UTF-8")]
            return returned_instead(got, expected, named_slip(got, expected, slip, exactly), 80)
        return compare

    texts = [("To be, or not to be", "the example 'To be, or not to be'"),
             ("Café 🎭", "'Café 🎭', whose é and 🎭 are split into byte tokens"),
             ("", "no ids at all"),
             ("Thou art 漢字 and naïve 👩‍👩‍👧.\nROMEO:\nO!",
              "a hidden text with many multi-byte characters")]
    cases = [Case((bpe.encode(text), bpe.vocab), text, label, compare_text(bpe.encode(text))) for text, label in texts]
    half = bpe.encode("é")[:1]
    cases.append(Case((half, bpe.vocab), "\ufffd", "the id of half a character, [195] (a sample can stop "
                      "mid-character): it must not crash, but give U+FFFD", compare_text(half)))
    return run_checks("bpe_decode", fn, cases, hint=[
        "try it on 'Café': how many bytes is é, and does each of them make a character on its own?",
        "a token may hold part of a character; only the bytes of all the tokens together are valid UTF-8.",
        "b''.join(vocab[i] for i in ids).decode('utf-8', errors='replace')."])


# ---------------------------------------------------------------------------
# Notebook 06: next-token prediction
# ---------------------------------------------------------------------------

def _softmax_reference(logits, temperature):
    z = np.asarray(logits, dtype=float) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@checker
def predict_trigram_loss(fn) -> CheckResult:
    """Checker for notebook 06: the learner's prediction of the add-one trigram model's held-out loss
    (a choice; the notebook's next cell measures 2.05 nats, asserted there and in tests/test_nb06.py)."""
    why = ("The trigram model's held-out loss is about 2.05 nats, against 2.50 for the bigram: two characters "
           "of context help a lot, even though most of the 78 x 78 contexts never occur in training (smoothing "
           "gives those a nearly uniform guess). It stays far above 0: spelling still needs more context.")
    return check_prediction("predict_trigram_loss", fn, "b", why, choices=["a", "b", "c"], hint=[
        "does knowing two previous characters instead of one make the next one easier or harder to guess?",
        "more context helps, but 2 characters are not enough to know the word."])


def _draw_problem(draws, n):
    """``None`` if every draw is a token id below ``n``, else what is wrong, in words."""
    for draw in draws:
        if isinstance(draw, float) and np.isnan(draw):
            return "returned NaN, which is not a token id: did a probability become NaN (inf - inf)?"
        if isinstance(draw, (np.ndarray, list, tuple)) or (hasattr(draw, "shape") and tuple(draw.shape)):
            shape = np.shape(tensor_to_numpy(draw) if hasattr(draw, "detach") else draw)
            return (f"returned {short(draw)} (shape {shape}), not one token id: draw a single id "
                    "(rng.choice(len(p), p=p) gives one)")
        if not is_integer(draw):
            return (f"returned {short(draw)}, which is not a number of an integer type: a token id is a whole "
                    f"number (int), got {kind_of(draw)}")
        if not 0 <= int(draw) < n:
            return f"returned {int(draw)}, which is not a token id from 0 to {n - 1}"
    return None


def _sampling_reference(logits, temperature, top_k):
    z = np.asarray(logits, dtype=float) / temperature
    if top_k is not None and top_k < len(z):
        z = np.where(z >= np.sort(z)[-top_k], z, -np.inf)
    e = np.exp(z - z.max())
    return e / e.sum()


def _compare_draws(logits, temperature, top_k):
    z = np.asarray(logits, dtype=float)
    slips = [(_sampling_reference(z, 1 / temperature, top_k), "multiplied the logits by the temperature: "
              "divide them by it (a low temperature sharpens the distribution)"),
             (_sampling_reference(z, 1.0, top_k), "ignored the temperature"),
             (_sampling_reference(-z, temperature, top_k), "kept the k least likely tokens: keep the k largest "
              "logits"),
             (_sampling_reference(z, temperature, None), "ignored top_k")]

    def fits(freq, p, n):
        if ((freq > 0) & (p == 0)).any():
            return False
        spread = np.sqrt(np.maximum(p * (1 - p), 1e-12) / n)
        return bool((np.abs(freq - p) <= 5 * spread + 1e-9).all())

    def compare(got, expected):
        problem = _draw_problem(got, len(z))
        if problem:
            return problem
        freq = np.bincount([int(d) for d in got], minlength=len(z)) / len(got)
        if fits(freq, expected, len(got)):
            return None
        outside = (freq > 0) & (expected == 0)
        if outside.any():
            seen = f"drew token {int(np.argmax(outside))}, which top_k={top_k} removes"
        else:
            worst = int(np.argmax(np.abs(freq - expected)))
            seen = (f"drew token {worst} in {freq[worst]:.1%} of {len(got)} draws, but its probability "
                    f"is {expected[worst]:.1%}")
        words = next((w for wrong, w in slips if not np.allclose(wrong, expected, atol=1e-3)
                      and fits(freq, wrong, len(got))), None)
        return f"{seen}. It looks as if you {words}" if words else seen
    return compare


@checker
def sample_next(fn) -> CheckResult:
    """Checker for notebook 06: ``fn(logits, temperature, top_k, rng)`` draws one token id from
    ``softmax(logits / temperature)`` restricted to the ``top_k`` largest logits (all when ``None``).
    Drawn many times with a seeded ``rng``, the frequencies must match (within 5 standard errors)."""
    rng = np.random.default_rng(16)
    base = np.array([2.0, 1.0, 0.5, 0.1, -1.0, -2.0])
    examples = [(base, 1.0, None, 2000, "the example logits [2, 1, 0.5, 0.1, -1, -2], temperature 1, no top-k"),
                (base, 1.0, 1, 30, "top_k=1 (always the most likely token)"),
                (base, 0.5, 3, 2000, "temperature 0.5 and top_k=3"),
                (rng.normal(size=20) * 2, 2.0, 5, 3000, "hidden logits of 20 tokens, temperature 2, top_k=5"),
                (np.array([1000.0, 999.0, -1000.0]), 1.0, None, 1000, "huge logits [1000, 999, -1000]: "
                                                                         "exp must not overflow")]

    def draw_many(fn, logits, temperature, top_k, n, seed):
        generator = np.random.default_rng(seed)
        return [fn(logits, temperature, top_k, generator) for _ in range(n)]

    cases = [Case((fn, z, t, k, n, 100 + i), _sampling_reference(z, t, k), label, _compare_draws(z, t, k))
             for i, (z, t, k, n, label) in enumerate(examples)]
    return run_checks("sample_next", draw_many if callable(fn) else fn, cases, hint=[
        "three steps: reshape the logits (temperature, then top-k), turn them into probabilities, draw one id.",
        "divide the logits by the temperature; set every logit below the k-th largest to -inf; softmax "
        "(subtract the max first); then rng.choice(len(p), p=p).",
        "z = logits / temperature; if top_k: z = np.where(z >= np.sort(z)[-top_k], z, -np.inf); "
        "p = np.exp(z - z.max()); p /= p.sum(); return int(rng.choice(len(p), p=p))."])


def _nll_reference(W, ids, dim=1, swap=False, reduce="mean"):
    import torch

    x, y = (ids[1:], ids[:-1]) if swap else (ids[:-1], ids[1:])
    nll = -torch.log_softmax(W.double(), dim=dim)[x, y]
    return float(nll.mean() if reduce == "mean" else nll.sum())


@checker
def bigram_loss(fn) -> CheckResult:
    """Checker for notebook 06 (find the bug): ``fn(W, ids)`` is the mean cross-entropy of the neural
    bigram model whose row ``W[a]`` holds the logits of the character after ``a``."""
    import torch

    from helpers.checks.compare import nearly

    def compare(W, ids):
        slips = [(_nll_reference(W, ids, dim=0), "still gives what the broken code gives: which characters' "
                  "probabilities does each log_softmax make add up to 1?"),
                 (_nll_reference(W, ids, swap=True), "swapped the roles: the model reads the current character "
                  "and predicts the next one, ids[1:] from ids[:-1]"),
                 (_nll_reference(W, ids, reduce="sum"), "summed the losses: take their mean")]

        def check(got, expected):
            problem = compare_scalar(got, expected, atol=1e-5, rtol=1e-4)
            if problem is None:
                return None
            try:
                value = float(as_array(got).reshape(()))
            except (TypeError, ValueError):
                return problem
            words = named_slip(value, expected, slips, nearly(1e-5, 1e-4))
            return f"returned {value:.6g}, expected {expected:.6g}. It looks as if you {words}" if words else problem
        return check

    rng = torch.Generator().manual_seed(17)
    cases = []
    for V, n, label in [(5, 40, "the example: 5 characters, 40 ids"), (78, 3000, "hidden: 78 characters, 3000 ids")]:
        W = torch.randn(V, V, generator=rng) * 2
        ids = torch.randint(0, V, (n,), generator=rng)
        cases.append(Case((W, ids), _nll_reference(W, ids), label, compare(W, ids)))
    return run_checks("bigram_loss", fn, cases, hint=[
        "the function runs and gives a plausible number; check what each line normalises or indexes. Which "
        "numbers should add up to 1?",
        "for each current character a, the probabilities of the next character are softmax(W[a]): a row.",
        "log_softmax(W, dim=1): along the rows, not dim=0."])

