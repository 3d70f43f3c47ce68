"""A real LLM's tokenizer: GPT-2-style byte-level BPE, read from a GGUF file (notebook 14_a_real_llm).

Notebook 05 built BPE from scratch (``helpers/tokenizers.py``): start from the 256 bytes,
merge the most frequent pair again and again, encode by replaying the merges in the order
they were learned. SmolLM2's tokenizer is the same idea, grown up in five ways:

1. **A regex split first.** Notebook 05 merged across the whole text, so a token could hold
   "e t" (the end of one word and the start of the next). Here the text is first cut into
   pieces by :data:`GPT2_SPLIT`: words with their leading space (" thee"), runs of digits,
   runs of punctuation, runs of whitespace, and a few English endings ("'s", "'ll").
   Merges happen only *inside* a piece, so tokens are words and parts of words, and each
   distinct piece can be encoded once and remembered (the cache below).
2. **Bytes written as characters.** Each of the 256 bytes gets a printable stand-in
   (:func:`bytes_to_unicode`): bytes that are already visible characters stay themselves,
   the others (space, new line, control bytes, half of UTF-8) are moved to characters from
   U+0100 on. So a space is "Ġ" and a new line "Ċ", and " thee" is the token ``"Ġthee"``. The
   file stores tokens and merges in this spelling; it changes nothing about the algorithm.
3. **Merge ranks.** The file lists 48,900 merges, most important first. To encode a piece,
   repeatedly merge the adjacent pair with the **lowest rank** (the one learned first; the
   leftmost if it occurs twice) until no adjacent pair is a merge: the same result as
   notebook 05's "replay the merges in order", without going through all 48,900.
4. **Unseen bytes.** A byte-level vocabulary should hold all 256 bytes, but SmolLM2's lacks 21
   that its training text never contained: six control characters (such as "\\x04") and bytes
   that only unassigned code points (U+40000 to U+BFFFF) or no UTF-8 at all would use. Hugging
   Face and llama.cpp silently drop such a byte; :meth:`ByteBPE.encode` raises a ``ValueError``
   naming the character instead, so text is never lost without a word. Any other text
   round-trips: ``decode(encode(s)) == s``.
5. **Control tokens.** 17 tokens such as ``<|im_start|>`` and ``<|im_end|>`` are not text:
   they mark the turns of a chat. They are recognised in a string only when the caller says
   so (``allow_special=True``). User text is always encoded with them **off**, so a user who
   types ``<|im_end|>`` gets the characters "<", "|", ... and cannot end their turn and write
   the assistant's (a *prompt injection*); :meth:`ByteBPE.encode_chat` builds chats that way.

**Which split.** The file names its pre-tokenizer ``"smollm"``. llama.cpp implements that as
"every digit its own piece, then the GPT-2 pattern"; Hugging Face ``transformers`` has no
"smollm" entry and uses the plain GPT-2 pattern. The ids differ only where a number character
(a digit, "½", "²") follows whitespace: "x  1" is "x", " ", " 1" with GPT-2's pattern but "x",
"  ", "1" with digits first, and " ½" is one piece or two. We match ``transformers`` (the
reference our tests compare with); ``split_digits=True`` gives llama.cpp's split. (The
vocabulary has no multi-digit tokens: every digit is one token either way.)

Ids are checked against Hugging Face's tokenizer in ``tests/test_byte_bpe.py``.
"""

import heapq
from typing import NamedTuple

import regex  # the third-party `regex` package: stdlib `re` has no \p{L} (any letter)
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from helpers.tokenizers import _ERRORS, _REPLACE, check_token_ids

# GPT-2's split: English endings, letters with an optional leading space, digits with one,
# other symbols with one, whitespace not followed by a non-space (so the last space goes with
# the next word), and any remaining whitespace.
GPT2_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_GPT2 = regex.compile(GPT2_SPLIT)
_DIGIT = regex.compile(r"\p{N}")

