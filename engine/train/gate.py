"""The promotion gate: score the new adapter and the one in use on the held-out slice, promote if not worse.

Metrics (each only where the slice has rows of that kind):
- ``pref_accuracy``: share of held-out pairs where the policy's implicit reward (its log-prob of the
  reply minus the base model's) is higher for the chosen reply than for the rejected one (ties 1/2);
  ``reward_margin`` is the mean of beta * (that difference) and ``dpo_loss`` its -log sigmoid;
- ``liked_logprob``: mean per-token log-prob of liked / edited replies (the SFT rows);
- ``kept_logprob``: mean per-token log-prob of the starting model's own replies to ordinary prompts that no
  row trained (engine.train.rehearsal's held-out rows): how far the adapter moved away from what it did not
  need to change ("nothing else breaks"); a check only with ``gate_kept_margin``;
- ``kto_accuracy``: share of liked / disliked replies whose implicit reward has the right sign;
- ``loss``: the trained method's loss on the slice (SFT: -liked_logprob; DPO: dpo_loss; KTO: 1 - sigmoid).

The reference for implicit rewards is always the base model, so "current = base" scores ties (1/2).
Each metric the run's methods trained for must be no worse than the current adapter's by more than its
margin: ``gate_margin`` for the per-token log-prob and loss metrics (nats), ``gate_accuracy_margin`` for
the accuracies (a share, 0-1), ``gate_kept_margin`` (nats) for ``kept_logprob``. One margin for both let a
log-prob allowance of 1 nat pass any accuracy.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from engine.train.methods import METHODS, reward_only

# metric -> (higher is better?, unit: which margin applies); which metrics decide for a run is each method's row
# (engine.train.methods.Method.gate_checks: RL's pref_accuracy is the person's held-out pairs, not the reward model)
METRICS = {
    "liked_logprob": (True, "nats"),
    "pref_accuracy": (True, "share"),
    "dpo_loss": (False, "nats"),
    "kto_accuracy": (True, "share"),
    "kept_logprob": (True, "kept"),
}


def checks_for(methods: list[str]) -> set[str]:
    """The metrics that decide for a run of ``methods`` (their rows' ``gate_checks``)."""
    return {c for m in methods if m in METHODS for c in METHODS[m].gate_checks}


def _logsigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x > -30 else x


def completion_logprob(model, tokenizer, prompt: list[dict], completion: list[dict], max_length: int) -> tuple[float, int]:
    """Sum of log-probs of the completion's tokens after the prompt (chat template applied), and their count."""
    import torch

    prompt_ids = list(tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True,
                                                    return_dict=False))
    full_ids = list(tokenizer.apply_chat_template(prompt + completion, tokenize=True, return_dict=False))
    start = 0
    while start < min(len(prompt_ids), len(full_ids)) and prompt_ids[start] == full_ids[start]:
        start += 1
    if len(full_ids) > max_length:  # keep the completion, drop the oldest prompt tokens
        cut = len(full_ids) - max_length
        full_ids, start = full_ids[cut:], max(1, start - cut)
    start = max(1, start)
    eos = getattr(tokenizer, "eos_token_id", None)
    tail = full_ids[start:]
    if eos is not None and eos in tail:  # drop template text after the reply's end token (e.g. ChatML's "\n")
        full_ids = full_ids[:start + len(tail) - tail[::-1].index(eos)]
    if start >= len(full_ids):
        return 0.0, 0
    device = next(model.parameters()).device
    ids = torch.tensor([full_ids], device=device)
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, :-1].float()
    logp = torch.log_softmax(logits, dim=-1)
    targets = ids[0, 1:]
    token_logp = logp.gather(1, targets.unsqueeze(1)).squeeze(1)[start - 1:]
    return float(token_logp.sum()), int(token_logp.numel())


