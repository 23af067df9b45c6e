"""The public entry points: their signatures and docstrings, nothing else.

Each turns its keywords into one checked run specification (:mod:`patchworks._options`)
and hands it to the one orchestrator (:mod:`patchworks._run`). ``compute=True`` returns a
NumPy array, anything else a lazy dask array (the overloads say so to type checkers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, TypedDict, Unpack, overload

import numpy as np
from numpy.typing import NDArray

from patchworks._options import merge_spec, tile_spec
from patchworks._run import run
from patchworks._typing import (
    DTypeLike,
    ImageLike,
    OverlapLike,
    PathLike,
    TileFunction,
    TileShapeLike,
)
from patchworks.io import Sink
from patchworks.stitch import Stitcher

if TYPE_CHECKING:
    import dask.array as da

#: Labels computed now (``compute=True``).
Labels = NDArray[np.integer[Any]]
#: What ``stitch=`` takes: a name from :data:`patchworks.stitch.STITCHERS` ("touch",
#: "iou", ...) or a :class:`~patchworks.stitch.Stitcher`.
StitchLike = str | Stitcher
#: What ``objects=`` takes: True (the default set), None, or property names.
ObjectsLike = bool | Sequence[str] | None


class TileOptions(TypedDict, total=False):
    """The keywords of :func:`tile_process` besides ``compute`` (for its overloads)."""

    tile_shape: TileShapeLike
    overlap: OverlapLike | None
    write_to: PathLike | Sink | None
    progress: bool
    sequential_labels: bool
    skip_empty: bool
    empty_threshold: float | None
    use_gpu: bool
    stitch: StitchLike | None
    iou_threshold: float
    connectivity: int | None
    resume: bool
    channel_axis: int | None
    level: int | str | None
    dtype: DTypeLike
    overwrite: bool
    temp_dir: str | None
    keep_temp: bool
    retries: int
    channel: int | None
    label_name: str
    output_format: str
    output_chunks: tuple[int, ...] | None
    output_compressors: Any
    pyramid: Literal["mode", "nearest"]
    time_as_space: bool
    objects: ObjectsLike
    min_size: int | None
    max_size: int | None
    objects_to: PathLike | None


class MergeOptions(TypedDict, total=False):
    """The keywords of :func:`merge_tile_labels` besides ``compute`` (for its overloads)."""

    input_component: str | None
    write_to: PathLike | Sink | None
    progress: bool
    sequential_labels: bool
    connectivity: int | None
    tile_shape: tuple[int, ...] | None
    stitch: StitchLike
    iou_threshold: float
    overlap: int | tuple[int, ...]
    dtype: DTypeLike
    overwrite: bool
    temp_dir: str | None
    keep_temp: bool
    retries: int
    objects: ObjectsLike
    min_size: int | None
    max_size: int | None
    objects_to: PathLike | None
    image: ImageLike | None


@overload
def tile_process(
    image: ImageLike, fn: TileFunction, *, compute: Literal[True], **options: Unpack[TileOptions]
) -> Labels: ...
@overload
def tile_process(
    image: ImageLike,
    fn: TileFunction,
    *,
    compute: Literal[False] = False,
    **options: Unpack[TileOptions],
) -> da.Array: ...
@overload
def tile_process(
    image: ImageLike, fn: TileFunction, *, compute: bool, **options: Unpack[TileOptions]
) -> Labels | da.Array: ...


def tile_process(
    image: ImageLike,
    fn: TileFunction,
    *,
    tile_shape: TileShapeLike = None,
    overlap: OverlapLike | None = None,
    write_to: PathLike | Sink | None = None,
    compute: bool = False,
    progress: bool = False,
    sequential_labels: bool = False,
    skip_empty: bool = False,
    empty_threshold: float | None = None,
    use_gpu: bool = False,
    stitch: StitchLike | None = None,
    iou_threshold: float = 0.5,
    connectivity: int | None = None,
    resume: bool = False,
    channel_axis: int | None = None,
    level: int | str | None = None,
    dtype: DTypeLike = "int32",
    overwrite: bool = False,
    temp_dir: str | None = None,
    keep_temp: bool = False,
    retries: int = 0,
    channel: int | None = None,
    label_name: str = "patchworks",
    output_format: str = "auto",
    output_chunks: tuple[int, ...] | None = None,
    output_compressors: Any = None,
    pyramid: Literal["mode", "nearest"] = "mode",
    time_as_space: bool = False,
    objects: ObjectsLike = None,
    min_size: int | None = None,
    max_size: int | None = None,
    objects_to: PathLike | None = None,
) -> Labels | da.Array:
    """Run ``fn`` over ``image`` tile by tile and merge the labels into one label image.

    Parameters
    ----------
    image : str, os.PathLike, numpy.ndarray, dask.array.Array or zarr.Array
        The image: a path or URL to a zarr array or group (zarr v2 or v3; OME-Zarr level
        ``level``), a TIFF path, or an in-memory / lazy array.
    fn : callable
        ``fn(tile) -> labels``: integer labels with the tile's spatial shape, 0 for
        background, IDs local to the tile. Runs exactly once per tile.
    tile_shape : tuple of int, None or "auto"
        Core size of a tile. ``None`` uses the image's storage chunks (``"auto"`` for
        arrays without chunks); ``"auto"`` sizes tiles from free RAM (or free GPU memory
        with ``use_gpu=True``).
    overlap : int, tuple of int or "auto", optional
        Halo in voxels added around each tile before ``fn`` sees it (clipped at the image
        border); a scalar adds no halo on axes where the tile is one voxel thick. Default:
        0 for ``stitch="touch"``, ``"auto"`` for ``stitch="iou"``. ``"auto"`` runs ``fn``
        on a central tile-sized sample and on parts of it, and uses how far ``fn``'s labels
        change from a cut (its reach), for ``"iou"`` at least about one object diameter
        (see :func:`suggest_overlap`).
    write_to : str, os.PathLike or patchworks.io.Sink, optional
        Path of the output zarr array (or a sink such as ``OmeZarrSink(path)``). Labels
        stream there; it appears only once complete.
    compute : bool
        Return a NumPy array instead of a lazy dask array.
    progress : bool
        Show progress on stderr: a line saying what the run will do (tiles, tile shape,
        overlap, workers, output), then per stage a tqdm bar whose elapsed time ticks
        from the start; when stderr is not a terminal (a batch log), plain lines instead,
        every 10 s (``PATCHWORKS_PROGRESS_INTERVAL``) with the count, rate and time left.
    sequential_labels : bool
        Make the final labels exactly ``1..N``.
    skip_empty : bool
        Do not run ``fn`` on tiles whose core has no voxel above ``empty_threshold``
        (default 0); they become background.
    empty_threshold : float, optional
        Threshold for ``skip_empty`` (see :func:`estimate_empty_tiles`).
    use_gpu : bool
        Size ``tile_shape="auto"`` from free GPU memory.
    stitch : {"touch", "iou"}, another name in patchworks.stitch.STITCHERS, or a Stitcher
        Default: what ``fn`` declares as ``fn.stitch`` (the Cellpose and StarDist plugins:
        ``"iou"``), else ``"touch"``. How labels are joined across tiles (a name, or a
        stitcher such as ``Touch(connectivity=1)`` or ``IoU(threshold=0.3)``): ``"touch"``
        joins labels that touch across a core face, which is exact for connected
        components; ``"iou"`` joins labels only where both tiles' predictions of the
        overlap agree, so touching instances stay apart (needs ``overlap`` of about one
        object diameter; see docs/stitching.md).
    iou_threshold : float
        With ``stitch="iou"``, the IoU (inside the overlap two tiles share) at which two
        predictions are the same object.
    connectivity : int, optional
        Which neighbours touch, as in :func:`scipy.ndimage.generate_binary_structure`
        (1 = faces only, ``ndim`` = full). ``None``: the connectivity ``fn`` uses, as its
        labels show it (two distinct labels touching at an edge inside a tile prove faces
        only); full connectivity when no tile shows it. A value the tiles contradict gets
        a :class:`~patchworks.errors.StitchingWarning`. Recorded in the output's metadata.
    resume : bool
        Re-run only unfinished tiles of an interrupted run.
    channel_axis : int, optional
        Axis of ``image`` holding channels; ``fn`` receives all channels of a tile.
    level : int or str, optional
        Resolution level of an OME-Zarr multiscale image (default 0, the full resolution).
    dtype : str or numpy.dtype
        Integer dtype of the output labels.
    overwrite : bool
        Replace an existing ``write_to`` (only once the new result is complete).
    temp_dir : str, optional
        Where temporary data goes (default: next to ``write_to``, else the system's). On a
        cluster it must be a folder every worker sees (docs/storage.md); the run checks
        that before ``fn`` runs anywhere.
    keep_temp : bool
        Keep temporary data on failure, for inspection.
    retries : int
        Times a failed task is retried on a ``dask.distributed`` cluster.
    channel : int, optional
        Segment this channel (named by OME axes metadata, or ``channel_axis``).
    label_name, output_format, output_chunks, output_compressors, pyramid
        OME-Zarr label output: ``labels/<label_name>`` inside an OME-Zarr input, or a label
        image at ``write_to`` (``output_format`` "auto", "zarr", "ome-zarr" or another name
        in :data:`patchworks.io.SINKS`), its chunks
        and codecs, and the pyramid's downsampling ("mode" or "nearest"); see
        docs/formats.md.
    time_as_space : bool
        Join objects across an axis the image's metadata names time (``t`` in OME-Zarr or
        TIFF axes). By default each time point is labelled on its own: tiles are one time
        point thick and no object spans two of them; IDs stay unique over the whole output.

    Returns
    -------
    labels : numpy.ndarray or dask.array.Array
        Labels with the image's spatial shape and globally unique IDs.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage as ndi
    >>> image = np.zeros((8, 8), dtype="uint8")
    >>> image[1:7, 3:5] = 1          # one object crossing the tile seam at row 4
    >>> labels = tile_process(image, lambda t: ndi.label(t)[0], tile_shape=(4, 4),
    ...                       compute=True)
    >>> np.unique(labels).tolist()
    [0, 1]
    """
    spec = tile_spec(
        image,
        fn,
        tile_shape=tile_shape,
        overlap=overlap,
        write_to=write_to,
        compute=compute,
        progress=progress,
        sequential_labels=sequential_labels,
        skip_empty=skip_empty,
        empty_threshold=empty_threshold,
        use_gpu=use_gpu,
        stitch=stitch,
        iou_threshold=iou_threshold,
        connectivity=connectivity,
        resume=resume,
        channel_axis=channel_axis,
        level=level,
        dtype=dtype,
        overwrite=overwrite,
        temp_dir=temp_dir,
        keep_temp=keep_temp,
        retries=retries,
        channel=channel,
        label_name=label_name,
        output_format=output_format,
        output_chunks=output_chunks,
        output_compressors=output_compressors,
        pyramid=pyramid,
        time_as_space=time_as_space,
        objects=objects,
        min_size=min_size,
        max_size=max_size,
        objects_to=objects_to,
    )
    result: Labels | da.Array = run(spec)
    return result


@overload
def merge_tile_labels(
    labeled: ImageLike, *, compute: Literal[True], **options: Unpack[MergeOptions]
) -> Labels: ...
@overload
def merge_tile_labels(
    labeled: ImageLike, *, compute: Literal[False] = False, **options: Unpack[MergeOptions]
) -> da.Array: ...
@overload
def merge_tile_labels(
    labeled: ImageLike, *, compute: bool, **options: Unpack[MergeOptions]
) -> Labels | da.Array: ...
def merge_tile_labels(
    labeled: ImageLike,
    *,
    input_component: str | None = None,
    write_to: PathLike | Sink | None = None,
    progress: bool = False,
    sequential_labels: bool = False,
    connectivity: int | None = None,
    compute: bool = False,
    tile_shape: tuple[int, ...] | None = None,
    stitch: StitchLike = "touch",
    iou_threshold: float = 0.5,
    overlap: int | tuple[int, ...] = 0,
    dtype: DTypeLike = "int32",
    overwrite: bool = False,
    temp_dir: str | None = None,
    keep_temp: bool = False,
    retries: int = 0,
    objects: ObjectsLike = None,
    min_size: int | None = None,
    max_size: int | None = None,
    objects_to: PathLike | None = None,
    image: ImageLike | None = None,
) -> Labels | da.Array:
    """Merge per-tile labels (IDs local to each tile) into globally consistent labels.

    Parameters
    ----------
    labeled : dask.array.Array, str, os.PathLike, zarr.Array or numpy.ndarray
        Per-tile labels. For a dask array each chunk is one tile (each block is computed
        exactly once). For a zarr path or array, tiles are its chunks unless
        ``tile_shape`` says otherwise; a NumPy array needs ``tile_shape``.
    input_component : str, optional
        Path of the label array inside the zarr group ``labeled``.
    write_to, progress, sequential_labels, connectivity, compute, dtype, overwrite, \
