"""Notebook 12: the three objectives' masks and batches (helpers/families.py), what each model
may see, the dialogue pairs, the stored models and the checkers."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import checks, data, families, finetune, gpt, lora, training
from helpers.paths import DATA_DIR
from checker_cases import checker_tests, forever, stub


@pytest.fixture(scope="module")
def small():
    """A random small GPT with a [MASK] token: what can each position see?"""
    torch.manual_seed(0)
    return gpt.GPT(gpt.GPTConfig(vocab_size=11, block_size=16, n_layer=2, n_head=2, n_embd=16)).eval()


# --- masks ---------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(st.permutations(list(range(6))))
def test_two_stream_mask_hides_each_character_from_its_own_query(order):
    mask = families.two_stream_mask(order)
    T = len(order)
    rank = {p: k for k, p in enumerate(order)}
    assert mask.shape == (2 * T, 2 * T) and mask.dtype == torch.bool
    assert torch.equal(mask[:T, :T], gpt.permutation_mask(order))              # content stream
    assert not mask[:T, T:].any()                                              # content never sees a query
    for i in range(T):
        seen = {j for j in range(T) if mask[T + i, j]}
        assert seen == {j for j in range(T) if rank[j] < rank[i]}              # strictly earlier content
        assert mask[T + i, T:].tolist() == [j == i for j in range(T)]          # and its own query only
    assert mask.any(dim=1).all()                                               # no empty row


@settings(max_examples=25, deadline=None)
@given(st.permutations(list(range(6))), st.integers(0, 5), st.integers(0, 9))
def test_a_query_never_depends_on_its_own_or_later_characters(small, order, slot, new_token):
    """The leak XLNet's two streams exist to prevent, tested through the whole network."""
    T = 6
    torch.manual_seed(1)
    x = torch.randint(0, 10, (1, T))
    inputs = torch.cat([x, torch.full_like(x, 10)], dim=1)
    mask = families.two_stream_mask(order)
    before = small(inputs, mask=mask)[0][0, T + slot]
    rank = {p: k for k, p in enumerate(order)}
    changed = inputs.clone()
    for p in range(T):
        if rank[p] >= rank[slot]:
            changed[0, p] = new_token                                          # its own and every later one
    after = small(changed, mask=mask)[0][0, T + slot]
    assert torch.allclose(before, after, atol=1e-6)


@pytest.mark.parametrize("objective", families.OBJECTIVES)
@pytest.mark.parametrize("right_context", [True, False])
def test_predict_blank_never_sees_the_blank(small, objective, right_context):
    torch.manual_seed(2)
    x = torch.randint(0, 10, (4, 8))
    changed = x.clone()
    changed[:, 5] = (x[:, 5] + 1) % 10
    a = families.predict_blank(small, objective, x, 5, mask_id=10, right_context=right_context)
    b = families.predict_blank(small, objective, changed, 5, mask_id=10, right_context=right_context)
    assert a.shape == (4, 11) and torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("objective", ["masked", "permutation"])
def test_both_sided_models_read_the_right_context_and_causal_never_does(small, objective):
    torch.manual_seed(3)
    x = torch.randint(0, 10, (4, 8))
    changed = x.clone()
    changed[:, 7] = (x[:, 7] + 1) % 10                                         # after the blank at 5
    for obj, should_change in ((objective, True), ("causal", False)):
        a = families.predict_blank(small, obj, x, 5, 10)
        b = families.predict_blank(small, obj, changed, 5, 10)
        assert (not torch.allclose(a, b, atol=1e-6)) == should_change
        a = families.predict_blank(small, obj, x, 5, 10, right_context=False)
        b = families.predict_blank(small, obj, changed, 5, 10, right_context=False)
        assert torch.allclose(a, b, atol=1e-6)


def test_predict_blank_says_what_is_wrong(small):
    x = torch.zeros(1, 8, dtype=torch.long)
    with pytest.raises(ValueError, match="objective must be one of"):
        families.predict_blank(small, "xlnet", x, 3, 10)
    with pytest.raises(ValueError, match="position must be between 1 and 7"):
        families.predict_blank(small, "causal", x, 0, 10)


# --- batches -------------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_mask_tokens_masks_some_and_targets_exactly_those(seed):
    x = torch.randint(0, 10, (8, 32), generator=torch.Generator().manual_seed(seed))
    inputs, targets = families.mask_tokens(x, 10, generator=torch.Generator().manual_seed(seed))
    hidden = inputs == 10
    assert hidden.any(dim=1).all()                                             # at least one per row
    assert torch.equal(targets[hidden], x[hidden]) and (targets[~hidden] == -100).all()
    assert torch.equal(inputs[~hidden], x[~hidden])


