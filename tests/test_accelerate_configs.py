"""The documented accelerate configs (docs/accelerate/) load and turn into the launch settings they promise.
Launching them needs several GPUs (and deepspeed for ZeRO-3): not possible here, so only the parsing is tested."""

from __future__ import annotations

from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs" / "accelerate"


@pytest.mark.slow
@pytest.mark.parametrize("name, check", [
    ("fsdp.yaml", lambda a: a.use_fsdp and a.fsdp_auto_wrap_policy == "TRANSFORMER_BASED_WRAP"),
    ("deepspeed_zero3.yaml", lambda a: a.use_deepspeed and int(a.zero_stage) == 3),
])
def test_accelerate_launch_reads_the_documented_config(name, check):
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    args = launch_command_parser().parse_args(["--config_file", str(DOCS / name), "-m", "engine", "finetune"])
    args, _, _ = _validate_launch_command(args)
    assert check(args) and args.mixed_precision == "bf16" and args.num_processes == 4