CONTROL = 3                      # tokenizer.ggml.token_type of a control token (1 is "normal")
CHAT_ROLES = ("system", "user", "assistant")
CHAT_TEMPLATE_KEY = "tokenizer.chat_template"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from each byte (0-255) to a printable character. The 188 bytes that print
    as themselves in Latin-1 ("!" to "~", "¡" to "¬", "®" to "ÿ") keep their character; the
    other 68 get U+0100, U+0101, ... in order, so byte 32 (space) is "Ġ" and 10 (new line) "Ċ"."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    moved = [b for b in range(256) if b not in kept]
    return {**{b: chr(b) for b in kept}, **{b: chr(256 + i) for i, b in enumerate(moved)}}


_BYTE_CHAR = bytes_to_unicode()


def pre_split(text: str, split_digits: bool = False) -> list[str]:
    """The pieces BPE works on: ``GPT2_SPLIT``'s matches, which together are exactly ``text``.
    ``split_digits=True`` first cuts out every digit as its own piece (llama.cpp's "smollm")."""
    if not split_digits:
        return _GPT2.findall(text)
    pieces, start = [], 0
    for digit in _DIGIT.finditer(text):
        pieces += _GPT2.findall(text[start:digit.start()]) + [digit.group()]
        start = digit.end()
    return pieces + _GPT2.findall(text[start:])


_BYTE_OF = {char: byte for byte, char in _BYTE_CHAR.items()}


def _bytes_of(token: str, control: bool) -> bytes:
    """The bytes a token stands for: each character mapped back to its byte; a control token
    (and any character outside the byte map) as its own UTF-8 text."""
    if control or not all(char in _BYTE_OF for char in token):
        return token.encode("utf-8")
    return bytes(_BYTE_OF[char] for char in token)


class MergeStep(NamedTuple):
    """One merge applied to a piece: its ``rank``, the ``pair`` merged and the ``symbols`` after."""

    rank: int
    pair: tuple[str, str]
    symbols: tuple[str, ...]


