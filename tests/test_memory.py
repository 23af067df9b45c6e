"""Peak memory is bounded by the tiles in flight, not by the image size (slow).

Runs ``tile_process`` with default settings on two generated images 8x apart in size, each
in a fresh subprocess whose peak RSS (``ru_maxrss``) is read back, and checks the larger
run stays under 2 GiB and within 1.25x of the smaller one.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, resource, sys
import numpy as np
from scipy import ndimage as ndi
from patchworks import tile_process
from patchworks.datasets import THRESHOLD

def fn(tile):
    return ndi.label(tile > THRESHOLD, structure=np.ones((3, 3, 3)))[0].astype("int32")

tile_process(sys.argv[1], fn, write_to=sys.argv[2])
print(json.dumps({"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _peak_mib(image: str, out: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, image, out], check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_mib"]


@pytest.mark.slow
def test_peak_rss_does_not_grow_with_image_size(tmp_path):
    from patchworks.datasets import write_blobs_zarr

    small, large = tmp_path / "small.zarr", tmp_path / "large.zarr"
    write_blobs_zarr(str(small), (128, 256, 512), chunks=(128, 128, 128), radius=12)
    write_blobs_zarr(str(large), (256, 512, 1024), chunks=(128, 128, 128), radius=12)
    peak_small = _peak_mib(str(small), str(tmp_path / "small-out.zarr"))
    peak_large = _peak_mib(str(large), str(tmp_path / "large-out.zarr"))
    assert peak_large < 2048
    assert peak_large <= 1.25 * peak_small, (peak_small, peak_large)
