"""The ``patchworks`` command driven as a subprocess, as a user would from a shell."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import zarr

from patchworks.datasets import write_blobs_ome_zarr, write_blobs_zarr

SEG = textwrap.dedent("""
    from skimage.measure import label

    def fn(tile):
        return label(tile > 400).astype("int32")

    def broken(tile):
        raise RuntimeError("model exploded")
""")


def cli(*args, check=None):
    done = subprocess.run(
        [sys.executable, "-m", "patchworks", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=os.getcwd(),
    )
    if check is not None:
        assert done.returncode == check, (done.returncode, done.stdout, done.stderr)
    return done


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "seg.py").write_text(SEG)
    write_blobs_ome_zarr("img.ome.zarr", (8, 96, 96), chunks=(4, 48, 48), radius=5)
    return tmp_path


def test_run_info_preview_on_ome_zarr(workspace, capsys):
    plan = cli("run", "img.ome.zarr", "--fn", "seg:fn", "--overlap", "2", "--dry-run", check=0)
    assert "8 tiles of (4, 48, 48)" in plan.stdout and "dry run" in plan.stdout
    assert not os.path.exists("img.ome.zarr/labels")
    done = cli("run", "img.ome.zarr", "--fn", "seg:fn", "--overlap", "2", check=0)
    assert "objects" in done.stdout
    labels = zarr.open_array("img.ome.zarr/labels/patchworks/0", mode="r")
    assert labels.shape == (8, 96, 96) and labels[...].max() > 0
    code, out, _ = run_main(capsys, "info", "img.ome.zarr", "--json")
    info = json.loads(out)
    assert code == 0 and info["shape"] == [8, 96, 96] and info["n_tiles"] == 8
    assert info["ome"]["labels"] == ["patchworks"] and len(info["ome"]["levels"]) == 3
    assert run_main(capsys, "preview", "img.ome.zarr", "--out", "p.png")[0] == 0
    assert os.path.getsize("p.png") > 1000


def run_main(capsys, *args):
    """The CLI in-process (fast): exit code, stdout, stderr."""
    from patchworks._cli.main import main

    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _error_lines(err):
    return [line for line in err.splitlines() if line.startswith("patchworks: error:")]


def test_exit_codes_and_one_line_errors(workspace, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(workspace))
    write_blobs_zarr("plain.zarr", (4, 32, 32), chunks=(2, 16, 16))
    usage = [
        ("run", "missing.zarr", "--fn", "seg:fn", "--out", "o.zarr"),
        ("run", "plain.zarr", "--fn", "seg:nope", "--out", "o.zarr"),
        ("run", "plain.zarr", "--fn", "nomodule:fn", "--out", "o.zarr"),
        ("run", "plain.zarr", "--fn", "seg:fn"),  # nowhere to write
        ("run", "plain.zarr", "--fn", "seg:fn", "--out", "o.zarr", "--tile-shape", "2,a"),
        ("run", "plain.zarr", "--fn", "seg:fn", "--out", "o.zarr", "--tile-shape", "0,4,4"),
        ("run", "plain.zarr", "--fn", "seg:fn", "--out", "o.zarr", "--channel", "1"),
        ("info", "plain.zarr", "--level", "1"),
        ("estimate-empty", "plain.zarr"),
    ]
    for args in usage:
        code, _, err = run_main(capsys, *args)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("patchworks: error: "), (
            args,
            err,
        )
    code, _, err = run_main(capsys, "run", "plain.zarr", "--fn", "seg:broken", "--out", "o.zarr")
    assert code == 1 and _error_lines(err) == [err.strip().splitlines()[-1]]
    assert "model exploded" in err  # after the progress lines, one line says what failed
    code, _, err = run_main(
        capsys, "run", "plain.zarr", "--fn", "seg:broken", "--out", "o.zarr", "--debug"
    )
    assert code == 1 and "Traceback" in err
    assert run_main(capsys, "run", "plain.zarr", "--fn", "seg.py:fn", "--out", "o.zarr")[0] == 0
    code, _, err = run_main(capsys, "run", "plain.zarr", "--fn", "seg:fn", "--out", "o.zarr")
    assert code == 2 and "already exists" in err
    assert "pass --overwrite" in err and "overwrite=True" not in err  # flags, not kwargs
    assert (
        run_main(capsys, "run", "plain.zarr", "--fn", "seg:fn", "--out", "o.zarr", "--overwrite")[0]
        == 0
    )


def test_subprocess_exit_codes(workspace):
    write_blobs_zarr("plain.zarr", (4, 32, 32), chunks=(2, 16, 16))
    assert cli("run", "plain.zarr", check=2).stderr.startswith("patchworks: error: give --fn")
    assert cli("run", check=2).stderr.startswith("usage: patchworks run")
    bad = cli("run", "plain.zarr", "--fn", "seg:fn", "--out", "o.zarr", "--overlap", "-1", check=2)
    assert bad.stderr.count("\n") == 1 and "error: --overlap entries must" in bad.stderr
    failed = cli("run", "plain.zarr", "--fn", "seg:broken", "--out", "o.zarr", check=1)
    assert _error_lines(failed.stderr) == [failed.stderr.strip().splitlines()[-1]]
    assert "model exploded" in failed.stderr
    quiet = cli("run", "plain.zarr", "--fn", "seg:broken", "--out", "o.zarr", "--no-progress")
    assert quiet.returncode == 1 and quiet.stderr.count("\n") == 1
    assert not os.path.exists("o.zarr")


def test_merge_and_estimate_empty(workspace, capsys):
    import dask.array as da

    write_blobs_zarr("plain.zarr", (4, 64, 64), chunks=(2, 32, 32), radius=4)
    from skimage.measure import label

    staged = (
        da.from_zarr("plain.zarr")
        .map_blocks(lambda t: label(t > 400).astype("int32"), dtype="int32")
        .compute()
    )
    zarr.open_group("staged.zarr", mode="w").create_array("raw", data=staged, chunks=(2, 32, 32))
    code, out, _ = run_main(
        capsys, "merge", "staged.zarr", "--component", "raw", "--out", "merged.zarr"
    )
    assert code == 0 and "objects" in out
    assert zarr.open_array("merged.zarr").shape == (4, 64, 64)
    code, out, _ = run_main(
        capsys, "estimate-empty", "plain.zarr", "--tile-shape", "2,32,32", "--json"
    )
    est = json.loads(out)
    assert code == 0 and 0 <= est["empty_fraction"] <= 1 and "threshold" in est
    write_blobs_ome_zarr("img2.ome.zarr", (4, 64, 64), chunks=(2, 32, 32), radius=4)
    code, out, _ = run_main(
        capsys, "estimate-empty", "img2.ome.zarr", "--tile-shape", "2,32,32", "--level", "1"
    )
    assert code == 0 and "of tiles are empty" in out


def test_scheduler_address(workspace, capsys, monkeypatch):
    """A process-based cluster: workers import the user's seg.py only if it is shipped."""
    from distributed import LocalCluster

    monkeypatch.syspath_prepend(str(workspace))
    write_blobs_zarr("plain.zarr", (4, 32, 32), chunks=(2, 16, 16))
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        code, _, err = run_main(
            capsys,
            "run",
            "plain.zarr",
            "--fn",
            "seg:fn",
            "--out",
            "o.zarr",
            "--scheduler-address",
            cluster.scheduler_address,
        )
    assert code == 0, err
    assert zarr.open_array("o.zarr").shape == (4, 32, 32)


