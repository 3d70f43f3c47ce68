"""From a base model to an assistant, part 2: preferences (notebook 13_base_model_to_assistant;
the chat format and SFT are in ``helpers/assistant.py``).

- **The rule.** :func:`rule_preference` prefers, of two modernisations of a line, the one with
  fewer of notebook 11's old words left (``assistant.archaic_words``). :func:`preference_pairs`
  makes ``(line, chosen, rejected)``: the full modernisation against one that leaves at least
  one old word in place (a lazy, partial answer).
- **A reward model** (RLHF's first step): :class:`RewardModel`, a GPT body with LoRA and a scalar
  head read at the reply's last token, trained with the **Bradley-Terry** loss
  ``-log sigmoid(r(chosen) - r(rejected))`` (:func:`bradley_terry_loss`). :func:`best_of_n` uses
  it: sample ``n`` replies, keep the one it scores highest.
- **DPO** (Rafailov et al., 2023): :func:`dpo_loss` from the policy's and the frozen reference's
  log-probabilities of chosen and rejected replies and ``beta``; :func:`dpo_optimum` is the
  closed form ``pi*(y) ∝ pi_ref(y) exp(r(y) / beta)`` that it reaches on a toy; :func:`train_dpo`
  trains the SFT model with it by ``helpers.training.fit``.
- **Drift:** :func:`kl_estimate`, the KL divergence from the reference estimated on the policy's
  own samples.
- **The three stages** for the explorer: :func:`load_stage` and :func:`stage_reply` (base model
  prompted one-shot, SFT model, DPO model).
"""

import dataclasses
import functools
import random
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from helpers import assistant, checkpoints, finetune, lora, training
from helpers.artefacts import atomic_write
from helpers.checkpoints import CheckpointError


# ---------------------------------------------------------------- the preference rule and the pairs

def rule_preference(a: str, b: str) -> float:
    """1.0 if reply ``a`` keeps fewer old words than ``b`` (the rule prefers it), 0.0 if more, 0.5 on a tie."""
    ka, kb = assistant.archaic_words(a), assistant.archaic_words(b)
    return 1.0 if ka < kb else 0.0 if ka > kb else 0.5


def lazy_modernise(line: str, rng: random.Random) -> str:
    """A partial modernisation: each old word replaced with probability 1/2, but at least one left
    as it was (so the rule always prefers the full :func:`finetune.modernise`)."""
    matches = list(finetune._WORD.finditer(line))
    keep = {rng.randrange(len(matches))} | {i for i in range(len(matches)) if rng.random() < 0.5}
    out, last = [], 0
    for i, m in enumerate(matches):
        out.append(line[last: m.start()])
        out.append(m.group(0) if i in keep else finetune.modernise(m.group(0)))
        last = m.end()
    return "".join(out) + line[last:]


def preference_pairs(split: str, n: int, seed: int = 0, max_length: int = 32) -> list[tuple[str, str, str]]:
    """``n`` random ``(line, chosen, rejected)`` from the ``split`` plays' modernise lines."""
    rng = random.Random(seed)
    lines = rng.sample(assistant.lines_for("modernise", split, max_length), n)
    return [(line, finetune.modernise(line), lazy_modernise(line, rng)) for line in lines]


# ---------------------------------------------------------------- log-probabilities of replies

def reply_batch(tok, lines, replies):
    """``(x, y)`` for modernise conversations ``line -> reply``: inputs and the targets of the reply's
    tokens (its text and ``[END]``), ``-100`` elsewhere (``assistant.sft_targets``)."""
    rows = [assistant.encode_chat(tok, [("user", assistant.INSTRUCTION["modernise"] + line), ("assistant", r)],
                                  add_reply_start=False) for line, r in zip(lines, replies)]
    T = max(len(r) for r in rows) - 1
    x = torch.zeros(len(rows), T, dtype=torch.long)
    y = torch.full((len(rows), T), -100, dtype=torch.long)
    for i, ids in enumerate(rows):
        x[i, : len(ids) - 1] = torch.tensor(ids[:-1])
        y[i, : len(ids) - 1] = torch.tensor(assistant.sft_targets(ids, tok.assistant, tok.end))
    return x, y


def sequence_logprob(model, x, y) -> torch.Tensor:
    """``(B,)``: the log-probability the model gives each row's reply, the sum over its targets."""
    logits, _ = model(x)
    logp = F.log_softmax(logits, dim=-1)
    keep = y != -100
    picked = logp.gather(-1, y.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * keep).sum(dim=1)


# ---------------------------------------------------------------- DPO

