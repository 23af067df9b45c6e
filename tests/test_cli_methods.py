"""The command line without Python: ``--method``, errors in flags, ``info`` on any image."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import zarr
from scipy import ndimage as ndi

from conftest import same_partition
from ngff import write_ome_image
from patchworks._cli.main import main
from patchworks.datasets import THRESHOLD, blobs, write_blobs_ome_zarr, write_blobs_zarr
from patchworks.plugins.threshold import ThresholdLabels, otsu_fn

FULL = np.ones((3, 3, 3), dtype=bool)


def run_main(capsys, *args):
    code = main([args[0], "--no-progress", *args[1:]])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_method_otsu_is_one_threshold_for_the_whole_image(here, capsys):
    write_blobs_zarr("img.zarr", (16, 96, 96), chunks=(8, 32, 32), radius=6)
    image = zarr.open_array("img.zarr")[...]
    fn = otsu_fn("img.zarr")
    assert 150 < fn.threshold < 900  # between the background (100) and the blobs (1100)
    code, out, _ = run_main(
        capsys, "run", "img.zarr", "--method", "otsu", "--out", "L.zarr", "--overlap", "2"
    )
    assert code == 0 and "Otsu" in out, out
    labels = zarr.open_array("L.zarr")[...]
    expected = ndi.label(image > fn.threshold, structure=FULL)[0]
    assert same_partition(labels, expected) and labels.max() > 5
    code, out, _ = run_main(
        capsys, "run", "img.zarr", "--method", "otsu", "--threshold", str(THRESHOLD), "--out", "T"
    )
    expected = ndi.label(image > THRESHOLD, structure=FULL)[0]
    assert code == 0 and same_partition(zarr.open_array("T")[...], expected)


def test_otsu_fn_samples_a_large_image_and_refuses_a_constant_one():
    image = blobs((8, 256, 256), radius=6, seed=1)
    sampled = otsu_fn(image, max_voxels=1 << 14)  # boxes spread over the image
    whole = otsu_fn(image)
    assert abs(sampled.threshold - whole.threshold) < 0.25 * whole.threshold
    with pytest.raises(ValueError, match="only the value 7"):
        otsu_fn(np.full((8, 8), 7, dtype="uint8"))
    with pytest.raises(ValueError, match="`threshold` must be a finite number"):
        ThresholdLabels(threshold=float("nan"))


def test_method_choice_errors_speak_flags(here, capsys):
    write_blobs_zarr("img.zarr", (4, 32, 32), chunks=(2, 16, 16))
    cases = {
        ("--out", "o"): "give --fn MODULE:CALLABLE",
        ("--fn", "numpy:asarray", "--method", "otsu", "--out", "o"): "got both",
        ("--method", "cellpose", "--out", "o"): "--method cellpose needs --model NAME_OR_PATH",
        ("--method", "otsu", "--model", "cyto3", "--out", "o"): "--model is for --method",
        ("--method", "otsu", "--channel-axis", "0", "--out", "o"): "pass --channel K",
        ("--method", "otsu", "--diameter", "30", "--out", "o"): "--diameter is for",
    }
    for args, message in cases.items():
        code, _, err = run_main(capsys, "run", "img.zarr", *args)
        assert code == 2 and message in err and err.count("\n") == 1, (args, err)


def test_library_messages_name_the_flags(here, capsys):
    channels = np.stack([blobs((6, 32, 32), radius=4, seed=s) for s in (1, 2)])
    write_ome_image("two.ome.zarr", channels, axes="czyx")
    code, _, err = run_main(capsys, "run", "two.ome.zarr", "--method", "otsu", "--out", "o")
    assert code == 2 and "pass --channel K to segment one, or --channel-axis 0" in err, err
    assert "channel=" not in err and "channel_axis" not in err
    write_blobs_ome_zarr("img.ome.zarr", (4, 32, 32), chunks=(2, 16, 16))
    args = ("run", "img.ome.zarr", "--method", "otsu", "--label-name", "seg")
    assert run_main(capsys, *args)[0] == 0
    code, _, err = run_main(capsys, *args)
    assert code == 2 and "--label-name 'seg' already exists" in err, err
    assert "choose another --label-name" in err and "label_name" not in err
    code, _, err = run_main(capsys, *args, "--tile-shape", "0,8,8")
    assert code == 2 and err.startswith("patchworks: error: --tile-shape "), err


def test_info_describes_channels_and_time(here, capsys):
    channels = np.stack([blobs((6, 32, 32), radius=4, seed=s) for s in (1, 2)])
    write_ome_image("two.ome.zarr", channels, axes="czyx")
    code, out, err = run_main(capsys, "info", "two.ome.zarr")
    assert code == 0, err
    assert "channels    2 on axis 0: choose --channel K" in out
    assert "--channel-axis 0 (fn gets all 2)" in out
    assert "segments    3-D (z, y, x), one of 2 channels" in out
    assert "pixel size (1.0, 1.0, 1.0)" in out
    code, out, _ = run_main(capsys, "info", "two.ome.zarr", "--channel", "1")
    assert code == 0 and "segments    3-D (z, y, x), channel 1" in out
    code, out, _ = run_main(capsys, "info", "two.ome.zarr", "--json")
    info = json.loads(out)
    assert info["channel_needed"] is True and info["channels"] == 2 and info["shape"] == [6, 32, 32]
    movie = np.stack([blobs((24, 24), radius=3, seed=s) for s in range(5)])
    write_ome_image("movie.ome.zarr", movie, axes="tyx")
    code, out, _ = run_main(capsys, "info", "movie.ome.zarr")
    assert code == 0 and "axis t (5 time points): each time point labelled on its own" in out
    assert "segments    2-D (y, x), each of the 5 time points on its own" in out


OTSU = ("--method", "otsu", "--out", "L.zarr")


def test_method_otsu_in_a_fresh_process_with_no_python_file(here):
    write_blobs_ome_zarr("img.ome.zarr", (8, 64, 64), chunks=(4, 32, 32))
    done = subprocess.run(
        [sys.executable, "-m", "patchworks", "run", "img.ome.zarr", *OTSU],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert os.path.isdir("L.zarr/0") and not any(p.endswith(".py") for p in os.listdir("."))