def distinct_prompts(rows: list[dict]) -> list[list[dict]]:
    """The prompt of each frozen row (a prompt, preference or KTO row's ``prompt``; an SFT row's messages before
    its reply), each non-empty one once, in order: what the reward and RL checks answer."""
    seen, out = set(), []
    for row in rows:
        prompt = row["prompt"] if "prompt" in row else (row.get("messages") or [])[:-1]
        if not isinstance(prompt, list) or not prompt:
            continue
        key = json.dumps(prompt, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(prompt)
    return out


@dataclass
class EvalRows:
    sft: list[dict] = field(default_factory=list)
    pref: list[dict] = field(default_factory=list)
    kto: list[dict] = field(default_factory=list)
    prompt: list[dict] = field(default_factory=list)
    """Held-out prompts (RL runs): engine.train.rl_gate answers them with both adapters."""
    kept: list[dict] = field(default_factory=list)
    """The starting model's own replies to ordinary prompts no row trained (``messages``): ``kept_logprob``."""


class Stopped(Exception):
    """SIGINT/SIGTERM arrived while the gate was scoring: ``--resume`` judges again."""


def score(model, tokenizer, rows: EvalRows, max_length: int, stop=None) -> dict[str, list]:
    """The log-probs ``metrics`` needs, of ``model`` as it is (adapter on or off), one row at a time."""

    def lp(prompt, completion):
        if stop is not None and stop.requested:  # one row at a time: a signal ends the gate within a row
            raise Stopped
        return completion_logprob(model, tokenizer, prompt, completion, max_length)

    return {
        "sft": [lp(r["messages"][:-1], r["messages"][-1:]) for r in rows.sft],
        "kept": [lp(r["messages"][:-1], r["messages"][-1:]) for r in rows.kept],
        "chosen": [lp(r["prompt"], r["chosen"])[0] for r in rows.pref],
        "rejected": [lp(r["prompt"], r["rejected"])[0] for r in rows.pref],
        "kto": [lp(r["prompt"], r["completion"])[0] for r in rows.kto],
    }


def metrics(policy: dict, ref: dict, rows: EvalRows, beta: float) -> dict[str, float]:
    """The slice's metrics from the policy's and the reference's ``score``."""
    out: dict[str, float] = {}
    for kind, metric in (("sft", "liked_logprob"), ("kept", "kept_logprob")):
        if getattr(rows, kind):
            out[metric] = sum(s for s, _ in policy[kind]) / max(1, sum(n for _, n in policy[kind]))
    if rows.pref:
        diffs = [(pc - rc) - (pr - rr) for pc, rc, pr, rr in
                 zip(policy["chosen"], ref["chosen"], policy["rejected"], ref["rejected"])]
        out["pref_accuracy"] = sum(1.0 if d > 1e-6 else 0.5 if abs(d) <= 1e-6 else 0.0 for d in diffs) / len(diffs)
        out["reward_margin"] = sum(beta * d for d in diffs) / len(diffs)
        out["dpo_loss"] = sum(-_logsigmoid(beta * d) for d in diffs) / len(diffs)
    if rows.kto:
        rewards = [p - r for p, r in zip(policy["kto"], ref["kto"])]
        signs = [(1 if row.get("label") else -1) * rw for row, rw in zip(rows.kto, rewards)]
        out["kto_accuracy"] = sum(1.0 if s > 1e-6 else 0.5 if abs(s) <= 1e-6 else 0.0 for s in signs) / len(signs)
        out["kto_loss"] = sum(1 - 1 / (1 + math.exp(-beta * s)) for s in signs) / len(signs)
    return out


def _loss_for(methods: list[str], m: dict[str, float]) -> float | None:
    """The last method's loss on the slice (its row's ``loss_metric``; ``-name`` negates), else -liked_logprob."""
    last = METHODS.get(methods[-1]) if methods else None
    metric = last.loss_metric if last is not None else None
    if metric and metric.lstrip("-") in m:
        return -m[metric[1:]] if metric.startswith("-") else m[metric]
    if "liked_logprob" in m:
        return -m["liked_logprob"]
    return None


def evaluate(peft_model, tokenizer, rows: EvalRows, variants: dict[str, str | None], beta: float, methods: list[str],
             max_length: int, stop=None) -> dict[str, dict[str, float]]:
    """Metrics for each variant (name -> adapter name in ``peft_model``, None = base) against the base; raises
    ``Stopped`` when ``stop`` is requested meanwhile."""
    peft_model.eval()
    with peft_model.disable_adapter():
        ref = score(peft_model, tokenizer, rows, max_length, stop)
    out = {}
    for name, adapter in variants.items():
        if adapter is None:
            policy = ref
        else:
            peft_model.set_adapter(adapter)
            policy = score(peft_model, tokenizer, rows, max_length, stop)
        found = metrics(policy, ref, rows, beta)
        loss = _loss_for(methods, found)
        if loss is not None:
            found["loss"] = loss
        out[name] = found
    return out


@dataclass
class Decision:
    promote: bool
    reason: str
    checks: list[dict]


def decide(new: dict[str, float], current: dict[str, float], methods: list[str], margin: float,
           accuracy_margin: float = 0.0, kept_margin: float | None = None) -> Decision:
    """Promote when every metric the methods trained for is not worse than the current by more than its margin:
    ``margin`` (nats) for log-probs and losses, ``accuracy_margin`` (a share) for accuracies, ``kept_margin``
    (nats; None: not a check) for ``kept_logprob``."""
    checks = []
    deciding = checks_for(methods)
    for metric, (higher, unit) in METRICS.items():
        if metric not in deciding or metric not in new or metric not in current:
            continue
        if unit == "kept":
            if kept_margin is None:
                continue
            allowed = kept_margin
        else:
            allowed = accuracy_margin if unit == "share" else margin
        a, b = new[metric], current[metric]
        ok = a >= b - allowed if higher else a <= b + allowed
        checks.append({"metric": metric, "new": a, "current": b, "higher_is_better": higher, "margin": allowed,
                       "ok": ok})
    if not checks and not reward_only(methods):  # RL alone may have no held-out pairs: its own checks decide
        return Decision(False, "no held-out rows to compare the adapters on; not promoted (use `engine adapters "
                               "use RUN` to promote it by hand).", checks)
    failed = [c for c in checks if not c["ok"]]
    if failed:
        c = failed[0]
        word = "lower" if c["higher_is_better"] else "higher"
        return Decision(False, f"{c['metric']} is {word} than the current adapter's ({c['new']:.4f} vs "
                               f"{c['current']:.4f}, margin {c['margin']:g}): not promoted.", checks)
    if not checks:
        return Decision(True, "no held-out pairs to compare the adapters on: the RL checks decide.", checks)
    names = ", ".join(f"{c['metric']} (margin {c['margin']:g})" for c in checks)
    return Decision(True, f"not worse than the current adapter on {names}: promoted.", checks)