class ByteBPE:
    """Byte-level BPE from a vocabulary (``tokens[id]``, in byte-level spelling), ``merges``
    (``"a b"`` strings or ``(a, b)`` pairs, best first) and ``token_types`` (3 = control)."""

    def __init__(self, tokens, merges, token_types=None, bos_id=None, eos_id=None,
                 chat_template=None, split_digits: bool = False):
        self.tokens = list(tokens)
        self.vocab = {token: i for i, token in enumerate(self.tokens)}
        self.merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]
        for rank, pair in enumerate(self.merges):
            if len(pair) != 2 or "".join(pair) not in self.vocab:
                raise ValueError(f"merge {rank} {pair!r} is not two tokens whose join is in the vocabulary")
        self.merge_ranks = {pair: rank for rank, pair in reversed(list(enumerate(self.merges)))}
        types = list(token_types) if token_types is not None else [1] * len(self.tokens)
        self.special_tokens = {t: i for i, (t, kind) in enumerate(zip(self.tokens, types)) if kind == CONTROL}
        self._special_split = None                     # a regex that finds control tokens in text
        if self.special_tokens:
            longest_first = sorted(self.special_tokens, key=len, reverse=True)
            self._special_split = regex.compile("(" + "|".join(map(regex.escape, longest_first)) + ")")
        self.bos_id, self.eos_id = bos_id, eos_id
        self.chat_template, self.split_digits = chat_template, split_digits
        control = set(self.special_tokens.values())
        self._token_bytes = [_bytes_of(token, i in control) for i, token in enumerate(self.tokens)]
        self._cache: dict[str, tuple[int, ...]] = {}                 # piece -> its ids

    @classmethod
    def from_gguf(cls, file, split_digits: bool = False) -> "ByteBPE":
        """The tokenizer a GGUF file (``helpers.gguf.read_gguf``) describes in its metadata."""
        meta = file.metadata
        model = meta.get("tokenizer.ggml.model")
        if model != "gpt2":
            raise ValueError(f"{file.path.name}'s tokenizer is {model!r}; ByteBPE reads byte-level BPE "
                             "('gpt2') tokenizers only")
        return cls(meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.merges"],
                   meta.get("tokenizer.ggml.token_type"), meta.get("tokenizer.ggml.bos_token_id"),
                   meta.get("tokenizer.ggml.eos_token_id"), meta.get(CHAT_TEMPLATE_KEY), split_digits)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def __repr__(self) -> str:
        return (f"ByteBPE({self.vocab_size:,} tokens, {len(self.merges):,} merges, "
                f"{len(self.special_tokens)} control tokens)")

    # --- encoding ----------------------------------------------------------------------------

    def _merge(self, symbols: list[str], steps=None) -> list[str]:
        """Merge the adjacent pair of lowest rank (the leftmost if it occurs twice), again and
        again, until no adjacent pair is a merge.

        Rescanning the whole piece for the best pair after every merge takes time that grows
        with the square of its length (a 20,000-letter piece took 10 s); so, as in notebook 05's
        fast trainer, the symbols are a linked list and a heap holds ``(rank, position)`` of
        every adjacent pair that is a merge. Entries that a merge made stale are skipped."""
        ranks, merges = self.merge_ranks, self.merges
        symbols = list(symbols)
        n = len(symbols)
        after = list(range(1, n + 1))                # after[i] == n: the last symbol
        before = list(range(-1, n - 1))              # before[i] == -1: the first symbol
        heap = [(ranks[pair], i) for i, pair in enumerate(zip(symbols, symbols[1:])) if pair in ranks]
        heapq.heapify(heap)
        while heap:
            rank, i = heapq.heappop(heap)
            j = after[i] if symbols[i] is not None else n
            if j == n or (symbols[i], symbols[j]) != merges[rank]:
                continue                             # stale: a symbol here changed since
            symbols[i], symbols[j] = symbols[i] + symbols[j], None
            after[i] = after[j]
            if after[i] < n:
                before[after[i]] = i
            for left, right in ((before[i], i), (i, after[i])):   # the two new neighbours
                if left >= 0 and right < n and (symbols[left], symbols[right]) in ranks:
                    heapq.heappush(heap, (ranks[symbols[left], symbols[right]], left))
            if steps is not None:
                steps.append(MergeStep(rank, merges[rank], tuple(s for s in symbols if s is not None)))
        return [s for s in symbols if s is not None]

    def _spell(self, piece: str) -> list[str]:
        """A piece's UTF-8 bytes, each as its byte-level character: the symbols BPE starts from."""
        return [_BYTE_CHAR[b] for b in piece.encode("utf-8", _ERRORS)]

    def _piece_ids(self, piece: str) -> tuple[int, ...]:
        ids = self._cache.get(piece)
        if ids is None:
            symbols = self._merge(self._spell(piece))
            if any(s not in self.vocab for s in symbols):
                self._refuse(piece)
            ids = tuple(self.vocab[s] for s in symbols)
            if len(self._cache) > 100_000:
                self._cache.clear()                              # keep memory bounded
            self._cache[piece] = ids
        return ids

    def _refuse(self, piece: str):
        """A byte the vocabulary has no token for: say which character holds it."""
        for char in piece:
            missing = [b for b in char.encode("utf-8", _ERRORS) if _BYTE_CHAR[b] not in self.vocab]
            if missing:
                raise ValueError(f"cannot encode the character {char!r}: the vocabulary has no token "
                                 f"for its byte 0x{missing[0]:02X} (never seen in training)")

    def merge_steps(self, piece: str) -> list[MergeStep]:
        """Every merge :meth:`encode` applies to one pre-split piece, in order (for figures).
        The first entry, rank -1, is the start: the piece's bytes as byte-level characters."""
        steps = [MergeStep(-1, ("", ""), tuple(self._spell(piece)))]     # the start: bytes
        self._merge(list(steps[0].symbols), steps)
        return steps

    def _parts(self, text: str, allow_special: bool):
        """``text`` as (is_control, part): cut at control tokens only when they are allowed."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if not allow_special or self._special_split is None:
            return [(False, text)]
        return [(i % 2 == 1, part) for i, part in enumerate(self._special_split.split(text)) if part]

    def encode(self, text: str, allow_special: bool = False) -> list[int]:
        """Text -> ids. Control tokens written in ``text`` are recognised only when
        ``allow_special=True``; otherwise they are ordinary characters (see the docstring)."""
        ids = []
        for control, part in self._parts(text, allow_special):
            if control:
                ids.append(self.special_tokens[part])
            else:
                for piece in pre_split(part, self.split_digits):
                    ids.extend(self._piece_ids(piece))
        return ids

    def tokenize(self, text: str, allow_special: bool = False) -> list[str]:
        """The tokens of ``text`` in the vocabulary's byte-level spelling (" thee" is "Ġthee")."""
        return [self.tokens[i] for i in self.encode(text, allow_special)]

    def decode(self, ids, skip_special: bool = False) -> str:
        """Ids -> text. Bytes that are not whole UTF-8 characters (a sample cut mid-character)
        show as U+FFFD; ``skip_special=True`` leaves control tokens out."""
        ids = check_token_ids(ids, self.vocab_size)
        special = set(self.special_tokens.values()) if skip_special else set()
        data = b"".join(self._token_bytes[i] for i in ids if i not in special)
        return data.decode("utf-8", _REPLACE)

    # --- chat ----------------------------------------------------------------------------------

    def encode_chat(self, messages, add_generation_prompt: bool = True) -> list[int]:
        """A chat's ids, control tokens written by the **template** only.

        The template renders with each message's content replaced by a placeholder; that text
        is cut at the control tokens the template wrote (each becomes its id), and each content
        is put back in its placeholder's place as plain text, encoded with control tokens off.
        For ordinary messages this equals ``encode(render_chat(...), allow_special=True)``; a
        message that types "<|im_end|>" stays text instead of ending its turn."""
        if self.chat_template is None:
            raise ValueError("this tokenizer has no chat template (tokenizer.chat_template)")
        messages = _check_messages(messages)
        marks = [f"\ue000{i}\ue001" for i in range(len(messages))]    # private-use characters
        shell = [{"role": m["role"], "content": mark} for m, mark in zip(messages, marks)]
        rendered = render_chat(self.chat_template, shell, add_generation_prompt)
        if any(rendered.count(mark) != 1 for mark in marks):
            raise ValueError("the chat template changes or repeats message contents, so encode_chat "
                             "cannot keep control tokens out of them")
        content = {mark: m["content"] for mark, m in zip(marks, messages)}
        ids = []
        for control, part in self._parts(rendered, allow_special=True):
            if control:
                ids.append(self.special_tokens[part])
            else:
                text = regex.sub("\ue000\\d+\ue001", lambda hit: content[hit.group()], part)
                ids.extend(self.encode(text, allow_special=False))
        return ids