temp_dir, keep_temp, retries
        As in :func:`tile_process`.
    tile_shape : tuple of int, optional
        The tiling the labels were made with, for zarr or NumPy input (default: a zarr
        input's chunks). It must be exactly that tiling: IDs are local to each tile, so a
        different grid would join or split objects. Patchworks cannot check this.
    stitch, iou_threshold : str, float
        As in :func:`tile_process`. ``stitch="iou"`` needs a dask array whose blocks are
        overlapping tiles: ``fn`` run on ``dask.array.overlap.overlap(image, depth=overlap,
        boundary="none")``, untrimmed.
    overlap : int or tuple of int
        With ``stitch="iou"``, the depth each block extends past its core (clipped at the
        image border).
    objects, min_size, max_size, objects_to
        As in :func:`tile_process`; the intensity properties need ``image``.
    image : str, os.PathLike or array, optional
        The image the labels segment (same shape), measured with ``objects=``.

    Returns
    -------
    labels : numpy.ndarray or dask.array.Array

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> tiles = da.from_array(np.array([[1, 1, 1, 0], [0, 0, 0, 2]]), chunks=(2, 2))
    >>> merge_tile_labels(tiles, connectivity=1, sequential_labels=True, compute=True).tolist()
    [[1, 1, 1, 0], [0, 0, 0, 2]]
    """
    spec = merge_spec(
        labeled,
        input_component=input_component,
        write_to=write_to,
        progress=progress,
        sequential_labels=sequential_labels,
        connectivity=connectivity,
        compute=compute,
        tile_shape=tile_shape,
        stitch=stitch,
        iou_threshold=iou_threshold,
        overlap=overlap,
        dtype=dtype,
        overwrite=overwrite,
        temp_dir=temp_dir,
        keep_temp=keep_temp,
        retries=retries,
        objects=objects,
        min_size=min_size,
        max_size=max_size,
        objects_to=objects_to,
        image=image,
    )
    result: Labels | da.Array = run(spec)
    return result
