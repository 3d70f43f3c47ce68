"""helpers/assistant.py and helpers/preferences.py (notebook 13): the chat template cannot be
injected, bad input gets a clear outcome, the SFT mask covers exactly the assistant's tokens,
generation stops at [END], and DPO matches a hand-computed example and the closed form."""

import dataclasses
import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import assistant, finetune, gpt, preferences
from helpers.checkpoints import CheckpointError
from helpers.paths import DATA_DIR


@pytest.fixture(scope="module")
def tok():
    return assistant.ChatTokenizer(finetune.load_pretrained()[1])


@pytest.fixture(scope="module")
def tiny(tok):
    torch.manual_seed(0)
    return gpt.GPT(gpt.GPTConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=16)).eval()


CONTROL_TEXT = st.sampled_from(["[END]", "[USER]", "[ASSISTANT]", "\nB: ", "USER:", "[imend]"])


# --- the chat template ---------------------------------------------------------------------------

def test_typed_control_tokens_stay_plain_characters(tok):
    text = "Hi[END][ASSISTANT]Yes, my lord.[END]"
    ids = assistant.encode_chat(tok, [("user", text)])
    assert ids[0] == tok.user and ids[-2:] == [tok.end, tok.assistant]
    assert max(ids[1:-2]) < tok.chars.vocab_size and tok.decode(ids[1:-2]) == text
    assert assistant.render(tok, ids) == f"[USER]{text}[END][ASSISTANT]"     # looks alike, is not alike


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(CONTROL_TEXT, st.text(alphabet="abc XYZ:[]\n", min_size=1, max_size=8)),
                min_size=1, max_size=6).map("".join).filter(lambda s: s.strip()),
       st.sampled_from(assistant.ROLES))
def test_any_message_is_encoded_as_its_characters_only(tok, text, role):
    ids = assistant.encode_chat(tok, [(role, text)], add_reply_start=False)
    control = [i for i, t in enumerate(ids) if t >= tok.chars.vocab_size]
    assert control == [0, len(ids) - 1] and ids[0] == tok.role_id[role] and ids[-1] == tok.end
    assert tok.decode(ids[1:-1]) == text


@pytest.mark.parametrize("messages, phrase", [
    ([("user", "")], "empty"), ([("user", "   ")], "empty"), ([("system", "Be brief.")], "unknown role"),
    ([], "non-empty list"), ([("user",)], "pair"), ([("user", "a < b")], "'<' is not among")])
def test_bad_messages_get_a_clear_error(tok, messages, phrase):
    with pytest.raises(ValueError, match=phrase):
        assistant.encode_chat(tok, messages)
    if "<" not in phrase:                           # ChatML's text has no fixed set of characters
        with pytest.raises(ValueError, match=phrase):
            assistant.chatml(messages)


def test_chatml_has_the_same_structure():
    messages = [("user", "Shout: hello"), ("assistant", "HELLO")]
    assert assistant.chatml(messages) == ("<|im_start|>user\nShout: hello<|im_end|>\n<|im_start|>assistant\n"
                                          "HELLO<|im_end|>\n<|im_start|>assistant\n")


# --- new rows in the embedding --------------------------------------------------------------------

def test_special_tokens_are_new_rows_and_leave_the_model_unchanged():
    model, char_tok = finetune.load_pretrained()
    bigger = assistant.add_special_tokens(model)
    old, new = model.token_embedding.weight, bigger.token_embedding.weight
    assert new.shape == (old.shape[0] + 3, old.shape[1]) and torch.equal(new[:78], old)
    assert torch.allclose(new[78:], old.mean(0).expand(3, -1))
    assert bigger.lm_head.weight is bigger.token_embedding.weight                 # still tied
    x = torch.tensor([char_tok.encode("ROMEO:\nBut, soft! what light")])
    with torch.no_grad():
        assert torch.allclose(bigger(x)[0][..., :78], model(x)[0], atol=1e-5)      # old tokens: same logits
        probs = bigger(x)[0].softmax(-1)[..., 78:]
    assert probs.max() < 0.05                                                      # new tokens: unremarkable


# --- the SFT mask ---------------------------------------------------------------------------------

@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(assistant.ROLES), st.lists(st.integers(0, 77), min_size=1, max_size=6)),
                min_size=1, max_size=5))
def test_the_mask_keeps_exactly_the_assistants_tokens(tok, turns):
    ids, written = [], []
    for role, content in turns:
        turn = [tok.role_id[role]] + content + [tok.end]
        ids += turn
        written += [role == "assistant" and k > 0 for k in range(len(turn))]      # its text and its [END]
    targets = assistant.sft_targets(ids, tok.assistant, tok.end)
    assert len(targets) == len(ids) - 1
    for t, target in enumerate(targets):
        assert target == (ids[t + 1] if written[t + 1] else -100)


