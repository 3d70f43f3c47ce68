"""Checkers of notebook 13_base_model_to_assistant (the chat format, SFT's loss mask, DPO).

Each hint is a list of tiers (the engine shows the next one after each failed run): a nudge,
a more specific hint, the answer.
"""

import functools

import numpy as np
import torch
from torch.nn import functional as F

from helpers.checks.compare import compare_list, compare_naming_slips, float32_room
from helpers.checks.engine import Case, CheckResult, check_prediction, checker, run_checks


# ---------------------------------------------------------------------------
# Exercise 1: the SFT loss mask
# ---------------------------------------------------------------------------

USER, ASSISTANT, END = 90, 91, 92          # the control ids the checker uses (any ids work)


def _targets_reference(ids, assistant_id, end_id, everything=False, without_end=False, with_marker=False,
                       unshifted=False):
    targets = [-100] * (len(ids) - 1)
    inside = False
    for t, token in enumerate(ids):
        if unshifted and inside and t < len(targets) and token != end_id:
            targets[t] = token
        elif t > 0 and (everything or (inside and not (without_end and token == end_id))
                        or (with_marker and token == assistant_id)):
            targets[t - 1] = token
        if token == assistant_id:
            inside = True
        elif token == end_id:
            inside = False
    return targets


def _as_ids(got):
    if hasattr(got, "detach"):
        got = got.detach().cpu().numpy()
    if isinstance(got, np.ndarray):
        got = got.tolist()
    return [int(v) if isinstance(v, (int, np.integer)) or (isinstance(v, float) and v.is_integer()) else v
            for v in got]


def _ids_list(slips):
    """``compare_list`` over ids that also accepts a 1-D tensor or array (read as a list first)."""
    inner = compare_list(slips, "integer ids", "ids", normalise=_as_ids)

    def compare(got, expected):
        if (hasattr(got, "detach") or isinstance(got, np.ndarray)) and getattr(got, "ndim", 0) == 1:
            got = _as_ids(got)
        return inner(got, expected)

    return compare


def _compare_targets(ids):
    slips = [(_targets_reference(ids, ASSISTANT, END, everything=True),
              "put the loss on every token, the user's turn too: the model would learn to write the "
              "user's messages, and the prompt's tokens would swamp the answer's"),
             (_targets_reference(ids, ASSISTANT, END, without_end=True),
              "left out the assistant's [END]: a model trained so never learns to stop its turn"),
             (_targets_reference(ids, ASSISTANT, END, with_marker=True),
              "also trained the prediction of the [ASSISTANT] marker; the template writes it, the model "
              "does not need to"),
             (_targets_reference(ids, ASSISTANT, END, unshifted=True),
              "did not shift by one: targets[t] is the token *after* position t, ids[t + 1]")]
    return _ids_list(slips)


@checker
def sft_targets(fn) -> CheckResult:
    """Checker for notebook 13: ``fn(ids, assistant_id, end_id)`` returns the ``len(ids) - 1``
    next-token targets of a conversation with ``-100`` everywhere but on the tokens the assistant
    wrote (its text and its closing ``[END]``), as ``helpers.assistant.sft_targets``."""
    rng = np.random.default_rng(13)

    def turn(role, n):
        return [role] + rng.integers(0, 60, n).tolist() + [END]

    examples = [([USER, 5, 6, END, ASSISTANT, 7, 8, END], "the example [USER] 5 6 [END] [ASSISTANT] 7 8 [END]"),
                (turn(USER, 4) + [ASSISTANT] + rng.integers(0, 60, 3).tolist() + [END], "one exchange"),
                (turn(USER, 3) + turn(ASSISTANT, 2) + turn(USER, 2) + turn(ASSISTANT, 4),
                 "two exchanges (two assistant turns)"),
                (turn(USER, 5), "a conversation with no assistant turn (nothing to learn)"),
                (turn(USER, 20) + turn(ASSISTANT, 30) + turn(USER, 10) + turn(ASSISTANT, 25),
                 "a hidden long conversation")]
    cases = [Case((ids, ASSISTANT, END), _targets_reference(ids, ASSISTANT, END), label, _compare_targets(ids))
             for ids, label in examples]
    return run_checks("sft_targets", fn, cases, hint=[
        "position t predicts ids[t + 1]; keep that target only when ids[t + 1] is something the assistant wrote.",
        "walk through ids keeping a flag `inside`: it turns on after [ASSISTANT] and off after [END]; "
        "while it is on, the token (its [END] included) is the target of the position before it.",
        "targets = [-100] * (len(ids) - 1); inside = False; for t, token in enumerate(ids): if inside and t > 0: "
        "targets[t - 1] = token; then if token == assistant_id: inside = True; elif token == end_id: inside = False."])


