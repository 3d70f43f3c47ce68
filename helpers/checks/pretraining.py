"""Checkers of part 4, pretraining: notebooks 09_pretraining and 10_evaluation_and_data."""

import numpy as np

from helpers.checks.compare import (as_array, compare_arrays, compare_naming_slips, compare_scalar,
                                    looks_as_if, named_slip, nearly, short)
from helpers.checks.engine import Case, CheckResult, check_prediction, checker, run_checks


# ---------------------------------------------------------------------------
# Notebook 09: pretraining
# ---------------------------------------------------------------------------

def _adamw_reference(params, grad_steps, lr, betas, eps, weight_decay):
    """The parameters after one AdamW step per gradient list in ``grad_steps``: ``torch.optim.AdamW``
    itself (float64), so the learner's version is checked against PyTorch's."""
    import torch

    tensors = [torch.nn.Parameter(torch.tensor(np.asarray(p, dtype=float))) for p in params]
    optimizer = torch.optim.AdamW(tensors, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    for grads in grad_steps:
        for p, g in zip(tensors, grads):
            p.grad = torch.tensor(np.asarray(g, dtype=float))
        optimizer.step()
    return [p.detach().numpy() for p in tensors]


def _adamw_slip(params, grad_steps, lr, betas, eps, weight_decay, no_correction=False, coupled=False,
                decay_without_lr=False, eps_inside=False, no_decay=False):
    """What a known mistake computes, in NumPy: the same loop with one thing wrong."""
    b1, b2 = betas
    params = [np.asarray(p, dtype=float) for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for t, grads in enumerate(grad_steps, start=1):
        for i, g in enumerate(grads):
            g = np.asarray(g, dtype=float) + (weight_decay * params[i] if coupled else 0.0)
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g ** 2
            m_hat, v_hat = (m[i], v[i]) if no_correction else (m[i] / (1 - b1 ** t), v[i] / (1 - b2 ** t))
            step = m_hat / (np.sqrt(v_hat + eps) if eps_inside else np.sqrt(v_hat) + eps)
            shrink = 0.0 if (coupled or no_decay) else weight_decay * (1.0 if decay_without_lr else lr)
            params[i] = params[i] * (1 - shrink) - lr * step
    return params


def _run_adamw(fn, params, grad_steps, lr, betas, eps, weight_decay):
    """Call the learner's ``fn`` once per step, feeding back the parameters and moments it returns;
    the parameters after the last step (or a sentence saying what the function returned wrongly)."""
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for t, grads in enumerate(grad_steps, start=1):
        out = fn(params, grads, m, v, t, lr, betas, eps, weight_decay)
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            return _Returned(f"returned {short(out)} at step {t}, not a list of arrays: return the three lists "
                             "(params, m, v)")
        params, m, v = out
        if not all(isinstance(x, (list, tuple)) and len(x) == len(grads) for x in (params, m, v)):
            return _Returned(f"returned {short(out)} at step {t}; return three lists of {len(grads)} arrays each, "
                             "(params, m, v), one array per parameter")
    return list(params)


class _Returned(str):
    """A sentence about the shape of what the learner's function returned (not an answer)."""


@checker
def adamw_step(fn) -> CheckResult:
    """Checker for notebook 09 (build): ``fn(params, grads, m, v, t, lr, betas, eps, weight_decay)`` is one
    AdamW step on lists of arrays: it returns the new ``(params, m, v)``. Run for several steps,
    feeding back what it returns, it must match ``torch.optim.AdamW``."""
    rng = np.random.default_rng(9)
    shapes = [(3,), (4, 2), (2, 2, 2)]
    examples = [([np.array([1.0, -2.0])], [[np.array([0.5, 0.1])]], 0.1, (0.9, 0.99), 1e-8, 0.1,
                 "the example: one step on [1, -2] with gradient [0.5, 0.1], lr 0.1, weight decay 0.1"),
                ([np.array([1.0, -2.0])], [[np.array([0.5, 0.1])], [np.array([-1.0, 0.25])], [np.array([2.0, 0.0])]],
                 0.1, (0.9, 0.99), 1e-8, 0.1, "three steps on the example's parameter"),
                ([rng.normal(size=s) for s in shapes], [[rng.normal(size=s) for s in shapes] for _ in range(10)],
                 1e-2, (0.9, 0.99), 1e-8, 0.1, "ten hidden steps on three arrays of different shapes"),
                ([rng.normal(size=s) for s in shapes], [[rng.normal(size=s) * 1e-3 for s in shapes] for _ in range(5)],
                 1e-3, (0.8, 0.999), 1e-6, 0.0, "five hidden steps with tiny gradients, other betas, no decay")]
    cases = []
    for params, grad_steps, lr, betas, eps, wd, label in examples:
        args = (params, grad_steps, lr, betas, eps, wd)
        slips = [(_adamw_slip(*args, no_correction=True), "skipped the bias correction: divide m by 1 - beta1**t "
                                                          "and v by 1 - beta2**t (t counts from 1)"),
                 (_adamw_slip(*args, coupled=True), "added weight_decay * p to the gradient (Adam with an L2 "
                                                    "penalty); AdamW shrinks the parameter itself, p * (1 - lr * "
                                                    "weight_decay), outside the moments"),
                 (_adamw_slip(*args, decay_without_lr=True), "shrank the parameter by weight_decay alone; the "
                                                             "decoupled decay is lr * weight_decay"),
                 (_adamw_slip(*args, eps_inside=True), "put eps inside the square root; divide by sqrt(v_hat) + eps"),
                 (_adamw_slip(*args, no_decay=True), "left out the weight decay (plain Adam)")]

        def compare(got, expected, slips=slips):
            if isinstance(got, _Returned):
                return str(got)
            problem = compare_list_of_arrays(got, expected, "parameters", atol=1e-8, rtol=1e-5)
            if problem is None:
                return None
            return looks_as_if(problem, named_slip(got, expected, slips, nearly(1e-8, 1e-5)))

        cases.append(Case((fn, *args), _adamw_reference(*args), label, compare))
    return run_checks("adamw_step", _run_adamw if callable(fn) else fn, cases, hint=[
        "for each parameter: update the two running averages with this gradient, correct their bias, "
        "then move the parameter; return new lists, one array per parameter.",
        "m = beta1 * m + (1 - beta1) * g; v = beta2 * v + (1 - beta2) * g**2; m_hat = m / (1 - beta1**t), "
        "v_hat = v / (1 - beta2**t); the decay multiplies p by (1 - lr * weight_decay).",
        "p = p * (1 - lr * weight_decay) - lr * m_hat / (np.sqrt(v_hat) + eps), with m_hat and v_hat as "
        "above; append p, m and v to three new lists and return them as (params, m, v)."])


def compare_list_of_arrays(got, expected, noun: str, atol: float, rtol: float) -> str | None:
    """``None`` when ``got`` is a list of arrays equal to ``expected``'s, else what differs, in words."""
    if not isinstance(got, (list, tuple)):
        return f"gave {short(got)}, which is not a list of arrays (one per {noun[:-1]})"
    if len(got) != len(expected):
        return f"gave {len(got)} arrays for {len(expected)} {noun}"
    for i, (g, e) in enumerate(zip(got, expected)):
        problem = compare_arrays(g, e, atol=atol, rtol=rtol)
        if problem:
            return f"gave a wrong array {i} of the {noun}: it {problem}"
    return None


@checker
def adam_scale(fn) -> CheckResult:
    """Checker for notebook 09 (predict, then run): ``fn()`` says what happens to AdamW's first update
    when every gradient is 10 times smaller."""
    return check_prediction(
        "adam_scale", fn, "the same", choices=("10 times smaller", "the same", "10 times larger"),
        why="Adam divides the average gradient m by the square root of the average squared gradient v: "
            "scale every gradient by 0.1 and both m and sqrt(v) shrink 10 times, so the step does not change "
            "(only eps, 1e-8, breaks the tie). Clipping every step alike would do nothing; what clipping "
            "changes is one outsized gradient among ordinary ones.",
        hint=["write m_hat / sqrt(v_hat) for gradients 0.1 * g instead of g.",
              "m is an average of gradients, v an average of squared gradients: what does sqrt(v) do to the 0.1?"])


def _clip_tensors(grads, max_norm, per_tensor=False, always=False, after=False, l1=False):
    """The gradients after clipping and the norm returned, with one known mistake if asked."""
    grads = [np.asarray(g, dtype=float) for g in grads]
    norms = [float(np.sqrt((g ** 2).sum())) for g in grads]
    total = sum(norms) if l1 else float(np.sqrt(sum(n ** 2 for n in norms)))
    if per_tensor:
        return [[g * min(1.0, max_norm / (n + 1e-6)) for g, n in zip(grads, norms)], total]
    scale = max_norm / (total + 1e-6) if always else min(1.0, max_norm / (total + 1e-6))
    clipped = [g * scale for g in grads]
    return [clipped, float(np.sqrt(sum((g ** 2).sum() for g in clipped))) if after else total]


def _run_clip(fn, grads, max_norm, generator=False):
    """Give the learner's ``fn`` parameters whose ``.grad`` are ``grads`` (as a list, or as a generator
    like ``model.parameters()``); return the gradients it leaves and the norm it returns."""
    import torch

    params = [torch.nn.Parameter(torch.zeros(np.shape(g), dtype=torch.float64)) for g in grads]
    for p, g in zip(params, grads):
        p.grad = torch.tensor(np.asarray(g, dtype=float))
    norm = fn((p for p in params) if generator else params, max_norm)
    return [p.grad.numpy() for p in params], norm


@checker
def clip_gradients_(fn) -> CheckResult:
    """Checker for notebook 09 (find the bug): ``fn(parameters, max_norm)`` scales the ``.grad`` of all
    ``parameters`` in place by one factor, so that their global norm is at most ``max_norm``, and
    returns that norm before clipping: as ``torch.nn.utils.clip_grad_norm_``."""
    import torch

    rng = np.random.default_rng(18)
    examples = [([np.array([3.0, 0.0]), np.array([[0.0], [4.0]])], 1.0, False,
                 "the example: gradients [3, 0] and [[0], [4]] (global norm 5), max_norm 1"),
                ([np.array([0.3, 0.4]), np.array([0.0])], 1.0, False, "gradients already shorter than max_norm"),
                ([rng.normal(size=(8, 8)), rng.normal(size=8) * 0.1, rng.normal(size=(3, 8)) * 5], 2.0, False,
                 "hidden gradients of three layers, max_norm 2"),
                ([rng.normal(size=(16, 4)), rng.normal(size=4)], 1.0, True,
                 "hidden gradients given as a generator, as model.parameters() is")]
    cases = []
    for grads, max_norm, generator, label in examples:
        params = [torch.nn.Parameter(torch.zeros(np.shape(g), dtype=torch.float64)) for g in grads]
        for p, g in zip(params, grads):
            p.grad = torch.tensor(g)
        total = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        expected = [[p.grad.numpy().copy() for p in params], total]
        slips = [(_clip_tensors(grads, max_norm, per_tensor=True), "kept the bug: your function still gives what the "
                  "broken code gives: each "
                  "tensor is clipped by its own norm, so their directions change. Add up the squares of all "
                  "of them first, then scale every gradient by the same factor"),
                 (_clip_tensors(grads, max_norm, always=True), "rescaled even when the norm was already below "
                                                               "max_norm; clipping only ever shrinks"),
                 (_clip_tensors(grads, max_norm, after=True), "returned the norm after clipping; return the "
                                                              "norm before, as clip_grad_norm_ does"),
                 (_clip_tensors(grads, max_norm, l1=True), "added up the tensors' norms; the global norm is the "
                                                           "square root of the sum of all the squares")]
        if generator:
            slips.append(([list(grads), total], "left the gradients as they were: a generator (model.parameters()) "
                                                "can be read only once. Make a list of it first"))

        def compare(got, expected, slips=slips):
            clipped, norm = got
            if norm is None:
                return "returned None: return the global norm before clipping, as clip_grad_norm_ does"
            try:
                number = as_array(norm)
            except TypeError:
                number = None
            if number is None or number.size != 1 or not np.issubdtype(number.dtype, np.number):
                return f"returned {short(norm)} as the norm, which is not a number"
            problem = compare_list_of_arrays(clipped, expected[0], "gradients", atol=1e-7, rtol=1e-5)
            if problem is None:
                problem = compare_scalar(norm, expected[1], atol=1e-7, rtol=1e-5)
                problem = problem and f"returned the norm {short(norm)}; the global norm before clipping is " \
                                      f"{expected[1]:.6g}"
            if problem is None:
                return None
            return looks_as_if(problem, named_slip(got, expected, slips, nearly(1e-7, 1e-5)))

        cases.append(Case((fn, grads, max_norm, generator), expected, label, compare))
    return run_checks("clip_gradients_", _run_clip if callable(fn) else fn, cases, hint=[
        "the function runs; compare what each gradient is scaled by. Should a small gradient be scaled "
        "because another one is large?",
        "'global' means one norm for all gradients together, as if they were one long vector, and one "
        "factor for every gradient. Two passes: first the norm, then the scaling.",
        "parameters = list(parameters); total = sum(p.grad.pow(2).sum() for p in parameters) ** 0.5; "
        "scale = min(1.0, max_norm / (total + 1e-6)); for p in parameters: p.grad.mul_(scale); return total."])


# ---------------------------------------------------------------------------
# Notebook 10: evaluation and data
# ---------------------------------------------------------------------------

def _bits_reference(model, tok, text, per_token=False, nats=False, all_characters=False, mean=False):
    import math

    import torch
    ids = tok.encode(text)
    x, y = torch.tensor(ids[:-1]).unsqueeze(0), torch.tensor(ids[1:])
    with torch.no_grad():
        logits, _ = model(x)
    nll = -torch.log_softmax(logits[0].double(), dim=-1)[torch.arange(len(y)), y]
    total = float(nll.mean() if mean else nll.sum())
    characters = len(text) if all_characters else len(text) - len(tok.decode(ids[:1]))
    return total / (len(y) if per_token else characters) / (1.0 if nats else math.log(2))


def _bits_models():
    """The checker's models: the BPE-512 GPT of notebook 10, the shipped character GPT, and a
    hidden small random BPE GPT (their texts fit in one window of each)."""
    import torch

    from helpers import checkpoints, gpt, tokenizers
    from helpers.paths import data_path
    bpe = tokenizers.BPETokenizer.load(data_path("tokenizer_bpe512.json"))
    char_model, state = checkpoints.load_model(data_path("gpt_shakespeare.pt"))
    bpe_model, _ = checkpoints.load_model(data_path("sweeps_bpe512.pt"))
    torch.manual_seed(21)
    small = gpt.GPT(gpt.GPTConfig(vocab_size=bpe.vocab_size, n_layer=1, n_head=2, n_embd=16, block_size=32))
    small.eval()
    models = [(bpe_model, bpe, "the BPE-512 GPT of this notebook"),
              (char_model, tokenizers.CharTokenizer(state["tokenizer_chars"]), "the shipped character GPT"),
              (small, bpe, "a hidden small random BPE GPT (block_size 32)")]
    return models


@checker
def bits_per_character(fn) -> CheckResult:
    """Checker for notebook 10: ``fn(model, tokenizer, text)`` is the model's bits per character on
    ``text`` (at most ``block_size + 1`` tokens): the summed cross-entropy of every token after the
    first, divided by the characters those tokens cover and by ln 2; as
    ``helpers.experiments.bits_per_character``."""
    texts = ["HAMLET:\nTo be, or not to be, that is the question:",
             "KING LEAR:\nNothing will come of nothing: speak again.",
             "ROMEO:\nBut, soft! what light through yonder window breaks?",
             "Ay"]
    cases = []
    for k, (model, tok, label) in enumerate(_bits_models()):
        for text in (texts if k == 0 else texts[k - 1::2]):
            if len(tok.encode(text)) > model.config.block_size + 1:
                continue
            args = (model, tok, text)
            slips = [(_bits_reference(*args, per_token=True), "divided by the number of tokens: that is bits per "
                      "*token*; divide by the characters the scored tokens cover"),
                     (_bits_reference(*args, nats=True), "returned nats; divide by ln 2 to get bits"),
                     (_bits_reference(*args, per_token=True, nats=True), "returned the mean loss per token in "
                      "nats, the number training prints; sum it, divide by characters and by ln 2"),
                     (_bits_reference(*args, all_characters=True), "divided by all the characters of the text; "
                      "the first token is given, not predicted, so its characters do not count"),
                     (_bits_reference(*args, mean=True), "divided the *mean* loss by the characters; sum the "
                      "losses of the predicted tokens first")]
            cases.append(Case(args, _bits_reference(*args), f"{label}, text {text[:24]!r}...",
                              compare_naming_slips(slips, atol=1e-5, rtol=1e-4)))
    return run_checks("bits_per_character", fn, cases, hint=[
        "a loss per token depends on how much text a token holds; the total (summed) loss of the text "
        "does not. Share that total among the characters.",
        "encode the text; feed every token but the last; take log_softmax of the logits and pick the "
        "log-probability of each next token; sum their negatives (nats).",
        "nats / (len(text) - len(tokenizer.decode(ids[:1]))) / math.log(2): the first token's "
        "characters are given, not predicted."])


@checker
def predict_uniform_token_bits(fn) -> CheckResult:
    """Checker for notebook 10: the learner's prediction of the bits per character of a model that
    gives each of the 512 BPE tokens the same probability, on text where a token holds 1.94
    characters (the notebook's next cell measures it)."""
    import math
    why = ("Each token costs log2(512) = 9 bits whatever it is, and a token holds 1.94 characters on "
           "average: 9 / 1.94 = 4.64 bits per character. The uniform character model pays log2(78) = 6.29: "
           "the tokenizer's merges, learnt from the training plays, already save bits before the model "
           "has learnt anything.")
    hint = ["a uniform choice among 512 tokens costs log2(512) bits, for every token.",
            "bits per character = bits per token / characters per token.",
            "log2(512) / 1.94 = 9 / 1.94."]
    return check_prediction("predict_uniform_token_bits", fn, round(math.log2(512) / 1.94, 2), why, rel=0.03,
                            hint=hint)


def _play_texts(n_plays: int, length: int, seed: int):
    """``n_plays`` (title, text) pairs of random letters, of uneven lengths (never a whole number
    of passages), so that every passage is unique and says which play it came from."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz \n"))
    return [(f"Play {i}", "".join(rng.choice(letters, size=int(rng.integers(3, 9)) * length + int(rng.integers(1, length)))))
            for i in range(n_plays)]


def _broken_split(plays, held_out=0.2, length=200, seed=0):
    import random
    passages = [text[i:i + length] for _, text in plays for i in range(0, len(text), length)]
    random.Random(seed).shuffle(passages)
    n_test = round(held_out * len(passages))
    return passages[n_test:], passages[:n_test]


def _split_problem(plays, held_out, length, broken):
    """The ``compare`` of :func:`evaluation_split`: what is wrong with a ``(train, test)`` answer."""

    def compare(got, expected):
        if not isinstance(got, (tuple, list)) or len(got) != 2 or not all(isinstance(part, (list, tuple))
                                                                           for part in got):
            return f"returned {short(got)}, which is not a pair of lists of passages, (train, test)"
        if [list(part) for part in got] == [list(part) for part in broken]:
            return ("still gives what the broken code gives: passages of one play land in both lists. "
                    "A test passage then sits next to its neighbours in training (same names, same scene): "
                    "that is contamination")
        owner = {text[i:i + length]: title for title, text in plays for i in range(0, len(text), length)}
        train, test = list(got[0]), list(got[1])
        if sorted(map(str, train + test)) != sorted(owner):
            return (f"returned {len(train)} + {len(test)} passages, but the plays cut into {length}-character "
                    f"passages make {len(owner)}: keep every passage once, cut as the broken code cuts them")
        both = {owner[p] for p in train} & {owner[p] for p in test}
        if both:
            return (f"passages of {sorted(both)[0]!r} are in both lists: hold out whole plays, so that no "
                    f"test passage has a neighbour in training (contamination)")
        wanted = max(1, round(held_out * len(plays)))
        got_plays = len({owner[p] for p in test})
        if got_plays != wanted:
            return (f"held out {got_plays} plays of {len(plays)}; hold out round(held_out * number of plays) = "
                    f"{wanted} (at least one)")
        return None

    return compare


@checker
def evaluation_split(fn) -> CheckResult:
    """Checker for notebook 10 (find the bug): ``fn(plays, held_out, length, seed)`` splits
    ``(title, text)`` plays into ``(train, test)`` lists of ``length``-character passages, holding out
    ``round(held_out * len(plays))`` whole plays (at least one), so that no play is in both."""
    settings = [(10, 0.2, 40, 0, "10 plays, held_out=0.2, length=40"),
                (7, 0.3, 25, 3, "7 plays, held_out=0.3, length=25"),
                (3, 0.1, 30, 1, "3 plays, held_out=0.1 (still one play held out)"),
                (25, 0.2, 16, 7, "a hidden set of 25 plays")]
    cases = []
    for n, held_out, length, seed, label in settings:
        plays = _play_texts(n, length, seed)
        broken = _broken_split(plays, held_out, length, seed)
        cases.append(Case((plays, held_out, length, seed), None, label,
                          _split_problem(plays, held_out, length, broken)))
    return run_checks("evaluation_split", fn, cases, hint=[
        "the shuffle mixes passages from every play before splitting: what does a test passage of "
        "Hamlet have in the training list?",
        "choose the held-out *plays* first (shuffle the titles with the seed), then cut each play into "
        "passages and send them all to one side.",
        "titles = [t for t, _ in plays]; random.Random(seed).shuffle(titles); test_titles = "
        "set(titles[:max(1, round(held_out * len(titles)))]); then one list comprehension per side."])


# ---------------------------------------------------------------------------