def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float):
    """DPO's loss, averaged over pairs, and the implicit reward margins ``(B,)``.

    Each argument is a ``(B,)`` tensor of sequence log-probabilities. The implicit reward of a
    reply is ``beta * (log pi(y) - log pi_ref(y))``; the loss is the Bradley-Terry loss of the
    margin between chosen and rejected: ``-log sigmoid(beta * ((pc - rc) - (pr - rr)))``."""
    margin = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))
    return -F.logsigmoid(margin).mean(), margin


def dpo_optimum(ref_probs, rewards, beta: float) -> torch.Tensor:
    """The policy DPO (and KL-regularised RLHF) converges to: ``pi*(y) ∝ pi_ref(y) exp(r(y) / beta)``."""
    ref_probs, rewards = torch.as_tensor(ref_probs, dtype=torch.float64), torch.as_tensor(rewards, dtype=torch.float64)
    return torch.softmax(ref_probs.log() + rewards / beta, dim=-1)


def toy_dpo(ref_probs, rewards, beta: float, steps: int = 3000, lr: float = 0.05) -> torch.Tensor:
    """DPO on a toy with one prompt and a few answers, solved by gradient descent: every pair
    ``(i, j)`` is preferred ``i`` over ``j`` with the Bradley-Terry probability
    ``sigmoid(r_i - r_j)``; the policy is ``softmax(logits)``. Returns the learnt probabilities,
    which should equal :func:`dpo_optimum`."""
    ref = torch.as_tensor(ref_probs, dtype=torch.float64).log()
    r = torch.as_tensor(rewards, dtype=torch.float64)
    p_prefer = torch.sigmoid(r[:, None] - r[None, :])                       # (K, K): i preferred to j
    logits = ref.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([logits], lr=lr)
    for _ in range(steps):
        logp = torch.log_softmax(logits, -1)
        margin = beta * ((logp - ref)[:, None] - (logp - ref)[None, :])      # (K, K)
        loss = -(p_prefer * F.logsigmoid(margin)).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return torch.softmax(logits.detach(), -1)


class DPOObjective(nn.Module):
    """What ``training.fit`` trains for DPO: ``policy`` (trainable) and ``beta``; a batch is the
    chosen and rejected ``(x, y)`` and the frozen reference's log-probabilities of both.
    Returns ``(margins, loss)``."""

    def __init__(self, policy, beta: float):
        super().__init__()
        self.policy, self.beta = policy, beta

    def forward(self, xc, yc, xr, yr, ref_chosen, ref_rejected):
        pc, pr = sequence_logprob(self.policy, xc, yc), sequence_logprob(self.policy, xr, yr)
        loss, margin = dpo_loss(pc, pr, ref_chosen, ref_rejected, self.beta)
        return margin, loss


@dataclasses.dataclass(frozen=True)
class PreferenceConfig:
    """The preference stage (notebook 13): pairs, the reward model's and DPO's training."""
    pairs: int = 1000             # training pairs (training plays)
    eval_pairs: int = 60          # held-out pairs and prompts (held-out plays)
    reward_steps: int = 150
    reward_lr: float = 3e-3       # LoRA + head, AdamW constant
    dpo_steps: int = 150
    dpo_lr: float = 2e-5          # full fine-tuning, AdamW constant
    batch_size: int = 8           # pairs per step
    betas: tuple = (1.0, 0.1, 0.01)
    best_of: int = 8
    seed: int = 0


PREFERENCES = PreferenceConfig()


@torch.no_grad()
def reference_logprobs(reference, tok, pairs, batch_size: int = 100):
    """``(chosen, rejected)``, each ``(N,)``: the frozen reference's log-probabilities of the pairs."""
    out = [], []
    with training.evaluating(reference):
        for i in range(0, len(pairs), batch_size):
            chunk = pairs[i: i + batch_size]
            lines = [p[0] for p in chunk]
            for k, which in ((0, 1), (1, 2)):
                out[k].append(sequence_logprob(reference, *reply_batch(tok, lines, [p[which] for p in chunk])))
    return torch.cat(out[0]), torch.cat(out[1])


def train_dpo(policy, reference, tok, pairs, beta: float, steps: int, lr: float, batch_size: int = 8,
              seed: int = 0, evaluate=None, eval_at=()) -> int:
    """Train ``policy`` (in place) with :func:`dpo_loss` against the frozen ``reference`` on ``pairs``
    (``(line, chosen, rejected)``), by ``training.fit``; returns the steps done."""
    ref_c, ref_r = reference_logprobs(reference, tok, pairs)
    rng = torch.Generator().manual_seed(seed)

    def make_batch():
        rows = torch.randint(len(pairs), (batch_size,), generator=rng).tolist()
        lines = [pairs[i][0] for i in rows]
        xc, yc = reply_batch(tok, lines, [pairs[i][1] for i in rows])
        xr, yr = reply_batch(tok, lines, [pairs[i][2] for i in rows])
        return xc, yc, xr, yr, ref_c[rows], ref_r[rows]

    return training.fit(DPOObjective(policy, beta), make_batch, steps, lr, evaluate=evaluate, eval_at=eval_at)


