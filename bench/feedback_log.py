"""Feedback log benchmark: append latency (with flock + fsync), replay and export time at two
sizes, and how they grow.

Append latency is compared with the floor any durable append pays: one raw ``os.write`` of a line
of the same size plus ``fsync`` on the same disk, alternated with the real appends so both see the
same disk weather. Replay and export are timed at N and 10*N events; the ratio of the two times is
the growth (10 = linear).

    python -m bench.feedback_log [--quick] [--json OUT]
"""

from __future__ import annotations

import os
import random
import tempfile
import uuid
from pathlib import Path

from bench.common import Row, finish, median, now, parse_args, percentile, temp_home

BENCH = "feedback_log"
WORDS = ("the model said a thing about python code and lists of numbers while the user asked "
         "again for a shorter answer with an example please explain why this works").split()


def _text(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def synthetic_events(n: int, seed: int = 0) -> list[dict]:
    """About ``n`` events shaped like real use: conversations of user turns, replies, regenerations,
    picks, ratings, edits and the odd rename."""
    rng = random.Random(seed)
    events: list[dict] = []
    while len(events) < n:
        conv = uuid.uuid4().hex
        parent = None
        for _turn in range(rng.randint(1, 4)):
            user = {"type": "message", "id": uuid.uuid4().hex, "conversation_id": conv,
                    "parent_id": parent, "role": "user", "content": _text(rng, 5, 40)}
            events.append(user)
            replies = []
            for _ in range(rng.choice((1, 1, 1, 2, 3))):
                reply = {"type": "message", "id": uuid.uuid4().hex, "conversation_id": conv,
                         "parent_id": user["id"], "role": "assistant", "content": _text(rng, 20, 150),
                         "generation": {"profile": "bench", "model": "builtin:demo", "adapter": None,
                                        "system_prompt": "You are a helpful assistant.",
                                        "params": {"max_new_tokens": 512, "temperature": 0.7},
                                        "seed": rng.randint(0, 2**31), "completion_tokens": 100}}
                events.append(reply)
                replies.append(reply["id"])
            if len(replies) > 1:
                events.append({"type": "choice", "chosen_id": rng.choice(replies), "candidates": replies,
                               "kind": "regenerate"})
            r = rng.random()
            if r < 0.4:
                events.append({"type": "rating", "message_id": replies[0], "value": rng.choice((1, -1)),
                               "tags": [], "comment": None})
            elif r < 0.55:
                events.append({"type": "edit", "message_id": replies[0], "content": _text(rng, 20, 120)})
            parent = replies[0]
        if rng.random() < 0.1:
            events.append({"type": "title", "conversation_id": conv, "title": _text(rng, 2, 6)})
    return events[:n]  # a cut tail only drops later events; nothing refers forward


def write_log(home, profile: str, events: list[dict], batch: int = 5000) -> None:
    from engine.feedback import FeedbackLog

    log = FeedbackLog(home, profile)
    for i in range(0, len(events), batch):
        log.append_many(events[i:i + batch])
    log.close()


def append_latency(home, n: int) -> tuple[list[float], list[float]]:
    """Seconds per ``FeedbackLog.rate`` and per raw write+fsync of an equal-sized line, alternated."""
    from engine.feedback import FeedbackLog

    log = FeedbackLog(home, "append")
    first = log.add_message(uuid.uuid4().hex, None, "user", "hello")
    line_len = len(b'{"v":1,"id":"' + b"0" * 32 + b'","ts":1764000000.123456,"type":"rating",'
                   b'"message_id":"' + b"0" * 32 + b'","value":1,"tags":[],"comment":null}\n')
    raw_path = Path(tempfile.mkdtemp(dir=home.root)) / "raw.jsonl"
    raw_fd = os.open(raw_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    line = b"x" * (line_len - 1) + b"\n"
    real, raw = [], []
    try:
        for i in range(n):
            t0 = now()
            log.rate(first["id"], 1 if i % 2 else -1)
            real.append(now() - t0)
            t0 = now()
            os.write(raw_fd, line)
            os.fsync(raw_fd)
            raw.append(now() - t0)
    finally:
        os.close(raw_fd)
        log.close()
    return real, raw


def time_replay_and_export(home, profile: str, out_dir: Path) -> dict[str, float]:
    from engine.feedback import FeedbackLog
    from engine.feedback.export import export_rows

    times = {}
    t0 = now()
    state = FeedbackLog(home, profile).replay()
    times["replay"] = now() - t0
    for fmt in ("sft", "preference"):
        t0 = now()
        state = FeedbackLog(home, profile).replay()  # the export command reads the log itself
        export_rows(state, fmt, out_dir / f"{profile}-{fmt}.jsonl", profile)
        times[f"export {fmt}"] = now() - t0
    times["events"] = len(state.messages)
    return times


def run(quick: bool) -> tuple[list[Row], dict]:
    small = 1_000 if quick else 10_000
    n_append = 200 if quick else 2_000
    reps = 1 if quick else 2
    rows: list[Row] = []
    notes = []
    with temp_home() as home:
        real, raw = append_latency(home, n_append)
        ms = 1000.0
        rows.append(Row(BENCH, "append p50", percentile(real, 50) * ms, unit="ms",
                        detail=f"{n_append} FeedbackLog.rate appends (flock + fsync); raw write+fsync "
                               f"p50 {percentile(raw, 50) * ms:.2f} ms"))
        rows.append(Row(BENCH, "append p99", percentile(real, 99) * ms, unit="ms",
                        detail=f"raw write+fsync p99 {percentile(raw, 99) * ms:.2f} ms"))
        rows.append(Row(BENCH, "append p50 / raw write+fsync p50",
                        percentile(real, 50) / percentile(raw, 50), unit="x",
                        detail="overhead of JSON + validation + lock over the durable-write floor"))

        out_dir = Path(tempfile.mkdtemp(dir=home.root))
        sizes = {"small": small, "large": small * 10}
        results: dict[str, dict[str, list[float]]] = {}
        for label, n in sizes.items():
            write_log(home, label, synthetic_events(n, seed=n))
            size_mb = (home.feedback_dir(label) / "events.jsonl").stat().st_size / 1e6
            notes.append(f"{n:,} events = {size_mb:.1f} MB of JSONL")
        for _ in range(reps):  # interleave sizes so drift hits both
            for label in sizes:
                for key, value in time_replay_and_export(home, label, out_dir).items():
                    results.setdefault(label, {}).setdefault(key, []).append(value)
        for key in ("replay", "export sft", "export preference"):
            t_small = median(results["small"][key])
            t_large = median(results["large"][key])
            rows.append(Row(BENCH, f"{key} {sizes['small']:,} events", t_small, unit="s",
                            detail=f"median of {reps}; read + parse + replay" +
                                   (" + rows + write JSONL" if key != "replay" else "")))
            rows.append(Row(BENCH, f"{key} {sizes['large']:,} events", t_large, unit="s",
                            detail=f"median of {reps}"))
            rows.append(Row(BENCH, f"{key} growth {sizes['large'] // sizes['small']}x events",
                            t_large / t_small, target="<= 12", unit="x",
                            detail="10 = linear (12 allows for noise)"))
    return rows, {"notes": notes, "quick": quick}


def main(argv: list[str] | None = None) -> list[Row]:
    args = parse_args(__doc__.splitlines()[0], argv)
    rows, meta = run(args.quick)
    return finish(BENCH, rows, args, meta)


if __name__ == "__main__":
    main()
