"""From a base model to an assistant, part 1: the chat format and supervised fine-tuning
(notebook 13_base_model_to_assistant; the preference stage is in ``helpers/preferences.py``).

- **Special tokens.** :data:`SPECIAL` names three control tokens, ``[USER]``, ``[ASSISTANT]`` and
  ``[END]``, appended to the 78-character vocabulary as ids 78, 79, 80. :func:`add_special_tokens`
  grows the model's embedding (which is also its output head: the weights are tied) by three
  rows, each the mean of the pretrained rows; the pretrained rows are copied unchanged.
- **The chat template.** :func:`encode_chat` turns a list of ``(role, text)`` messages into ids:
  ``[ROLE] text [END]`` per message, then ``[ASSISTANT]`` when a reply is wanted. The text is
  encoded character by character, so a user who *types* ``[END]`` gets five ordinary
  characters, never the control token (the classic chat-template injection cannot happen).
  :func:`render` shows ids as text; :func:`chatml` is the same conversation in ChatML, the
  template of real models.
- **The instruction set.** :func:`instruction_set`: three task kinds made from lines of the
  plays, each with an automatic score (:func:`score`): modernise a line (notebook 11's rules),
  shout it (capitals), name its last word. Training lines come from the training plays,
  evaluation lines from the six held-out plays.
- **SFT.** :func:`sft_targets` is the loss mask: only the tokens the assistant wrote (its text
  and its ``[END]``) are predicted; :func:`sft_batch` pads a batch; :func:`train_sft` runs
  ``helpers.training.fit``.
- **Generation.** :func:`generate` answers a batch of prompts at once and stops each at its
  ``[END]``; a reply that never ends, or starts another turn, is reported as such.
- **The base model, prompted:** :func:`few_shot_prompt` (one worked example, :data:`FEW_SHOT`)
  and :func:`evaluate`, the scores of a model on held-out prompts.
"""

import dataclasses
import random
import re
import time

import torch
from torch.nn import functional as F

from helpers import finetune, gpt, training

SPECIAL = ("[USER]", "[ASSISTANT]", "[END]")     # control tokens, in the order of their ids (78, 79, 80)
ROLES = ("user", "assistant")
TASKS = ("modernise", "shout", "last word")
INSTRUCTION = {"modernise": "Modernise: ", "shout": "Shout: ", "last word": "Last word: "}


# ---------------------------------------------------------------- special tokens

class ChatTokenizer:
    """The course's character tokenizer plus the control tokens of :data:`SPECIAL` (ids after the
    characters). ``encode`` only ever returns character ids: control tokens are added by the
    template, never read from text."""

    def __init__(self, char_tokenizer):
        self.chars = char_tokenizer
        n = char_tokenizer.vocab_size
        self.user, self.assistant, self.end = n, n + 1, n + 2
        self.role_id = {"user": self.user, "assistant": self.assistant}

    @property
    def vocab_size(self) -> int:
        return self.chars.vocab_size + len(SPECIAL)

    def __eq__(self, other) -> bool:
        return isinstance(other, ChatTokenizer) and self.chars.chars == other.chars.chars

    def encode(self, text: str) -> list[int]:
        """Plain text -> character ids; a character outside the vocabulary is a clear ``ValueError``."""
        try:
            return self.chars.encode(text)
        except ValueError:
            bad = next(ch for ch in text if ch not in self.chars.stoi)
            raise ValueError(f"the character {bad!r} is not among the model's {self.chars.vocab_size} "
                             "characters; leave it out or replace it") from None

    def decode(self, ids) -> str:
        """Ids -> text, control tokens shown by their names (``[END]``)."""
        n = self.chars.vocab_size
        return "".join(SPECIAL[i - n] if i >= n else self.chars.decode([i]) for i in ids)