# ---------------------------------------------------------------------------
# Exercise 2: the DPO loss
# ---------------------------------------------------------------------------

def _dpo_reference(pc, pr, rc, rr, beta, no_reference=False, swapped=False, no_beta=False, total=False,
                   plain_sigmoid=False):
    b = 1.0 if no_beta else beta
    margin = b * ((pc - pr) if no_reference else ((pc - rc) - (pr - rr)))
    margin = -margin if swapped else margin
    losses = -torch.sigmoid(margin) if plain_sigmoid else -F.logsigmoid(margin)
    return float(losses.sum() if total else losses.mean())


def _compare_dpo(args):
    slips = [(_dpo_reference(*args, no_reference=True), "left out the reference model: the margin is "
                                                         "beta * ((pc - rc) - (pr - rr))"),
             (_dpo_reference(*args, swapped=True), "swapped chosen and rejected: the loss should fall as the "
                                                   "chosen reply gains probability"),
             (_dpo_reference(*args, no_beta=True), "forgot to multiply the margin by beta"),
             (_dpo_reference(*args, total=True), "summed over the pairs; take the mean"),
             (_dpo_reference(*args, plain_sigmoid=True), "used -sigmoid(margin); the loss is -log sigmoid(margin)")]
    terms = float(sum(abs(a).sum() for a in args[:4]) * args[4])
    return compare_naming_slips(slips, atol=float(float32_room(terms)) + 1e-5, rtol=1e-4)


@checker
def dpo_loss(fn) -> CheckResult:
    """Checker for notebook 13: ``fn(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)``
    (four ``(B,)`` tensors of sequence log-probabilities and a number) returns the mean DPO loss
    ``-log sigmoid(beta * ((pc - rc) - (pr - rr)))``, as ``helpers.preferences.dpo_loss``."""
    g = torch.Generator().manual_seed(13)

    def logps(n, scale=10.0):
        return [-(torch.rand(n, generator=g, dtype=torch.float64) * scale + 1) for _ in range(4)]

    examples = [([torch.tensor([-3.0], dtype=torch.float64), torch.tensor([-5.0], dtype=torch.float64),
                  torch.tensor([-4.0], dtype=torch.float64), torch.tensor([-4.0], dtype=torch.float64)], 0.5,
                 "the example: one pair, pc=-3, pr=-5, rc=rr=-4, beta=0.5"),
                ([*(torch.full((3,), -2.0, dtype=torch.float64),) * 4], 0.1,
                 "a policy equal to its reference (the loss is log 2)"),
                (logps(16), 0.1, "16 hidden pairs, beta 0.1"),
                (logps(8, scale=2000.0), 1.0, "8 hidden pairs with margins of hundreds of nats, beta 1")]
    cases = []
    for tensors, beta, label in examples:
        args = (*tensors, beta)
        cases.append(Case(args, _dpo_reference(*args), label, _compare_dpo(args)))
    return run_checks("dpo_loss", fn, cases, hint=[
        "the implicit reward of a reply is beta * (log pi(y) - log pi_ref(y)); the loss is Bradley-Terry's on the "
        "difference of the chosen and rejected rewards.",
        "margin = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)); a large negative margin "
        "makes log(sigmoid(margin)) overflow: torch.nn.functional.logsigmoid does not.",
        "return -torch.nn.functional.logsigmoid(margin).mean()."])


# ---------------------------------------------------------------------------
# Exercise 3 (predict, then run): beta -> 0
# ---------------------------------------------------------------------------

