"""Notebook 13's checkers: right answers (written several ways) pass; broken ones are rejected with
the words that name their mistake."""

import numpy as np
import torch
from torch.nn import functional as F

from checker_cases import checker_tests, forever, stub
from helpers import assistant, checks, preferences
from helpers.checks import assistant as assistant_checks


def targets_loop(ids, assistant_id, end_id):
    targets = [-100] * (len(ids) - 1)
    inside = False
    for t, token in enumerate(ids):
        if inside and t > 0:
            targets[t - 1] = token
        if token == assistant_id:
            inside = True
        elif token == end_id:
            inside = False
    return targets



def targets_tensor(ids, assistant_id, end_id):
    return torch.tensor(targets_loop(ids, assistant_id, end_id))


def targets_everything(ids, assistant_id, end_id):
    return list(ids[1:])


def targets_without_end(ids, assistant_id, end_id):
    return [-100 if t == end_id else t for t in targets_loop(ids, assistant_id, end_id)]


def targets_with_marker(ids, assistant_id, end_id):
    out = targets_loop(ids, assistant_id, end_id)
    return [ids[t + 1] if ids[t + 1] == assistant_id else v for t, v in enumerate(out)]


def targets_hard_coded(ids, assistant_id, end_id):
    return [-100, -100, -100, -100, 7, 8, 92]


def dpo(pc, pr, rc, rr, beta):
    return -F.logsigmoid(beta * ((pc - rc) - (pr - rr))).mean()


def dpo_float32(pc, pr, rc, rr, beta):
    return float(-F.logsigmoid(beta * ((pc.float() - rc.float()) - (pr.float() - rr.float()))).mean())


def dpo_numpy(pc, pr, rc, rr, beta):
    m = beta * ((np.asarray(pc) - np.asarray(rc)) - (np.asarray(pr) - np.asarray(rr)))
    return float(np.mean(np.logaddexp(0.0, -m)))


def dpo_naive(pc, pr, rc, rr, beta):
    return -torch.log(torch.sigmoid(beta * ((pc - rc) - (pr - rr)))).mean()


def prompt_right(tok, task, line):
    return assistant.encode_chat(tok, assistant.conversation(task, line, with_answer=False))


def prompt_leaks(tok, task, line):
    return assistant.encode_chat(tok, assistant.conversation(task, line))


def prompt_without_marker(tok, task, line):
    return assistant.encode_chat(tok, assistant.conversation(task, line, with_answer=False), add_reply_start=False)


RIGHT = [(checks.sft_targets, targets_loop), (checks.sft_targets, assistant.sft_targets),
         (checks.sft_targets, targets_tensor),
         (checks.dpo_loss, dpo), (checks.dpo_loss, dpo_float32), (checks.dpo_loss, dpo_numpy),
         (checks.dpo_loss, lambda *a: preferences.dpo_loss(*a)[0]),
         (checks.beta_to_zero, lambda: "b"), (checks.beta_to_zero, lambda: " B "),
         (checks.eval_prompt, prompt_right), (checks.eval_prompt, lambda tok, t, l: torch.tensor(prompt_right(tok, t, l)))]

BROKEN = [
    (checks.sft_targets, targets_everything, "every token"),
    (checks.sft_targets, targets_without_end, "never learns to stop"),
    (checks.sft_targets, targets_with_marker, "[ASSISTANT] marker"),
    (checks.sft_targets, lambda ids, a, e: [-100] + targets_loop(ids, a, e)[:-1], "targets"),
    (checks.sft_targets, targets_hard_coded, "targets"),
    (checks.sft_targets, lambda ids, a, e: str(targets_loop(ids, a, e)), "not a list of integer ids"),
    (checks.sft_targets, forever, "did not finish"),
    (checks.sft_targets, stub, "not implemented yet"),
    (checks.dpo_loss, lambda pc, pr, rc, rr, b: -F.logsigmoid(b * (pc - pr)).mean(), "left out the reference"),
    (checks.dpo_loss, lambda pc, pr, rc, rr, b: -F.logsigmoid(b * ((pr - rr) - (pc - rc))).mean(), "swapped"),
    (checks.dpo_loss, lambda pc, pr, rc, rr, b: -F.logsigmoid((pc - rc) - (pr - rr)).mean(), "beta"),
    (checks.dpo_loss, lambda pc, pr, rc, rr, b: -F.logsigmoid(b * ((pc - rc) - (pr - rr))).sum(), "mean"),
    (checks.dpo_loss, lambda pc, pr, rc, rr, b: -torch.sigmoid(b * ((pc - rc) - (pr - rr))).mean(), "log sigmoid"),
    (checks.dpo_loss, dpo_naive, "NaN or infinity"),
    (checks.dpo_loss, lambda *a: 0.6201, "returned 0.6201"),
    (checks.dpo_loss, stub, "not implemented yet"),
    (checks.beta_to_zero, lambda: "a", "the answer is 'b'"),
    (checks.beta_to_zero, lambda: "c", "uniform"),
    (checks.beta_to_zero, lambda: "d", "must be one of"),
    (checks.beta_to_zero, lambda: 2, "must be one of"),
    (checks.beta_to_zero, stub, "not implemented yet"),
    (checks.eval_prompt, prompt_leaks, "too good to be"),
    (checks.eval_prompt, prompt_without_marker, "[ASSISTANT] marker"),
    (checks.eval_prompt, lambda tok, t, l: prompt_right(tok, t, l)[:-3] + prompt_right(tok, t, l)[-1:], "ids"),
    (checks.eval_prompt, stub, "not implemented yet"),
]

test_right_answers_pass, test_broken_answers_rejected = checker_tests(RIGHT, BROKEN)


def test_hints_go_from_a_nudge_to_the_answer(monkeypatch):
    from helpers.checks import engine

    monkeypatch.setattr(engine, "_HINTS_SHOWN", {})                 # a learner who has seen no hint yet
    hints = [checks.dpo_loss(lambda *a: 0.0).message.split("Hint: ")[1] for _ in range(4)]
    assert hints[0] != hints[1] != hints[2] and "logsigmoid(margin).mean()" in hints[-1]
    assert "mean()" not in hints[0]
    assert checks.beta_to_zero(lambda: "b").passed


def test_the_predicted_answer_is_computed_not_stored():
    probs = preferences.dpo_optimum(*assistant_checks.TOY, beta=1e-3)
    assert assistant_checks._beta_to_zero_truth() == "b" and probs[2] > 0.999