def add_special_tokens(model, n_new: int = len(SPECIAL)) -> gpt.GPT:
    """A copy of ``model`` whose vocabulary has ``n_new`` more tokens: the embedding matrix (tied to
    the output head) gets ``n_new`` rows at the end, each the **mean of the pretrained rows**;
    every other weight, the pretrained rows included, is copied unchanged.

    Why the mean: a new token's logit is ``h . e_new``, the average of the old tokens' logits, so
    at first the model gives it an unremarkable probability and its predictions of ordinary
    text change little (a random row could give a huge logit); and as an *input*, the new token
    looks like an average character until training teaches it more."""
    config = dataclasses.replace(model.config, vocab_size=model.config.vocab_size + n_new)
    bigger = gpt.GPT(config)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    old = state["token_embedding.weight"]
    new_rows = old.mean(dim=0, keepdim=True).expand(n_new, -1)
    state["token_embedding.weight"] = torch.cat([old, new_rows])
    state["lm_head.weight"] = state["token_embedding.weight"]
    bigger.load_state_dict(state)
    return bigger.eval()


# ---------------------------------------------------------------- the chat template

def _check_messages(messages) -> list[tuple[str, str]]:
    if not isinstance(messages, (list, tuple)) or not messages:
        raise ValueError("messages must be a non-empty list of (role, text) pairs, e.g. [('user', 'Shout: hello')]")
    out = []
    for i, message in enumerate(messages):
        if not (isinstance(message, (list, tuple)) and len(message) == 2):
            raise ValueError(f"message {i} is {message!r}; each message is a (role, text) pair")
        role, text = message
        if role not in ROLES:
            raise ValueError(f"message {i} has the unknown role {role!r}; the roles are {ROLES}")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"message {i} ({role}) is empty; a turn needs some text")
        out.append((role, text))
    return out


def encode_chat(tok: ChatTokenizer, messages, add_reply_start: bool = True) -> list[int]:
    """The chat template: ``[ROLE] text [END]`` for each ``(role, text)`` message, then
    ``[ASSISTANT]`` (``add_reply_start``) so that the model writes the next turn. Text is encoded
    character by character (:meth:`ChatTokenizer.encode`): typed ``[END]`` stays five characters.
    An empty message, an unknown role or a character outside the vocabulary is a ``ValueError``."""
    ids = []
    for role, text in _check_messages(messages):
        ids += [tok.role_id[role]] + tok.encode(text) + [tok.end]
    return ids + ([tok.assistant] if add_reply_start else [])


def render(tok: ChatTokenizer, ids) -> str:
    """Ids as text, control tokens by name: what the model sees, made readable."""
    return tok.decode(ids)


def chatml(messages, add_reply_start: bool = True) -> str:
    """The same conversation in ChatML, the template of SmolLM2 (notebook 14) and many real models:
    ``<|im_start|>role\\ntext<|im_end|>\\n`` per message. There ``<|im_start|>`` and
    ``<|im_end|>`` are single control tokens of the model's vocabulary, as ours are."""
    text = "".join(f"<|im_start|>{role}\n{content}<|im_end|>\n" for role, content in _check_messages(messages))
    return text + ("<|im_start|>assistant\n" if add_reply_start else "")


# ---------------------------------------------------------------- the instruction set

def archaic_words(text: str) -> int:
    """How many of notebook 11's old words (``finetune.MODERN_WORDS``: thou, hath, 'tis, ...) ``text`` holds."""
    return len(finetune._WORD.findall(text))


def last_word(line: str) -> str:
    """The last word of ``line``, without punctuation: ``"Good night, sweet prince!"`` -> ``"prince"``."""
    words = re.findall(r"[A-Za-z]+(?:'[A-Za-z]+)*", line)
    return words[-1] if words else ""


def answer(task: str, line: str) -> str:
    """The right answer to ``task`` for ``line``: computed by a rule, so every answer is scored automatically."""
    if task == "modernise":
        return finetune.modernise(line)
    if task == "shout":
        return line.upper()
    if task == "last word":
        return last_word(line)
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def score(task: str, line: str, reply: str) -> float:
    """1.0 if ``reply`` is exactly the right answer (:func:`answer`), else 0.0."""
    return float(reply == answer(task, line))


