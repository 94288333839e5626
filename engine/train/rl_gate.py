"""The gate's checks for an RL adapter, on held-out prompts: it does not trust the training reward.

A policy trained against a reward model learns whatever that model pays for, including its mistakes (the
commonest: longer replies, repeated phrases). So beside the human-pair check every gate has (``pref_accuracy``:
held-out pairs the person judged, engine.train.gate), an RL adapter's greedy replies to held-out prompts are
compared with the reference's (the adapter in use, or the base model):

- ``reward_win_rate``: the reward model the run trained against prefers the new replies at least half the time
  (RL that does not even win on its own reward failed);
- ``length_ratio``: mean reply length (tokens) over the reference's, at most ``rl.gate_max_length_ratio``;
- ``repetition_increase``: share of repeated 4-grams in the new replies minus the reference's, at most
  ``rl.gate_max_repetition_increase``;
- ``kl``: mean per-token log-ratio log p_new(y) - log p_ref(y) over the new replies y (a one-sample estimate of
  KL(new || ref) at the greedy reply), at most ``rl.gate_max_kl`` nats.

The first failed check is the verdict's reason. Loads the base and both adapters once (rank 0 only).
"""

from __future__ import annotations

from typing import Any, Callable

from engine.settings import RlSettings

MAX_PROMPTS = 16
"""Held-out prompts the checks generate replies for (each side greedy; the cost of the check on a CPU)."""


def prompts_of(rows) -> list[list[dict]]:
    """Distinct held-out prompts: the ``prompt`` rows, then the prompts of the feedback rows, at most MAX_PROMPTS."""
    from engine.train.gate import distinct_prompts

    return distinct_prompts(rows.prompt + rows.sft + rows.pref + rows.kto)[:MAX_PROMPTS]


def repeated_ngram_share(token_lists: list[list[int]], n: int = 4) -> float:
    """Share of n-grams (over all replies) that repeat an earlier n-gram of the same reply."""
    total = repeats = 0
    for ids in token_lists:
        seen: set[tuple[int, ...]] = set()
        for i in range(len(ids) - n + 1):
            gram = tuple(ids[i:i + n])
            total += 1
            repeats += gram in seen
            seen.add(gram)
    return repeats / total if total else 0.0


def _greedy_replies(model, tokenizer, prompts: list[list[dict]], max_new_tokens: int) -> list[list[int]]:
    import torch

    device = next(model.parameters()).device
    out = []
    for prompt in prompts:
        ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, return_tensors="pt",
                                            return_dict=True)["input_ids"].to(device)
        with torch.no_grad():
            gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id
                                 if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
        reply = gen[0, ids.shape[1]:].tolist()
        eos = tokenizer.eos_token_id
        if eos is not None and eos in reply:
            reply = reply[:reply.index(eos)]
        out.append(reply)
    return out


