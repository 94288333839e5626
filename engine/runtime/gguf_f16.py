"""The GGUF llama.cpp runs: the model's own file when its weights are f16/f32, else an f16 copy de-quantized once
into ``home/models/``.

Why: tuneloop trains, gates and benchmarks on the de-quantized weights (transformers reads the GGUF through the
``gguf`` package), and the person must chat with the model that was judged. llama.cpp's Q4_1 kernels also round
the activations to 8 bits, which flips near ties: on SmolLM2's Q4_1 file 33 of 50 bench prompts gave
transformers' first 24 greedy tokens, and "What is the capital of France?" began "L'Étoile ..." instead of "The
capital of France is Paris."; on the f16 copy of the same weights 50 of 50 did, with or without the adapter
(bench/README.md, "The user's adapter in llama.cpp"). Decoding the f16 copy costs 0.85x of the Q4_1 file's speed.
"""

from __future__ import annotations

import json
from pathlib import Path

FAITHFUL_FILE_TYPES = {0, 1}
"""``general.file_type`` values llama.cpp computes with as stored: all f32 (0), mostly f16 (1)."""


def runnable_base(home, source: Path, progress=None) -> Path:
    """``source`` itself when llama.cpp computes its weights as they are, else its f16 copy in ``home/models/``
    (made now when missing or made from another version of ``source``)."""
    from engine.runtime.gguf import file_revision
    from engine.runtime.gguf_header import read_header
    from engine.safe_files import read_text, write_private

    kv, _ = read_header(source)
    if kv.get("general.file_type") in FAITHFUL_FILE_TYPES:
        return source
    home.check_dir(home.models_dir, create=True)
    dest = home.models_dir / f"{source.stem}.f16.gguf"
    record_path = home.models_dir / f"{source.stem}.f16.json"
    revision = file_revision(source)
    try:
        recorded = json.loads(read_text(record_path, home)) if record_path.is_file() else {}
    except (OSError, ValueError):
        recorded = {}
    if dest.is_file() and isinstance(recorded, dict) and recorded.get("source_revision") == revision:
        return dest
    from engine.runtime.export import write_merged_gguf

    if progress:
        progress("de-quantizing the GGUF for llama.cpp (once)", None)
    write_merged_gguf(source, [], dest, "f16")
    write_private(record_path, json.dumps({"source": str(source), "source_revision": revision}), base=home)
    return dest