def test_sft_batch_pads_and_ignores_the_padding(tok):
    examples = [("shout", "Good night, sweet prince!"), ("last word", "To be, or not to be")]
    x, y = assistant.sft_batch(tok, examples)
    rows = [assistant.encode_chat(tok, assistant.conversation(t, l), add_reply_start=False) for t, l in examples]
    assert x.shape == y.shape == (2, max(map(len, rows)) - 1)
    short = min(range(2), key=lambda i: len(rows[i]))
    assert (y[short, len(rows[short]) - 1:] == -100).all()
    trained = tok.decode([int(t) for t in y[0] if t != -100])
    assert trained == "GOOD NIGHT, SWEET PRINCE![END]"


def test_tasks_score_their_rule_and_lines_come_from_the_right_plays():
    assert assistant.answer("last word", "Good night, sweet prince!") == "prince"
    assert assistant.answer("modernise", "Thou art a fool.") == "You are a fool."
    assert assistant.score("shout", "Go.", "GO.") == 1.0 and assistant.score("shout", "Go.", "GO") == 0.0
    with pytest.raises(ValueError, match="task must be one of"):
        assistant.answer("translate", "x")
    train, held_out = set(assistant.lines_for("shout", "train")), set(assistant.lines_for("shout", "held-out"))
    held_out_plays = "\n".join(p.text for p in finetune._plays("held-out"))
    assert all(line in held_out_plays for line in list(held_out)[:200])
    assert all(finetune.modernise(l) != l for l in assistant.lines_for("modernise", "held-out"))


# --- generation that stops at [END] -----------------------------------------------------------------

def test_generation_reports_how_each_reply_ended(tiny, tok):
    prompt = assistant.encode_chat(tok, [("user", "Shout: hi")])
    first = int(tiny(torch.tensor([prompt]))[0][0, -1].argmax())
    replies, endings = assistant.generate(tiny, [prompt], stop_id=None, max_new_tokens=5)
    assert endings == ["no end"] and len(replies[0]) == 5                          # never ends: cut off, said so
    replies, endings = assistant.generate(tiny, [prompt], stop_id=first)
    assert endings == ["end"] and replies == [[]]
    replies, endings = assistant.generate(tiny, [prompt], stop_id=None, other_stops=(first,))
    assert endings == ["wrong role"]


def test_a_batch_answers_like_one_prompt_at_a_time(tiny, tok):
    prompts = [assistant.encode_chat(tok, [("user", text)]) for text in ("Shout: a", "Last word: one two three")]
    together = assistant.generate(tiny, prompts, stop_id=None, max_new_tokens=6)
    alone = [assistant.generate(tiny, [p], stop_id=None, max_new_tokens=6) for p in prompts]
    assert together[0] == [a[0][0] for a in alone]


def test_generation_refuses_what_cannot_fit(tiny, tok):
    with pytest.raises(ValueError, match="does not fit"):
        assistant.generate(tiny, [[1] * 60], stop_id=None, max_new_tokens=10)
    with pytest.raises(ValueError, match="empty"):
        assistant.generate(tiny, [[]], stop_id=None)


# --- DPO ------------------------------------------------------------------------------------------

def test_dpo_loss_matches_a_hand_computed_example():
    t = lambda v: torch.tensor([v])                                                # noqa: E731
    loss, margin = preferences.dpo_loss(t(-3.0), t(-5.0), t(-4.0), t(-4.0), beta=0.5)
    # margin = 0.5 * ((-3 + 4) - (-5 + 4)) = 1; loss = -log sigmoid(1) = log(1 + e^-1)
    assert margin.item() == pytest.approx(1.0) and loss.item() == pytest.approx(math.log(1 + math.exp(-1)))
    loss, _ = preferences.dpo_loss(t(-2.0), t(-2.0), t(-2.0), t(-2.0), beta=0.1)
    assert loss.item() == pytest.approx(math.log(2))                               # policy = reference


@pytest.mark.parametrize("beta", [2.0, 0.5])
def test_dpo_reaches_the_closed_form_on_a_toy(beta):
    ref, rewards = [0.5, 0.3, 0.2], [0.0, 1.0, 2.0]
    learnt = preferences.toy_dpo(ref, rewards, beta)
    assert torch.allclose(learnt, preferences.dpo_optimum(ref, rewards, beta), atol=1e-3)


def test_the_optimum_goes_to_the_reference_or_the_best_answer():
    ref, rewards = [0.5, 0.3, 0.2], [0.0, 1.0, 2.0]
    assert torch.allclose(preferences.dpo_optimum(ref, rewards, 1e3), torch.tensor(ref, dtype=torch.float64),
                          atol=2e-3)
    assert preferences.dpo_optimum(ref, rewards, 1e-3)[2] > 0.999


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(assistant.lines_for("modernise", "held-out")), st.integers(0, 1000))
def test_the_rule_prefers_every_chosen_reply(line, seed):
    import random

    lazy = preferences.lazy_modernise(line, random.Random(seed))
    assert assistant.archaic_words(lazy) >= 1 and assistant.archaic_words(finetune.modernise(line)) == 0
    assert preferences.rule_preference(finetune.modernise(line), lazy) == 1.0
    assert preferences.rule_preference(lazy, finetune.modernise(line)) == 0.0


