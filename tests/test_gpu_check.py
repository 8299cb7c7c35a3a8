"""bench/gpu_check.py, as far as a CPU can check it: options, and one clear message without CUDA.

The GPU parts themselves (Unsloth, the CNN with mixed precision) need a CUDA machine.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_options_and_their_defaults():
    check = _module()
    args = check.parse_args([])
    assert args.parts == ["unsloth", "cnn"] and args.lora_steps > 0
    assert check.parse_args(["--parts", "cnn", "--cnn-subjects", "50"]).parts == ["cnn"]
    with pytest.raises(ValueError, match="--lora-steps must be a positive integer, got 0"):
        check.parse_args(["--lora-steps", "0"])
    with pytest.raises(SystemExit):
        check.parse_args(["--parts", "gpt"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_one_clear_message_and_exit_2():
    done = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: {_module().NO_CUDA}"]
    assert "Traceback" not in done.stderr and done.stdout == ""
