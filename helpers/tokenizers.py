"""Tokenizers: characters and byte-level byte-pair encoding (introduced in notebook 05_text_to_numbers).

* :class:`CharTokenizer`: one id per character seen in its training text. Simple, but a
  character it never saw has no id: ``encode`` raises a ``ValueError`` naming it.
* :class:`BPETokenizer`: starts from the 256 possible bytes of UTF-8 text, so *any* string
  can be encoded, then learns merges: the most frequent adjacent pair of tokens becomes a new
  token, again and again, until the vocabulary has the size asked for.

:class:`BPETokenizer` works on the raw bytes of the whole text, with no pre-splitting into
words, so the algorithm is exactly the one notebook 05 writes from scratch (merges may cross
spaces: ``"e, "`` and ``":\\n"`` are tokens of the course tokenizer). :class:`PreSplitBPETokenizer`
adds what GPT-2 adds: the text is first cut by a regex (:data:`GPT2_SPLIT`) into words with
their leading space, numbers, punctuation and whitespace, merges never cross those pieces
(:func:`train_merges_pieces`), and *special tokens* such as ``<|endoftext|>`` get ids of their
own that no merge ever touches.

Two trainers give **identical merges**: :func:`train_merges_naive` recounts every pair
after each merge (easy to read, slow); :func:`train_merges` keeps the pair counts up to date
incrementally, touching only the places each merge changes (fast). Ties between equally
frequent pairs go to the smallest pair ``(a, b)``, in both.

Decoding checks its input: every id must be a whole number from 0 to ``vocab_size - 1``
(``-1`` is not "the last token"), or a ``ValueError`` says which one is not.
"""

import codecs
import heapq
import json
import operator
from collections import Counter, defaultdict
from pathlib import Path

import regex  # the third-party `regex` package: stdlib `re` has no \p{L} (any letter)

from helpers.artefacts import atomic_write

# Python strings may hold lone surrogates (e.g. "\ud800"), which strict UTF-8 refuses;
# "surrogatepass" encodes them too, so that decode(encode(s)) == s for every str.
_ERRORS = "surrogatepass"


def _surrogatepass_then_replace(error: UnicodeDecodeError):
    """Decoding's error handler: lone surrogates as :data:`_ERRORS` encodes them, any other
    invalid bytes as U+FFFD, the replacement character."""
    try:
        return codecs.lookup_error(_ERRORS)(error)
    except UnicodeDecodeError:
        return codecs.replace_errors(error)


_REPLACE = "behind-the-curtain-surrogatepass-replace"
codecs.register_error(_REPLACE, _surrogatepass_then_replace)


def check_token_ids(ids, vocab_size: int) -> list[int]:
    """``ids`` as a list of ints, or a ``ValueError`` naming the first id that is not a whole
    number from 0 to ``vocab_size - 1`` (negative ids, floats, bools and strings are refused).
    Accepts any sequence of integers: a list, a NumPy array or a 1-D tensor."""
    try:                                             # a tensor or NumPy array: plain Python numbers
        ids = list(ids.tolist() if hasattr(ids, "tolist") else ids)
    except TypeError:
        raise ValueError(f"ids must be a sequence of token ids from 0 to {vocab_size - 1}, e.g. [5, 12, 7]; "
                         f"got {type(ids).__name__}") from None
    checked = []
    for position, token in enumerate(ids):
        try:
            number = operator.index(token)
        except TypeError:
            number = None
        if number is None or isinstance(token, bool) or not 0 <= number < vocab_size:
            raise ValueError(f"token id {token!r} (at position {position}) is not in the vocabulary: "
                             f"ids must be whole numbers from 0 to {vocab_size - 1}") from None
        checked.append(number)
    return checked


class CharTokenizer:
    """One id per distinct character of the training text, in sorted order."""

    def __init__(self, text: str):
        self.chars = sorted(set(text))
        self.stoi = {ch: i for i, ch in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[ch] for ch in text]
        except KeyError as err:
            raise ValueError(f"the character {err.args[0]!r} was not in the training text, so it has no id") from None

    def decode(self, ids) -> str:
        """Ids -> text; an id outside the vocabulary raises a ``ValueError`` naming it."""
        return "".join(self.chars[i] for i in check_token_ids(ids, self.vocab_size))


# --- training -----------------------------------------------------------------------

def pair_counts(ids) -> Counter:
    """How often each adjacent pair occurs in ``ids`` (overlapping: [1, 1, 1] has (1, 1) twice)."""
    return Counter(zip(ids, ids[1:]))


def merge(ids, pair, new_id) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids``, left to right and non-overlapping, by ``new_id``."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _best(counts):
    """The most frequent pair; ties go to the smallest pair."""
    return min(counts, key=lambda pair: (-counts[pair], pair))


