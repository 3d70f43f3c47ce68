"""Tokenizers: characters and byte-level byte-pair encoding (introduced in notebook 05_text_to_numbers).

* :class:`CharTokenizer`: one id per character seen in its training text. Simple, but a
  character it never saw has no id: ``encode`` raises a ``ValueError`` naming it.
* :class:`BPETokenizer`: starts from the 256 possible bytes of UTF-8 text, so *any* string
  can be encoded, then learns merges: the most frequent adjacent pair of tokens becomes a new
  token, again and again, until the vocabulary has the size asked for.

BPE here works on the raw bytes of the whole text, with no pre-splitting into words, so the
algorithm is exactly the one notebook 05 writes from scratch (merges may cross spaces).

Two trainers give **identical merges**: :func:`train_merges_naive` recounts every pair
after each merge (easy to read, slow); :func:`train_merges` keeps the pair counts up to date
incrementally, touching only the places each merge changes (fast). Ties between equally
frequent pairs go to the smallest pair ``(a, b)``, in both.
"""

import heapq
import json
import os
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

# Python strings may hold lone surrogates (e.g. "\ud800"), which strict UTF-8 refuses;
# "surrogatepass" encodes them too, so that decode(encode(s)) == s for every str.
_ERRORS = "surrogatepass"


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
        try:
            return "".join(self.chars[i] for i in ids)
        except (IndexError, TypeError):
            raise ValueError(f"ids must be integers from 0 to {self.vocab_size - 1}") from None


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


# --- the tokenizer ------------------------------------------------------------------

class BPETokenizer:
    """Byte-level BPE: ids 0-255 are bytes, ids from 256 on are learned merges (in rank order)."""

    FORMAT = "behind-the-curtain-bpe-v1"

    def __init__(self, merges=()):
        self.merges = [tuple(int(t) for t in pair) for pair in merges]
        self.vocab = [bytes([i]) for i in range(256)]
        for a, b in self.merges:
            if not (0 <= a < len(self.vocab) and 0 <= b < len(self.vocab)):
                raise ValueError(f"merge {(a, b)} refers to a token that does not exist yet")
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
        """The tokenizer with only the first ``vocab_size - 256`` merges: exactly what training to that size gives."""
        if not 256 <= vocab_size <= self.vocab_size:
            raise ValueError(f"vocab_size must be between 256 and {self.vocab_size}, got {vocab_size}")
        return BPETokenizer(self.merges[: vocab_size - 256])

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

    def decode(self, ids) -> str:
        """Token ids -> text. Ids outside the vocabulary raise a ``ValueError`` saying so."""
        try:
            data = b"".join(self.vocab[i] for i in ids)
        except (IndexError, TypeError):
            raise ValueError(f"token ids must be integers from 0 to {self.vocab_size - 1}") from None
        return data.decode("utf-8", _ERRORS)

    def tokenize(self, text: str) -> list[str]:
        """The pieces ``text`` splits into, one string per token (bytes that are not whole
        characters on their own are shown as ``<0xAB>``)."""
        pieces = []
        for i in self.encode(text):
            try:
                pieces.append(self.vocab[i].decode("utf-8"))
            except UnicodeDecodeError:
                pieces.append("".join(f"<0x{byte:02X}>" for byte in self.vocab[i]))
        return pieces

    def save(self, path) -> None:
        """Write the merges to a small JSON file, atomically (a temporary file, then a rename)."""
        path = Path(path)
        payload = json.dumps({"format": self.FORMAT, "merges": self.merges}, separators=(",", ":"))
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(payload + "\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

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
        if not isinstance(payload, dict) or payload.get("format") != cls.FORMAT or not isinstance(payload.get("merges"), list):
            raise ValueError(f"{path} is not a {cls.FORMAT} tokenizer file")
        try:
            return cls(payload["merges"])
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path} holds invalid merges: {err}") from None