def test_mask_tokens_hides_about_the_fraction():
    x = torch.zeros(200, 32, dtype=torch.long)
    inputs, _ = families.mask_tokens(x, 10, generator=torch.Generator().manual_seed(0))
    assert abs((inputs == 10).float().mean().item() - families.MASK_FRACTION) < 0.01


@pytest.mark.parametrize("objective", families.OBJECTIVES)
def test_batches_have_the_shapes_and_targets_of_their_objective(objective):
    ids = torch.arange(500) % 10
    x, y, mask = families.batch(objective, ids, 10, 4, torch.Generator().manual_seed(0))
    T = families.WINDOW * (2 if objective == "permutation" else 1)
    assert x.shape == y.shape == (4, T)
    if objective == "causal":
        assert torch.equal(y[:, :-1], x[:, 1:]) and torch.equal(mask, gpt.causal_mask(T))
    elif objective == "masked":
        assert torch.equal(mask, gpt.bidirectional_mask(T)) and ((y != -100) == (x == 10)).all()
    else:
        W = families.WINDOW
        assert mask.shape == (4, T, T) and (x[:, W:] == 10).all() and (y[:, :W] == -100).all()
        assert torch.equal(y[:, W:], x[:, :W])
    with pytest.raises(ValueError, match="objective must be one of"):
        families.batch("bert", ids, 10)


@pytest.mark.parametrize("objective", families.OBJECTIVES)
def test_a_short_run_repeats_the_start_of_the_stored_one(objective):
    """Notebook 12's live check (there: step 50, within 0.01), on one thread (the tests' setting),
    for the first two stored points. On this project's machine the 4 stored digits come out
    exactly; the tolerance leaves room for a CPU that adds in another order."""
    stored = json.loads((DATA_DIR / "families.json").read_text())["objectives"][objective]
    _, history = families.train_objective(objective, stop_after=100)
    assert history["step"] == [50, 100] and history["loss"] == pytest.approx(stored["loss"][:2], abs=2e-4)


# --- what the stored models can do ---------------------------------------------

@pytest.fixture(scope="module")
def stored():
    return {o: training.load_model(DATA_DIR / f"family_{o}.pt")[0] for o in families.OBJECTIVES}


def test_stored_models_fill_blanks_as_notebook_12_says(stored):
    tok, mask_id = families.tokenizer_and_mask_id()
    windows = families.held_out_windows(600)
    both = {o: families.fill_in_accuracy(m, o, windows, mask_id) for o, m in stored.items()}
    left = {o: families.fill_in_accuracy(m, o, windows, mask_id, right_context=False) for o, m in stored.items()}
    assert both["causal"] == left["causal"]                                    # it never looks right
    assert both["permutation"] > both["causal"] + 0.05 > left["permutation"] + 0.1   # fills best, writes worse
    assert left["masked"] < both["masked"] - 0.05 and both["masked"] < both["causal"]  # 15% of the signal


@pytest.mark.parametrize("objective", families.OBJECTIVES)
def test_generate_writes_characters_and_never_mask(stored, objective):
    tok, mask_id = families.tokenizer_and_mask_id()
    prompt = tok.encode("ROMEO:\n")
    out = families.generate(stored[objective], objective, prompt, 12, mask_id, torch.Generator().manual_seed(0))
    assert out[: len(prompt)] == prompt and len(out) == len(prompt) + 12 and mask_id not in out
    with pytest.raises(ValueError, match="fit in 32"):
        families.generate(stored[objective], objective, prompt, 40, mask_id)


# --- dialogue ------------------------------------------------------------------

def test_speeches_and_dialogue_pairs_come_from_consecutive_speakers():
    play = data.split_plays()["train"][0]
    turns = families.speeches(play)
    assert turns[0] == ("THESEUS", play.text.split("\n\n")[0].split("\n", 1)[1].replace("\n", " "))
    pairs = families.dialogue_pairs("train")
    assert len(pairs) > 5000 and all(len(s) <= 60 and len(r) <= 60 for s, r in pairs)
    consecutive = {(a[1], b[1]) for a, b in zip(turns, turns[1:]) if a[0] != b[0]}
    assert {p for p in pairs[:50]} <= consecutive | set(pairs[50:]) and pairs[0] in consecutive
    held_out = families.dialogue_pairs("held-out")
    assert 500 < len(held_out) and not set(held_out) & set(pairs[:2000]) - {p for p in held_out if len(p[0]) < 15}