CHOICES = ("a", "b", "c")   # a: stays at the reference; b: all on the best answer; c: spread evenly
TOY = ([0.5, 0.3, 0.2], [0.0, 1.0, 2.0])     # reference probabilities and rewards of notebook 13's toy


@functools.lru_cache(maxsize=1)
def _beta_to_zero_truth() -> str:
    """The right choice, computed: the closed-form optimum at a tiny beta."""
    from helpers.preferences import dpo_optimum

    probs = dpo_optimum(*TOY, beta=1e-3)
    if probs.max() > 0.999:
        return "b" if int(probs.argmax()) == int(np.argmax(TOY[1])) else "?"
    return "a" if torch.allclose(probs, torch.tensor(TOY[0], dtype=torch.float64), atol=1e-3) else "c"


@checker
def beta_to_zero(fn) -> CheckResult:
    """Checker for notebook 13: ``fn()`` returns the letter of the prediction: what DPO's optimal
    policy ``pi_ref(y) exp(r(y) / beta)`` (normalised) does as ``beta -> 0`` on the toy; the answer
    is computed from ``helpers.preferences.dpo_optimum``."""
    why = ("The ratio of two answers' probabilities is (pi_ref(y1) / pi_ref(y2)) exp((r1 - r2) / beta): as beta "
           "shrinks it grows without bound for the best answer, whatever the reference says. A *large* beta "
           "does (a), keeping the reference; nothing pulls towards the uniform policy of (c).")
    return check_prediction("beta_to_zero", fn, _beta_to_zero_truth(), why, choices=CHOICES, hint=[
        "write the optimum out: pi*(y) = pi_ref(y) exp(r(y) / beta) / Z. Which factor changes as beta shrinks?",
        "compare two answers: their ratio is (pi_ref(y1) / pi_ref(y2)) * exp((r1 - r2) / beta). What does it do "
        "when beta -> 0 and r1 > r2?",
        "the ratio grows without bound for the best answer against every other: the answer is 'b'."])


# ---------------------------------------------------------------------------
# Exercise 4 (find the bug): an evaluation prompt that leaks the answer
# ---------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _chat_tokenizer():
    from helpers import assistant, finetune

    return assistant.ChatTokenizer(finetune.load_pretrained()[1])


def _compare_prompt(tok, task, line):
    from helpers import assistant

    messages = [("user", assistant.INSTRUCTION[task] + line), ("assistant", assistant.answer(task, line))]
    slips = [(assistant.encode_chat(tok, messages),
              "left the answer in the prompt: the model only has to copy it, so the scores are too good to be "
              "true. The prompt ends where the reply should begin"),
             (assistant.encode_chat(tok, messages, add_reply_start=False),
              "left the answer in the prompt (and no [ASSISTANT] to start the reply)"),
             (assistant.encode_chat(tok, messages[:1], add_reply_start=False),
              "forgot the [ASSISTANT] marker at the end: the model is not told that its turn begins")]
    return _ids_list(slips)


@checker
def eval_prompt(fn) -> CheckResult:
    """Checker for notebook 13: ``fn(tok, task, line)`` returns the ids the model is given to answer
    ``(task, line)``: the user's instruction in the chat template, then ``[ASSISTANT]``, and
    nothing of the answer (``helpers.assistant.chat_prompts``)."""
    from helpers import assistant

    tok = _chat_tokenizer()
    examples = [("shout", "Good night, sweet prince!", "the example: shout a line"),
                ("modernise", "Thou art a scholar; speak to it,", "a line to modernise"),
                ("last word", "Now is the winter of our discontent", "a hidden line: name its last word")]
    cases = [Case((tok, task, line), assistant.chat_prompts(tok, [(task, line)])[0], label,
                  _compare_prompt(tok, task, line)) for task, line, label in examples]
    return run_checks("eval_prompt", fn, cases, hint=[
        "print tok.decode(...) of what your function returns: what does the model see before it starts to write?",
        "the conversation must stop where the assistant's reply begins: the user's turn, then [ASSISTANT].",
        "use assistant.conversation(task, line, with_answer=False), then assistant.encode_chat(tok, messages)."])
