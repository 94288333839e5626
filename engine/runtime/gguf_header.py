"""A GGUF file's header read straight from the file: its scalar and string metadata and its tensors' shapes, in
milliseconds and without numpy (the GGUF LoRA conversion and the f16 copy ask it the architecture and the shapes)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


def read_header(path: Path) -> tuple[dict[str, Any], dict[str, tuple[int, ...]]]:
    """A GGUF file's scalar and string metadata (arrays are skipped) and its tensors' shapes (ggml order), read
    straight from the header: gguf's GGUFReader builds a numpy view per token of the vocabulary, which takes
    5-10 s for SmolLM2's 49k tokens and 49k merges on a busy CPU; this takes milliseconds."""
    import mmap

    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        pos = 0

        def take(fmt: str):
            nonlocal pos
            (value,) = struct.unpack_from(fmt, buf, pos)
            pos += struct.calcsize(fmt)
            return value

        def string() -> str:
            nonlocal pos
            n = take("<Q")
            if pos + n > len(buf):
                raise ValueError("a string runs past the end of the file")
            pos += n
            return bytes(buf[pos - n:pos]).decode("utf-8")

        def skip(vtype: int) -> None:
            nonlocal pos
            if vtype in _SCALARS:
                pos += struct.calcsize(_SCALARS[vtype])
            elif vtype == _STRING:
                n = take("<Q")  # (``pos += take(...)`` would add to the position from before the read)
                pos += n
            elif vtype == _ARRAY:
                itype, count = take("<I"), take("<Q")
                if itype in _SCALARS:
                    pos += count * struct.calcsize(_SCALARS[itype])
                else:
                    for _ in range(count):
                        skip(itype)
            else:
                raise ValueError(f"unknown metadata type {vtype}")

        if take("<I") != 0x46554747:  # b"GGUF"
            raise ValueError("not a GGUF file")
        if take("<I") < 2:
            raise ValueError("GGUF version 1 is not supported")
        n_tensors, n_kv = take("<Q"), take("<Q")
        kv: dict[str, Any] = {}
        for _ in range(n_kv):
            key, vtype = string(), take("<I")
            if vtype in _SCALARS:
                kv[key] = take(_SCALARS[vtype])
            elif vtype == _STRING:
                kv[key] = string()
            else:
                skip(vtype)
        tensors = {}
        for _ in range(n_tensors):
            name, n_dims = string(), take("<I")
            tensors[name] = tuple(take("<Q") for _ in range(n_dims))
            pos += 4 + 8  # type, offset
        return kv, tensors