def test_a_short_dialogue_run_repeats_the_start_of_the_stored_one():
    """The first 100 of the adapter's 600 steps (about 20 seconds): the stored reply loss before
    and after them (4 digits, exactly on this project's machine)."""
    stored = json.loads((DATA_DIR / "families.json").read_text())["dialogue"]
    _, _, history = families.train_dialogue(steps=100)
    assert history["step"] == [0, 100] and history["reply_loss"] == pytest.approx(stored["reply_loss"][:2], abs=2e-4)


def test_dialogue_adapter_loads_and_answers_in_one_line():
    model, tok, info = lora.load_adapter(DATA_DIR / "dialogue_lora.pt")
    reply = finetune.translate(model, tok, "What is thy name?", make_prompt=families.dialogue_prompt)
    assert reply and "\n" not in reply and info["steps"] == families.DIALOGUE.steps


# --- checkers ------------------------------------------------------------------

def permutation_mask(order):
    rank = np.empty(len(order), dtype=int)
    rank[list(order)] = np.arange(len(order))
    return rank[None, :] <= rank[:, None]


def pairs(turns):
    return [(s, r) for (a, s), (b, r) in zip(turns, turns[1:]) if a != b]


def pairs_in_place(turns):
    turns.append(("X", "y"))
    return pairs(turns[:-1])


RIGHT = [(checks.permutation_mask, permutation_mask), (checks.permutation_mask, gpt.permutation_mask),
         (checks.permutation_mask, lambda order: permutation_mask(order).astype(int)),
         (checks.dialogue_pairs, pairs), (checks.dialogue_pairs, lambda turns: [list(p) for p in pairs(turns)])]

BROKEN = [
    (checks.permutation_mask, lambda order: permutation_mask(order).T, "swapped rows and columns"),
    (checks.permutation_mask, lambda order: permutation_mask(order) & ~np.eye(len(order), dtype=bool),
     "hid each position from itself"),
    (checks.permutation_mask, lambda order: np.asarray(order)[None, :] <= np.asarray(order)[:, None], "turn"),
    (checks.permutation_mask, lambda order: np.ones((len(order), len(order)), dtype=bool), "expected"),
    (checks.permutation_mask, lambda order: permutation_mask(order)[:-1], "shape"),
    (checks.permutation_mask, lambda order: permutation_mask(order) * 2.0, "True/False"),
    (checks.permutation_mask, forever, "did not finish"),
    (checks.permutation_mask, stub, "not implemented yet"),
    (checks.dialogue_pairs, lambda turns: [(s, r) for (_, s), (_, r) in zip(turns, turns[1:])], "answering themself"),
    (checks.dialogue_pairs, lambda turns: [(r, s) for s, r in pairs(turns)], "(reply, speech)"),
    (checks.dialogue_pairs, lambda turns: pairs(turns + turns[:1]), "wrap around"),
    (checks.dialogue_pairs, lambda turns: [(a[1], b[1]) for a, b in list(zip(turns, turns[1:]))[::2] if a[0] != b[0]],
     "used each speech once"),
    (checks.dialogue_pairs, lambda turns: str(pairs(turns)), "not a list"),
    (checks.dialogue_pairs, pairs_in_place, "changed its input"),
    (checks.dialogue_pairs, stub, "not implemented yet"),
]

test_right_answers_pass, test_broken_answers_rejected = checker_tests(RIGHT, BROKEN)


def test_the_mask_fraction_is_passed_to_each_batch():
    """Notebook 12's Exercise 3 trains with other fractions; batches must follow them."""
    ids = torch.zeros(5000, dtype=torch.long)
    x, _, _ = families.batch("masked", ids, 10, 64, torch.Generator().manual_seed(0), mask_fraction=0.5)
    assert abs((x == 10).float().mean().item() - 0.5) < 0.03


def test_rescoring_lets_a_causal_model_use_the_right_context(stored):
    tok, mask_id = families.tokenizer_and_mask_id()
    windows = families.held_out_windows(80)
    rescored = families.rescore_accuracy(stored["causal"], windows, tok.vocab_size)
    assert rescored > families.fill_in_accuracy(stored["causal"], "causal", windows, mask_id) + 0.15
