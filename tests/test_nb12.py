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


def permutation_mask_given(order):
    """Exercise 1's broken code, as the notebook prints it."""
    T = len(order)
    mask = np.zeros((T, T), dtype=bool)
    for i in range(T):
        for j in range(T):
            mask[i, j] = order[j] <= order[i]
    return mask


def reply_log_prob(model, prompt_ids, replies, mistake=None):
    """Exercise 3's answer (float32, torch), or one of its usual slips."""
    scores = []
    for reply in replies:
        ids = torch.tensor([list(prompt_ids) + list(reply)])
        with torch.no_grad():
            logits, _ = model(ids)
        log_probs = torch.log_softmax(logits[0], dim=-1) if mistake != "logits" else logits[0]
        P = len(prompt_ids)
        first = {"unshifted": P, "prompt": 0}.get(mistake, P - 1)
        rows = torch.arange(first, ids.shape[1] - (0 if mistake == "unshifted" else 1))
        picked = log_probs[rows, ids[0, first + (0 if mistake == "unshifted" else 1):]]
        scores.append(picked.sum() if mistake == "sum" else picked.mean())
    return torch.stack(scores)


def reply_log_prob_changes_model(model, prompt_ids, replies):
    with torch.no_grad():
        next(model.parameters()).mul_(2.0)
    return reply_log_prob(model, prompt_ids, replies)


RIGHT = [(checks.permutation_mask, permutation_mask), (checks.permutation_mask, gpt.permutation_mask),
         (checks.permutation_mask, lambda order: permutation_mask(order).astype(int)),
         (checks.reply_log_prob, reply_log_prob),
         (checks.reply_log_prob, lambda *a: reply_log_prob(*a).tolist()),
         (checks.reply_log_prob, lambda *a: reply_log_prob(*a).double().numpy()),
         (checks.predict_two_stream_count, lambda: 156), (checks.predict_two_stream_count, lambda: 156.0)]

