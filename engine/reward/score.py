"""Scoring with a trained reward model: raw scores, calibrated (z-scored) scores, pair metrics.

``RewardScorer.load(home, profile)`` opens the newest finished reward run of a profile (or a named
one). Calibration is the mean and std of the model's scores on its own training replies, stored in
the run, so a calibrated score of +1 means "one std better than a typical reply it was trained on".
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from engine.errors import UserError
from engine.home import Home, check_name
from engine.reward import BACKBONE_FILE, CALIBRATION_FILE, MODEL_SUBDIR
from engine.reward.data import Messages, Pair, encode
from engine.safe_files import check_tree, read_bytes


def score_ids(model, tokenizer, ids: list[list[int]], batch_size: int = 16) -> list[float]:
    """Scalar rewards of already-tokenised sequences, in their order (no grad). Batches are formed from
    sequences of similar length (sorted, then put back in order), so little of each batch is padding."""
    import torch

    out: list[float] = [0.0] * len(ids)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chunk = order[start:start + batch_size]
                width = max(len(ids[i]) for i in chunk)
                input_ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for row, i in enumerate(chunk):
                    input_ids[row, :len(ids[i])] = torch.tensor(ids[i], dtype=torch.long)
                    mask[row, :len(ids[i])] = 1
                logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits
                for i, v in zip(chunk, logits.reshape(len(chunk), -1)[:, 0].float().cpu()):
                    out[i] = float(v)
    finally:
        if was_training:
            model.train()
    return out


@dataclass(frozen=True)
class PairMetrics:
    """How well scores order pairs: share with chosen > rejected (ties count half), mean margin."""

    n: int
    accuracy: float
    margin: float
    chosen: list[float]
    rejected: list[float]

    def to_json(self) -> dict:
        return {"n": self.n, "accuracy": self.accuracy, "margin": self.margin}


def pair_metrics(chosen: list[float], rejected: list[float]) -> PairMetrics:
    n = len(chosen)
    if n == 0:
        return PairMetrics(0, float("nan"), float("nan"), [], [])
    wins = sum(1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected))
    margin = sum(c - r for c, r in zip(chosen, rejected)) / n
    return PairMetrics(n, wins / n, margin, list(chosen), list(rejected))


def score_pair_list(model, tokenizer, pairs: list[Pair], max_length: int) -> PairMetrics:
    chosen = score_ids(model, tokenizer, [encode(tokenizer, p.prompt, p.chosen, max_length) for p in pairs])
    rejected = score_ids(model, tokenizer, [encode(tokenizer, p.prompt, p.rejected, max_length) for p in pairs])
    return pair_metrics(chosen, rejected)


def reward_runs(home: Home, profile: str) -> list[str]:
    """Finished reward runs of a profile, oldest first: a run killed after its model was saved but before its
    verdict (report.json: is it better than chance?) is not one."""
    from engine.runs import finished_run_ids

    return finished_run_ids(home, profile, holding=(CALIBRATION_FILE, MODEL_SUBDIR))


def newest_reward_run(home: Home, profile: str, exclude: str | None = None) -> str | None:
    """The newest finished reward run that is used (engine.reward.usable: its report does not say ``"used":
    false``), or None."""
    from engine.runs import read_json

    for run_id in reversed(reward_runs(home, profile)):
        if run_id == exclude:
            continue
        report_path = home.run_dir(profile, run_id) / "report.json"
        try:
            report = read_json(report_path) if report_path.is_file() else {}
        except (OSError, ValueError, UserError):
            report = {}
        if not isinstance(report, dict) or report.get("used", True) is not False:
            return run_id
    return None


class RewardScorer:
    """A loaded reward model. ``score`` returns raw rewards; ``calibrate`` z-scores them."""

    def __init__(self, model, tokenizer, *, run_id: str, run_dir: Path, mean: float, std: float,
                 max_length: int) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.run_id = run_id
        self.run_dir = run_dir
        self.mean = mean
        self.std = std
        self.max_length = max_length

    @classmethod
    def load(cls, home: Home, profile: str, run_id: str | None = None) -> "RewardScorer":
        """Open a finished reward run (default: the profile's newest)."""
        from engine.reward.backbone import backbone_from_json, load_trained

        if run_id is None:
            run_id = newest_reward_run(home, profile)
            if run_id is None:
                raise UserError(f"profile {profile!r} has no finished reward model; "
                                f"train one with `engine reward --profile {profile}`.")
        check_name(run_id, "run id")
        run_dir = home.run_dir(profile, run_id)
        cal_path = run_dir / CALIBRATION_FILE
        if not cal_path.is_file() or not (run_dir / MODEL_SUBDIR).is_dir():
            known = ", ".join(reward_runs(home, profile)) or "none"
            raise UserError(f"{run_dir} is not a finished reward run (finished reward runs: {known}).")
        # no link followed from the home (the run folder, the model folder, any file in them): the model is
        # then opened by path by transformers
        check_tree(run_dir / MODEL_SUBDIR, home)
        try:
            cal = json.loads(read_bytes(cal_path, home).decode("utf-8"))
            backbone = backbone_from_json(json.loads(read_bytes(run_dir / BACKBONE_FILE, home).decode("utf-8")), home)
            mean, std, max_length = float(cal["mean"]), float(cal["std"]), int(cal.get("max_length", 512))
        except UserError:
            raise
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise UserError(f"{run_dir}: reward run files are unreadable ({exc}); train a new one.") from None
        from engine.profiles import load_profile
        from engine.train.model import train_device, train_dtype

        settings = load_profile(profile, home)
        device = train_device(settings)  # score where the chat model runs (a GPU when there is one)
        model, tokenizer = load_trained(run_dir / MODEL_SUBDIR, backbone,
                                        None if device == "cpu" else train_dtype(settings, device))
        model.to(device)
        return cls(model, tokenizer, run_id=run_id, run_dir=run_dir, mean=mean, std=std, max_length=max_length)

    def calibrate(self, raw: float) -> float:
        return (raw - self.mean) / self.std if self.std > 0 else raw - self.mean

    def score(self, prompt: Messages | str, reply: Messages | str) -> float:
        """Raw reward of ``reply`` (a string is taken as one assistant message) after ``prompt``."""
        return self.score_many([(prompt, reply)])[0]

    def score_many(self, items: list[tuple[Messages | str, Messages | str]]) -> list[float]:
        ids = []
        for prompt, reply in items:
            if isinstance(reply, str) and isinstance(prompt, list):
                reply = [{"role": "assistant", "content": reply}]
            ids.append(encode(self.tokenizer, prompt, reply, self.max_length))
        return score_ids(self.model, self.tokenizer, ids)

    def score_calibrated(self, prompt: Messages | str, reply: Messages | str) -> tuple[float, float]:
        raw = self.score(prompt, reply)
        return raw, self.calibrate(raw)

    def score_pairs(self, pairs: list[Pair]) -> PairMetrics:
        return score_pair_list(self.model, self.tokenizer, pairs, self.max_length)


def calibration_of(scores: list[float]) -> dict:
    """Mean and (population) std of scores; std is floored so z-scores stay finite."""
    n = len(scores)
    mean = sum(scores) / n if n else 0.0
    var = sum((s - mean) ** 2 for s in scores) / n if n else 0.0
    return {"mean": mean, "std": max(math.sqrt(var), 1e-6), "n": n}