def lines_for(task: str, split: str, max_length: int = 32) -> list[str]:
    """The distinct lines (12 to ``max_length`` characters) of the ``split`` plays (``"train"`` or
    ``"held-out"``) usable for ``task``, in play order: for ``modernise`` only lines the rules
    change (so copying the line is never right); for the others any line with a word."""
    seen, out = set(), []
    for play in finetune._plays(split):
        for line in play.text.split("\n"):
            line = line.strip()
            if not 12 <= len(line) <= max_length or line.endswith(":") or line in seen or not last_word(line):
                continue
            if task == "modernise" and finetune.modernise(line) == line:
                continue
            seen.add(line)
            out.append(line)
    return out


@dataclasses.dataclass(frozen=True)
class SFTConfig:
    """The instruction set and the supervised fine-tune (notebook 13)."""
    per_task: int = 1200          # training examples per task (training plays)
    eval_per_task: int = 40       # held-out examples per task (held-out plays)
    max_length: int = 32          # characters per line
    steps: int = 600
    batch_size: int = 16
    lr: float = 1e-3              # full fine-tuning, AdamW, constant
    eval_every: int = 50
    seed: int = 0


SFT = SFTConfig()


def instruction_set(split: str, per_task: int, seed: int = 0, max_length: int = 32) -> list[tuple[str, str]]:
    """``per_task`` random ``(task, line)`` examples of each of :data:`TASKS` from the ``split`` plays,
    shuffled. The user's message is ``INSTRUCTION[task] + line``; the reply is ``answer(task, line)``."""
    rng = random.Random(seed)
    examples = [(task, line) for task in TASKS
                for line in rng.sample(lines_for(task, split, max_length), per_task)]
    rng.shuffle(examples)
    return examples


def conversation(task: str, line: str, with_answer: bool = True):
    """The messages of one example: the user's instruction and (``with_answer``) the assistant's reply."""
    messages = [("user", INSTRUCTION[task] + line)]
    return messages + [("assistant", answer(task, line))] if with_answer else messages


# ---------------------------------------------------------------- SFT: the loss mask

def sft_targets(ids, assistant_id: int, end_id: int) -> list[int]:
    """The next-token targets of a conversation ``ids`` (length ``T``; targets ``T - 1``): position
    ``t`` predicts ``ids[t + 1]`` only when that token was written by the assistant (its text and
    its closing ``[END]``), else ``-100`` (ignored by the loss). The user's turn and the
    ``[ASSISTANT]`` marker are given, not learnt."""
    targets = [-100] * (len(ids) - 1)
    inside = False                       # inside an assistant turn (after [ASSISTANT], up to its [END])
    for t, token in enumerate(ids):
        if inside and t > 0:
            targets[t - 1] = token
        if token == assistant_id:
            inside = True
        elif token == end_id:
            inside = False
    return targets


def sft_batch(tok: ChatTokenizer, examples, pad_id: int = 0):
    """``(x, y)`` ``(B, T)`` for a list of ``(task, line)`` examples: the conversations, right-padded,
    and their :func:`sft_targets` (``-100`` on the prompt and the padding)."""
    rows = [encode_chat(tok, conversation(task, line), add_reply_start=False) for task, line in examples]
    T = max(len(r) for r in rows) - 1
    x = torch.full((len(rows), T), pad_id, dtype=torch.long)
    y = torch.full((len(rows), T), -100, dtype=torch.long)
    for i, ids in enumerate(rows):
        x[i, : len(ids) - 1] = torch.tensor(ids[:-1])
        y[i, : len(ids) - 1] = torch.tensor(sft_targets(ids, tok.assistant, tok.end))
    return x, y