BROKEN = [
    (checks.permutation_mask, permutation_mask_given, "still give what the broken code gives"),
    (checks.permutation_mask, lambda order: permutation_mask(order).T, "swapped rows and columns"),
    (checks.permutation_mask, lambda order: permutation_mask(order) & ~np.eye(len(order), dtype=bool),
     "hid each position from itself"),
    (checks.permutation_mask, lambda order: np.ones((len(order), len(order)), dtype=bool), "expected"),
    (checks.permutation_mask, lambda order: permutation_mask(order)[:-1], "shape"),
    (checks.permutation_mask, lambda order: permutation_mask(order) * 2.0, "True/False"),
    (checks.permutation_mask, forever, "did not finish"),
    (checks.permutation_mask, stub, "not implemented yet"),
    (checks.reply_log_prob, lambda *a: reply_log_prob(*a, mistake="sum"), "summed the log-probabilities"),
    (checks.reply_log_prob, lambda *a: reply_log_prob(*a, mistake="prompt"), "counted the prompt"),
    (checks.reply_log_prob, lambda *a: reply_log_prob(*a, mistake="unshifted"), "at its own position"),
    (checks.reply_log_prob, lambda *a: reply_log_prob(*a, mistake="logits"), "raw logits"),
    (checks.reply_log_prob, lambda model, p, r: [-2.4472, -2.3876, -2.4052], "expected"),   # the example, hard-coded
    (checks.reply_log_prob, lambda model, p, r: reply_log_prob(model, p, r)[:1], "shape"),
    (checks.reply_log_prob, reply_log_prob_changes_model, "changed its input"),
    (checks.reply_log_prob, stub, "not implemented yet"),
    (checks.predict_two_stream_count, lambda: 144, "156"),
    (checks.predict_two_stream_count, lambda: 78, "156"),
    (checks.predict_two_stream_count, stub, "not implemented yet"),
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


def test_exercise_1_broken_code_is_right_on_the_orders_the_notebook_says():
    """The broken code passes the causal order and [1, 0, 2] (its own inverse), not [2, 0, 1]."""
    for order in ([0, 1, 2, 3], [1, 0, 2]):
        assert np.array_equal(permutation_mask_given(order), permutation_mask(order))
    assert not np.array_equal(permutation_mask_given([2, 0, 1]), permutation_mask([2, 0, 1]))
    assert permutation_mask([2, 0, 1]).tolist() == [[True, False, True], [True, True, True], [False, False, True]]


@settings(max_examples=30, deadline=None)
@given(st.permutations(list(range(7))))
def test_two_stream_mask_has_t_times_t_plus_one_entries_and_sorts_to_causal(order):
    """Exercise 2's answer (156 for T = 12) holds for every order; sorted, the content is causal."""
    T = len(order)
    assert int(families.two_stream_mask(order).sum()) == T * (T + 1)
    mask = gpt.permutation_mask(order).numpy()
    assert np.array_equal(families.sorted_by_order(mask, order), gpt.causal_mask(T).numpy())


# --- prefix LM and encoder-decoder ---------------------------------------------

@settings(max_examples=30, deadline=None)
@given(st.integers(1, 12), st.data())
def test_prefix_lm_mask_opens_the_prefix_and_is_causal_after_it(T, draw):
    prefix = draw.draw(st.integers(0, T))
    mask = families.prefix_lm_mask(T, prefix)
    for i in range(T):
        for j in range(T):
            assert bool(mask[i, j]) == (j < prefix or j <= i)
    assert torch.equal(families.prefix_lm_mask(T, 1), gpt.causal_mask(T)) and families.prefix_lm_mask(T, T).all()


def test_prefix_lm_mask_says_what_is_wrong():
    with pytest.raises(ValueError, match="prefix must be between 0 and T = 4"):
        families.prefix_lm_mask(4, 5)


@pytest.mark.parametrize("source, target", [(1, 1), (3, 5), (6, 6)])
def test_encoder_decoder_blocks_join_into_the_prefix_lm_mask(source, target):
    blocks = families.encoder_decoder_blocks(source, target)
    assert blocks["encoder"].shape == (source, source) and blocks["encoder"].all()
    assert blocks["cross"].shape == (target, source) and blocks["cross"].all()
    assert torch.equal(blocks["decoder"], gpt.causal_mask(target))
    assert not blocks["joint"][:source, source:].any()                         # the encoder never reads the output
    assert torch.equal(blocks["joint"], families.prefix_lm_mask(source + target, source))


def test_prefix_batches_score_only_after_the_prefix_and_never_see_a_target():
    ids = torch.arange(500) % 10
    x, y, mask = families.batch(families.PREFIX, ids, 10, 8, torch.Generator().manual_seed(0))
    W = families.WINDOW
    assert x.shape == y.shape == (8, W) and mask.shape == (8, W, W)
    for row in range(8):
        prefix = int(mask[row, 0].sum())                                        # the first row sees the prefix
        assert 1 <= prefix < W and torch.equal(mask[row], families.prefix_lm_mask(W, prefix))
        assert (y[row, : prefix - 1] == -100).all() and (y[row, prefix - 1:] != -100).all()
        for i in range(prefix - 1, W):                                          # a scored position never sees
            assert not mask[row, i, i + 1:].any()                               # the character it predicts


def test_the_prefix_lm_is_worse_at_continuing_and_gains_nothing_from_its_open_prefix():
    """Notebook 12's prefix-LM comparison, on 300 windows."""
    causal = training.load_model(DATA_DIR / "family_causal.pt")[0]
    prefix = training.load_model(DATA_DIR / "family_prefix.pt")[0]
    c = families.continuation_loss(causal, "causal", 16, n=300)
    both = families.continuation_loss(prefix, families.PREFIX, 16, n=300)
    one_way = families.continuation_loss(prefix, "causal", 16, n=300)
    assert both - c > 0.04 and abs(both - one_way) < 0.01
    with pytest.raises(ValueError, match="objective must be"):
        families.continuation_loss(causal, "masked", 16)


def test_a_short_prefix_run_repeats_the_start_of_the_stored_one():
    stored = json.loads((DATA_DIR / "families_extra.json").read_text())["prefix"]
    _, history = families.train_objective(families.PREFIX, stop_after=50)
    assert history["step"] == [50] and history["loss"] == pytest.approx(stored["loss"][:1], abs=2e-4)


def test_the_extra_file_holds_the_prefix_run_and_the_mask_fractions():
    extra = json.loads((DATA_DIR / "families_extra.json").read_text())
    assert extra["prefix"]["step"][-1] == families.TRAIN.steps and extra["provenance"]["threads"] == 1
    assert sorted(extra["mask_fraction"]) == ["0.15", "0.3", "0.5"]
    assert all(r["step"][-1] == 600 and 0 < r["fill_in"] < 1 for r in extra["mask_fraction"].values())


# --- does the reply depend on the speech? sample and rank ------------------------

def test_shuffled_speeches_keep_every_reply_and_move_every_speech():
    pairs = [(f"s{i}", f"r{i}") for i in range(5)]
    shuffled = families.shuffled_speeches(pairs)
    assert [r for _, r in shuffled] == [r for _, r in pairs]
    assert sorted(s for s, _ in shuffled) == sorted(s for s, _ in pairs)
    assert all(s != own for (s, _), (own, _) in zip(shuffled, pairs))


def test_reply_scores_agree_with_the_answer_loss():
    model, tok, _ = lora.load_adapter(DATA_DIR / "dialogue_lora.pt")
    _, pairs = families.dialogue_data()
    pairs = pairs[:30]
    scores = families.reply_scores(model, tok, pairs, batch_size=7)
    lengths = torch.tensor([len(r) + 1 for _, r in pairs])
    per_char = float(-(scores * lengths).sum() / lengths.sum())
    assert scores.shape == (30,) and per_char == pytest.approx(
        finetune.answer_loss(model, tok, pairs, families.dialogue_prompt), abs=1e-5)


def test_sample_and_rank_returns_the_samples_best_first_as_stored():
    model, tok, _ = lora.load_adapter(DATA_DIR / "dialogue_lora.pt")
    stored = json.loads((DATA_DIR / "families_rank.json").read_text())["speeches"][1]
    ranked = families.sample_and_rank(model, tok, stored["speech"], 8, seed=1)
    assert [r for _, r in ranked] == [r for _, r in stored["ranked"]]
    assert all(a[0] >= b[0] for a, b in zip(ranked, ranked[1:])) and all("\n" not in r for _, r in ranked)
    rescored = families.reply_scores(model, tok, [(stored["speech"], r) for _, r in ranked])
    assert rescored.tolist() == pytest.approx([s for s, _ in ranked], abs=1e-5)


# --- figures -------------------------------------------------------------------

def test_the_gallery_and_the_explorer_draw_every_family():
    from helpers import plots
    from helpers.plots.common import to_png

    fig = plots.make_mask_gallery("To be or not", seed=0)
    assert len(fig.axes) == 6 and fig.axes[5].get_title() == "permutation, sorted by its order"
    assert [t.get_text() for t in fig.axes[5].get_xticklabels()][:2] == ["␣", "T"]   # order [8, 0, ...]
    png = {kind: to_png(plots.make_mask_explorer(kind, position=8)) for kind in families.MASK_KINDS}
    assert len(set(png.values())) == len(families.MASK_KINDS)
    mask, order = families.family_mask(families.MASK_KINDS[5], 12)
    assert order is None and np.array_equal(mask, families.family_mask(families.MASK_KINDS[4], 12)[0])
