"""The README's command-line quick start, run line by line as a newcomer would."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import zarr

README = Path(__file__).resolve().parents[1] / "README.md"


def quick_start_lines() -> list[str]:
    section = README.read_text().split("## Command line", 1)[1]
    block = re.search(r"```console\n(.*?)```", section, re.S)
    assert block is not None
    return [
        line[2:].split("  #")[0].strip()
        for line in block.group(1).splitlines()
        if line.startswith("$ ")
    ]


def test_readme_command_line_quick_start(tmp_path):
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    lines = quick_start_lines()
    assert any(line.startswith("patchworks run") for line in lines)
    for line in lines:
        if "--scheduler-address" in line:
            continue  # needs a running dask scheduler (covered in test_cli.py)
        line = (
            line.replace("image.ome.zarr", "image.ome.zarr --shape 16,128,128", 1)
            if (line.startswith("python -m patchworks.datasets"))
            else line
        )
        done = subprocess.run(
            ["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, (line, done.stdout, done.stderr)
    labels = zarr.open_group(str(tmp_path / "image.ome.zarr/labels/patchworks"), mode="r")
    assert labels["0"].shape == (16, 128, 128) and labels["0"][...].max() > 0
    assert (tmp_path / "check.png").stat().st_size > 1000