@torch.no_grad()
def implicit_margin(policy, reference, tok, pairs, beta: float) -> float:
    """The mean implicit reward margin ``beta * ((pc - rc) - (pr - rr))`` over held-out ``pairs``."""
    with training.evaluating(policy):
        pc, pr = reference_logprobs(policy, tok, pairs)
    rc, rr = reference_logprobs(reference, tok, pairs)
    return (beta * ((pc - rc) - (pr - rr))).mean().item()


@torch.no_grad()
def kl_estimate(policy, reference, tok, lines, seed: int = 0, max_new_tokens: int = 45) -> float:
    """KL(policy || reference) on modernise prompts, estimated by Monte Carlo: one reply sampled from
    the policy (temperature 1) per line, and the mean of ``log pi(reply) - log pi_ref(reply)``."""
    prompts = assistant.chat_prompts(tok, [("modernise", line) for line in lines])
    replies, endings = assistant.generate(policy, prompts, tok.end, max_new_tokens, greedy=False,
                                          generator=torch.Generator().manual_seed(seed))
    total = 0.0
    with training.evaluating(policy):
        for p, r, e in zip(prompts, replies, endings):
            ids = p + r + ([tok.end] if e == "end" else [])
            x = torch.tensor([ids[:-1]])
            y = torch.full_like(x, -100)
            y[0, len(p) - 1:] = torch.tensor(ids[len(p):])
            total += (sequence_logprob(policy, x, y) - sequence_logprob(reference, x, y)).item()
    return total / len(lines)


# ---------------------------------------------------------------- the reward model (Bradley-Terry)

def bradley_terry_loss(reward_chosen, reward_rejected) -> torch.Tensor:
    """``-log sigmoid(r_chosen - r_rejected)``, averaged: the negative log-likelihood of the
    preferences under the Bradley-Terry model ``P(chosen > rejected) = sigmoid(r_c - r_r)``."""
    return -F.logsigmoid(reward_chosen - reward_rejected).mean()


class RewardModel(nn.Module):
    """A GPT ``body`` (LoRA on query and value, the rest frozen) and a linear head that turns the
    hidden state of the reply's last token (its ``[END]``) into one number, the reward."""

    def __init__(self, body, lora_config: lora.LoRAConfig = lora.LoRAConfig()):
        super().__init__()
        self.body = lora.add_lora(body, lora_config)
        self.head = nn.Linear(body.config.n_embd, 1)

    def forward(self, x, y):
        """``(B,)`` rewards of the conversations ``(x, y)`` of :func:`reply_batch`, read where the
        last target (the reply's ``[END]``) is predicted, i.e. after the whole reply."""
        hidden = self.body.features(x)                                      # (B, T, C)
        last = (y != -100).long().cumsum(1).argmax(1)                       # the last target's position
        return self.head(hidden[torch.arange(len(x)), last]).squeeze(-1)


class BradleyTerryObjective(nn.Module):
    """What ``training.fit`` trains for the reward model: ``(margins, loss)`` of a batch of pairs."""

    def __init__(self, reward_model):
        super().__init__()
        self.reward_model = reward_model

    def forward(self, xc, yc, xr, yr):
        rc, rr = self.reward_model(xc, yc), self.reward_model(xr, yr)
        return rc - rr, bradley_terry_loss(rc, rr)


@torch.no_grad()
def rewards(reward_model, tok, lines, replies, batch_size: int = 100) -> torch.Tensor:
    """``(N,)`` rewards of modernise replies."""
    with training.evaluating(reward_model):
        return torch.cat([reward_model(*reply_batch(tok, lines[i: i + batch_size], replies[i: i + batch_size]))
                          for i in range(0, len(lines), batch_size)])


def pair_accuracy(reward_model, tok, pairs) -> float:
    """How often the reward model scores the chosen reply above the rejected one."""
    lines = [p[0] for p in pairs]
    rc = rewards(reward_model, tok, lines, [p[1] for p in pairs])
    rr = rewards(reward_model, tok, lines, [p[2] for p in pairs])
    return (rc > rr).float().mean().item()


def train_reward_model(body, tok, pairs, steps: int, lr: float, batch_size: int = 8, seed: int = 0,
                       evaluate=None, eval_at=()):
    """A :class:`RewardModel` on ``body`` trained on ``pairs`` with the Bradley-Terry loss (``training.fit``)."""
    torch.manual_seed(seed)
    model = RewardModel(body)
    rng = torch.Generator().manual_seed(seed)

    def make_batch():
        rows = torch.randint(len(pairs), (batch_size,), generator=rng).tolist()
        lines = [pairs[i][0] for i in rows]
        return (*reply_batch(tok, lines, [pairs[i][1] for i in rows]),
                *reply_batch(tok, lines, [pairs[i][2] for i in rows]))

    training.fit(BradleyTerryObjective(model), make_batch, steps, lr,
                 evaluate=None if evaluate is None else lambda step: evaluate(model, step), eval_at=eval_at)
    return model.eval()


