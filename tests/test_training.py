"""helpers.training: the schedule, the loop's safety nets, and checkpoints that fail clearly."""

import json
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from helpers import gpt, training

TINY = gpt.GPTConfig(vocab_size=12, block_size=8, n_layer=1, n_head=2, n_embd=8)


def tiny_data(n=2000, seed=0):
    g = torch.Generator().manual_seed(seed)
    pattern = torch.arange(12).repeat(n // 12 + 1)[:n]                   # a learnable sequence
    noise = torch.randint(0, 12, (n,), generator=g)
    return torch.where(torch.rand(n, generator=g) < 0.9, pattern, noise)


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return gpt.GPT(TINY)


@given(st.integers(2, 500), st.integers(0, 50), st.floats(1e-5, 1e-1), st.floats(0.01, 1.0))
def test_schedule_warms_up_then_decays_to_min_lr(steps, warmup, lr, ratio):
    warmup = min(warmup, steps - 1)
    config = training.TrainConfig(steps=steps, warmup_steps=warmup, lr=lr, min_lr=lr * ratio)
    rates = [training.learning_rate(s, config) for s in range(steps)]
    assert all(config.min_lr * (1 - 1e-9) <= r <= lr * (1 + 1e-9) or s < warmup for s, r in enumerate(rates))
    assert rates[-1] == pytest.approx(config.min_lr if steps - 1 > warmup else lr, rel=1e-6)
    after = rates[warmup:]
    assert all(a >= b - 1e-12 for a, b in zip(after, after[1:]))          # never rises after the warm-up
    if warmup:
        assert rates[0] == pytest.approx(lr / warmup) and rates[warmup - 1] == pytest.approx(lr)


@pytest.mark.parametrize("kwargs, phrase", [(dict(steps=0), "at least 1"), (dict(lr=1e-3, min_lr=1e-2), "min_lr"),
                                            (dict(steps=10, warmup_steps=10), "warmup_steps")])
def test_bad_train_config_says_what_is_wrong(kwargs, phrase):
    with pytest.raises(ValueError, match=phrase):
        training.TrainConfig(**kwargs)


def test_training_lowers_the_loss_and_saves_a_loadable_checkpoint(tmp_path):
    ids = tiny_data()
    model = tiny_model()
    config = training.TrainConfig(steps=150, batch_size=16, lr=1e-2, min_lr=1e-3, warmup_steps=10, eval_every=50)
    path = tmp_path / "run.pt"
    history = training.train(model, ids, ids, config, checkpoint_path=path, progress=False, tokenizer_chars="abc")
    assert history["step"] == [50, 100, 150]
    assert history["val"][-1] < math.log(12) - 1.0
    loaded, state = training.load_model(path)
    assert state["step"] == 150 and state["tokenizer_chars"] == "abc" and state["history"] == history
    x = ids[:8][None]
    torch.testing.assert_close(loaded(x)[0], model(x)[0])
    assert loaded.lm_head.weight is loaded.token_embedding.weight       # still tied after loading
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # no temporary file left


def test_resuming_gives_the_same_model_as_an_uninterrupted_run(tmp_path):
    ids = tiny_data()
    config = training.TrainConfig(steps=60, batch_size=8, lr=1e-2, min_lr=1e-3, warmup_steps=5, eval_every=20)
    straight = tiny_model()
    training.train(straight, ids, ids, config, progress=False)
    path = tmp_path / "resume.pt"
    first = tiny_model()

    def stop(step, history):                                              # Ctrl-C after 40 steps
        if step == 40:
            raise KeyboardInterrupt

    training.train(first, ids, ids, config, checkpoint_path=path, progress=False, on_eval=stop)
    assert training.load_checkpoint(path)["step"] == 40
    second = tiny_model(seed=123)                                         # different start: weights come from the file
    history = training.train(second, ids, ids, config, checkpoint_path=path, resume=True, progress=False)
    assert history["step"] == [20, 40, 60]
    for a, b in zip(straight.parameters(), second.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_interrupt_keeps_the_last_good_checkpoint(tmp_path, capsys):
    ids = tiny_data()
    config = training.TrainConfig(steps=100, batch_size=8, lr=1e-2, min_lr=1e-3, warmup_steps=5, eval_every=25)
    path = tmp_path / "stop.pt"

    def stop_later(step, history):
        if step == 50:
            raise KeyboardInterrupt

    training.train(tiny_model(), ids, ids, config, checkpoint_path=path, progress=False, on_eval=stop_later)
    assert "interrupted after 50 steps; the last checkpoint (step 50)" in capsys.readouterr().out
    assert training.load_checkpoint(path)["step"] == 50


def test_resuming_with_other_settings_or_another_model_is_refused(tmp_path):
    ids = tiny_data()
    config = training.TrainConfig(steps=20, batch_size=8, lr=1e-2, min_lr=1e-3, warmup_steps=5, eval_every=10)
    path = tmp_path / "run.pt"
    training.train(tiny_model(), ids, ids, config, checkpoint_path=path, progress=False)
    longer = training.TrainConfig(**{**config.__dict__, "steps": 40})
    with pytest.raises(training.CheckpointError, match=r"other settings.*'steps': \(40, 20\)"):
        training.train(tiny_model(), ids, ids, longer, checkpoint_path=path, resume=True, progress=False)
    wider = gpt.GPT(gpt.GPTConfig(vocab_size=12, block_size=8, n_layer=1, n_head=2, n_embd=16))
    with pytest.raises(training.CheckpointError, match="different model"):
        training.train(wider, ids, ids, config, checkpoint_path=path, resume=True, progress=False)


def test_interrupt_during_an_evaluation_keeps_the_history_consistent(tmp_path, monkeypatch, capsys):
    ids = tiny_data()
    config = training.TrainConfig(steps=40, batch_size=8, lr=1e-2, min_lr=1e-3, warmup_steps=5, eval_every=10)
    calls = {"n": 0}
    original = training.estimate_loss

    def interrupted_on_the_fifth_measurement(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:                                   # the first measurement of step 30
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(training, "estimate_loss", interrupted_on_the_fifth_measurement)
    history = training.train(tiny_model(), ids, ids, config, checkpoint_path=tmp_path / "r.pt", progress=False)
    assert history["step"] == [10, 20] and len(history["train"]) == len(history["val"]) == 2
    assert "the last checkpoint (step 20)" in capsys.readouterr().out


def test_a_diverging_rate_stops_with_a_sentence(tmp_path):
    ids = tiny_data()
    config = training.TrainConfig(steps=200, batch_size=8, lr=1e6, min_lr=1e5, warmup_steps=1, eval_every=1,
                                  grad_clip=0.0)
    with pytest.raises(training.TrainingDiverged, match=r"at step \d+ .*Try a learning rate 10 times lower"):
        training.train(tiny_model(), ids, ids, config, checkpoint_path=tmp_path / "boom.pt", progress=False)


def test_snapshots_are_small_int8_copies(tmp_path):
    ids = tiny_data()
    config = training.TrainConfig(steps=40, batch_size=8, lr=1e-2, min_lr=1e-3, warmup_steps=5, eval_every=20)
    path = tmp_path / "run.pt"
    snapshot = tmp_path / "run.step000013.pt"
    training.train(tiny_model(), ids, ids, config, checkpoint_path=path, progress=False, snapshots={13: snapshot})
    state = training.load_checkpoint(snapshot)
    assert state["model"]["token_embedding.weight"].dtype == torch.int8 and state["optimizer"] is None
    model, _ = training.load_model(snapshot)
    assert model.token_embedding.weight.dtype == torch.float32


@pytest.mark.parametrize("precision, tolerance", [("float32", 0.0), ("float16", 1e-3), ("int8", 0.05)])
def test_stored_precision_changes_the_model_only_a_little(tmp_path, precision, tolerance):
    model = tiny_model()
    path = training.save_checkpoint(tmp_path / f"{precision}.pt", model, precision=precision)
    loaded, _ = training.load_model(path)
    x = tiny_data(8)[None]
    probs, loaded_probs = (torch.softmax(m(x)[0], -1) for m in (model, loaded))
    assert (probs - loaded_probs).abs().max() <= tolerance
    for (name, a), (_, b) in zip(model.named_parameters(), loaded.named_parameters()):
        assert (a - b).abs().max() <= a.abs().max() / 127 + 1e-6, name
    with pytest.raises(ValueError, match="precision must be"):
        training.save_checkpoint(tmp_path / "x.pt", model, precision="int4")


# --- broken checkpoints give clear errors naming the file -------------------------------------

@pytest.fixture
def good_checkpoint(tmp_path):
    path = tmp_path / "good.pt"
    training.save_checkpoint(path, tiny_model(), step=3)
    return path


def test_missing_checkpoint(tmp_path):
    with pytest.raises(training.CheckpointError, match=r"nope\.pt: no such checkpoint file"):
        training.load_model(tmp_path / "nope.pt")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_truncated_or_corrupted_checkpoint(good_checkpoint, damage):
    data = good_checkpoint.read_bytes()
    good_checkpoint.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00not a checkpoint" * 50,
                                 "empty": b""}[damage])
    with pytest.raises(training.CheckpointError, match=r"good\.pt: cannot be read .*truncated or corrupted"):
        training.load_model(good_checkpoint)


def test_not_a_course_checkpoint(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(training.CheckpointError, match="not a course GPT checkpoint"):
        training.load_model(path)


def test_unsafe_pickles_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": training.FORMAT, "payload": object.__new__(training.TrainConfig)}, path)
    with pytest.raises(training.CheckpointError, match="cannot be read"):
        training.load_checkpoint(path)


def test_mismatched_checkpoint(good_checkpoint):
    other = gpt.GPTConfig(vocab_size=12, block_size=8, n_layer=2, n_head=2, n_embd=8)
    with pytest.raises(training.CheckpointError, match=r"different model.*n_layer.*\(2, 1\)"):
        training.load_model(good_checkpoint, config=other)
    state = torch.load(good_checkpoint, weights_only=True)
    state["model"]["blocks.0.mlp.fc.weight"] = torch.zeros(3, 3)
    torch.save(state, good_checkpoint)
    with pytest.raises(training.CheckpointError, match="do not fit its configuration"):
        training.load_model(good_checkpoint)


@given(st.integers(2, 400), st.integers(1, 64))
def test_scoring_windows_score_every_token_once_with_enough_context(n, block_size):
    targets = []
    for start, length, first in training.scoring_windows(n, block_size):
        assert 0 <= start and start + length <= n - 1 and length <= block_size
        for j in range(first, length):
            targets.append(start + 1 + j)
            assert j + 1 >= min(length // 2, start + 1 + j)      # context seen before predicting
    assert sorted(targets) == list(range(1, n))


def test_full_loss_matches_token_by_token_scoring():
    model = tiny_model()
    ids = tiny_data(50)
    by_hand = []
    for start, length, first in training.scoring_windows(len(ids), 8):
        logits, _ = model(ids[start:start + length][None])
        for j in range(first, length):
            by_hand.append(torch.nn.functional.cross_entropy(logits[0, j:j + 1], ids[start + 1 + j:start + 2 + j]).item())
    assert training.full_loss(model, ids, batch_size=3) == pytest.approx(sum(by_hand) / len(by_hand), rel=1e-5)
    assert len(by_hand) == 49


# --- checkpoints that load but do not hold what save_checkpoint writes --------------------------

def _set(keys, value):
    """A damage: set ``state[k1][k2]...`` to ``value``."""
    def damage(state):
        target = state
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return damage


def _delete(*keys):
    def damage(state):
        target = state
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]
    return damage


def _poison(name, value):
    def damage(state):
        state["model"][name] = state["model"][name].clone()
        state["model"][name].view(-1)[0] = value
    return damage


BROKEN = {
    "no weight": (_delete("model", "blocks.0.mlp.fc.weight"), r"missing \['blocks.0.mlp.fc.weight'\]"),
    "no embedding": (_delete("model", "token_embedding.weight"), r"missing \['token_embedding.weight'\]"),
    "unknown weight": (_set(("model", "extra.weight"), torch.zeros(3)), r"unknown \['extra.weight'\]"),
    "stored head": (_set(("model", "lm_head.weight"), torch.zeros(12, 8)), "never stores"),
    "weight is a list": (_set(("model", "ln_f.weight"), [1.0] * 8), "not a named tensor"),
    "integer weight": (_set(("model", "ln_f.weight"), torch.ones(8, dtype=torch.long)), "not a floating-point"),
    "int8 without scale": (_set(("model", "ln_f.weight"), torch.ones(8, dtype=torch.int8)), "without a valid"),
    "orphan scale": (_set(("model", "ln_f.weight.scale"), torch.ones(8, 1)), "without the int8 matrix"),
    "NaN weight": (_poison("blocks.0.attn.query.weight", float("nan")), "NaN or infinite"),
    "inf weight": (_poison("ln_f.bias", float("inf")), "NaN or infinite"),
    "-inf weight": (_poison("token_embedding.weight", float("-inf")), "NaN or infinite"),
    "model is a list": (_set(("model",), [1, 2]), "'model' entry is of type list, expected dict"),
    "config field missing": (_delete("model_config", "n_embd"), r"missing \['n_embd'\]"),
    "config field unknown": (_set(("model_config", "colour"), "red"), r"unknown \['colour'\]"),
    "config field a string": (_set(("model_config", "n_layer"), "1"), "n_layer must be at least 1"),
    "config rank 0": (_set(("model_config", "n_layer"), 0), "n_layer must be at least 1"),
    "config bias a string": (_set(("model_config", "bias"), "yes"), "bias must be True or False"),
    "config is a list": (_set(("model_config",), [1]), "'model_config' entry is of type list"),
    "step a string": (_set(("step",), "3"), "'step' entry is of type str, expected int"),
    "negative step": (_set(("step",), -1), "its step must be at least 0 and a whole number"),
    "step a bool": (_set(("step",), True), "its step must be at least 0"),
    "history None": (_set(("history",), None), "'history' entry is of type NoneType, expected dict"),
    "chars a number": (_set(("tokenizer_chars",), 5), "'tokenizer_chars' entry is of type int, expected str or None"),
    "unknown entry": (_set(("colour",), "red"), r"unknown entries \['colour'\]"),
}


@pytest.mark.parametrize("name", BROKEN)
def test_checkpoints_that_load_but_do_not_fit_name_the_file(good_checkpoint, name):
    damage, phrase = BROKEN[name]
    state = torch.load(good_checkpoint, weights_only=True)
    damage(state)
    torch.save(state, good_checkpoint)
    with pytest.raises(training.CheckpointError, match=r"good\.pt: .*" + phrase):
        training.load_model(good_checkpoint)


def test_every_weight_is_checked(good_checkpoint):
    state = torch.load(good_checkpoint, weights_only=True)
    for name, value in state["model"].items():
        for changed, phrase in [(value[..., :-1], "has shape"), (value * float("nan"), "NaN")]:
            broken = {**state, "model": {**state["model"], name: changed}}
            torch.save(broken, good_checkpoint)
            with pytest.raises(training.CheckpointError, match=phrase):
                training.load_model(good_checkpoint)


def test_int8_snapshots_with_a_broken_scale_are_refused(tmp_path):
    path = training.save_checkpoint(tmp_path / "int8.pt", tiny_model(), precision="int8")
    state = torch.load(path, weights_only=True)
    state["model"]["blocks.0.mlp.fc.weight.scale"] = torch.ones(3, 1)
    torch.save(state, path)
    with pytest.raises(training.CheckpointError, match=r"int8\.pt: blocks.0.mlp.fc.weight is stored as int8"):
        training.load_model(path)


def test_older_files_without_optional_entries_still_load(good_checkpoint):
    state = torch.load(good_checkpoint, weights_only=True)
    for key in ("train_config", "tokenizer_chars", "optimizer", "generator"):
        del state[key]
    torch.save(state, good_checkpoint)
    _, loaded = training.load_model(good_checkpoint)
    assert loaded["tokenizer_chars"] is None and loaded["optimizer"] is None


def test_resuming_from_a_poisoned_checkpoint_names_the_file(tmp_path):
    ids = tiny_data()
    config = training.TrainConfig(steps=20, batch_size=8, lr=1e-2, min_lr=1e-3, warmup_steps=5, eval_every=10)
    path = tmp_path / "run.pt"
    training.train(tiny_model(), ids, ids, config, checkpoint_path=path, progress=False)
    state = torch.load(path, weights_only=True)
    state["model"]["ln_f.weight"][0] = float("nan")
    torch.save(state, path)
    with pytest.raises(training.CheckpointError, match=r"run\.pt: ln_f.weight .*NaN"):
        training.train(tiny_model(), ids, ids, config, checkpoint_path=path, resume=True, progress=False)
    state["model"]["ln_f.weight"][0] = 1.0
    state["generator"] = torch.zeros(3, dtype=torch.uint8)
    torch.save(state, path)
    with pytest.raises(training.CheckpointError, match=r"run\.pt: its optimizer or random-generator state"):
        training.train(tiny_model(), ids, ids, config, checkpoint_path=path, resume=True, progress=False)


def test_shipped_checkpoints_pass_the_checks():
    from helpers.paths import DATA_DIR

    for path in sorted(DATA_DIR.glob("*.pt")):
        if "lora" not in path.name:
            training.load_model(path)


def test_evaluating_restores_the_mode_even_when_the_block_raises():
    model = torch.nn.Dropout(0.5)
    model.train()
    with pytest.raises(KeyboardInterrupt):
        with training.evaluating(model):
            assert not model.training
            raise KeyboardInterrupt
    assert model.training
    model.eval()
    with training.evaluating(model):
        pass
    assert not model.training


def test_atomic_write_leaves_nothing_behind_when_writing_fails(tmp_path):
    from helpers.artefacts import atomic_write

    target = tmp_path / "file.pt"
    target.write_text("old")

    def broken(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, broken)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["file.pt"]
    atomic_write(target, "new")
    assert target.read_text() == "new"


def test_provenance_is_plain_data_that_loads_with_weights_only(tmp_path):
    from helpers import artefacts

    record = artefacts.provenance(seconds=1.26, seed=3, argv=["scripts/make_x.py", "--out", "here"])
    assert record["command"] == "python scripts/make_x.py --out here" and record["seconds"] == 1.3
    assert record["seed"] == 3 and record["threads"] == torch.get_num_threads()
    torch.save({"provenance": record}, tmp_path / "a.pt")           # as an adapter's info stores it
    assert torch.load(tmp_path / "a.pt", weights_only=True)["provenance"] == record


def test_a_command_parses_its_options_sets_threads_and_makes_its_folder(tmp_path):
    from helpers import artefacts
    from helpers.paths import DATA_DIR, REPO_ROOT

    parser = artefacts.command_parser(REPO_ROOT / "scripts" / "make_x.py", "Make x.\n\nMore.", threads=2)
    assert parser.prog == "scripts/make_x.py" and parser.description == "Make x."
    assert parser.parse_args([]).out == DATA_DIR and parser.parse_args([]).threads == 2
    before = torch.get_num_threads()
    try:
        args = artefacts.start_command(parser, ["--out", str(tmp_path / "new"), "--threads", "1"])
        assert torch.get_num_threads() == 1 and (tmp_path / "new").is_dir()
        assert args.argv == ["scripts/make_x.py", "--out", str(tmp_path / "new"), "--threads", "1"]
        fixed = artefacts.command_parser(REPO_ROOT / "scripts" / "make_y.py", "Make y.")
        assert not hasattr(artefacts.start_command(fixed, ["--out", str(tmp_path)], threads=1), "threads")
    finally:
        torch.set_num_threads(before)


def test_a_partial_file_is_replaced_by_the_complete_one(tmp_path):
    from helpers import artefacts

    path = tmp_path / "results.json"
    assert artefacts.partial_path(path) == tmp_path / "results.partial.json"
    artefacts.write_json(artefacts.partial_path(path), {"runs": 1})
    assert not path.exists()
    artefacts.finish_partial(path, {"runs": 2})
    assert json.loads(path.read_text()) == {"runs": 2} and [p.name for p in tmp_path.iterdir()] == ["results.json"]
