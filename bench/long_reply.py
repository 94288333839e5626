"""Long replies: does the TUI render the 4,000th token as fast as the first?

A fake generator (bench.fake_generator) streams a 4,000-token Markdown reply (paragraphs and code
blocks) into the real app, headless, so the cost measured is the app's: posting progress, MarkdownStream appends, layout. Every few milliseconds the benchmark reads
how many tokens the Markdown widgets on screen hold. The generator is paced at 1,000 tokens/s (far
above a local model on CPU; the app batches updates, so an unpaced generator only shows a few big
jumps) and streams 1,000 tokens past the 4,000 measured, so the last window is not the final redraw.
Reported: the display rate over tokens 3,000-4,000 divided by the rate over 1-1,000 (from the first
token on screen, so the first window does not carry the start-up delay) (target >= 0.9),
how far the screen trails the generator, and one unpaced run's time to show the whole reply.

    python -m bench.long_reply [--quick] [--json OUT]
"""

from __future__ import annotations

import asyncio

from bench.common import Row, finish, median, now, parse_args, run_with_one_retry, temp_home

BENCH = "long_reply"
N_TOKENS = 4000
WINDOW = 1000
PACED_RATE = 1000.0
"""Tokens/s of the paced fake generator: far above a local model on CPU, so it stresses the screen."""
TAIL = 1000
"""Tokens streamed after the measured 4,000, so the last window is not the final redraw."""


async def stream_once(n_tokens: int, rate: float | None, tail: int = 0, timeout: float = 300.0) -> dict:
    from bench.fake_generator import FakeGenerator, factory_for, last_token
    from bench.tui_harness import MessageClock, create_app, send, shown_tokens, wait_model_ready, wait_reply

    gen = FakeGenerator(n_tokens + tail, rate)
    clock = MessageClock()
    with temp_home() as home:
        app = create_app(home, "demo", factory_for(gen))
        async with app.run_test(size=(100, 40), message_hook=clock) as pilot:
            await wait_model_ready(app, clock, timeout=60)
            before = clock.count("ReplyFinished")
            t_send = await send(pilot, "Write a very long answer with code.")
            samples: list[tuple[float, int]] = []
            while now() - t_send < timeout:
                shown = shown_tokens(app, last_token)
                samples.append((now(), shown))
                if shown >= n_tokens:
                    break
                await asyncio.sleep(0.005)
            t_done = await wait_reply(clock, before, timeout)
            await pilot.pause()
            await asyncio.sleep(0.2)  # let the finished reply's handler settle before the app exits
    if not samples or samples[-1][1] < n_tokens:
        raise RuntimeError(f"the screen showed {samples[-1][1] if samples else 0} of {n_tokens} tokens")

    def reached(k: int) -> float:
        """When the screen first held ``k`` tokens (interpolated between 5 ms samples)."""
        prev_t, prev_n = samples[0]
        for t, shown in samples:
            if shown >= k:
                if shown == prev_n:
                    return t
                return prev_t + (t - prev_t) * (k - prev_n) / (shown - prev_n)
            prev_t, prev_n = t, shown
        raise ValueError(k)

    start = gen.timestamps[0]
    first = WINDOW / (reached(WINDOW) - reached(1))  # from the first token on screen
    last = WINDOW / (reached(n_tokens) - reached(n_tokens - WINDOW))
    pulled_s = gen.timestamps[-1] - start
    return {"first": first, "last": last, "ratio": last / first, "pulled": len(gen.timestamps) / pulled_s,
            "pulled_s": pulled_s, "lag_first_s": reached(WINDOW) - gen.timestamps[WINDOW - 1],
            "lag_last_s": reached(n_tokens) - gen.timestamps[n_tokens - 1],
            "last_window_includes_final_redraw": reached(n_tokens) > gen.timestamps[-1],
            "total_s": reached(n_tokens) - start, "reply_finished_s": t_done - start,
            "samples": len(samples)}


def run(quick: bool) -> tuple[list[Row], dict]:
    reps = 1 if quick else 3
    rate = PACED_RATE
    runs = [asyncio.run(stream_once(N_TOKENS, rate, TAIL)) for _ in range(reps)]
    redraw = sum(r["last_window_includes_final_redraw"] for r in runs)
    rows = [
        Row(BENCH, f"tok/s on screen, tokens {N_TOKENS - WINDOW}-{N_TOKENS} / 1-{WINDOW} (at {rate:.0f} tok/s)",
            median([r["ratio"] for r in runs]), target=">= 0.9", unit="x",
            detail=f"median of {reps}: first {median([r['first'] for r in runs]):.0f} tok/s, last "
                   f"{median([r['last'] for r in runs]):.0f} tok/s reached the screen"
                   + (f" ({redraw} run(s) lagged past the tail: last window includes the final redraw)"
                      if redraw else "")),
        Row(BENCH, f"screen behind generator at token {N_TOKENS}", median([r["lag_last_s"] for r in runs]),
            unit="s", detail=f"at token {WINDOW}: {median([r['lag_first_s'] for r in runs]) * 1000:.0f} ms"),
    ]
    unpaced = asyncio.run(stream_once(N_TOKENS, None))
    rows.append(Row(BENCH, f"unpaced {N_TOKENS}-token reply: seconds until all on screen", unpaced["total_s"],
                    unit="s", detail=f"the app pulled {unpaced['pulled']:.0f} tok/s (done after "
                                     f"{unpaced['pulled_s']:.2f} s); {N_TOKENS / unpaced['total_s']:.0f} tok/s "
                                     "on screen overall (updates batch, so no per-window rate)"))
    return rows, {"runs": runs, "unpaced": unpaced,
                  "notes": [f"fake generator paced at {rate:.0f} tok/s, {N_TOKENS}+{TAIL} tokens; the app, widgets and "
                            "Markdown are the real ones (headless run_test, 100x40); 'on screen' = the Markdown "
                            "widgets' source, sampled every 5 ms"]}


def main(argv: list[str] | None = None) -> list[Row]:
    args = parse_args(__doc__.splitlines()[0], argv)
    rows, meta = run_with_one_retry(BENCH, run, args.quick, "tok/s last 1000 / first 1000", target=">= 0.9")
    return finish(BENCH, rows, args, meta)


if __name__ == "__main__":
    main()