@torch.no_grad()
def answer_loss(model, tok: ChatTokenizer, examples, batch_size: int = 60) -> float:
    """Mean cross-entropy (nats per token) on the assistant's tokens of ``examples``."""
    total, count = 0.0, 0
    with training.evaluating(model):
        for i in range(0, len(examples), batch_size):
            x, y = sft_batch(tok, examples[i: i + batch_size])
            logits, _ = model(x)
            total += F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-100, reduction="sum").item()
            count += int((y != -100).sum())
    return total / count


# ---------------------------------------------------------------- generation that stops at [END]

@torch.no_grad()
def generate(model, prompts, stop_id: int | None, max_new_tokens: int = 45, temperature: float = 1.0,
             greedy: bool = True, generator=None, other_stops=()):
    """Continue every prompt of ``prompts`` (lists of ids) at once; returns ``(replies, endings)``.

    ``replies[i]`` holds the new ids before the stop; ``endings[i]`` says how the reply ended:
    ``"end"`` (it wrote ``stop_id``), ``"wrong role"`` (it wrote one of ``other_stops``, e.g. a
    ``[USER]`` marker: it started the next person's turn) or ``"no end"`` (``max_new_tokens``
    without either: the reply is cut off). ``greedy`` takes the most likely token; otherwise
    tokens are sampled at ``temperature`` with ``generator``. Prompts are right-padded: under
    the causal mask the padding after a row's end never changes that row's predictions."""
    if not prompts:
        return [], []
    lengths = [len(p) for p in prompts]
    if min(lengths) == 0:
        raise ValueError("a prompt is empty; give at least one token")
    if max(lengths) + max_new_tokens > model.config.block_size:
        raise ValueError(f"a prompt of {max(lengths)} tokens plus {max_new_tokens} new ones does not fit the "
                         f"model's context of {model.config.block_size}; shorten it or ask for fewer tokens")
    if not greedy and not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}; for greedy decoding use greedy=True")
    B = len(prompts)
    x = torch.zeros(B, max(lengths) + max_new_tokens, dtype=torch.long)
    for i, p in enumerate(prompts):
        x[i, : len(p)] = torch.tensor(p)
    pos = torch.tensor(lengths)
    replies, endings = [[] for _ in range(B)], ["no end"] * B
    active = list(range(B))
    with training.evaluating(model):
        for _ in range(max_new_tokens):
            if not active:
                break
            rows = torch.tensor(active)
            width = int(pos[rows].max())
            logits, _ = model(x[rows, :width])
            logits = logits[torch.arange(len(active)), pos[rows] - 1]              # (A, V) at each row's end
            if greedy:
                nxt = logits.argmax(-1)
            else:
                nxt = torch.multinomial(F.softmax(logits / temperature, -1), 1, generator=generator).squeeze(1)
            still = []
            for row, token in zip(active, nxt.tolist()):
                if token == stop_id or token in other_stops:
                    endings[row] = "end" if token == stop_id else "wrong role"
                    continue
                replies[row].append(token)
                x[row, pos[row]] = token
                pos[row] += 1
                still.append(row)
            active = still
    return replies, endings


def chat_prompts(tok: ChatTokenizer, examples) -> list[list[int]]:
    """The prompt ids of ``(task, line)`` examples: the user's turn, then ``[ASSISTANT]``."""
    return [encode_chat(tok, conversation(task, line, with_answer=False)) for task, line in examples]


def reply(model, tok: ChatTokenizer, messages, max_new_tokens: int = 45, temperature: float = 1.0,
          greedy: bool = True, generator=None) -> tuple[str, str]:
    """``(text, ending)``: the assistant's next turn after ``messages``, stopped at ``[END]``
    (``ending`` as in :func:`generate`: ``"end"``, ``"wrong role"`` or ``"no end"``)."""
    replies, endings = generate(model, [encode_chat(tok, messages)], tok.end, max_new_tokens, temperature,
                                greedy, generator, other_stops=(tok.user, tok.assistant))
    return tok.decode(replies[0]), endings[0]


