"""helpers/finetune.py and helpers/lora.py: genre passages, modernisation pairs, the classifier, LoRA from scratch."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import data, finetune, gpt, lora


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return gpt.GPT(gpt.GPTConfig(vocab_size=20, block_size=16, n_layer=2, n_head=2, n_embd=16))


# --- genre passages ---------------------------------------------------------

def test_held_out_passages_come_only_from_held_out_plays():
    texts, labels = finetune.genre_passages("held-out", per_genre=20, length=64, seed=1)
    by_genre = {g: [p.text for p in data.split_plays()["validation"] + data.split_plays()["test"] if p.genre == g]
                for g in finetune.GENRE_CLASSES}
    assert len(texts) == 60 and sorted(set(labels)) == [0, 1, 2] and all(len(t) == 64 for t in texts)
    for text, label in zip(texts, labels):
        assert any(text in play for play in by_genre[finetune.GENRE_CLASSES[label]])


def test_training_passages_never_come_from_held_out_plays():
    texts, _ = finetune.genre_passages("train", per_genre=30, length=80, seed=2)
    held_out = "\n".join(p.text for p in data.split_plays()["validation"] + data.split_plays()["test"])
    training = "\n".join(p.text for p in data.split_plays()["train"])
    assert all(t in training for t in texts)
    assert sum(t in held_out for t in texts) == 0


def test_passages_are_reproducible_and_balanced():
    first = finetune.genre_passages("train", per_genre=10, seed=3)
    assert first == finetune.genre_passages("train", per_genre=10, seed=3)
    assert first != finetune.genre_passages("train", per_genre=10, seed=4)
    assert [first[1].count(i) for i in range(3)] == [10, 10, 10]


@pytest.mark.parametrize("kwargs, phrase", [({"split": "test", "per_genre": 1}, "split"),
                                            ({"split": "train", "per_genre": 0}, "at least 1")])
def test_passages_say_what_is_wrong(kwargs, phrase):
    with pytest.raises(ValueError, match=phrase):
        finetune.genre_passages(**kwargs)


# --- modernisation ------------------------------------------------------------

@pytest.mark.parametrize("old, new", [
    ("Thou art more lovely", "You are more lovely"),
    ("What hast thou done?", "What have you done?"),
    ("'Tis true, my lord.", "It is true, my lord."),
    ("THOU", "YOU"),
    ("Nay, I will not.", "No, I will not."),
    ("The earth hath bubbles", "The earth has bubbles"),
    ("Thence to thy art", "Thence to your art"),       # 'art' alone is the noun; only "thou art" is changed
    ("Art thou not Romeo?", "Are you not Romeo?"),
    ("thousand thorough threads", "thousand thorough threads"),   # 'thou' inside a word is left alone
])
def test_modernise(old, new):
    assert finetune.modernise(old) == new


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80))
def test_modernise_leaves_text_without_old_words_alone(text):
    if any(w in text.lower() for w in finetune.MODERN_WORDS):
        return
    assert finetune.modernise(text) == text


def test_translation_pairs_are_real_changed_lines_and_splits_do_not_overlap():
    train, held_out = finetune.translation_pairs("train"), finetune.translation_pairs("held-out")
    assert len(train) > 2000 and len(held_out) > 300
    assert all(old != new and finetune.modernise(old) == new and len(old) <= 60 for old, new in train + held_out)
    assert len({old for old, _ in train}) == len(train)
    with pytest.raises(ValueError, match="split"):
        finetune.translation_pairs("validation")


@pytest.mark.parametrize("prediction, target, cer", [("abc", "abc", 0.0), ("abd", "abc", 1 / 3), ("", "abcd", 1.0),
                                                     ("kitten", "sitting", 3 / 7), ("", "", 0.0), ("x", "", 1.0)])
def test_character_error_rate(prediction, target, cer):
    assert finetune.character_error_rate(prediction, target) == pytest.approx(cer)


# --- the classifier -----------------------------------------------------------

@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_classifier_shapes_and_loss(model, pooling):
    clf = finetune.GenreClassifier(model, n_classes=3, pooling=pooling)
    idx = torch.randint(0, 20, (5, 12))
    logits, loss = clf(idx, torch.tensor([0, 1, 2, 0, 1]))
    assert logits.shape == (5, 3) and loss.ndim == 0
    assert clf(idx)[1] is None


def test_features_are_what_the_head_reads(model):
    idx = torch.randint(0, 20, (2, 10))
    logits, _ = model(idx)
    torch.testing.assert_close(model.lm_head(model.features(idx)), logits)


def test_freezing_the_body_leaves_only_the_head_trainable(model):
    body = gpt.GPT(model.config)
    clf = finetune.GenreClassifier(finetune.freeze(body), n_classes=3)
    assert finetune.count_trainable(clf) == 16 * 3 + 3


def test_classifier_refuses_unknown_pooling(model):
    with pytest.raises(ValueError, match="pooling"):
        finetune.GenreClassifier(model, pooling="max")


# --- LoRA ---------------------------------------------------------------------------

def test_lora_starts_as_the_base_layer_and_counts_its_parameters():
    torch.manual_seed(1)
    base = torch.nn.Linear(16, 8)
    x = torch.randn(4, 16)
    expected = base(x)
    layer = lora.LoRALinear(base, rank=2, alpha=4.0)
    torch.testing.assert_close(layer(x), expected)
    assert finetune.count_trainable(layer) == 2 * (16 + 8)


def test_lora_update_is_low_rank_and_merges_exactly():
    torch.manual_seed(2)
    layer = lora.LoRALinear(torch.nn.Linear(16, 8), rank=2, alpha=4.0)
    with torch.no_grad():
        layer.B.normal_()
    x = torch.randn(5, 16)
    merged = layer.merged()
    torch.testing.assert_close(merged(x), layer(x))
    delta = merged.weight - layer.base.weight
    assert torch.linalg.matrix_rank(delta) == 2


def test_add_lora_freezes_the_model_and_merge_lora_restores_plain_layers(model):
    torch.manual_seed(3)
    net = gpt.GPT(model.config)
    idx = torch.randint(0, 20, (2, 12))
    before = net(idx)[0]
    lora.add_lora(net, lora.LoRAConfig(rank=2, targets=("query", "value")))
    torch.testing.assert_close(net(idx)[0], before)                  # B = 0: nothing changed yet
    assert finetune.count_trainable(net) == 2 * 2 * 2 * (16 + 16)    # blocks x layers x rank x (in + out)
    with torch.no_grad():
        for block in net.blocks:
            block.attn.value.B.normal_()
    changed = net(idx)[0]
    assert not torch.allclose(changed, before)
    lora.merge_lora(net)
    assert not any(isinstance(m, lora.LoRALinear) for m in net.modules())
    torch.testing.assert_close(net(idx)[0], changed)


@pytest.mark.parametrize("kwargs, error, phrase", [({"targets": ("mlp",)}, ValueError, "targets"),
                                                   ({"targets": ()}, ValueError, "targets")])
def test_add_lora_says_what_is_wrong(model, kwargs, error, phrase):
    with pytest.raises(error, match=phrase):
        lora.add_lora(gpt.GPT(model.config), lora.LoRAConfig(**kwargs))


@pytest.mark.parametrize("layer, rank, error", [(torch.nn.Conv1d(2, 2, 1), 1, TypeError), (torch.nn.Linear(4, 3), 4, ValueError),
                                                (torch.nn.Linear(4, 3), 0, ValueError)])
def test_lora_linear_refuses_what_it_cannot_wrap(layer, rank, error):
    with pytest.raises(error):
        lora.LoRALinear(layer, rank=rank)


# --- long passages, prompts and answers, adapters ------------------------------

def test_a_long_passage_is_read_as_windows_and_pooled(model):
    classifier = finetune.GenreClassifier(model).eval()
    torch.manual_seed(5)
    idx = torch.randint(0, 20, (2, 32))                       # block_size 16: two windows
    hidden = torch.cat([model.features(idx[:, :16]), model.features(idx[:, 16:])], dim=1).mean(dim=1)
    assert torch.allclose(classifier(idx)[0], classifier.head(hidden), atol=1e-6)
    with pytest.raises(ValueError, match="whole number of windows of 16"):
        classifier(torch.zeros(1, 20, dtype=torch.long))


class _Chars:
    """A stand-in tokenizer: one id per character of a small alphabet."""

    chars = sorted(set("OLDNEW: abcxyz\n"))

    def encode(self, text):
        return [self.chars.index(c) for c in text]


def test_answer_batch_scores_only_the_answer_and_its_newline():
    tok = _Chars()
    x, y = finetune.answer_batch(tok, [("abc", "xyz"), ("a", "x")])
    first = tok.encode(finetune.prompt("abc") + "xyz\n")
    assert x.shape == y.shape == (2, len(first) - 1) and x[0].tolist() == first[:-1]
    scored = [t for t in y[0].tolist() if t != -100]
    assert scored == tok.encode("xyz\n")                       # the prompt is never a target
    assert [t for t in y[1].tolist() if t != -100] == tok.encode("x\n")



@pytest.mark.parametrize("old, new, copied", [
    ("abc", "abc", [True] * 3),
    ("abc", "xyz", [False] * 3),
    ("a bc", "a xc", [True, True, False, True]),
    ("", "ab", [False, False]),
])
def test_copied_characters_marks_what_the_answer_shares_with_the_old_line(old, new, copied):
    assert finetune.copied_characters(old, new) == copied


def test_answer_loss_by_kind_splits_the_answer_loss_without_the_newline():
    tok = _Chars()
    torch.manual_seed(0)
    net = gpt.GPT(gpt.GPTConfig(vocab_size=len(tok.chars), block_size=32, n_layer=1, n_head=2, n_embd=16))
    pairs = [("abc", "abz"), ("a bc", "x bc")]
    split = finetune.answer_loss_by_kind(net, tok, pairs)
    assert split["copied"][1] == 2 + 3 and split["changed"][1] == 1 + 1
    expected = {"copied": [], "changed": []}
    with torch.no_grad():
        for old, new in pairs:
            x, y = finetune.answer_batch(tok, [(old, new)])
            losses = torch.nn.functional.cross_entropy(net(x)[0][0], y[0], ignore_index=-100, reduction="none")
            answer = losses[y[0] != -100][:-1]                 # the newline is left out
            for loss, copied in zip(answer.tolist(), finetune.copied_characters(old, new)):
                expected["copied" if copied else "changed"].append(loss)
    for kind, values in expected.items():
        assert split[kind][0] == pytest.approx(sum(values) / len(values), rel=1e-5)

@pytest.mark.parametrize("method", ["frozen", "lora", "full", "scratch"])
def test_prepare_sets_up_each_method(method):
    net, tok = finetune.prepare(method)
    config, adapter = net.config, lora.LoRAConfig()
    trainable = {"frozen": 0, "full": gpt.count_parameters(config), "scratch": gpt.count_parameters(config),
                 # A (rank x C) and B (C x rank) for each adapted layer of each block
                 "lora": config.n_layer * len(adapter.targets) * 2 * adapter.rank * config.n_embd}[method]
    assert finetune.count_trainable(net) == trainable and tok.vocab_size == 78
    shipped, _ = finetune.load_pretrained()
    same = torch.equal(net.token_embedding.weight, shipped.token_embedding.weight)
    assert same == (method != "scratch")
    with pytest.raises(ValueError, match="method must be one of"):
        finetune.prepare("adapter")


def test_adapters_save_and_load_exactly_and_bad_files_say_so(tmp_path):
    net, tok = finetune.prepare("lora")
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith(".B"):
                p.normal_()
    path = tmp_path / "adapter.pt"
    lora.save_adapter(net, path, note="test")
    loaded, _, info = lora.load_adapter(path)
    x = torch.tensor([tok.encode("ROMEO:\nBut soft")])
    assert info == {"note": "test"} and torch.allclose(net.eval()(x)[0], loaded(x)[0], atol=1e-6)
    assert path.stat().st_size < 100_000 and not list(tmp_path.glob("*.tmp"))
    with pytest.raises(ValueError, match="no LoRA matrices"):
        lora.save_adapter(finetune.load_pretrained()[0], tmp_path / "none.pt")
    with pytest.raises(ValueError, match="no such adapter"):
        lora.load_adapter(tmp_path / "missing.pt")
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:500])
    with pytest.raises(ValueError, match="cannot be read"):
        lora.load_adapter(tmp_path / "cut.pt")
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a course LoRA adapter"):
        lora.load_adapter(tmp_path / "other.pt")
    state = torch.load(path, weights_only=True)
    state["weights"] = {k: v[:, :2] if k.endswith(".A") else v for k, v in state["weights"].items()}
    torch.save(state, tmp_path / "wrong.pt")
    with pytest.raises(ValueError, match="do not fit"):
        lora.load_adapter(tmp_path / "wrong.pt")


# --- adapters that load but do not hold what save_adapter writes --------------------------------

@pytest.fixture(scope="module")
def adapter_state(tmp_path_factory):
    net, _ = finetune.prepare("lora")
    path = tmp_path_factory.mktemp("adapter") / "adapter.pt"
    lora.save_adapter(net, path, note="test")
    return torch.load(path, weights_only=True)


def _changed(state, where, key, value):
    """A copy of ``state`` with ``state[where][key]`` set to ``value`` (deleted when value is ...)."""
    state = {**state, "lora": dict(state["lora"]), "weights": dict(state["weights"])}
    target = state if where is None else state[where]
    if value is ...:
        del target[key]
    else:
        target[key] = value
    return state


def _poisoned(value):
    matrix = torch.zeros(4, 192)
    matrix[1, 2] = value
    return matrix


A0 = "blocks.0.attn.query.A"
BROKEN_ADAPTERS = {
    "no lora entry": ((None, "lora", ...), r"holds \['format', 'info', 'weights'\]"),
    "no info entry": ((None, "info", ...), "an adapter holds"),
    "unknown entry": ((None, "colour", "red"), "an adapter holds"),
    "rank 0": (("lora", "rank", 0), "its LoRA rank must be at least 1 and a whole number .*got 0"),
    "rank -1": (("lora", "rank", -1), "rank must be at least 1 and a whole number"),
    "rank a float": (("lora", "rank", 4.0), "rank must be at least 1 and a whole number .*got 4.0"),
    "rank a bool": (("lora", "rank", True), "rank must be at least 1 and a whole number"),
    "rank a string": (("lora", "rank", "4"), "rank must be at least 1 and a whole number"),
    "rank too large": (("lora", "rank", 1000), "do not fit the pretrained model: rank must be between 1 and 192"),
    "no alpha": (("lora", "alpha", ...), "LoRA settings must be a dict of"),
    "unknown option": (("lora", "dropout", 0.1), r"LoRA settings must be a dict of .*'dropout'"),
    "alpha NaN": (("lora", "alpha", float("nan")), "alpha must be a finite number"),
    "alpha a string": (("lora", "alpha", "8"), "alpha must be a finite number"),
    "targets a string": (("lora", "targets", "query"), "targets must be a list of layer names"),
    "unknown target": (("lora", "targets", ("mlp",)), "do not fit the pretrained model: targets must be"),
    "a target twice": (("lora", "targets", ("query", "query")), "do not fit the pretrained model"),
    "lora a list": ((None, "lora", [4, 8.0]), "LoRA settings must be a dict"),
    "info a string": ((None, "info", "note"), "its info is a str, not a dict"),
    "weights a list": ((None, "weights", []), "its LoRA matrices are a list, not a dict of tensors"),
    "a matrix missing": (("weights", A0, ...), r"do not fit the pretrained model: missing \['blocks.0.attn.query.A'\]"),
    "a matrix unknown": (("weights", "blocks.0.attn.key.A", torch.zeros(4, 192)), r"unknown \['blocks.0.attn.key.A'\]"),
    "wrong shape": (("weights", A0, torch.zeros(2, 192)), r"has shape \(2, 192\), expected \(4, 192\)"),
    "a list": (("weights", A0, [[0.0] * 192] * 4), "is a list, not a floating-point tensor"),
    "integers": (("weights", A0, torch.zeros(4, 192, dtype=torch.long)), "torch.int64, not a floating-point"),
    "NaN": (("weights", A0, _poisoned(float("nan"))), "holds NaN or infinite values"),
    "inf": (("weights", A0, _poisoned(float("inf"))), "holds NaN or infinite values"),
    "-inf": (("weights", A0, _poisoned(float("-inf"))), "holds NaN or infinite values"),
}


@pytest.mark.parametrize("name", BROKEN_ADAPTERS)
def test_adapters_that_load_but_do_not_fit_name_the_file(tmp_path, adapter_state, name):
    from helpers.training import CheckpointError

    (where, key, value), phrase = BROKEN_ADAPTERS[name]
    path = tmp_path / "broken.pt"
    torch.save(_changed(adapter_state, where, key, value), path)
    with pytest.raises(CheckpointError, match=r"broken\.pt: .*" + phrase):
        lora.load_adapter(path)


def test_a_lower_rank_than_the_matrices_is_refused(tmp_path, adapter_state):
    path = tmp_path / "rank2.pt"
    torch.save(_changed(adapter_state, "lora", "rank", 2), path)
    phrase = r"rank2\.pt: its LoRA matrices do not fit .*has shape \(4, 192\), expected \(2, 192\)"
    with pytest.raises(ValueError, match=phrase):
        lora.load_adapter(path)


def test_shipped_adapters_pass_the_checks():
    from helpers.paths import DATA_DIR

    for name in ("modernise_lora.pt", "dialogue_lora.pt"):
        assert isinstance(lora.load_adapter(DATA_DIR / name)[2], dict)


def test_saving_an_adapter_into_a_missing_folder_names_the_target(tmp_path):
    net, _ = finetune.prepare("lora")
    with pytest.raises(FileNotFoundError, match=r"cannot write .*nowhere.a\.pt: the folder"):
        lora.save_adapter(net, tmp_path / "nowhere" / "a.pt")


def test_an_adapter_stores_the_config_it_was_made_with(tmp_path):
    config = lora.LoRAConfig(rank=2, alpha=3.0, targets=("key", "proj"))
    net, tok = finetune.prepare("lora", lora_config=config)
    assert lora.config_of(net) == config and finetune.count_trainable(net) == 4 * 2 * 2 * 2 * 192
    lora.save_adapter(net, tmp_path / "small.pt")
    assert torch.load(tmp_path / "small.pt", weights_only=True)["lora"] == {"rank": 2, "alpha": 3.0,
                                                                           "targets": ("key", "proj")}
    loaded, _, _ = lora.load_adapter(tmp_path / "small.pt")
    x = torch.tensor([tok.encode("ROMEO:")])
    torch.testing.assert_close(loaded(x)[0], net.eval()(x)[0])
