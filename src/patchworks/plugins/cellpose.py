"""Cellpose as a patchworks ``fn``: ``tile_process(image, cellpose_fn("cpsam"), ...)``.

Works with Cellpose 4 (``cpsam`` and models trained with it) and Cellpose 3 (``cyto3``,
``nuclei``, ... and models trained with it); a network trained with one cannot be loaded
by the other. Needs the optional package: ``pip install "patchworks[cellpose]"`` (the
newest Cellpose), ``"patchworks[cellpose4]"`` or ``"patchworks[cellpose3]"``.

What differs between the two, and how the plugin bridges it:

* loading: Cellpose 3 takes a built-in name as ``model_type=`` and a file as
  ``pretrained_model=``; Cellpose 4 takes both as ``pretrained_model=`` (and falls back to
  its default model, with only a log line, for a name it does not know: refused here);
* ``channels``: Cellpose 3's ``[cytoplasm, nucleus]`` choice; Cellpose 4 ignores it and
  reads up to three channels as given along ``channel_axis``, so it is refused there;
* ``diameter``: Cellpose 3 rescales by ``diam_mean / diameter`` and None means the
  model's own diameter; Cellpose 4 rescales objects of ``diameter`` pixels to 30 and None
  means no rescaling;
* ``eval`` returns ``(masks, flows, styles)`` in both; only ``masks`` is used.
"""

from __future__ import annotations

import dataclasses
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

PLUGIN = "cellpose_fn"

#: Cellpose's own percentiles (``normalize99``).
PERCENTILES = (1.0, 99.0)


def _require() -> None:
    require("cellpose", "cellpose")


def _import_models() -> ModuleType:
    return import_models("cellpose", "cellpose")


#: Built-in Cellpose 3 models, named when Cellpose 4 is asked for one of them.
CELLPOSE3_NAMES = ("cyto3", "cyto2", "cyto", "nuclei", "tissuenet_cp3", "livecell_cp3")


