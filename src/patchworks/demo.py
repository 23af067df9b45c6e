"""Run patchworks end to end on a built-in example image: ``python -m patchworks.demo``.

Writes a seeded blobs volume to ``demo-output/example.zarr`` (once), segments it tile by
tile with a threshold + connected-components function, writes the merged labels to
``demo-output/labels.zarr``, checks them against whole-image ``scipy.ndimage.label`` and
draws ``demo-output/preview.png`` (a plane with the labels and the tile seams).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray


def threshold_and_label(tile: NDArray[Any]) -> NDArray[np.int32]:
    """The demo's per-tile segmenter: fixed threshold, then 26-connected components."""
    from skimage.measure import label

    from patchworks.datasets import THRESHOLD

    # skimage.measure.label is unannotated
    labels: NDArray[np.int32] = label(tile > THRESHOLD).astype("int32")  # type: ignore[no-untyped-call]
    return labels


def same_partition_as_reference(
    labels: NDArray[Any], reference: NDArray[Any], n_reference: int
) -> bool:
    """Whether ``labels`` equals ``reference`` (IDs ``1..n_reference``, as
    :func:`scipy.ndimage.label` numbers them) up to renaming, in a few passes over the voxels.

    The two are the same partition when their backgrounds agree, each reference object
    carries one label throughout (the label read back through a reference-ID → label table
    is the label at every voxel) and no two reference objects carry the same label.

    Examples
    --------
    >>> import numpy as np
    >>> reference = np.array([0, 1, 1, 2, 0])
    >>> same_partition_as_reference(np.array([0, 7, 7, 3, 0]), reference, 2)
    True
    >>> same_partition_as_reference(np.array([0, 7, 7, 7, 0]), reference, 2)  # joined
    False
    >>> same_partition_as_reference(np.array([0, 7, 3, 3, 0]), reference, 2)  # split
    False
    """
    if labels.shape != reference.shape:
        return False
    foreground = reference != 0
    if not np.array_equal(labels != 0, foreground):
        return False
    ours, theirs = labels[foreground], reference[foreground]
    table = np.zeros(n_reference + 1, dtype=ours.dtype)
    table[theirs] = ours  # one of each object's labels; all of them if it has only one
    if not np.array_equal(table[theirs], ours):
        return False  # an object of the reference carries two labels: split
    present = np.zeros(n_reference + 1, dtype=bool)
    present[theirs] = True
    used = table[present]
    return bool(np.unique(used).size == used.size)  # two objects, one label: joined


def main(argv: list[str] | None = None) -> int:
    import zarr
    from scipy import ndimage as ndi

    from patchworks import preview, tile_process
    from patchworks.datasets import THRESHOLD, write_blobs_zarr

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="demo-output", help="output folder")
    parser.add_argument("--shape", default="64,512,512", help="example image shape")
    parser.add_argument("--tile-shape", default="32,128,128")
    args = parser.parse_args(argv)
    shape = tuple(int(n) for n in args.shape.split(","))
    tile_shape = tuple(int(n) for n in args.tile_shape.split(","))
    os.makedirs(args.out, exist_ok=True)
    image_path = os.path.join(args.out, "example.zarr")
    labels_path = os.path.join(args.out, "labels.zarr")
    if not os.path.exists(image_path):
        write_blobs_zarr(image_path, shape, chunks=tile_shape, radius=10, seed=0)
    start = time.perf_counter()
    labels = tile_process(
        image_path,
        threshold_and_label,
        tile_shape=tile_shape,
        overlap=4,
        write_to=labels_path,
        overwrite=True,
        sequential_labels=True,
        progress=True,
    )
    elapsed = time.perf_counter() - start
    attrs: dict[str, Any] = dict(zarr.open_array(labels_path).attrs)
    meta = attrs["patchworks"]
    image = np.asarray(zarr.open_array(image_path)[...])
    reference, n_reference = ndi.label(image > THRESHOLD, structure=np.ones((3,) * image.ndim))
    merged = labels.compute()  # type: ignore[no-untyped-call]  # dask: unannotated
    exact = same_partition_as_reference(merged, reference, n_reference)
    print(f"image      {image_path}  shape {image.shape}  dtype {image.dtype}")
    print(f"labels     {labels_path}  {meta['n_labels']} objects in {elapsed:.1f} s")
    print(f"tiles      {meta['tile_shape']} with overlap {meta['overlap']}")
    print(f"check      same partition as whole-image scipy.ndimage.label: {exact}")
    picture = preview(
        image_path, labels=labels_path, write_to=os.path.join(args.out, "preview.png")
    )
    print(f"preview    {picture}  (middle plane, labels in colour, tile seams in yellow)")
    return 0 if exact else 1


if __name__ == "__main__":
    raise SystemExit(main())
