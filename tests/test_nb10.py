"""Notebook 10: the data experiments (helpers/experiments.py), the sweep command and its file,
the sweep explorer and the checkers."""

import json
import random
from dataclasses import asdict, replace
import string
from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import checkpoints, checks, data, experiments, gpt, plots, tokenizers, widgets
from helpers.paths import DATA_DIR
from checker_cases import assert_redraws, checker_tests, forever, stub
import scripts.make_sweeps as make_sweeps


# --- making training texts ---------------------------------------------------

@settings(max_examples=50, deadline=None)
@given(st.text(min_size=0, max_size=300), st.floats(0.0, 1.0), st.integers(0, 10))
def test_add_noise_keeps_length_and_uses_the_alphabet(text, fraction, seed):
    noisy = experiments.add_noise(text, fraction, "xyz", seed=seed)
    assert len(noisy) == len(text)
    assert all(a == b or b in "xyz" for a, b in zip(text, noisy))
    assert experiments.add_noise(text, fraction, "xyz", seed=seed) == noisy          # reproducible
    assert experiments.add_noise(text, 0.0, "xyz", seed=seed) == text


@pytest.mark.parametrize("fraction", [0.03, 0.1, 0.3])
def test_add_noise_replaces_about_the_fraction_asked(fraction):
    text = "a" * 100_000
    changed = sum(c != "a" for c in experiments.add_noise(text, fraction, string.ascii_lowercase, seed=1))
    expected = fraction * 100_000 * 25 / 26          # a replacement can draw the same letter
    assert abs(changed - expected) < 5 * np.sqrt(expected)


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_add_noise_refuses_impossible_fractions(fraction):
    with pytest.raises(ValueError, match="between 0 and 1"):
        experiments.add_noise("text", fraction, "ab")


def test_duplicates_and_fractions_of_plays():
    plays = data.split_plays()["train"]
    doubled = experiments.with_duplicates(plays, 2, 3)
    assert len(doubled) == len(data.corpus_text("train")) + 3 * (len(plays[0].text) + len(plays[1].text) + 2)
    quarter = experiments.fraction_of_plays(plays, 0.25)
    assert abs(len(quarter) - len(data.corpus_text("train")) / 4) < 100
    assert plays[0].text[:100] in quarter and plays[-1].text[:100] in quarter        # every play contributes
    with pytest.raises(ValueError, match="fraction"):
        experiments.fraction_of_plays(plays, 0.0)


@settings(max_examples=50, deadline=None)
@given(st.floats(0.1, 100.0), st.floats(-2.0, 2.0), st.lists(st.floats(1e-3, 1e6), min_size=2, max_size=8, unique=True))
def test_fit_power_law_recovers_an_exact_power_law(a, b, xs):
    x = np.array(xs)
    if np.ptp(np.log(x)) < 1e-2:                    # points too close together to fix a slope
        return
    fitted_a, fitted_b = experiments.fit_power_law(x, a * x ** b)
    assert fitted_b == pytest.approx(b, abs=1e-6) and fitted_a == pytest.approx(a, rel=1e-5)


@pytest.mark.parametrize("x, y", [([1.0], [2.0]), ([1.0, 2.0], [1.0]), ([0.0, 1.0], [1.0, 2.0]), ([1.0, 2.0], [-1.0, 2.0])])
def test_fit_power_law_refuses_what_it_cannot_fit(x, y):
    with pytest.raises(ValueError, match="positive"):
        experiments.fit_power_law(x, y)


# --- one run ---------------------------------------------------------------------

