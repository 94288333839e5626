"""Chat sampling on SmolLM2-135M-Instruct: which [generation] settings answer what the model knows, and how often
a long reply runs into a loop. The profile's choice (greedy; regenerate, A/B and best-of-n sample) rests on it.

* **controls**: the learning benchmark's 30 control questions (bench/learning_data.py: capitals, sums, code), each
  answered by the base model under every setting (3 seeds where it samples); a reply is right by the control's rule.
* **loops**: 8 open questions ("Tell me about the history of Rome.") answered to the profile's max_new_tokens; a
  reply with more than 20% repeated word 4-grams counts as a loop.

Replies go through the app's own chat model (``load_chat_model``: llama.cpp when it is installed), one thread.

    python -m bench.chat_sampling [--quick] [--json OUT]
"""

from __future__ import annotations

import os

from bench.common import SMOLLM2_PROFILE, Row, finish, parse_args, temp_home

BENCH = "chat_sampling"
SETTINGS: dict[str, dict] = {
    "greedy (the profile)": {"do_sample": False},
    "sampled 0.2 / top_p 0.9": {"do_sample": True, "temperature": 0.2, "top_p": 0.9},
    "greedy, repetition_penalty 1.05": {"do_sample": False, "repetition_penalty": 1.05},
}
OPEN_QUESTIONS = ("Tell me about the history of Rome.", "How do I make bread at home?", "Explain how a computer works.",
                  "Write a short poem about the sea.", "What are the benefits of exercise?",
                  "Give me tips for learning a new language.", "Why is the sky blue?", "Describe your ideal weekend.")
LOOP_SHARE = 0.2


def repeated_share(text: str) -> float:
    """The share of word 4-grams that repeat an earlier one."""
    words = text.split()
    grams = [tuple(words[i:i + 4]) for i in range(len(words) - 3)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def main(argv=None) -> list[Row]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = parse_args(__doc__.splitlines()[0], argv)
    from bench.learning_data import CONTROLS
    from engine.profiles import load_profile
    from engine.runtime import GenerationParams, load_chat_model

    rows: list[Row] = []
    with temp_home("tuneloop-bench-sampling-") as home:
        profile = load_profile(SMOLLM2_PROFILE, home)
        lm = load_chat_model(profile, home, adapter="base")
        controls = CONTROLS[:10] if args.quick else CONTROLS
        questions = OPEN_QUESTIONS[:3] if args.quick else OPEN_QUESTIONS
        for name, setting in SETTINGS.items():
            seeds = (0, 1, 2) if setting["do_sample"] else (0,)
            right, wrong = 0, []
            for control in controls:
                for seed in seeds:
                    params = GenerationParams.from_profile(profile, seed=seed, max_new_tokens=96, **setting)
                    text, _ = lm.generate([{"role": "user", "content": control.prompt}], params)
                    right += control.ok(text)
                    if not control.ok(text):
                        wrong.append(f"{control.prompt!r} -> {text.strip()[:50]!r}")
            asked = len(controls) * len(seeds)
            rows.append(Row(BENCH, f"{name}: controls answered right", right / asked, "", "",
                            f"{right} of {asked} ({lm.backend}); wrong: " + ("; ".join(wrong[:3]) or "none")))
            shares, full = [], 0
            for question in questions:
                for seed in seeds:
                    params = GenerationParams.from_profile(profile, seed=seed, **setting)
                    text, record = lm.generate([{"role": "user", "content": question}], params)
                    shares.append(repeated_share(text))
                    full += record["completion_tokens"] >= params.max_new_tokens
            loops = sum(s > LOOP_SHARE for s in shares)
            rows.append(Row(BENCH, f"{name}: long replies in a loop", loops / len(shares), "", "",
                            f"{loops} of {len(shares)} with > {LOOP_SHARE:.0%} repeated 4-grams; {full} ran to "
                            f"max_new_tokens; median repeated share {sorted(shares)[len(shares) // 2]:.2f}"))
    return finish(BENCH, rows, args, {"notes": [f"backend {lm.backend}, threads {getattr(lm, 'threads', None)}"]})


if __name__ == "__main__":
    main()
