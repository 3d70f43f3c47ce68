"""helpers.checkpoints: what a checkpoint holds, in which precision, and clear errors naming the
file for anything that does not fit."""

import pytest
import torch

from helpers import checkpoints, gpt, training

TINY = gpt.GPTConfig(vocab_size=12, block_size=8, n_layer=1, n_head=2, n_embd=8)


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return gpt.GPT(TINY)


@pytest.mark.parametrize("precision, tolerance", [("float32", 0.0), ("float16", 1e-3), ("int8", 0.05)])
def test_stored_precision_changes_the_model_only_a_little(tmp_path, precision, tolerance):
    model = tiny_model()
    path = checkpoints.save_checkpoint(tmp_path / f"{precision}.pt", model, precision=precision)
    loaded, _ = checkpoints.load_model(path)
    x = torch.arange(8)[None]
    probs, loaded_probs = (torch.softmax(m(x)[0], -1) for m in (model, loaded))
    assert (probs - loaded_probs).abs().max() <= tolerance
    for (name, a), (_, b) in zip(model.named_parameters(), loaded.named_parameters()):
        assert (a - b).abs().max() <= a.abs().max() / 127 + 1e-6, name
    with pytest.raises(ValueError, match="precision must be"):
        checkpoints.save_checkpoint(tmp_path / "x.pt", model, precision="int4")


# --- broken checkpoints give clear errors naming the file -------------------------------------

@pytest.fixture
def good_checkpoint(tmp_path):
    path = tmp_path / "good.pt"
    checkpoints.save_checkpoint(path, tiny_model(), step=3)
    return path


def test_missing_checkpoint(tmp_path):
    with pytest.raises(checkpoints.CheckpointError, match=r"nope\.pt: no such checkpoint file"):
        checkpoints.load_model(tmp_path / "nope.pt")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_truncated_or_corrupted_checkpoint(good_checkpoint, damage):
    data = good_checkpoint.read_bytes()
    good_checkpoint.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00not a checkpoint" * 50,
                                 "empty": b""}[damage])
    with pytest.raises(checkpoints.CheckpointError, match=r"good\.pt: cannot be read .*truncated or corrupted"):
        checkpoints.load_model(good_checkpoint)


def test_not_a_course_checkpoint(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(checkpoints.CheckpointError, match="not a course GPT checkpoint"):
        checkpoints.load_model(path)


def test_unsafe_pickles_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": checkpoints.FORMAT, "payload": object.__new__(training.TrainConfig)}, path)
    with pytest.raises(checkpoints.CheckpointError, match="cannot be read"):
        checkpoints.load_checkpoint(path)


def test_mismatched_checkpoint(good_checkpoint):
    other = gpt.GPTConfig(vocab_size=12, block_size=8, n_layer=2, n_head=2, n_embd=8)
    with pytest.raises(checkpoints.CheckpointError, match=r"different model.*n_layer.*\(2, 1\)"):
        checkpoints.load_model(good_checkpoint, config=other)
    state = torch.load(good_checkpoint, weights_only=True)
    state["model"]["blocks.0.mlp.fc.weight"] = torch.zeros(3, 3)
    torch.save(state, good_checkpoint)
    with pytest.raises(checkpoints.CheckpointError, match="do not fit its configuration"):
        checkpoints.load_model(good_checkpoint)


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
    with pytest.raises(checkpoints.CheckpointError, match=r"good\.pt: .*" + phrase):
        checkpoints.load_model(good_checkpoint)


def test_every_weight_is_checked(good_checkpoint):
    state = torch.load(good_checkpoint, weights_only=True)
    for name, value in state["model"].items():
        for changed, phrase in [(value[..., :-1], "has shape"), (value * float("nan"), "NaN")]:
            broken = {**state, "model": {**state["model"], name: changed}}
            torch.save(broken, good_checkpoint)
            with pytest.raises(checkpoints.CheckpointError, match=phrase):
                checkpoints.load_model(good_checkpoint)


def test_int8_snapshots_with_a_broken_scale_are_refused(tmp_path):
    path = checkpoints.save_checkpoint(tmp_path / "int8.pt", tiny_model(), precision="int8")
    state = torch.load(path, weights_only=True)
    state["model"]["blocks.0.mlp.fc.weight.scale"] = torch.ones(3, 1)
    torch.save(state, path)
    with pytest.raises(checkpoints.CheckpointError, match=r"int8\.pt: blocks.0.mlp.fc.weight is stored as int8"):
        checkpoints.load_model(path)


def test_older_files_without_optional_entries_still_load(good_checkpoint):
    state = torch.load(good_checkpoint, weights_only=True)
    for key in ("train_config", "tokenizer_chars", "optimizer", "generator"):
        del state[key]
    torch.save(state, good_checkpoint)
    _, loaded = checkpoints.load_model(good_checkpoint)
    assert loaded["tokenizer_chars"] is None and loaded["optimizer"] is None


def test_shipped_checkpoints_pass_the_checks():
    from helpers.paths import DATA_DIR

    from helpers import lora, preferences

    kinds = {}
    for path in sorted(DATA_DIR.glob("*.pt")):          # each file by the loader of its format
        kind = torch.load(path, map_location="cpu", weights_only=True)["format"]
        kinds[path.name] = kind
        if kind == checkpoints.FORMAT:
            checkpoints.load_model(path)
        elif kind == preferences.REWARD_FORMAT:          # a head on the SFT model it was trained on
            preferences.load_reward_model(path, preferences.load_stage("SFT")[0])
        else:
            assert kind == lora.ADAPTER_FORMAT, f"{path.name}: unknown format {kind!r}"
            lora.load_adapter(path)
    assert kinds["gpt_shakespeare.pt"] == checkpoints.FORMAT