def train_merges_naive(ids, num_merges: int, first_id: int = 256) -> list[tuple[int, int]]:
    """BPE the simple way: count all pairs, merge the most frequent, repeat ``num_merges`` times."""
    ids, merges = list(ids), []
    for k in range(num_merges):
        counts = pair_counts(ids)
        if not counts:
            break
        pair = _best(counts)
        ids = merge(ids, pair, first_id + k)
        merges.append(pair)
    return merges


class _LinkedTokens:
    """A token sequence as a doubly linked list, with every adjacent pair's count and positions.

    ``merge_pair`` replaces a pair everywhere (left to right, non-overlapping) and updates the
    counts of only the pairs around each change: the heart of the fast trainer and encoder.
    ``where[pair]`` lists positions where ``pair`` started at some point; entries that have
    gone stale are simply skipped when that pair is merged (cheaper than deleting them).
    """

    def __init__(self, ids, track_best: bool = True):
        self.seq = list(ids)
        n = self.n = len(self.seq)
        self.nxt = list(range(1, n + 1))   # nxt[i] == n: no next token
        self.prv = list(range(-1, n - 1))  # prv[i] == -1: no previous token
        self.alive = [True] * n
        self.counts = Counter(zip(self.seq, self.seq[1:]))
        self.where = defaultdict(list)
        for i, pair in enumerate(zip(self.seq, self.seq[1:])):
            self.where[pair].append(i)
        self.track_best = track_best
        self.heap = [(-c, pair) for pair, c in self.counts.items()] if track_best else []
        heapq.heapify(self.heap)

    def best_pair(self):
        """The most frequent pair (ties: the smallest), or None when no pair is left."""
        heap = self.heap
        while heap and self.counts.get(heap[0][1], 0) != -heap[0][0]:
            heapq.heappop(heap)  # stale: that pair's count has changed since it was pushed
        return heap[0][1] if heap else None

    def merge_pair(self, pair, new_id) -> None:
        seq, nxt, prv, alive, n = self.seq, self.nxt, self.prv, self.alive, self.n
        counts, where = self.counts, self.where
        changed = set()
        a, b = pair
        for i in sorted(where.pop(pair, ())):
            if not alive[i] or seq[i] != a:
                continue  # stale, or consumed by an overlapping occurrence on its left
            j = nxt[i]
            if j >= n or seq[j] != b:
                continue
            left, right = prv[i], nxt[j]
            counts[pair] -= 1
            if left >= 0:  # (x, a) becomes (x, new)
                old = (seq[left], a)
                counts[old] -= 1
                new = (seq[left], new_id)
                counts[new] += 1
                where[new].append(left)
                changed.update((old, new))
            if right < n:  # (b, y) becomes (new, y)
                old = (b, seq[right])
                counts[old] -= 1
                new = (new_id, seq[right])
                counts[new] += 1
                where[new].append(i)
                changed.update((old, new))
                prv[right] = i
            seq[i] = new_id
            alive[j] = False
            nxt[i] = right
        changed.add(pair)
        for p in changed:
            if counts.get(p, 0) <= 0:
                counts.pop(p, None)
            elif self.track_best:  # one fresh heap entry per pair whose count changed
                heapq.heappush(self.heap, (-counts[p], p))

    def tokens(self) -> list[int]:
        return [t for t, ok in zip(self.seq, self.alive) if ok]


def train_merges(ids, num_merges: int, first_id: int = 256) -> list[tuple[int, int]]:
    """The same merges as :func:`train_merges_naive`, fast: pair counts are kept up to date
    incrementally (see ``_LinkedTokens``) and a heap finds the most frequent pair."""
    tokens = _LinkedTokens(ids)
    merges = []
    for k in range(num_merges):
        pair = tokens.best_pair()
        if pair is None:
            break
        tokens.merge_pair(pair, first_id + k)
        merges.append(pair)
    return merges


def train_merges_pieces(pieces: Counter, num_merges: int, first_id: int = 256) -> list[tuple[int, int]]:
    """BPE within pieces: ``pieces`` maps each distinct piece (a sequence of ids, e.g. a word's
    bytes) to how often it occurs. A pair is counted inside pieces only, weighted by the piece's
    count, so no merge ever joins the end of one piece to the start of the next. Ties as in
    :func:`train_merges`. Only the pieces that hold the chosen pair are touched at each merge."""
    words = [list(piece) for piece in pieces]
    weights = list(pieces.values())
    counts, where = Counter(), defaultdict(set)   # pair -> count; pair -> pieces that (may) hold it
    for w, (ids, n) in enumerate(zip(words, weights)):
        for pair in zip(ids, ids[1:]):
            counts[pair] += n
            where[pair].add(w)
    merges = []
    for k in range(num_merges):
        if not counts:
            break
        pair = _best(counts)
        touched = set()
        for w in where.pop(pair):
            ids, n = words[w], weights[w]
            for p in zip(ids, ids[1:]):           # take the piece's old pairs out...
                counts[p] -= n
                touched.add(p)
            words[w] = ids = merge(ids, pair, first_id + k)
            for p in zip(ids, ids[1:]):           # ...and its new ones in
                counts[p] += n
                where[p].add(w)
        for p in touched:
            if counts[p] <= 0:
                del counts[p]
        merges.append(pair)
    return merges