@pytest.mark.slow
def test_unreachable_scheduler_is_a_usage_error(workspace, capsys):
    write_blobs_zarr("plain.zarr", (4, 32, 32), chunks=(2, 16, 16))
    code, _, err = run_main(
        capsys, "info", "plain.zarr", "--scheduler-address", "tcp://127.0.0.1:9"
    )
    assert code == 2 and "could not connect" in err


def test_dry_run_checks_the_overlap_as_the_run_does(workspace, capsys):
    code, _, err = run_main(
        capsys,
        "run",
        "img.ome.zarr",
        "--fn",
        "seg:fn",
        "--stitch",
        "iou",
        "--overlap",
        "0",
        "--dry-run",
    )
    assert code == 2 and "needs --overlap > 0" in err
    assert not os.path.exists("img.ome.zarr/labels")


def test_fn_file_imports_a_sibling_module(tmp_path):
    """``--fn path/seg_helper.py:fn`` where seg_helper imports helper.py beside it, run from
    another folder: the file's folder is on the path."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "helper.py").write_text("THRESHOLD = 400\n")
    (code / "seg_helper.py").write_text(
        "from helper import THRESHOLD\nfrom skimage.measure import label\n\n"
        "def fn(tile):\n    return label(tile > THRESHOLD).astype('int32')\n"
    )
    write_blobs_zarr("plain.zarr", (8, 64, 64), chunks=(4, 32, 32), radius=5)
    done = cli("run", "plain.zarr", "--fn", f"{code}/seg_helper.py:fn", "--out", "o.zarr", check=0)
    assert "objects" in done.stdout
    assert zarr.open_array("o.zarr", mode="r")[...].max() > 0