def test_run_is_reproducible_and_reports_everything():
    text = data.corpus_text("train")[:20_000]
    texts = {"validation": data.corpus_text("validation")[:5_000], "other": text[-3000:]}
    first = experiments.run(text, texts, model=dict(n_layer=1, n_embd=16), steps=30)
    again = experiments.run(text, texts, model=dict(n_layer=1, n_embd=16), steps=30)
    assert first["final"] == again["final"] and first["history"] == again["history"]
    assert set(first["final"]) == {"validation", "other", "train"}
    assert first["parameters"] == gpt.count_parameters(gpt.GPTConfig(vocab_size=78, **{
        **experiments.MODEL, "n_layer": 1, "n_embd": 16}))
    assert first["tokens_seen"] == 30 * experiments.TRAIN.batch_size * experiments.MODEL["block_size"]
    assert first["history"]["step"][-1] == 30 and first["train_characters"] == 20_000


@pytest.mark.parametrize("texts", [{"macbeth": "abc" * 100}, {"validation": "abc" * 100, "train": "abc" * 100}])
def test_run_says_which_measurement_texts_it_needs(texts):
    with pytest.raises(ValueError, match="'validation'"):
        experiments.run("abc" * 100, texts, steps=2)


def test_run_names_a_character_it_cannot_encode():
    with pytest.raises(ValueError, match="€"):
        experiments.run("a € sign" * 100, {"validation": "abc" * 100}, steps=2)


# --- the command and its file -------------------------------------------------

def test_the_command_runs_one_experiment_into_a_file(tmp_path):
    with pytest.raises(SystemExit):          # a quick try must not replace the shipped file
        make_sweeps.main(["--only", "fraction-1/256", "--steps", "5"])
    assert make_sweeps.main(["--only", "fraction-1/256", "--out", str(tmp_path), "--threads", "1",
                             "--steps", "5", "--eval-batches", "1"]) == 0
    stored = json.loads((tmp_path / "sweeps.json").read_text())
    run = stored["runs"]["fraction-1/256"]
    assert list(stored["runs"]) == ["fraction-1/256"] and run["history"]["step"] == [5]
    assert set(run["final"]) == set(make_sweeps.eval_texts()) | {"train"}
    assert not list(tmp_path.glob("*.tmp"))                                  # written atomically