# --- the tokenizer ------------------------------------------------------------------

def _merge_pair(pair, rank: int) -> tuple[int, int]:
    """One merge as a pair of ints, or a ``ValueError``: a merge is two whole-number token ids
    (strings, floats and bools are refused, even ``"7"`` or ``7.0``)."""
    if not isinstance(pair, (list, tuple)) or len(pair) != 2 or isinstance(pair[0], bool) or isinstance(pair[1], bool):
        raise ValueError(f"merge {rank} is {pair!r}, not a pair of two token ids")
    try:
        return operator.index(pair[0]), operator.index(pair[1])
    except TypeError:
        raise ValueError(f"merge {rank} is {pair!r}, not a pair of two whole-number token ids") from None


class BPETokenizer:
    """Byte-level BPE: ids 0-255 are bytes, ids from 256 on are learned merges (in rank order)."""

    FORMAT = "behind-the-curtain-bpe-v1"

    def __init__(self, merges=()):
        self.merges = [_merge_pair(pair, rank) for rank, pair in enumerate(merges)]
        self.vocab = [bytes([i]) for i in range(256)]
        for rank, (a, b) in enumerate(self.merges):
            if not (0 <= a < len(self.vocab) and 0 <= b < len(self.vocab)):
                raise ValueError(f"merge {rank} {(a, b)} refers to a token that does not exist yet")
            self.vocab.append(self.vocab[a] + self.vocab[b])

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @classmethod
    def train(cls, text: str, vocab_size: int) -> "BPETokenizer":
        """Learn ``vocab_size - 256`` merges from ``text`` with the fast trainer."""
        if vocab_size < 256:
            raise ValueError(f"a byte-level vocabulary has at least 256 tokens, got vocab_size={vocab_size}")
        return cls(train_merges(text.encode("utf-8", _ERRORS), vocab_size - 256))

    def truncated(self, vocab_size: int) -> "BPETokenizer":
        """The tokenizer with only its first merges, ``vocab_size`` tokens in all: exactly what
        training to that size gives."""
        smallest = self.vocab_size - len(self.merges)   # the 256 bytes (and any special tokens)
        if not smallest <= vocab_size <= self.vocab_size:
            raise ValueError(f"vocab_size must be between {smallest} and {self.vocab_size}, got {vocab_size}")
        return type(self)(self.merges[: vocab_size - smallest])

    def encode(self, text: str) -> list[int]:
        """Text -> token ids: its UTF-8 bytes, then each merge applied everywhere, in the order learned.

        (A new token can only take part in later merges, so this equals "repeatedly merge the
        adjacent pair learned first", the usual description.)
        """
        tokens = _LinkedTokens(text.encode("utf-8", _ERRORS), track_best=False)
        for rank, pair in enumerate(self.merges):
            if tokens.counts.get(pair):
                tokens.merge_pair(pair, 256 + rank)
        return tokens.tokens()

    def decode(self, ids, errors: str = "replace") -> str:
        """Token ids -> text. Ids outside the vocabulary raise a ``ValueError`` saying so.

        The ids' bytes need not be valid UTF-8: a sampled sequence can stop in the middle of a
        character, or put a character's bytes in an impossible order. ``errors="replace"`` (the
        default) shows each such piece as U+FFFD, the replacement character (a "?" in a diamond);
        ``errors="strict"`` raises a ``ValueError`` saying where the bytes go wrong. Text that
        :meth:`encode` made always decodes back exactly, lone surrogates included.
        """
        if errors not in ("replace", "strict"):
            raise ValueError(f"errors must be 'replace' or 'strict', got {errors!r}")
        data = b"".join(self._bytes(i) for i in check_token_ids(ids, self.vocab_size))
        if errors == "replace":
            return data.decode("utf-8", _REPLACE)
        try:
            return data.decode("utf-8", _ERRORS)
        except UnicodeDecodeError as err:
            bad = data[err.start: err.end]
            raise ValueError(f"these token ids do not make valid UTF-8 text: the bytes {bad!r} at byte "
                             f"{err.start} are not a whole character ({err.reason}); use errors='replace' "
                             "to show such bytes as U+FFFD") from None

    def tokenize(self, text: str) -> list[str]:
        """The pieces ``text`` splits into, one string per token (bytes that are not whole
        characters on their own are shown as ``<0xAB>``)."""
        pieces = []
        for i in self.encode(text):
            try:
                pieces.append(self._bytes(i).decode("utf-8"))
            except UnicodeDecodeError:
                pieces.append("".join(f"<0x{byte:02X}>" for byte in self._bytes(i)))
        return pieces

    def _bytes(self, i: int) -> bytes:
        """The bytes token ``i`` stands for."""
        return self.vocab[i]

    def save(self, path) -> None:
        """Write the merges to a small JSON file, atomically (a temporary file, then a rename).
        The folder must exist: a ``FileNotFoundError`` names ``path`` when it does not."""
        payload = json.dumps({"format": self.FORMAT, "merges": self.merges}, separators=(",", ":"))
        atomic_write(path, payload + "\n")

    @classmethod
    def load(cls, path) -> "BPETokenizer":
        """Read a tokenizer written by :meth:`save`; a missing or damaged file gets a clear error."""
        path = Path(path)
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"no tokenizer file at {path}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path} is not a valid tokenizer file (damaged JSON: {err})") from None
        except RecursionError:
            raise ValueError(f"{path} is not a valid tokenizer file (its JSON is nested too deeply "
                             "to read)") from None
        if not isinstance(payload, dict) or payload.get("format") != cls.FORMAT or not isinstance(payload.get("merges"), list):
            raise ValueError(f"{path} is not a {cls.FORMAT} tokenizer file")
        try:
            return cls(payload["merges"])
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path} holds invalid merges: {err}") from None