def _check_messages(messages) -> list[dict]:
    """``messages`` as a list of ``{"role", "content"}`` dicts, or a ``ValueError`` saying which one
    is wrong. Roles must be system, user or assistant; content any string, the empty one too."""
    if isinstance(messages, (str, dict)) or not hasattr(messages, "__iter__"):
        raise ValueError('messages must be a list of {"role": ..., "content": ...} dicts')
    checked = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not {"role", "content"} <= set(message):
            raise ValueError(f'message {i} must be a dict with keys "role" and "content", got {message!r}')
        if message["role"] not in CHAT_ROLES:
            raise ValueError(f"message {i} has role {message['role']!r}; the roles are "
                             f"{', '.join(CHAT_ROLES)}")
        if not isinstance(message["content"], str):
            raise ValueError(f"message {i}'s content must be a str, got {type(message['content']).__name__}")
        checked.append(dict(message))
    return checked


def render_chat(template: str, messages, add_generation_prompt: bool = True, **variables) -> str:
    """The chat as text, rendered by ``template`` (Jinja2, as Hugging Face does: a sandbox that
    cannot touch files or Python objects, ``trim_blocks`` and ``lstrip_blocks`` on). Control
    tokens appear in it as text: encode it with ``allow_special=True`` only if you wrote every
    message yourself (otherwise use :meth:`ByteBPE.encode_chat`)."""
    def raise_exception(message):
        raise TemplateError(message)

    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                extensions=["jinja2.ext.loopcontrols"])
    environment.globals["raise_exception"] = raise_exception
    return environment.from_string(template).render(
        messages=_check_messages(messages), add_generation_prompt=add_generation_prompt, **variables)
