"""connectivity=None follows fn: what the tiles show about its connectivity and instances."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import zarr
from scipy import ndimage as ndi
from skimage.measure import label as sk_label

from patchworks import merge_tile_labels, tile_process
from patchworks._engine import contacts
from patchworks.datasets import THRESHOLD, blobs
from patchworks.errors import StitchingWarning
from patchworks.testing import assert_same_partition


def scipy_fn(tile):
    return ndi.label(tile > THRESHOLD)[0]  # faces only: scipy's default


def skimage_fn(tile):
    return sk_label(tile > THRESHOLD)  # full connectivity: scikit-image's default


@pytest.fixture(scope="module")
def volume():
    return blobs((32, 96, 96))


@pytest.fixture(scope="module")
def plane():
    return blobs((1, 256, 256))[0]


def test_contacts_of_one_tile():
    assert contacts.tile_contacts(np.zeros((3, 3), "uint8")) == 0
    assert contacts.tile_contacts(np.array([[1, 0], [0, 2]])) == 0b100  # edge
    assert contacts.tile_contacts(np.array([[1, 2]])) == 0b10  # face
    corner = np.zeros((2, 2, 2), "uint8")
    corner[0, 0, 0], corner[1, 1, 1] = 1, 2
    assert contacts.tile_contacts(corner) == 0b1000
    assert contacts.tile_contacts(np.array([[1, 1], [1, 1]])) == 0  # one label


def test_inference_from_the_masks():
    assert contacts.infer_connectivity([], 3) is None
    assert contacts.infer_connectivity([0, 0b10], 3) is None  # faces say nothing
    assert contacts.infer_connectivity([0b1000, 0], 3) == 2
    assert contacts.infer_connectivity([0b1000, 0b100], 3) == 1
    assert contacts.contradicted([0b100], 3) == 2
    assert contacts.contradicted([0b1000], 2) is None
    assert contacts.n_touching([0b10, 0b110, 0b100]) == 2


def test_the_checked_tiles_are_a_fixed_sample_of_the_plan(monkeypatch, tmp_path):
    """Every stride-th tile by index, whatever the order they run in: a resumed run
    infers what an uninterrupted one does."""
    assert contacts.sample_stride(4, 16) == 1  # small images: every tile
    monkeypatch.setattr(contacts, "SCAN_BUDGET", 32)  # two of the four 4x4 tiles below
    assert contacts.sample_stride(4, 16) == 2

    def record(tile_with_edge):
        image = np.zeros((4, 16), "int32")
        column = 4 * tile_with_edge
        image[0, column], image[1, column + 1] = 1, 2  # distinct labels touching at an edge
        image[3, 0:16:4] = 3  # every tile has labels
        out = tmp_path / f"edge-in-{tile_with_edge}.zarr"
        tile_process(image, lambda t: t, tile_shape=(4, 4), write_to=out)
        return dict(zarr.open_array(out).attrs)["patchworks"]

    assert record(2)["connectivity_from"] == "tiles"  # tile 2 is checked
    assert record(1)["connectivity_from"] == "assumed"  # tile 1 is not


@pytest.mark.parametrize("tile_shape", [(16, 32, 32), (8, 48, 40)])
def test_default_follows_scipys_faces_only_labels(volume, tile_shape, tmp_path):
    out = tmp_path / "labels.zarr"
    labels = tile_process(volume, scipy_fn, tile_shape=tile_shape, write_to=out, compute=True)
    assert_same_partition(labels, ndi.label(volume > THRESHOLD)[0])
    record = dict(zarr.open_array(out).attrs)["patchworks"]
    assert record["connectivity"] == 1 and record["connectivity_from"] == "tiles"


def test_default_follows_skimages_full_labels(volume):
    labels = tile_process(volume, skimage_fn, tile_shape=(16, 32, 32), compute=True)
    assert_same_partition(labels, sk_label(volume > THRESHOLD))


def test_default_on_plane_tiles_and_on_a_dask_merge(plane):
    truth = ndi.label(plane > THRESHOLD)[0]
    labels = tile_process(plane, scipy_fn, tile_shape=(64, 64), compute=True)
    assert_same_partition(labels, truth)
    blocks = da.from_array(plane, chunks=(64, 64)).map_blocks(scipy_fn, dtype=np.int32)
    assert_same_partition(merge_tile_labels(blocks, compute=True), truth)


def test_an_explicit_connectivity_wins_but_a_contradicted_one_warns(volume, tmp_path):
    out = tmp_path / "labels.zarr"
    with pytest.warns(StitchingWarning, match="pass connectivity=1"):
        tile_process(volume, scipy_fn, tile_shape=(16, 32, 32), connectivity=3, write_to=out)
    record = dict(zarr.open_array(out).attrs)["patchworks"]
    assert record["connectivity"] == 3 and record["connectivity_from"] == "given"


def test_no_evidence_assumes_full_connectivity(tmp_path):
    image = np.zeros((8, 8), "uint8")
    image[2:6, 2:6] = 1  # one square: its tiles show no contact of any kind
    out = tmp_path / "labels.zarr"
    tile_process(image, lambda t: ndi.label(t)[0], tile_shape=(4, 4), write_to=out)
    record = dict(zarr.open_array(out).attrs)["patchworks"]
    assert record["connectivity"] == 2 and record["connectivity_from"] == "assumed"


def test_touching_instances_with_touch_warn_once_and_are_counted(tmp_path):
    cells = np.zeros((16, 16), "int32")
    cells[2:8, 2:8], cells[8:14, 2:8] = 1, 2  # two cells pressed together
    out = tmp_path / "labels.zarr"
    with pytest.warns(StitchingWarning, match='stitch="iou"') as caught:
        tile_process(cells, lambda t: t, tile_shape=(16, 8), write_to=out)
    assert len([w for w in caught if issubclass(w.category, StitchingWarning)]) == 1
    record = dict(zarr.open_array(out).attrs)["patchworks"]
    assert record["tiles_with_touching_labels"] == 1  # the left tile holds both


def _corner_to_corner():
    """Two bars that touch only at a tile corner: no tile shows a contact of any kind."""
    image = np.zeros((8, 8), "uint8")
    image[0:4, 3] = 1
    image[4:8, 4] = 1
    return image


def test_a_join_only_by_diagonal_contact_without_evidence_warns(tmp_path):
    out = tmp_path / "labels.zarr"
    with pytest.warns(StitchingWarning, match="pass connectivity=1") as caught:
        labels = tile_process(
            _corner_to_corner(),
            lambda t: ndi.label(t)[0],
            tile_shape=(4, 4),
            write_to=out,
            compute=True,
        )
    assert "(1 join)" in str(caught[0].message)
    assert len(np.unique(labels)) == 2  # joined, as connectivity 2 says
    record = dict(zarr.open_array(out).attrs)["patchworks"]
    assert record["connectivity_from"] == "assumed"
    assert record["seam_joins_only_diagonal"] == 1


@pytest.mark.parametrize("connectivity", [1, 2])
def test_a_given_connectivity_decides_diagonal_seam_contacts_silently(connectivity):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", StitchingWarning)
        labels = tile_process(
            _corner_to_corner(),
            lambda t: ndi.label(t)[0],
            tile_shape=(4, 4),
            connectivity=connectivity,
            compute=True,
        )
    assert len(np.unique(labels)) == (3 if connectivity == 1 else 2)


def test_face_contacts_across_seams_alone_do_not_warn(tmp_path):
    import warnings

    image = np.zeros((8, 8), "uint8")
    image[2:6, 2:6] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", StitchingWarning)
        tile_process(
            image, lambda t: ndi.label(t)[0], tile_shape=(4, 4), write_to=tmp_path / "l.zarr"
        )
    record = dict(zarr.open_array(tmp_path / "l.zarr").attrs)["patchworks"]
    assert record["seam_joins_only_diagonal"] == 0