def test_an_interrupted_sweep_keeps_the_complete_file_and_resumes(tmp_path, monkeypatch):
    (tmp_path / "sweeps.json").write_text('{"complete": true}')
    calls = []

    steps = experiments.TRAIN.steps

    def finished(stopped_at=steps):
        return {"history": {"step": [stopped_at]}, "final": {"validation": 2.0, "train": 1.9},
                "best_val": 2.0, "seconds": 0.0}

    def interrupted_in_the_second_run(text, texts, model=None, seed=None, **settings):
        """Ctrl-C stops experiments.run's training cleanly, with a shorter history."""
        calls.append(text[:10])
        return finished(steps // 2 if len(calls) == 2 else steps)

    monkeypatch.setattr(experiments, "run", interrupted_in_the_second_run)
    with pytest.raises(SystemExit, match="stopped before step"):
        make_sweeps.main(["--out", str(tmp_path), "--threads", "1"])
    assert json.loads((tmp_path / "sweeps.json").read_text()) == {"complete": True}     # untouched
    partial = json.loads((tmp_path / "sweeps.partial.json").read_text())
    assert list(partial["runs"]) == ["baseline"]
    monkeypatch.setattr(make_sweeps, "per_play_losses", lambda: {})
    monkeypatch.setattr(experiments, "run", lambda *a, **k: finished())
    assert make_sweeps.main(["--out", str(tmp_path), "--threads", "1", "--resume"]) == 0
    done = json.loads((tmp_path / "sweeps.json").read_text())
    assert set(done["runs"]) == set(make_sweeps.experiment_plan()) and "plays" in done
    assert not (tmp_path / "sweeps.partial.json").exists()


def test_the_command_refuses_an_unknown_experiment(tmp_path, capsys):
    with pytest.raises(SystemExit):
        make_sweeps.main(["--only", "noise-0.5", "--out", str(tmp_path), "--threads", "1"])
    assert "unknown experiments" in capsys.readouterr().err


@pytest.fixture(scope="module")
def sweeps():
    return json.loads((DATA_DIR / "sweeps.json").read_text(encoding="utf-8"))


def test_the_stored_file_has_every_run_of_the_plan_with_the_shared_settings(sweeps):
    assert set(sweeps["runs"]) == set(make_sweeps.experiment_plan())
    assert sweeps["model"] == experiments.MODEL and sweeps["train"] == asdict(experiments.TRAIN)
    for name, run in sweeps["runs"].items():
        config = {k: run["model_config"][k] for k in experiments.MODEL}
        assert config == experiments.MODEL or name.startswith("size-"), name
        assert run["history"]["step"][-1] == experiments.TRAIN.steps
    for family in plots.SWEEP_FAMILIES.values():
        assert set(family) <= set(sweeps["runs"])
    assert len(sweeps["plays"]) == 38 and sum(not p["seen"] for p in sweeps["plays"].values()) == 6


# --- the explorer -------------------------------------------------------------

@pytest.mark.parametrize("experiment", list(plots.SWEEP_FAMILIES))
@pytest.mark.parametrize("curves", ["held-out", "training", "both"])
def test_sweep_explorer_draws_every_family(sweeps, experiment, curves):
    fig = plots.make_sweep_explorer(sweeps["runs"], experiment, curves)
    lines = fig.axes[0].lines
    n = len(plots.SWEEP_FAMILIES[experiment])
    assert len(lines) == (2 * n if curves == "both" else n)
    assert experiment in fig.axes[0].get_title()
    plt.close(fig)


def test_sweep_explorer_says_what_it_cannot_draw(sweeps):
    with pytest.raises(ValueError, match="unknown experiment"):
        plots.make_sweep_explorer(sweeps["runs"], "vibes")
    with pytest.raises(ValueError, match="curves"):
        plots.make_sweep_explorer(sweeps["runs"], "noisy text", "all")


def test_sweep_explorer_redraws(sweeps):
    explorer = widgets.Explorer(partial(plots.make_sweep_explorer, sweeps["runs"]),
                                {"experiment": widgets.choice("amount of data", plots.SWEEP_FAMILIES),
                                 "curves": widgets.choice("both", ["held-out", "training", "both"])})
    assert_redraws(explorer, [("experiment", "model size"), ("curves", "training"), ("experiment", "noisy text")])


# --- duplicates that bite; tokens against characters -----------------------------

def test_pick_passages_draws_separate_line_starts_reproducibly():
    text = "".join(f"LINE {i:04d} " + "x" * (i % 7) + "\n" for i in range(400))
    passages = experiments.pick_passages(text, 20, 30, seed=4)
    assert passages == experiments.pick_passages(text, 20, 30, seed=4)
    starts = [text.index(p) for p in passages]
    assert all(len(p) == 30 and text[s - 1] == "\n" for p, s in zip(passages, starts))
    assert all(abs(a - b) >= 30 for i, a in enumerate(starts) for b in starts[i + 1:])
    with pytest.raises(ValueError, match="fewer than"):
        experiments.pick_passages(text, 10_000, 30)


def test_with_repeats_adds_exactly_the_copies_asked():
    text, passages = "base text", {"alpha passage": 3, "beta passage": 1, "never": 0}
    repeated = experiments.with_repeats(text, passages, seed=1)
    lines = repeated.split("\n")
    assert lines[0] == text and sorted(lines[1:]) == ["alpha passage"] * 3 + ["beta passage"]


class Reciter(torch.nn.Module):
    """A 'model' that knows one text by heart: its logits put all weight on the next character of
    ``memory`` after the last ``context`` characters it is shown (if found), else on character 0."""

    def __init__(self, tok, memory, block_size=64):
        super().__init__()
        self.tok, self.memory = tok, memory
        self.config = gpt.GPTConfig(vocab_size=tok.vocab_size, block_size=block_size, n_layer=1, n_head=1,
                                    n_embd=4)
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, idx, targets=None):
        logits = torch.full((*idx.shape, self.tok.vocab_size), -10.0)
        for b, row in enumerate(idx.tolist()):
            for t in range(len(row)):
                seen = self.tok.decode(row[max(0, t - 7): t + 1])
                at = self.memory.find(seen)
                nxt = self.memory[at + len(seen)] if at >= 0 and at + len(seen) < len(self.memory) else None
                logits[b, t, self.tok.encode(nxt)[0] if nxt else 0] = 10.0
        return logits, None

    def generate(self, idx, max_new_tokens, top_k=None, generator=None):
        for _ in range(max_new_tokens):
            logits, _ = self(idx[:, -self.config.block_size:])
            idx = torch.cat([idx, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
        return idx


def test_recited_characters_counts_up_to_the_first_mistake():
    tok = tokenizers.CharTokenizer("abcdefghijklmnopqrstuvwxyz .\n")
    known = "the quick brown fox jumps over the lazy dog. " * 2
    model = Reciter(tok, known)
    got = experiments.recited_characters(model, tok, [known[:40], ("zzzzzzzzzz" + known)[:40]],
                                         prompt=10)
    assert got[0] == 30                      # a passage it knows: recited to the end
    assert got[1] < 30                       # one it does not


def test_bits_per_character_is_per_character_whatever_the_tokenizer():
    """A uniform model costs log2(V) bits per token: per character that is log2(V) x tokens / characters."""
    bpe = tokenizers.BPETokenizer.load(DATA_DIR / "tokenizer_bpe512.json")
    model = gpt.GPT(gpt.GPTConfig(vocab_size=bpe.vocab_size, n_layer=1, n_head=1, n_embd=8, block_size=64))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()                                          # every logit 0: uniform
    text = data.corpus_text("validation")[:3000]
    ids = bpe.encode(text)
    expected = (len(ids) - 1) * np.log2(bpe.vocab_size) / (len(text) - len(bpe.decode(ids[:1])))
    assert abs(experiments.bits_per_character(model, bpe, text) - expected) < 1e-4
    assert expected < np.log2(bpe.vocab_size) / 1.5            # a token holds more than 1.5 characters


def test_run_trains_on_another_tokenizer_and_keeps_the_model(tmp_path):
    bpe = tokenizers.BPETokenizer.load(DATA_DIR / "tokenizer_bpe512.json")
    text = data.corpus_text("train")[:20_000]
    result = experiments.run(text, {"validation": data.corpus_text("validation")[:5_000]}, tok=bpe, steps=3,
                             model=dict(n_layer=1, n_embd=16), checkpoint=tmp_path / "m.pt", eval_batches=1)
    model, state = checkpoints.load_model(tmp_path / "m.pt")
    assert model.config.vocab_size == 512 and result["train_tokens"] == len(bpe.encode(text)) < len(text)
    assert state["step"] == 3


@pytest.mark.parametrize("part", ["duplicates", "tokens", "compute", "control"])
def test_the_extra_parts_write_their_own_files_and_leave_sweeps_json_alone(part, tmp_path, monkeypatch):
    monkeypatch.setattr(experiments, "TRAIN", replace(experiments.TRAIN, steps=4, eval_every=2, warmup_steps=1))
    monkeypatch.setattr(experiments, "EVAL_BATCHES", 1)
    monkeypatch.setattr(make_sweeps, "SIZES", ((1, 32), (1, 48)))
    monkeypatch.setattr(make_sweeps, "DUP_SEEDS", (1337,))
    monkeypatch.setattr(make_sweeps, "PROBE_CHARACTERS", 2000)
    tok = experiments.tokenizer()                         # the alphabet of the whole training text
    monkeypatch.setattr(experiments, "tokenizer", lambda: tok)
    monkeypatch.setattr(data, "corpus_text", lambda split="train", real=data.corpus_text: real(split)[:60_000])
    assert make_sweeps.main(["--part", part, "--out", str(tmp_path)]) == 0
    written = sorted(p.name for p in tmp_path.iterdir())
    assert "sweeps.json" not in written and f"sweeps_{part}.json" in written
    record = json.loads((tmp_path / f"sweeps_{part}.json").read_text())
    assert all(run["history"]["step"][-1] == run["tokens_seen"] // 1024 for run in record["runs"].values())
    assert all("command" in run and "seed" in run for run in record["runs"].values())


@pytest.fixture(scope="module")
def extra():
    return {part: json.loads((DATA_DIR / f"sweeps_{part}.json").read_text(encoding="utf-8"))
            for part in ("duplicates", "tokens", "compute", "control")}


def test_the_stored_extra_files_were_made_with_the_shared_settings(extra):
    dup = extra["duplicates"]
    assert set(dup["runs"]) == {f"{c}-seed-{s}" for c in ("with", "without") for s in make_sweeps.DUP_SEEDS}
    assert dup["copies"] == {"x65": 65, "x9": 9, "x1": 1}
    for run in dup["runs"].values():
        assert run["history"]["step"][-1] == experiments.TRAIN.steps
        assert all(len(v) == make_sweeps.PASSAGES for v in run["recited"].values())
    flops = {name: run["flops"] for name, run in extra["tokens"]["runs"].items()}
    assert abs(flops["bpe512"] / flops["characters"] - 1) < 0.01                     # equal compute
    for run in extra["compute"]["runs"].values():
        assert abs(run["flops"] / extra["compute"]["flops"] - 1) < 0.01
    control, chars = extra["control"], dup["train_characters"]
    assert control["steps"] == round(experiments.TRAIN.steps * chars["without"] / chars["with"])
    assert set(control["runs"]) == {f"without-{control['steps']}-steps-seed-{s}" for s in make_sweeps.DUP_SEEDS}
    for run in control["runs"].values():                 # the text without copies, for fewer steps
        assert run["history"]["step"][-1] == control["steps"]
        assert run["train_characters"] == chars["without"]


def test_the_stored_models_are_the_ones_the_file_describes(extra):
    """The notebook's live checks rest on these: the files load safely and give the stored numbers."""
    tok = experiments.tokenizer()
    model, _ = checkpoints.load_model(DATA_DIR / "sweeps_dup.pt")
    dup = extra["duplicates"]
    assert experiments.recited_characters(model, tok, dup["passages"]["x65"][:4]) == \
        dup["runs"]["with-seed-1337"]["recited"]["x65"][:4]


# --- checkers -------------------------------------------------------------

def bits(model, tokenizer, text):
    ids = tokenizer.encode(text)
    with torch.no_grad():
        logits, _ = model(torch.tensor(ids[:-1]).unsqueeze(0))
    log_probs = torch.log_softmax(logits[0], dim=-1)
    nats = -log_probs[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].sum()
    return float(nats) / (len(text) - len(tokenizer.decode(ids[:1]))) / np.log(2)


def bits_with_the_models_loss(model, tokenizer, text):
    """Another right way: the model's own mean loss, times the number of predictions."""
    ids = tokenizer.encode(text)
    with torch.no_grad():
        _, loss = model(torch.tensor(ids[:-1])[None], torch.tensor(ids[1:])[None])
    return loss.item() * (len(ids) - 1) / (len(text) - len(tokenizer.decode(ids[:1]))) / np.log(2)


def bits_per_token(model, tokenizer, text):
    ids = tokenizer.encode(text)
    return bits(model, tokenizer, text) * (len(text) - len(tokenizer.decode(ids[:1]))) / (len(ids) - 1)


def bits_over_all_characters(model, tokenizer, text):
    ids = tokenizer.encode(text)
    return bits(model, tokenizer, text) * (len(text) - len(tokenizer.decode(ids[:1]))) / len(text)


def split_by_play(plays, held_out=0.2, length=200, seed=0):
    titles = [t for t, _ in plays]
    random.Random(seed).shuffle(titles)
    test_titles = set(titles[: max(1, round(held_out * len(titles)))])
    cut = lambda text: [text[i:i + length] for i in range(0, len(text), length)]  # noqa: E731
    return ([p for t, x in plays if t not in test_titles for p in cut(x)],
            [p for t, x in plays if t in test_titles for p in cut(x)])


def split_by_play_numpy(plays, held_out=0.2, length=200, seed=0):
    """Another right way: any choice of whole plays, here by NumPy, and tuples instead of lists."""
    n_test = max(1, round(held_out * len(plays)))
    test = set(np.random.default_rng(seed).choice(len(plays), n_test, replace=False).tolist())
    parts = [[x[i:i + length] for i in range(0, len(x), length)] for _, x in plays]
    return (tuple(p for k, ps in enumerate(parts) if k not in test for p in ps),
            tuple(p for k, ps in enumerate(parts) if k in test for p in ps))


def split_leaky(plays, held_out=0.2, length=200, seed=0):
    passages = [text[i:i + length] for _, text in plays for i in range(0, len(text), length)]
    random.Random(seed).shuffle(passages)
    n_test = round(held_out * len(passages))
    return passages[n_test:], passages[:n_test]


def split_one_passage_per_play(plays, held_out=0.2, length=200, seed=0):
    """Holds out the last passage of every play: the same leak, written differently."""
    train, test = [], []
    for _, x in plays:
        parts = [x[i:i + length] for i in range(0, len(x), length)]
        train += parts[:-1]
        test.append(parts[-1])
    return train, test


def split_too_many_plays(plays, held_out=0.2, length=200, seed=0):
    return split_by_play(plays, min(1.0, held_out * 2), length, seed)


def split_other_cut(plays, held_out=0.2, length=200, seed=0):
    return split_by_play(plays, held_out, length + 1, seed)


RIGHT = [(checks.bits_per_character, bits), (checks.bits_per_character, experiments.bits_per_character),
         (checks.bits_per_character, bits_with_the_models_loss),
         (checks.evaluation_split, split_by_play), (checks.evaluation_split, split_by_play_numpy),
         (checks.predict_uniform_token_bits, lambda: 9 / 1.94), (checks.predict_uniform_token_bits, lambda: 4.6)]

BROKEN = [
    (checks.bits_per_character, bits_per_token, "bits per *token*"),
    (checks.bits_per_character, lambda m, t, x: bits(m, t, x) * np.log(2), "returned nats"),
    (checks.bits_per_character, lambda m, t, x: bits_per_token(m, t, x) * np.log(2), "mean loss per token in nats"),
    (checks.bits_per_character, bits_over_all_characters, "its characters do not count"),
    (checks.bits_per_character, lambda m, t, x: 3.4, "expected"),
    (checks.bits_per_character, forever, "did not finish"),
    (checks.bits_per_character, stub, "not implemented yet"),
    (checks.evaluation_split, split_leaky, "still gives what the broken code gives"),
    (checks.evaluation_split, split_one_passage_per_play, "are in both lists"),
    (checks.evaluation_split, split_too_many_plays, "held out"),
    (checks.evaluation_split, split_other_cut, "cut as the broken code cuts them"),
    (checks.evaluation_split, lambda plays, *a: split_by_play(plays, *a)[0], "not a pair of lists"),
    (checks.evaluation_split, stub, "not implemented yet"),
    (checks.predict_uniform_token_bits, lambda: np.log2(78), "the answer is"),
    (checks.predict_uniform_token_bits, lambda: 9.0, "the answer is"),
]


test_right_answers_pass, test_broken_answers_rejected = checker_tests(RIGHT, BROKEN)
