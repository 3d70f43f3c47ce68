"""Notebook 10: the data experiments (helpers/experiments.py), the sweep command and its file,
the sweep explorer and the checkers."""

import json
from dataclasses import asdict
import string
from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import checks, data, experiments, gpt, plots, widgets
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


# --- checkers -------------------------------------------------------------

def power_law(x, y):
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    return float(np.exp(intercept)), float(slope)


def power_law_log10(x, y):
    slope, intercept = np.polyfit(np.log10(x), np.log10(y), 1)
    return 10 ** intercept, slope


def dedup(documents):
    seen, kept = set(), []
    for d in documents:
        key = " ".join(d.lower().split())
        if key not in seen:
            seen.add(key)
            kept.append(d)
    return kept


def dedup_with_dict(documents):
    kept = {}
    for d in documents:
        kept.setdefault(" ".join(d.lower().split()), d)
    return list(kept.values())


def dedup_in_place(documents):
    kept = dedup(documents)
    documents[:] = kept
    return kept


RIGHT = [(checks.fit_power_law, power_law), (checks.fit_power_law, experiments.fit_power_law),
         (checks.fit_power_law, power_law_log10), (checks.deduplicate, dedup), (checks.deduplicate, dedup_with_dict)]

BROKEN = [
    (checks.fit_power_law, lambda x, y: tuple(np.polyfit(x, y, 1)[::-1]), "not on log scales"),
    (checks.fit_power_law, lambda x, y: tuple(np.polyfit(np.log(x), np.log(y), 1)), "as they are"),
    (checks.fit_power_law, lambda x, y: power_law(x, y)[::-1], "returned (b, a)"),
    (checks.fit_power_law, lambda x, y: (np.log(power_law(x, y)[0]), power_law(x, y)[1]), "log a"),
    (checks.fit_power_law, lambda x, y: (np.exp(np.polyfit(x, np.log(y), 1)[1]), np.polyfit(x, np.log(y), 1)[0]),
     "log of y but not of x"),
    (checks.fit_power_law, lambda x, y: (np.exp(np.polyfit(np.log10(x), np.log10(y), 1)[1]),
                                         np.polyfit(np.log10(x), np.log10(y), 1)[0]), "10**intercept"),
    (checks.fit_power_law, lambda x, y: (2.0, -0.301), "y = 3 x^-0.1"),
    (checks.fit_power_law, forever, "did not finish"),
    (checks.fit_power_law, stub, "not implemented yet"),
    (checks.deduplicate, lambda docs: list(dict.fromkeys(docs)), "only removed exact copies"),
    (checks.deduplicate, lambda docs: dedup(docs[::-1])[::-1], "kept the last copy"),
    (checks.deduplicate, lambda docs: [d for d in docs if sum(" ".join(e.lower().split()) == " ".join(d.lower().split())
                                                               for e in docs) == 1], "keep one of each"),
    (checks.deduplicate, lambda docs: [" ".join(d.lower().split()) for d in dedup(docs)], "unchanged"),
    (checks.deduplicate, lambda docs: sorted(dedup(docs)), "original order"),
    (checks.deduplicate, lambda docs: "\n".join(dedup(docs)), "not a list of documents"),
    (checks.deduplicate, dedup_in_place, "changed its input"),
    (checks.deduplicate, stub, "not implemented yet"),
]


test_right_answers_pass, test_broken_answers_rejected = checker_tests(RIGHT, BROKEN)
