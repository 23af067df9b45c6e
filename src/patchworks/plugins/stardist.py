"""StarDist as a patchworks ``fn``: ``tile_process(image, stardist_fn("2D_versatile_fluo"))``.

Needs the optional packages: ``pip install "patchworks[stardist]"`` (StarDist and
TensorFlow).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from patchworks.errors import InvalidParameterError
from patchworks.plugins._models import cached_model, import_models, model_lock, require
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
        return cls.from_pretrained(name)
    return cls(None, name=name, basedir=spec[2])


def _model_spec(model: Any, basedir: str | os.PathLike[str] | None) -> tuple[str, ...] | None:
    """(n_dim, name) for a pretrained model, (n_dim, name, basedir) for a saved folder."""
    if isinstance(model, str | os.PathLike) and basedir is not None:
        folder = os.path.join(os.fspath(basedir), os.fspath(model))
    elif isinstance(model, str | os.PathLike) and os.path.isdir(os.fspath(model)):
        folder = os.fspath(model)
    elif isinstance(model, str):
        return ("3D" if model.startswith("3D") else "2D", model)
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
    with open(config) as handle:
        n_dim = int(json.load(handle).get("n_dim", 2))
    folder = os.path.abspath(folder)
    return (f"{n_dim}D", os.path.basename(folder), os.path.dirname(folder))


@dataclass(frozen=True)
class StarDistFn:
    """A picklable ``fn`` running StarDist; build it with :func:`stardist_fn`."""

    spec: tuple[str, ...] | None
    model: Any = None  # a StarDist2D / StarDist3D object when it has no folder to reload
    normalize: bool = True
    pmin: float = 1.0
    pmax: float = 99.8
    channel_axis: int | None = None
    predict_kwargs: dict[str, object] = field(default_factory=dict)

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
        if self.normalize:
            from csbdeep.utils import normalize

            spatial_axes = tuple(range(image.ndim - (self.channel_axis is not None)))
            image = normalize(image, self.pmin, self.pmax, axis=spatial_axes)
        labels: NDArray[Any]
        with model_lock(self.key):
            labels, _ = model.predict_instances(image, verbose=False, **self.predict_kwargs)
        return labels

    def __call__(self, tile: NDArray[Any]) -> NDArray[np.signedinteger[Any]]:
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
    basedir: str | os.PathLike[str] | None = None,
    normalize: bool = True,
    pmin: float = 1.0,
    pmax: float = 99.8,
    prob_thresh: float | None = None,
    nms_thresh: float | None = None,
    n_tiles: Sequence[int] | None = None,
    channel_axis: int | None = None,
    **predict_kwargs: object,
) -> StarDistFn:
    """A picklable ``fn`` that segments a tile with StarDist.

    A 2-D model segments 3-D tiles plane by plane (IDs distinct per plane); a 3-D model
    segments them whole.

    Parameters
    ----------
    model_or_name : str, os.PathLike or StarDist2D / StarDist3D
        A pretrained name (``"2D_versatile_fluo"``, ``"3D_demo"``, ...), the folder of a
        trained model (or its name, with ``basedir``), or a model object.
    basedir : str or os.PathLike, optional
        Folder that holds the model folder ``model_or_name``.
    normalize : bool
        Percentile-normalise each tile (``pmin``, ``pmax``) as StarDist expects.
    prob_thresh, nms_thresh, n_tiles
        Passed on to ``predict_instances`` when given.
    channel_axis : int, optional
        Axis of the tile that holds channels (the image's ``channel_axis``).
    **predict_kwargs
        Passed on to ``predict_instances``.

    Returns
    -------
    fn : StarDistFn
        ``fn(tile) -> labels``, int32 labels of the tile's spatial shape.

    Examples
    --------
    >>> fn = stardist_fn("2D_versatile_fluo")                      # doctest: +SKIP
    >>> tile_process("image.zarr", fn, tile_shape=(1, 1024, 1024), overlap=32,
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
    return StarDistFn(
        spec=spec,
        model=model_or_name if spec is None else None,
        normalize=bool(normalize),
        pmin=float(pmin),
        pmax=float(pmax),
        channel_axis=channel_axis,
        predict_kwargs=dict(predict_kwargs),
    )