def evaluate(peft_model, tokenizer, prompts: list[list[dict]], new: str, reference: str | None,
             score: Callable[[list[tuple[list[dict], str]]], list[float]], rl: RlSettings, max_length: int) -> dict:
    """Replies of both sides, their measures and the checks (see the module docstring)."""
    from contextlib import nullcontext

    from engine.train.gate import completion_logprob

    peft_model.eval()
    max_new = max(8, 2 * rl.max_reply_tokens)  # room for a length hack to show

    def side(name: str | None):
        if name is None:
            return peft_model.disable_adapter()
        peft_model.set_adapter(name)
        return nullcontext()

    with side(new):
        new_ids = _greedy_replies(peft_model, tokenizer, prompts, max_new)
    with side(reference):
        ref_ids = _greedy_replies(peft_model, tokenizer, prompts, max_new)
    new_text = [tokenizer.decode(ids, skip_special_tokens=True) for ids in new_ids]
    ref_text = [tokenizer.decode(ids, skip_special_tokens=True) for ids in ref_ids]
    scores = score([(p, t) for p, t in zip(prompts, new_text)] + [(p, t) for p, t in zip(prompts, ref_text)])
    s_new, s_ref = scores[:len(prompts)], scores[len(prompts):]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(s_new, s_ref))
    logratio, tokens = 0.0, 0
    for prompt, text in zip(prompts, new_text):
        reply = [{"role": "assistant", "content": text}]
        with side(new):
            lp_new, n = completion_logprob(peft_model, tokenizer, prompt, reply, max_length)
        with side(reference):
            lp_ref, _ = completion_logprob(peft_model, tokenizer, prompt, reply, max_length)
        logratio, tokens = logratio + lp_new - lp_ref, tokens + n
    mean_new = sum(map(len, new_ids)) / len(prompts)
    mean_ref = sum(map(len, ref_ids)) / len(prompts)
    measures: dict[str, Any] = {
        "prompts": len(prompts),
        "reward_win_rate": wins / len(prompts),
        "reward_mean_new": sum(s_new) / len(prompts),
        "reward_mean_reference": sum(s_ref) / len(prompts),
        "length_new": mean_new,
        "length_reference": mean_ref,
        "length_ratio": mean_new / max(1.0, mean_ref),
        "repetition_new": repeated_ngram_share(new_ids),
        "repetition_reference": repeated_ngram_share(ref_ids),
        "kl": logratio / max(1, tokens),
    }
    measures["repetition_increase"] = measures["repetition_new"] - measures["repetition_reference"]
    measures["samples"] = [{"prompt": p, "new": a, "reference": b, "score_new": x, "score_reference": y}
                           for p, a, b, x, y in zip(prompts[:4], new_text, ref_text, s_new, s_ref)]
    return measures


def checks(measures: dict, rl: RlSettings) -> list[dict]:
    """Each check as the gate reports it: metric, value, limit, ok."""
    rules: list[tuple[str, float, bool]] = [
        ("reward_win_rate", 0.5, True),
        ("length_ratio", rl.gate_max_length_ratio, False),
        ("repetition_increase", rl.gate_max_repetition_increase, False),
        ("kl", rl.gate_max_kl, False),
    ]
    out = []
    for metric, limit, at_least in rules:
        value = measures[metric]
        ok = value >= limit if at_least else value <= limit
        out.append({"metric": metric, "new": value, "limit": limit, "higher_is_better": at_least, "ok": ok})
    return out


def refusal(rl_checks: list[dict]) -> str | None:
    """The sentence that refuses the adapter for its first failed check, or None."""
    words = {
        "reward_win_rate": "the reward model it trained against prefers the reference's held-out replies",
        "length_ratio": "its held-out replies grew longer than the reference's",
        "repetition_increase": "its held-out replies repeat themselves more than the reference's",
        "kl": "its held-out replies drifted too far from the reference model",
    }
    for c in rl_checks:
        if not c["ok"]:
            op = ">=" if c["higher_is_better"] else "<="
            return (f"{words[c['metric']]} ({c['metric']} {c['new']:.3g}, must be {op} {c['limit']:g}): "
                    "not promoted.")
    return None


def run_checks(home, profile, manifest: dict, settings, candidate, current: str | None, rows, load_run) -> dict:
    """Load the base, the candidate and the reference adapter; generate, score and check. The result (measures
    and checks) goes into gate.json and the report."""
    import gc

    from engine import adapters
    from engine.train import model as model_mod

    prompts = prompts_of(rows)
    if not prompts:
        return {"skipped": "no held-out prompts", "checks": []}
    scorer: Any = load_run(home, profile.name, manifest["reward_model"]["run_id"])
    cur_path = adapters.adapter_path(home, profile.name, current) if current is not None else None
    peft_model, tokenizer, has_current = model_mod.load_pair(profile, home, candidate, cur_path, use_cache=True)
    reference = "current" if has_current else None
    rl = RlSettings(**manifest["rl"])  # the run's frozen [rl] (its gate limits: not flags)
    measures = evaluate(peft_model, tokenizer, prompts, "new", reference, scorer.score_many, rl,
                        settings.max_length)
    del peft_model
    gc.collect()
    rl_checks = checks(measures, rl)
    return {"reward_run": manifest["reward_model"]["run_id"], "reference": current or "base",
            "measures": measures, "checks": rl_checks}