def cellpose_major() -> int:
    """The major version of the installed Cellpose (3 or 4 ...), without importing it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return int(version("cellpose").split(".")[0])
    except (PackageNotFoundError, ValueError):
        import cellpose

        return int(str(getattr(cellpose, "version", "3")).split(".")[0])


def default_model() -> str:
    """The general model of the installed Cellpose: ``cyto3`` (3), its default (4)."""
    if cellpose_major() < 4:
        return "cyto3"
    import inspect

    models = _import_models()
    default = inspect.signature(models.CellposeModel).parameters["pretrained_model"].default
    return str(default) if isinstance(default, str) else "cpsam"


def _load(model: str, gpu: bool) -> Any:
    models = _import_models()
    major = cellpose_major()
    if os.path.exists(model):
        try:
            return models.CellposeModel(gpu=gpu, pretrained_model=model)
        except Exception as exc:
            other = "3" if major >= 4 else "4"
            raise ModelNotFoundError(
                f"`model` {model!r} could not be loaded by the installed Cellpose {major} "
                f"({type(exc).__name__}: {exc}); a model trained with Cellpose {other} "
                f'needs Cellpose {other} (pip install "patchworks[cellpose{other}]").'
            ) from exc
    names = [*models.MODEL_NAMES, *models.get_user_models()]
    if model not in names:
        # Cellpose itself would fall back to its default model with only a log line.
        hint = ""
        if major >= 4 and model in CELLPOSE3_NAMES:
            hint = (
                f" {model!r} is a Cellpose 3 model: use Cellpose 4's {default_model()!r}, or "
                'install Cellpose 3 (pip install "patchworks[cellpose3]").'
            )
        raise ModelNotFoundError(
            f"`model` must be a Cellpose {major} model name ({', '.join(models.MODEL_NAMES[:4])}"
            f", ...) or the path of a weights file; no such file: {model!r}.{hint}"
        )
    if major >= 4:
        return models.CellposeModel(gpu=gpu, pretrained_model=model)
    return models.CellposeModel(gpu=gpu, model_type=model)


def _gpu_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(torch.cuda.is_available() or (mps is not None and mps.is_available()))


@dataclass(frozen=True)
class CellposeFn:
    """A picklable ``fn`` running Cellpose; build it with :func:`cellpose_fn`.

    Only the model's name or path travels to workers; each worker process loads the
    model once, on its first tile. A model *object* given by the user travels with the
    callable (pickled) when it has no weights file to reload from.
    """

    model: Any  # a model name or weights path (str), or a CellposeModel
    gpu: bool = False
    diameter: float | None = None
    channels: tuple[int, ...] | None = None
    channel_axis: int | None = None
    normalize: str | bool | IntensityRange | dict[str, Any] = "tile"
    do_3D: bool | None = None
    eval_kwargs: dict[str, object] = field(default_factory=dict)

    #: Cellpose rescales each tile by ``diam_mean / diameter`` and pads it itself, so it
    #: imposes no pixel grid on tile origins.
    grid: tuple[int, ...] = (1, 1)
    #: Instance segmentation: ``tile_process`` stitches it by agreement unless told otherwise.
    stitch: ClassVar[str] = "iou"

    def fit_tiling(
        self, tile_shape: int | Sequence[int], overlap: int | Sequence[int]
    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """``tile_shape`` and ``overlap`` rounded up to multiples of :attr:`grid`."""
        return fit_tiling(self.grid, tile_shape, overlap)

    @property
    def key(self) -> tuple[str, str, bool] | tuple[str, int]:
        if isinstance(self.model, str):
            return ("cellpose", self.model, bool(self.gpu))
        return ("cellpose", id(self.model))

    def load(self) -> Any:
        """The Cellpose model of this process (loaded on first use)."""
        if not isinstance(self.model, str):
            return self.model
        return cached_model(self.key, lambda: _load(self.model, self.gpu))

    def _eval(
        self, model: Any, x: NDArray[Any], channel_axis: int | None, **extra: object
    ) -> NDArray[Any]:
        normalize = self.normalize
        if isinstance(normalize, IntensityRange):
            normalize = False  # the tile was scaled with the image-wide range already
        elif normalize == "tile":
            normalize = True
        options: dict[str, object] = {"diameter": self.diameter}
        if cellpose_major() < 4:  # Cellpose 4 has no `channels` (refused by cellpose_fn)
            options["channels"] = list(self.channels) if self.channels is not None else None
        with model_lock(self.key):
            result = model.eval(
                x,
                **options,
                channel_axis=channel_axis,
                normalize=normalize,
                **extra,
                **self.eval_kwargs,
            )
        masks: NDArray[Any] = result[0]
        return masks

    def __call__(self, tile: NDArray[Any]) -> NDArray[np.signedinteger[Any]]:
        if isinstance(self.normalize, IntensityRange):
            tile = self.normalize.apply(np.asarray(tile), self.channel_axis)
        array, spatial = channels_last(tile, self.channel_axis)
        check_spatial(spatial, PLUGIN)
        model = self.load()
        plane_axis = None if self.channel_axis is None else 2
        if len(spatial) == 2:
            masks = self._eval(model, array, plane_axis)
        elif spatial[0] == 1:
            masks = self._eval(model, array[0], plane_axis)[None]
        elif self.do_3D is False:
            masks = per_plane(array, lambda plane: self._eval(model, plane, plane_axis))
        else:
            axis = None if self.channel_axis is None else 3
            masks = self._eval(model, array, axis, do_3D=True, z_axis=0)
        return as_labels(masks, spatial, PLUGIN)


def cellpose_fn(
    model: Any = None,
    *,
    image: Any = None,
    gpu: bool = False,
    diameter: float | None = None,
    channels: Sequence[int] | None = None,
    channel_axis: int | None = None,
    normalize: str | bool | IntensityRange | dict[str, Any] = "image",
    do_3D: bool | None = None,
    level: int | str | None = None,
    channel: int | None = None,
    **eval_kwargs: object,
) -> CellposeFn:
    """A picklable ``fn`` that segments a tile with Cellpose.

    Parameters
    ----------
    model : str, os.PathLike or cellpose.models.CellposeModel, optional
        A built-in model name of the installed Cellpose (4: ``"cpsam"``, ...; 3:
        ``"cyto3"``, ``"nuclei"``, ...), the path of a model trained with it, or a model
        object; None: the installed Cellpose's general model (:func:`default_model`). A
        name or path is loaded here, at once (a missing file, an unknown name or a model
        of the other Cellpose raises :class:`ModelNotFoundError`), and again once per
        worker process.
    image : str, os.PathLike or array, optional
        The image you will segment (as given to :func:`patchworks.tile_process`), read
        here for its image-wide percentiles (1, 99) when ``normalize="image"``.
    gpu : bool
        Run on the GPU (on a GPU cluster each worker uses the device it is pinned to).
        Without a GPU that torch can use, :class:`GPUUnavailableError` is raised here
        (Cellpose itself would fall back to the CPU without a word).
    diameter : float, optional
        Object diameter in pixels. Cellpose 3: None uses the model's own (``diam_mean``,
        or the diameter of its training labels). Cellpose 4: tiles are rescaled so that
        objects of this size become 30 pixels wide; None means no rescaling.
    channels : sequence of int, optional
        Cellpose 3's ``channels`` (``[cytoplasm, nucleus]``, 1-based, 0 = grayscale).
        Refused with Cellpose 4, which reads up to three channels as they are along
        ``channel_axis`` (pick them with the image's ``channel`` / ``channel_axis``).
    channel_axis : int, optional
        Axis of the tile that holds channels (the image's ``channel_axis``).
    normalize : "image", "tile", False, IntensityRange or dict
        ``"image"`` (default, also True): scale every tile by the percentiles of the
        whole ``image``, so tiles agree with the untiled run; without ``image=`` it falls
        back to ``"tile"`` with a :class:`TileNormalizationWarning`. ``"tile"``: Cellpose's
        own percentile normalisation of each tile (a dict of Cellpose's normalisation
        options means the same, with those options). An :class:`IntensityRange` (from
        :func:`image_percentiles`, or built by hand): those fixed values map to 0 and 1.
        False: none.
    level, channel : optional
        As given to :func:`patchworks.tile_process`, so ``image`` is read as the run
        reads it (one channel of a multi-channel image, a resolution level).
    do_3D : bool, optional
        For tiles with several planes: True segments in 3-D, False plane by plane (IDs
        distinct per plane; use ``stitch="iou"`` with ``overlap=0`` along planes to join
        them). None (default) is 3-D. A tile one plane thick is always 2-D.
    **eval_kwargs
        Passed on to ``CellposeModel.eval`` (``flow_threshold``, ``cellprob_threshold``,
        ``batch_size``, ...).

    Returns
    -------
    fn : CellposeFn
        ``fn(tile) -> labels``, int32 labels of the tile's spatial shape.

    Raises
    ------
    ModelNotFoundError
        ``model`` is neither a Cellpose model name nor an existing file.
    GPUUnavailableError
        ``gpu=True`` on a machine where torch sees no GPU.

    Examples
    --------
    >>> fn = cellpose_fn("cpsam", image="image.zarr", diameter=30)  # doctest: +SKIP
    >>> tile_process("image.zarr", fn, tile_shape=(1, 2048, 2048), overlap=20,
    ...              stitch="iou", write_to="labels.zarr")  # doctest: +SKIP
    """
    _require()
    if channels is not None and cellpose_major() >= 4:
        raise InvalidParameterError(
            f"`channels` is Cellpose 3's choice of channels; Cellpose {cellpose_major()} "
            "reads up to three channels as they are along `channel_axis`; got "
            f"channels={tuple(channels)!r}. Leave it out (choose the image's channels with "
            "channel= or channel_axis=)."
        )
    if model is None:
        model = default_model()
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    elif not isinstance(model, str):
        weights = getattr(model, "pretrained_model", None)
        if isinstance(weights, list | tuple) and len(weights) == 1:
            weights = weights[0]
        if isinstance(weights, str) and os.path.exists(weights):
            model = weights  # reload from the file on workers instead of pickling the net
    if gpu:
        check_gpu(PLUGIN, "torch", _gpu_available)
    fn = CellposeFn(
        model=model,
        gpu=bool(gpu),
        diameter=diameter,
        channels=tuple(channels) if channels is not None else None,
        channel_axis=channel_axis,
        normalize=False,
        do_3D=do_3D,
        eval_kwargs=dict(eval_kwargs),
    )
    fn.load()  # here, so that missing weights fail before any tile runs (or any sampling)
    scaling = resolve_normalize(
        normalize,
        image,
        PERCENTILES,
        PLUGIN,
        channel_axis=channel_axis,
        level=level,
        channel=channel,
        allow_dict=True,
    )
    return dataclasses.replace(fn, normalize=scaling)