# ---------------------------------------------------------------- the base model, prompted (few-shot)

FEW_SHOT = {"modernise": "Thou art a fool.", "shout": "Good morrow, sir.", "last word": "Good morrow, sir."}


def few_shot_prompt(task: str, line: str, example_line: str) -> str:
    """A plain-text one-shot prompt for the base model (no special tokens: it has none): one worked
    example, then the question; the answer is read up to the first line break. (The context of
    128 characters leaves room for one example.)"""
    return (f"{INSTRUCTION[task]}{example_line}\n{answer(task, example_line)}\n\n"
            f"{INSTRUCTION[task]}{line}\n")


def evaluate(model, tok: ChatTokenizer, examples, few_shot: dict | None = None) -> dict:
    """Greedy answers to held-out ``examples`` and their scores: per task the share of exact
    answers; ``"format"``, the share of replies that ended with ``[END]`` (not cut off, not
    another role); ``"replies"`` and ``"endings"``. With ``few_shot`` (``{task: example line}``),
    the base model is prompted in plain text instead and its reply read up to a line break."""
    if few_shot is None:
        replies, endings = generate(model, chat_prompts(tok, examples), tok.end,
                                    other_stops=(tok.user, tok.assistant))
    else:
        newline = tok.encode("\n")[0]
        prompts = [tok.encode(few_shot_prompt(task, line, few_shot[task])) for task, line in examples]
        room = model.config.block_size - max(len(p) for p in prompts)       # what the context leaves
        replies, endings = generate(model, prompts, newline, max_new_tokens=min(45, room))
    texts = [tok.decode(r) for r in replies]
    present = [task for task in TASKS if any(t == task for t, _ in examples)]
    result = {task: round(sum(score(t, line, text) for (t, line), text in zip(examples, texts) if t == task)
                          / sum(t == task for t, _ in examples), 4) for task in present}
    result["format"] = round(sum(e == "end" for e in endings) / len(endings), 4)
    return {**result, "replies": texts, "endings": endings}


# ---------------------------------------------------------------- the supervised fine-tune

def load_chat_base():
    """``(model, tok)``: the pretrained GPT of notebook 09 with the three control tokens added."""
    model, char_tok = finetune.load_pretrained()
    return add_special_tokens(model), ChatTokenizer(char_tok)


def sft_data(config: SFTConfig = SFT):
    """``(train_examples, eval_examples)`` of :func:`instruction_set` (training / held-out plays)."""
    return (instruction_set("train", config.per_task, config.seed, config.max_length),
            instruction_set("held-out", config.eval_per_task, config.seed + 1, config.max_length))


def train_sft(steps: int | None = None, config: SFTConfig = SFT, on_eval=None):
    """Fully fine-tune the chat-ready pretrained GPT on the instruction set (loss on the assistant's
    tokens only) by ``helpers.training.fit``. Every ``eval_every`` steps: the loss on the held-out
    examples' answers. Returns ``(model, tok, history)``. A constant learning rate: the first
    ``n`` steps equal a run of ``n`` steps (the notebook reruns a few live)."""
    steps = config.steps if steps is None else steps
    train_examples, eval_examples = sft_data(config)
    model, tok = load_chat_base()
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    history, started = {"step": [], "answer_loss": []}, time.perf_counter()

    def measure(step):
        history["step"].append(step)
        history["answer_loss"].append(round(answer_loss(model, tok, eval_examples), 4))
        if on_eval is not None:
            on_eval(dict(history))

    training.fit(model, lambda: sft_batch(tok, rng.sample(train_examples, config.batch_size)), steps, config.lr,
                 evaluate=measure, eval_at=range(0, steps + 1, config.eval_every))
    history["seconds"] = round(time.perf_counter() - started, 1)
    return model, tok, history