REWARD_FORMAT = "behind-the-curtain reward model v1"


def save_reward_model(model: RewardModel, path, **info) -> Path:
    """The reward model's LoRA matrices and head (a few tens of kB), atomically; the body is the SFT model."""
    weights = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    state = {"format": REWARD_FORMAT, "weights": weights, "info": info}
    return atomic_write(path, lambda f: torch.save(state, f))


def load_reward_model(path, body) -> RewardModel:
    """A :class:`RewardModel` on ``body`` (the SFT model) with the weights saved in ``path``; a
    :class:`helpers.checkpoints.CheckpointError` naming the file when it is missing or does not fit."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such reward-model file; make it with python scripts/make_assistant.py")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot be read (truncated or corrupted?): {type(exc).__name__}") from None
    if not isinstance(state, dict) or state.get("format") != REWARD_FORMAT:
        raise CheckpointError(f"{path}: not a course reward model (expected format {REWARD_FORMAT!r})")
    model = RewardModel(body)
    shapes = {n: p.shape for n, p in model.named_parameters() if p.requires_grad}
    checkpoints.check_tensors(path, state.get("weights"), shapes, what="weights", fit="the reward model")
    model.load_state_dict(state["weights"], strict=False)
    return model.eval()


# ---------------------------------------------------------------- best-of-n

@torch.no_grad()
def sample_replies(model, tok, lines, n: int, seed: int = 0, temperature: float = 1.0):
    """``n`` sampled modernise replies per line: a list of ``n`` lists (reply texts, one per line)."""
    prompts = assistant.chat_prompts(tok, [("modernise", line) for line in lines])
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        replies, _ = assistant.generate(model, prompts, tok.end, greedy=False, temperature=temperature,
                                        generator=generator, other_stops=(tok.user, tok.assistant))
        out.append([tok.decode(r) for r in replies])
    return out


def best_of_n(samples, scores, n: int) -> list[str]:
    """For each line, the reply with the highest score among the first ``n`` samples.
    ``samples`` and ``scores``: ``[sample][line]``."""
    best = []
    for j in range(len(samples[0])):
        k = max(range(n), key=lambda i: scores[i][j])
        best.append(samples[k][j])
    return best


# ---------------------------------------------------------------- the three stages, for notebook 13's explorer

STAGES = ("base (one-shot)", "SFT", "DPO")
STAGE_FILES = {"SFT": "assistant_sft.pt", "DPO": "assistant_dpo.pt"}


@functools.lru_cache(maxsize=None)
def load_stage(stage: str):
    """``(model, tok)`` of one of :data:`STAGES`: the pretrained GPT, or the stored SFT or DPO model."""
    from helpers.paths import DATA_DIR

    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    model, char_tok = finetune.load_pretrained()
    if stage in STAGE_FILES:
        model, _ = checkpoints.load_model(DATA_DIR / STAGE_FILES[stage])
    return model, assistant.ChatTokenizer(char_tok)


def stage_reply(stage: str, task: str, line: str, temperature: float = 0.0, seed: int = 0) -> dict:
    """One stage's reply to ``(task, line)``: ``{"prompt", "reply", "ending", "right", "old_words"}``.
    ``temperature`` 0 is greedy decoding; otherwise a sample with ``seed``. The base model is
    prompted in plain text, one-shot (``assistant.few_shot_prompt``), and its reply ends at a line break."""
    model, tok = load_stage(stage)
    generator = torch.Generator().manual_seed(seed)
    greedy = not temperature > 0
    if stage == STAGES[0]:
        prompt = tok.encode(assistant.few_shot_prompt(task, line, assistant.FEW_SHOT[task]))
        room = model.config.block_size - len(prompt)
        replies, endings = assistant.generate(model, [prompt], tok.encode("\n")[0], min(45, room), temperature,
                                              greedy, generator)
    else:
        prompt = assistant.chat_prompts(tok, [(task, line)])[0]
        replies, endings = assistant.generate(model, [prompt], tok.end, 45, temperature, greedy, generator,
                                              other_stops=(tok.user, tok.assistant))
    text = tok.decode(replies[0])
    return {"prompt": tok.decode(prompt), "reply": text, "ending": endings[0],
            "right": bool(assistant.score(task, line, text)), "old_words": assistant.archaic_words(text)}
