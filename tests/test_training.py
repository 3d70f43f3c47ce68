"""helpers.training: the schedule, the loops (train and fit) and their safety nets, resuming from a
checkpoint, and the loss measurements."""

import json
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from helpers import checkpoints, gpt, training

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
    loaded, state = checkpoints.load_model(path)
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
    assert checkpoints.load_checkpoint(path)["step"] == 40
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
    assert checkpoints.load_checkpoint(path)["step"] == 50


def test_resuming_with_other_settings_or_another_model_is_refused(tmp_path):
    ids = tiny_data()
    config = training.TrainConfig(steps=20, batch_size=8, lr=1e-2, min_lr=1e-3, warmup_steps=5, eval_every=10)
    path = tmp_path / "run.pt"
    training.train(tiny_model(), ids, ids, config, checkpoint_path=path, progress=False)
    longer = training.TrainConfig(**{**config.__dict__, "steps": 40})
    with pytest.raises(checkpoints.CheckpointError, match=r"other settings.*'steps': \(40, 20\)"):
        training.train(tiny_model(), ids, ids, longer, checkpoint_path=path, resume=True, progress=False)
    wider = gpt.GPT(gpt.GPTConfig(vocab_size=12, block_size=8, n_layer=1, n_head=2, n_embd=16))
    with pytest.raises(checkpoints.CheckpointError, match="different model"):
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
    with pytest.raises(training.TrainingDiverged, match=r"(?s)at step \d+ .*Try a learning rate 10 times lower"):
        training.train(tiny_model(), ids, ids, config, checkpoint_path=tmp_path / "boom.pt", progress=False)


def test_snapshots_are_small_int8_copies(tmp_path):
    ids = tiny_data()
    config = training.TrainConfig(steps=40, batch_size=8, lr=1e-2, min_lr=1e-3, warmup_steps=5, eval_every=20)
    path = tmp_path / "run.pt"
    snapshot = tmp_path / "run.step000013.pt"
    training.train(tiny_model(), ids, ids, config, checkpoint_path=path, progress=False, snapshots={13: snapshot})
    state = checkpoints.load_checkpoint(snapshot)
    assert state["model"]["token_embedding.weight"].dtype == torch.int8 and state["optimizer"] is None
    model, _ = checkpoints.load_model(snapshot)
    assert model.token_embedding.weight.dtype == torch.float32


# --- other objectives, short runs and fine-tunes: the same loops, step for step -----------------

def masked_batch(ids, batch_size, generator):
    """A toy objective with a mask and ignored targets, drawn with the run's generator, like
    notebook 12's (``families.batch``)."""
    x, y = training.random_batch(ids, batch_size, TINY.block_size, generator)
    hidden = torch.rand(x.shape, generator=generator) < 0.3
    return x.masked_fill(hidden, 0), y.masked_fill(~hidden, -100), gpt.bidirectional_mask(TINY.block_size)


