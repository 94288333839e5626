"""Data-parallel runs (``accelerate launch`` / ``torchrun``): only rank 0 writes the run directory.

Everything is the identity when the process is alone; torch is imported only when a process group
is running. Re-exported by engine.runs.
"""

from __future__ import annotations

import os
from typing import Callable

from engine.errors import UserError


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_distributed() -> bool:
    return world_size() > 1


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def init_distributed() -> None:
    """Start the process group early (gloo on CPU, nccl on GPUs) so ranks can agree on the run id."""
    if not is_distributed():
        return
    from accelerate import PartialState

    PartialState()


def barrier() -> None:
    if not is_distributed():
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast(obj, src: int = 0):
    """Rank ``src``'s ``obj`` on every rank (a run id, a decision); the identity when not distributed."""
    if not is_distributed():
        return obj
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def any_rank(flag: bool) -> bool:
    """True on every rank if ``flag`` is true on any rank (so all ranks stop at the same step)."""
    if not is_distributed():
        return flag
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    backend = dist.get_backend()
    device = "cuda" if backend == "nccl" and torch.cuda.is_available() else "cpu"
    t = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def on_main(fn: Callable, *args, **kwargs):
    """Run ``fn`` on rank 0 only, then share its result (or its UserError) with every rank."""
    result, error = None, None
    if is_main_process():
        try:
            result = fn(*args, **kwargs)
        except UserError as exc:
            error = (str(exc), exc.exit_code)
    result, error = broadcast((result, error))
    if error is not None:
        raise UserError(error[0], error[1])
    return result
