"""StarDist as a patchworks ``fn``: ``tile_process(image, stardist_fn("2D_versatile_fluo"))``.

Needs the optional packages: ``pip install "patchworks[stardist]"`` (StarDist and
TensorFlow).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from patchworks.errors import InvalidParameterError
from patchworks.plugins._models import (
    ModelNotFoundError,
    cached_model,
    check_gpu,
    import_models,
    model_lock,
    require,
)
from patchworks.plugins._normalize import IntensityRange, fit_tiling, resolve_normalize
from patchworks.plugins._planes import as_labels, channels_last, check_spatial, per_plane

if TYPE_CHECKING:
    from types import ModuleType

    from numpy.typing import NDArray

PLUGIN = "stardist_fn"


def _require() -> None:
    require("stardist", "stardist")


def _import_models() -> ModuleType:
    return import_models("stardist", "stardist")


def _load(spec: tuple[str, ...]) -> Any:
    models = _import_models()
    kind, name = spec[0], spec[1]
    cls = models.StarDist3D if kind == "3D" else models.StarDist2D
    if len(spec) == 2:
        model = cls.from_pretrained(name)
        if model is None:  # StarDist prints the names it knows and returns None
            raise ModelNotFoundError(
                f"`model_or_name` must be a pretrained StarDist model (none can be "
                f"downloaded here?) or a model folder; got {name!r}."
            )
        return model
    return cls(None, name=name, basedir=spec[2])


def _gpu_available() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def model_grid(model: Any) -> tuple[int, ...]:
    """The downsampling factor of ``model`` per spatial axis: ``grid * pool**depth``."""
    config = model.config
    grid = tuple(int(g) for g in config.grid)
    if getattr(config, "backbone", "unet") != "unet":
        return grid
    pool = tuple(int(p) for p in config.unet_pool)
    depth = int(config.unet_n_depth)
    return tuple(g * p**depth for g, p in zip(grid, pool, strict=True))


def _model_spec(model: Any, basedir: str | os.PathLike[str] | None) -> tuple[str, ...] | None:
    """(n_dim, name) for a pretrained model, (n_dim, name, basedir) for a saved folder."""
    if isinstance(model, str | os.PathLike) and basedir is not None:
        folder = os.path.join(os.fspath(basedir), os.fspath(model))
    elif isinstance(model, str | os.PathLike) and os.path.isdir(os.fspath(model)):
        folder = os.fspath(model)
    elif isinstance(model, str) and not (os.sep in model or model.startswith(".")):
        return ("3D" if model.startswith("3D") else "2D", model)
    elif isinstance(model, str | os.PathLike):
        raise ModelNotFoundError(
            f"`model_or_name` names a StarDist model folder that does not exist: "
            f"{os.fspath(model)!r}."
        )
    else:  # a model object: reload it from its folder on workers when it has one
        name, base = getattr(model, "name", None), getattr(model, "basedir", None)
        if name is None or base is None:
            return None
        folder = os.path.join(os.fspath(base), name)
    config = os.path.join(folder, "config.json")
    if not os.path.exists(config):
        raise InvalidParameterError(
            f"`model_or_name` must be a pretrained StarDist name or a model folder with a "
            f"config.json; got {os.fspath(folder)!r}."
        )
    if not glob.glob(os.path.join(glob.escape(folder), "*.h5")) + glob.glob(
        os.path.join(glob.escape(folder), "*.hdf5")
    ):
        raise ModelNotFoundError(
            f"the StarDist model folder {os.fspath(folder)!r} holds no weights file (*.h5)."
        )
    with open(config) as handle:
        n_dim = int(json.load(handle).get("n_dim", 2))
    folder = os.path.abspath(folder)
    return (f"{n_dim}D", os.path.basename(folder), os.path.dirname(folder))


@dataclass(frozen=True)
class StarDistFn:
    """A picklable ``fn`` running StarDist; build it with :func:`stardist_fn`."""

    spec: tuple[str, ...] | None
    model: Any = None  # a StarDist2D / StarDist3D object when it has no folder to reload
    normalize: str | bool | IntensityRange = "tile"
    pmin: float = 1.0
    pmax: float = 99.8
    channel_axis: int | None = None
    predict_kwargs: dict[str, object] = field(default_factory=dict)
    #: The network's downsampling per spatial axis (``grid * pool**depth``): tile shapes
    #: and overlaps that are multiples of it keep every tile on the network's grid.
    grid: tuple[int, ...] = (1, 1)
    #: Instance segmentation: ``tile_process`` stitches it by agreement unless told otherwise.
    stitch: ClassVar[str] = "iou"

    def fit_tiling(
        self, tile_shape: int | Sequence[int], overlap: int | Sequence[int]
    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """``tile_shape`` and ``overlap`` rounded up to multiples of :attr:`grid`.

        Examples
        --------
        >>> StarDistFn(spec=None, grid=(8, 8)).fit_tiling((250, 250), 20)
        ((256, 256), (24, 24))
        """
        return fit_tiling(self.grid, tile_shape, overlap)

    @property
    def key(self) -> tuple[str, ...] | tuple[str, int]:
        return ("stardist", *self.spec) if self.spec is not None else ("stardist", id(self.model))

    def load(self) -> Any:
        """The StarDist model of this process (loaded on first use)."""
        if self.spec is None:
            return self.model
        spec = self.spec
        return cached_model(self.key, lambda: _load(spec))

    def _predict(self, model: Any, image: NDArray[Any]) -> NDArray[Any]:
        image = image.astype(np.float32, copy=False)
        if self.normalize == "tile":
            from csbdeep.utils import normalize

            spatial_axes = tuple(range(image.ndim - (self.channel_axis is not None)))
            image = normalize(image, self.pmin, self.pmax, axis=spatial_axes)
        labels: NDArray[Any]
        with model_lock(self.key):
            labels, _ = model.predict_instances(image, verbose=False, **self.predict_kwargs)
        return labels

    def __call__(self, tile: NDArray[Any]) -> NDArray[np.signedinteger[Any]]:
        if isinstance(self.normalize, IntensityRange):
            tile = self.normalize.apply(np.asarray(tile), self.channel_axis)
        array, spatial = channels_last(tile, self.channel_axis)
        check_spatial(spatial, PLUGIN)
        model = self.load()
        n_dim = int(model.config.n_dim)
        if n_dim == 3 and len(spatial) != 3:
            raise InvalidParameterError(
                f"a 3-D StarDist model needs 3-D tiles; got spatial shape {spatial}."
            )
        if n_dim == 3 or len(spatial) == 2:
            masks = self._predict(model, array)
        elif spatial[0] == 1:
            masks = self._predict(model, array[0])[None]
        else:
            masks = per_plane(array, lambda plane: self._predict(model, plane))
        return as_labels(masks, spatial, PLUGIN)


def stardist_fn(
    model_or_name: Any = "2D_versatile_fluo",
    *,
    image: Any = None,
    basedir: str | os.PathLike[str] | None = None,
    normalize: str | bool | IntensityRange = "image",
    gpu: bool = False,
    pmin: float = 1.0,
    pmax: float = 99.8,
    prob_thresh: float | None = None,
    nms_thresh: float | None = None,
    n_tiles: Sequence[int] | None = None,
    channel_axis: int | None = None,
    level: int | str | None = None,
    channel: int | None = None,
    **predict_kwargs: object,
) -> StarDistFn:
    """A picklable ``fn`` that segments a tile with StarDist.

    A 2-D model segments 3-D tiles plane by plane (IDs distinct per plane); a 3-D model
    segments them whole.

    Parameters
    ----------
    model_or_name : str, os.PathLike or StarDist2D / StarDist3D
        A pretrained name (``"2D_versatile_fluo"``, ``"3D_demo"``, ...), the folder of a
        trained model (or its name, with ``basedir``), or a model object. A name or
        folder is loaded here, at once (a missing folder or weights file raises
        :class:`ModelNotFoundError`), and again once per worker process.
    image : str, os.PathLike or array, optional
        The image you will segment (as given to :func:`patchworks.tile_process`), read
        here for its image-wide percentiles (``pmin``, ``pmax``) when
        ``normalize="image"``.
    basedir : str or os.PathLike, optional
        Folder that holds the model folder ``model_or_name``.
    normalize : "image", "tile", False or IntensityRange
        ``"image"`` (default, also True): scale every tile by the percentiles
        (``pmin``, ``pmax``) of the whole ``image``, so tiles agree with the untiled run;
        without ``image=`` it falls back to ``"tile"`` with a
        :class:`TileNormalizationWarning`. ``"tile"``: percentiles of each tile. An
        :class:`IntensityRange` (from :func:`image_percentiles`, or built by hand): those
        fixed values map to 0 and 1. False: none.
    gpu : bool
        Ask for the GPU: :class:`GPUUnavailableError` is raised here when TensorFlow
        sees none. (TensorFlow uses a visible GPU whatever this says; hide it with
        ``CUDA_VISIBLE_DEVICES=""`` to force the CPU.)
    prob_thresh, nms_thresh, n_tiles
        Passed on to ``predict_instances`` when given.
    channel_axis : int, optional
        Axis of the tile that holds channels (the image's ``channel_axis``).
    level, channel : optional
        As given to :func:`patchworks.tile_process`, so ``image`` is read as the run
        reads it (one channel of a multi-channel image, a resolution level).
    **predict_kwargs
        Passed on to ``predict_instances``.

    Returns
    -------
    fn : StarDistFn
        ``fn(tile) -> labels``, int32 labels of the tile's spatial shape. ``fn.grid`` is
        the network's downsampling; ``fn.fit_tiling(tile_shape, overlap)`` rounds a
        tiling up to it.

    Raises
    ------
    ModelNotFoundError
        The model folder, its weights or the pretrained name cannot be found.
    GPUUnavailableError
        ``gpu=True`` on a machine where TensorFlow sees no GPU.

    Examples
    --------
    >>> fn = stardist_fn("2D_versatile_fluo", image="image.zarr")  # doctest: +SKIP
    >>> tiles, overlap = fn.fit_tiling((1, 1000, 1000), (0, 30, 30))  # doctest: +SKIP
    >>> tile_process("image.zarr", fn, tile_shape=tiles, overlap=overlap,
    ...              stitch="iou", write_to="labels.zarr")          # doctest: +SKIP
    """
    _require()
    for key, value in (
        ("prob_thresh", prob_thresh),
        ("nms_thresh", nms_thresh),
        ("n_tiles", n_tiles),
    ):
        if value is not None:
            predict_kwargs[key] = value
    spec = _model_spec(model_or_name, basedir)
    if gpu:
        check_gpu(PLUGIN, "TensorFlow", _gpu_available)
    fn = StarDistFn(
        spec=spec,
        model=model_or_name if spec is None else None,
        normalize=False,
        pmin=float(pmin),
        pmax=float(pmax),
        channel_axis=channel_axis,
        predict_kwargs=dict(predict_kwargs),
    )
    # Load here, so that missing weights fail before any tile runs (and before the image
    # is sampled); read the grid.
    grid = model_grid(fn.load())
    scaling = resolve_normalize(
        normalize,
        image,
        (float(pmin), float(pmax)),
        PLUGIN,
        channel_axis=channel_axis,
        level=level,
        channel=channel,
    )
    assert not isinstance(scaling, dict)  # only with allow_dict
    return dataclasses.replace(fn, grid=grid, normalize=scaling)