def test_train_with_a_batch_function_is_the_written_out_loop_bit_for_bit():
    """families.train_objective was this loop when notebook 12's stored curves were made; train
    with make_batch, measure and stop_after must repeat it exactly: same draws, same arithmetic."""
    ids = tiny_data()
    config = training.TrainConfig(steps=30, batch_size=8, lr=1e-2, min_lr=1e-3, warmup_steps=5, eval_every=10)
    reference = tiny_model()
    optimizer = training.make_optimizer(reference, config)
    generator = torch.Generator().manual_seed(config.seed)
    expected, recent = [], []
    for step in range(1, 26):
        for group in optimizer.param_groups:
            group["lr"] = training.learning_rate(step - 1, config)
        x, y, mask = masked_batch(ids, config.batch_size, generator)
        _, loss = reference(x, y, mask=mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(reference.parameters(), config.grad_clip)
        optimizer.step()
        recent.append(loss.item())
        if step % 10 == 0 or step == 25:
            expected.append(sum(recent) / len(recent))
            recent = []
    model = tiny_model()
    history = training.train(model, None, None, config, progress=False, stop_after=25,
                             make_batch=lambda g: masked_batch(ids, config.batch_size, g),
                             measure=lambda losses: {"loss": sum(losses) / len(losses)})
    assert history == {"step": [10, 20, 25], "loss": expected}
    assert all(torch.equal(a, b) for a, b in zip(reference.parameters(), model.parameters()))


def test_a_run_stopped_early_resumes_into_the_full_run(tmp_path, capsys):
    ids = tiny_data()
    config = training.TrainConfig(steps=40, batch_size=8, lr=1e-2, min_lr=1e-3, warmup_steps=5, eval_every=20)
    straight = tiny_model()
    full = training.train(straight, ids, ids, config, progress=False)
    path = tmp_path / "short.pt"
    history = training.train(tiny_model(), ids, ids, config, checkpoint_path=path, progress=False, stop_after=15)
    assert history["step"] == [15] and checkpoints.load_checkpoint(path)["step"] == 15
    resumed = tiny_model(seed=5)
    history = training.train(resumed, ids, ids, config, checkpoint_path=path, resume=True, progress=False)
    assert history["step"] == [15, 20, 40] and history["val"][1:] == full["val"]
    assert all(torch.equal(a, b) for a, b in zip(straight.parameters(), resumed.parameters()))
    with pytest.raises(ValueError, match="stop_after must be at least 1"):
        training.train(tiny_model(), ids, ids, config, progress=False, stop_after=0)

    def stop(step, history):
        raise KeyboardInterrupt

    training.train(tiny_model(), ids, ids, config, progress=False, on_eval=stop)
    assert capsys.readouterr().out == "interrupted after 20 steps.\n"      # no checkpoint: nothing to resume


def test_fit_is_the_written_out_fine_tuning_loop_bit_for_bit():
    """finetune.train_classifier, train_modernise and families.train_dialogue were this loop when
    notebooks 11 and 12's stored curves were made; fit must repeat it exactly."""
    ids = tiny_data()

    def frozen_embedding_model():                   # some parameters frozen, as with LoRA or a frozen body
        model = tiny_model()
        model.token_embedding.weight.requires_grad_(False)
        return model

    reference = frozen_embedding_model()
    optimizer = torch.optim.AdamW([p for p in reference.parameters() if p.requires_grad], lr=3e-3, weight_decay=0.0)
    generator = torch.Generator().manual_seed(0)
    for step in range(1, 13):
        x, y = training.random_batch(ids, 4, TINY.block_size, generator)
        _, loss = reference(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(reference.parameters(), 1.0)
        optimizer.step()
    model, generator, calls = frozen_embedding_model(), torch.Generator().manual_seed(0), []
    done = training.fit(model, lambda: training.random_batch(ids, 4, TINY.block_size, generator), 12, 3e-3,
                        evaluate=lambda step: calls.append((step, model.training)), eval_at=(0, 5))
    assert done == 12 and calls == [(0, True), (5, True), (12, True)] and not model.training
    assert all(torch.equal(a, b) for a, b in zip(reference.parameters(), model.parameters()))


def test_fit_stops_cleanly_on_ctrl_c_and_with_a_sentence_when_the_loss_is_nan(capsys):
    ids = tiny_data()
    model = tiny_model()

    def interrupt(step):
        if step == 3:
            raise KeyboardInterrupt

    done = training.fit(model, lambda: training.random_batch(ids, 4, TINY.block_size), 10, 1e-3, evaluate=interrupt,
                        eval_at=(3,))
    assert done == 3 and capsys.readouterr().out == "interrupted after 3 steps.\n" and not model.training
    with torch.no_grad():
        model.ln_f.weight.fill_(float("nan"))
    with pytest.raises(training.TrainingDiverged, match=r"became NaN at step 1: .*lr=0.0001"):
        training.fit(model, lambda: training.random_batch(ids, 4, TINY.block_size), 10, 1e-3)


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


def test_resuming_from_a_poisoned_checkpoint_names_the_file(tmp_path):
    ids = tiny_data()
    config = training.TrainConfig(steps=20, batch_size=8, lr=1e-2, min_lr=1e-3, warmup_steps=5, eval_every=10)
    path = tmp_path / "run.pt"
    training.train(tiny_model(), ids, ids, config, checkpoint_path=path, progress=False)
    state = torch.load(path, weights_only=True)
    state["model"]["ln_f.weight"][0] = float("nan")
    torch.save(state, path)
    with pytest.raises(checkpoints.CheckpointError, match=r"run\.pt: ln_f.weight .*NaN"):
        training.train(tiny_model(), ids, ids, config, checkpoint_path=path, resume=True, progress=False)
    state["model"]["ln_f.weight"][0] = 1.0
    state["generator"] = torch.zeros(3, dtype=torch.uint8)
    torch.save(state, path)
    with pytest.raises(checkpoints.CheckpointError, match=r"run\.pt: its optimizer or random-generator state"):
        training.train(tiny_model(), ids, ids, config, checkpoint_path=path, resume=True, progress=False)


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


def test_the_optimizer_is_fused_where_pytorch_offers_it_and_plain_elsewhere(monkeypatch):
    model, config = tiny_model(), training.TrainConfig()
    optimizer = training.make_optimizer(model, config)
    assert optimizer.defaults["fused"] is True                     # PyTorch >= 2.4 on the CPU
    assert [g["weight_decay"] for g in optimizer.param_groups] == [config.weight_decay, 0.0]
    plain = torch.optim.AdamW

    def no_fused(params, fused=None, **settings):
        if fused:
            raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of supported devices")
        return plain(params, **settings)

    monkeypatch.setattr(torch.optim, "AdamW", no_fused)
    optimizer = training.make_optimizer(model, config)
    assert not optimizer.defaults["fused"] and optimizer.param_groups[0]["betas"] == (0.9, config.beta2)


def test_fused_and_plain_adamw_take_the_same_steps(monkeypatch):
    ids = tiny_data()
    config = training.TrainConfig(steps=20, batch_size=8, lr=1e-2, min_lr=1e-3, warmup_steps=5, eval_every=10)
    fused = tiny_model()
    training.train(fused, ids, ids, config, progress=False)
    plain = tiny_model()
    monkeypatch.setattr(training, "adamw", lambda params, **settings: torch.optim.AdamW(params, **settings))
    training.train(plain, ids, ids, config, progress=False)
    assert all(torch.allclose(a, b, atol=1e-4, rtol=0) for a, b in zip(fused.parameters(), plain.parameters()))