# --- GPT-2's additions: a regex pre-split and special tokens -------------------------------

# GPT-2's split: English endings, letters with an optional leading space, digits with one,
# other symbols with one, whitespace not followed by a non-space (so the last space goes with
# the next word), and any remaining whitespace.
GPT2_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
END_OF_TEXT = "<|endoftext|>"


class PreSplitBPETokenizer(BPETokenizer):
    """Byte-level BPE the way GPT-2 does it: the text is cut into pieces by :data:`GPT2_SPLIT`
    and merges happen only inside a piece; :data:`END_OF_TEXT` is a special token whose id comes
    after the merges (``vocab_size - 1``) and which no merge ever touches."""

    FORMAT = "behind-the-curtain-bpe-presplit-v1"
    SPECIAL = (END_OF_TEXT,)
    _split = regex.compile(GPT2_SPLIT)

    def __init__(self, merges=()):
        super().__init__(merges)
        self.special = {token: len(self.vocab) + k for k, token in enumerate(self.SPECIAL)}
        self._cache = {}                                  # piece -> its ids (text repeats its words)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab) + len(self.special)

    @classmethod
    def pieces(cls, text: str) -> list[str]:
        """The pieces GPT-2's regex cuts ``text`` into; they join back to ``text``."""
        return cls._split.findall(text)

    @classmethod
    def _chunks(cls, text: str, allow_special: bool):
        """``text`` cut around special tokens (only when ``allow_special``): (chunk, is_special)."""
        if not allow_special:
            return [(text, False)]
        parts = regex.split("(" + "|".join(map(regex.escape, cls.SPECIAL)) + ")", text)
        return [(part, k % 2 == 1) for k, part in enumerate(parts) if part]

    @classmethod
    def train(cls, text: str, vocab_size: int) -> "PreSplitBPETokenizer":
        """Learn ``vocab_size - 256 - 1`` merges (the last id is ``<|endoftext|>``) inside the
        pieces of ``text``; special tokens in ``text`` separate documents and are never merged."""
        if vocab_size < 256 + len(cls.SPECIAL):
            raise ValueError(f"vocab_size must be at least {256 + len(cls.SPECIAL)}, got {vocab_size}")
        counts = Counter(piece.encode("utf-8", _ERRORS) for chunk, special in cls._chunks(text, True)
                         if not special for piece in cls.pieces(chunk))
        return cls(train_merges_pieces(counts, vocab_size - 256 - len(cls.SPECIAL)))

    def encode(self, text: str, allow_special: bool = False) -> list[int]:
        """Text -> ids: each piece encoded on its own by the merges (in the order learned). With
        ``allow_special=True`` the string ``<|endoftext|>`` becomes its one special id; without,
        it is ordinary text (so text typed by a user can never insert a special token)."""
        ids = []
        for chunk, special in self._chunks(text, allow_special):
            if special:
                ids.append(self.special[chunk])
                continue
            for piece in self.pieces(chunk):
                if piece not in self._cache:
                    self._cache[piece] = super().encode(piece)
                ids.extend(self._cache[piece])
        return ids

    def _bytes(self, i: int) -> bytes:
        return self.vocab[i] if i < len(self.vocab) else self.SPECIAL[i - len(self.vocab)].encode()

