"""Direct chunk I/O writes exactly what zarr itself would, and falls back when it cannot."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from patchworks._store.chunkio import ChunkIO, read_tile, tile_io, write_tile
from patchworks.io._zarr import create_label_array, label_compressors


@pytest.mark.parametrize("separator", ["/", "."])
@pytest.mark.parametrize("dtype", ["uint8", "int32", "uint64"])
def test_round_trip_matches_zarr(rng, separator, dtype):
    shape, chunks = (7, 10, 5), (3, 4, 5)
    array = zarr.create_array(
        "a.zarr",
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        fill_value=0,
        compressors=label_compressors(),
        chunk_key_encoding={"name": "default", "separator": separator},
    )
    io = ChunkIO.of(array)
    assert io is not None
    expected = rng.integers(0, 50, size=shape).astype(dtype)
    expected[3:6, 4:8] = 0  # one all-zero chunk: must not be stored
    for coords in np.ndindex(3, 3, 1):
        box = tuple(slice(c * n, (c + 1) * n) for c, n in zip(coords, chunks, strict=True))
        io.write(coords, expected[box])
    reopened = zarr.open_array("a.zarr", mode="r")
    np.testing.assert_array_equal(reopened[...], expected)
    for coords in np.ndindex(3, 3, 1):
        box = tuple(slice(c * n, (c + 1) * n) for c, n in zip(coords, chunks, strict=True))
        np.testing.assert_array_equal(io.read(coords), expected[box])
    assert reopened.nchunks_initialized == 8


def test_zero_block_removes_an_existing_chunk():
    array = create_label_array("a.zarr", (4, 4), (2, 2), "int32")
    io = ChunkIO.of(array)
    io.write((0, 1), np.ones((2, 2), dtype="int32"))
    assert array.nchunks_initialized == 1
    io.write((0, 1), np.zeros((2, 2), dtype="int32"))
    assert array.nchunks_initialized == 0
    assert io.read((0, 1)).tolist() == [[0, 0], [0, 0]]


def test_reads_zarr_written_chunks_and_writable_result():
    array = create_label_array("a.zarr", (5, 6), (2, 3), "int16")
    array[...] = np.arange(30, dtype="int16").reshape(5, 6)
    block = ChunkIO.of(array).read((2, 1))
    assert block.tolist() == [[27, 28, 29]]
    block[0, 0] = 1  # relabel may work in place


def test_other_layouts_fall_back_to_zarr(tmp_path):
    v2 = zarr.create_array("v2.zarr", shape=(4, 4), chunks=(2, 2), dtype="int32", zarr_format=2)
    blosc = zarr.create_array(
        "b.zarr", shape=(4, 4), chunks=(2, 2), dtype="int32", compressors=zarr.codecs.BloscCodec()
    )
    big_endian = zarr.create_array(
        "e.zarr",
        shape=(4, 4),
        chunks=(2, 2),
        dtype=">i4",
        serializer=zarr.codecs.BytesCodec(endian="big"),
    )
    memory = zarr.create_array(
        zarr.storage.MemoryStore(), shape=(4, 4), chunks=(2, 2), dtype="int32"
    )
    for array in (v2, blosc, big_endian, memory, np.zeros((4, 4))):
        assert tile_io(array, (2, 2)) is None
    labels = create_label_array("l.zarr", (4, 4), (2, 2), "int32")
    assert tile_io(labels, (2, 2)) is not None
    assert tile_io(labels, (4, 4)) is None  # chunks are not the tiles
    box = (slice(2, 4), slice(0, 2))
    write_tile(v2, None, (1, 0), box, np.full((2, 2), 3, dtype="int32"))
    assert read_tile(v2, None, (1, 0), box).tolist() == [[3, 3], [3, 3]]


@pytest.mark.parametrize("top", [1, 255, 256, 70_000])
def test_local_labels_round_trip_in_the_narrowest_type(rng, top):
    array = create_label_array("a.zarr", (5, 7), (4, 4), "int64")
    io = ChunkIO.of(array)
    edge = rng.integers(0, top + 1, size=(1, 3))  # the corner chunk is 1 x 3
    edge[0, 0] = top
    io.write_local((1, 1), edge, top)
    back = io.read_local((1, 1))
    assert back.dtype == np.min_scalar_type(top) and back.shape == (1, 3)
    np.testing.assert_array_equal(back, edge)
    np.testing.assert_array_equal(io.read_local((1, 1), reuse=True), edge)
    io.write((0, 0), np.full((4, 4), 9))  # a plain chunk reads back as well
    assert io.read_local((0, 0)).tolist() == [[9] * 4] * 4
    assert io.read_local((0, 1)).tolist() == [[0, 0, 0]] * 4  # never written


@pytest.mark.parametrize("top", [1, 255, 256, 70_000])
def test_runs_round_trip(rng, top):
    array = create_label_array("a.zarr", (5, 7), (4, 4), "int64")
    io = ChunkIO.of(array)
    values = rng.integers(0, top + 1, size=3)
    values[0] = top
    lengths = np.array([1, 0, 2])  # the corner chunk is 1 x 3
    io.write_runs((1, 1), lengths, values, top)
    back_values, back_lengths = io.read_runs((1, 1))
    assert back_values.dtype == np.min_scalar_type(top)
    assert back_values.tolist() == values.tolist() and back_lengths.tolist() == [1, 0, 2]
    assert io.read_local((1, 1)).tolist() == [[top, values[2], values[2]]]
    io.write_local((0, 0), np.ones((4, 4), "uint8"), 1)  # other encodings: not runs
    assert io.read_runs((0, 0)) is None and io.read_runs((0, 1)) is None
    io.write_runs((1, 1), np.array([3]), np.array([0]), 0)  # all background: no chunk
    assert io.read_runs((1, 1)) is None and not array[4:, 4:].any()


@pytest.mark.parametrize("lengths", [[300, 100], [70_000, 20_000]])  # 2- and 4-byte lengths
def test_long_runs_round_trip(lengths):
    side = int(np.sqrt(sum(lengths)))
    array = create_label_array("a.zarr", (side, side), (side, side), "int32")
    io = ChunkIO.of(array)
    io.write_runs((0, 0), np.array(lengths), np.array([1, 2]), 2)
    values, back = io.read_runs((0, 0))
    assert back.tolist() == lengths and values.tolist() == [1, 2]
    np.testing.assert_array_equal(io.read_local((0, 0)).ravel(), np.repeat([1, 2], lengths))


def test_runs_in_an_uncompressed_array_are_plain_chunks():
    array = zarr.create_array(
        "u.zarr", shape=(2, 2), chunks=(2, 2), dtype="int32", fill_value=0, compressors=None
    )
    io = ChunkIO.of(array)
    io.write_runs((0, 0), np.array([3, 1]), np.array([2, 1]), 2)
    assert io.read_runs((0, 0)) is None
    assert array[:].tolist() == [[2, 2], [2, 1]]


def test_published_output_holds_only_plain_zarr_chunks(tmp_path):
    from scipy import ndimage as ndi

    from patchworks import tile_process

    image = np.zeros((20, 20), dtype="uint8")
    image[2:18, 3] = image[5, 1:19] = 1
    out = str(tmp_path / "out.zarr")
    tile_process(image, lambda t: ndi.label(t)[0], tile_shape=(6, 6), write_to=out)
    chunks = [p for p in (tmp_path / "out.zarr" / "c").rglob("*") if p.is_file()]
    assert chunks and all(p.read_bytes()[:4] == b"\x28\xb5\x2f\xfd" for p in chunks)


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_read_box_matches_zarr_across_chunks_edges_and_missing_chunks(rng, dtype):
    """Input images are read from their chunk files directly, for any box (halos too)."""
    shape = (9, 14, 7)
    image = zarr.create_array("img.zarr", shape=shape, chunks=(4, 5, 3), dtype=dtype, fill_value=0)
    data = (rng.random(shape) * 1000).astype(dtype)
    data[:4, :5, :3] = 0  # an all-zero chunk is never stored: read as the fill value
    image[...] = data
    io = ChunkIO.of(image)
    assert io is not None
    for _ in range(30):
        box = tuple(
            slice(a, b)
            for a, b in (sorted(rng.choice(n + 1, size=2, replace=False)) for n in shape)
        )
        np.testing.assert_array_equal(io.read_box(box), data[box])
        # into this thread's reusable buffers, which earlier reads left dirty
        np.testing.assert_array_equal(io.read_box(box, reuse=True), data[box])