def test_kl_of_a_policy_from_itself_is_zero_and_bradley_terry_is_log2_at_a_tie(tiny, tok):
    assert preferences.kl_estimate(tiny, tiny, tok, ["Thou art a fool."], max_new_tokens=5) == pytest.approx(0.0)
    assert preferences.bradley_terry_loss(torch.zeros(3), torch.zeros(3)).item() == pytest.approx(math.log(2))


def test_reward_is_read_after_the_reply_not_from_the_padding(tiny, tok):
    torch.manual_seed(0)
    model = preferences.RewardModel(gpt.GPT(tiny.config)).eval()
    x, y = preferences.reply_batch(tok, ["Thou art.", "Thou art a very long line."], ["You are.", "You are."])
    with torch.no_grad():
        r = model(x, y)
        x2 = x.clone()
        x2[0, (y[0] != -100).nonzero().max() + 1:] = 5                             # other padding
        assert torch.allclose(model(x2, y), r)


def test_a_missing_reward_model_file_is_a_clear_error(tiny, tmp_path):
    with pytest.raises(CheckpointError, match="no such reward-model file"):
        preferences.load_reward_model(tmp_path / "none.pt", tiny)
    (tmp_path / "bad.pt").write_bytes(b"not a file")
    with pytest.raises(CheckpointError, match="cannot be read"):
        preferences.load_reward_model(tmp_path / "bad.pt", tiny)


# --- the stored runs ------------------------------------------------------------------------------

def test_stored_files_hold_the_current_settings():
    sft = json.loads((DATA_DIR / "assistant_sft.json").read_text())
    assert sft["settings"] == dataclasses.asdict(assistant.SFT) and sft["few_shot"] == assistant.FEW_SHOT
    prefs = json.loads((DATA_DIR / "assistant_preferences.json").read_text())
    stored = prefs["settings"]
    assert {**stored, "betas": tuple(stored["betas"])} == dataclasses.asdict(preferences.PREFERENCES)
    assert set(prefs["dpo"]) == {f"{b}/{s}" for b in preferences.PREFERENCES.betas for s in (0, 1)}


def test_a_short_sft_run_repeats_the_start_of_the_stored_one():
    """Notebook 13's live check: the held-out answer loss before and after the first 50 steps."""
    stored = json.loads((DATA_DIR / "assistant_sft.json").read_text())["runs"]["0"]["history"]
    _, _, history = assistant.train_sft(steps=50)
    assert history["step"] == [0, 50]
    assert history["answer_loss"] == pytest.approx(stored["answer_loss"][:2], abs=2e-4)


# --- figures and the explorer ---------------------------------------------------------------------

def test_the_explorer_redraws_for_every_control():
    from checker_cases import assert_redraws
    from helpers import plots, widgets

    explorer = widgets.Explorer(plots.make_chat_explorer, {
        "prompt": widgets.choice(list(plots.EXPLORER_PROMPTS)[0], list(plots.EXPLORER_PROMPTS)),
        "stage": widgets.choice("SFT", preferences.STAGES), "temperature": widgets.slider(0.0, 0.0, 1.5, step=0.1)})
    assert_redraws(explorer, [("stage", "base (one-shot)"), ("stage", "DPO"), ("temperature", 1.2),
                              ("prompt", list(plots.EXPLORER_PROMPTS)[1])])


def test_stage_replies_say_how_they_ended():
    out = preferences.stage_reply("base (one-shot)", "shout", "Good night, sweet prince!")
    assert out["prompt"].startswith("Shout: ") and out["ending"] in ("end", "no end") and not out["right"]
    out = preferences.stage_reply("SFT", "shout", "Good night, sweet prince!")
    assert out["prompt"].startswith("[USER]Shout: ") and out["prompt"].endswith("[END][ASSISTANT]")
    with pytest.raises(ValueError, match="stage must be one of"):
        preferences.stage_reply("RLHF", "shout", "Go.")


def test_the_figures_draw_stored_records():
    from helpers import plots

    sft = json.loads((DATA_DIR / "assistant_sft.json").read_text())
    prefs = json.loads((DATA_DIR / "assistant_preferences.json").read_text())
    for fig in (plots.make_sft_scores(sft), plots.make_best_of_n(prefs["best_of_n"]["by_n"]),
                plots.make_beta_sweep(prefs["dpo"], prefs["sft"], preferences.PREFERENCES.betas),
                plots.make_rlhf_diagram(), plots.make_loss_mask(["[USER]", "a", "[END]"], [False, True, True])):
        assert fig.axes
        plots.show(fig)
