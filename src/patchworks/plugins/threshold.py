"""Threshold and connected components: the simplest ``fn``, with one threshold for the
whole image.

A threshold computed inside ``fn`` would differ from tile to tile, and tiles that disagree
about what is foreground cut objects at their seams whatever the stitching.
:func:`otsu_fn` computes Otsu's threshold once, from a bounded, evenly spread sample of
the image (:func:`patchworks.plugins._normalize.image_sample`, exact up to 4 M voxels),
and every tile is labelled with that one value. With ``stitch="touch"`` the result is the
same partition as labelling the whole thresholded image at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from patchworks.errors import InvalidImageError, InvalidParameterError
from patchworks.plugins._normalize import SAMPLE_VOXELS, image_sample

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["ThresholdLabels", "otsu_fn"]


@dataclass(frozen=True)
class ThresholdLabels:
    """``fn(tile)``: connected components of ``tile > threshold`` (picklable).

    ``connectivity`` is scikit-image's (1 = faces only ... ndim = full, None = full).

    Examples
    --------
    >>> fn = ThresholdLabels(threshold=5.0)
    >>> fn(np.array([[0, 9, 0, 9], [0, 9, 0, 0]])).tolist()
    [[0, 1, 0, 2], [0, 1, 0, 0]]
    """

    threshold: float
    connectivity: int | None = None

    def __post_init__(self) -> None:
        if not np.isfinite(self.threshold):
            raise InvalidParameterError(
                f"`threshold` must be a finite number; got {self.threshold!r}."
            )

    def __call__(self, tile: NDArray[Any]) -> NDArray[np.signedinteger[Any]]:
        from skimage.measure import label

        # scikit-image is unannotated
        labels: NDArray[np.signedinteger[Any]] = label(  # type: ignore[no-untyped-call]
            np.asarray(tile) > self.threshold, connectivity=self.connectivity
        )
        if labels.size and int(labels.max()) < np.iinfo(np.int32).max:
            return labels.astype(np.int32)
        return labels


def otsu_fn(
    image: Any,
    *,
    level: int | str | None = None,
    channel: int | None = None,
    connectivity: int | None = None,
    sample_size: int = 64,
    max_voxels: int = SAMPLE_VOXELS,
) -> ThresholdLabels:
    """A picklable ``fn`` that labels ``tile > t``, with ``t`` Otsu's threshold of the image.

    Parameters
    ----------
    image : str, os.PathLike or array
        The image you will segment, as given to :func:`patchworks.tile_process`; read
        here once: whole up to ``max_voxels`` voxels, else ``sample_size`` boxes spread
        evenly over it (about ``max_voxels`` voxels in all).
    level, channel
        As in :func:`patchworks.tile_process` (give the same values to both).
    connectivity : int, optional
        scikit-image's connectivity of the labels (None: full).
    sample_size, max_voxels : int
        The sample of a large image (see :func:`patchworks.plugins.image_percentiles`).

    Returns
    -------
    fn : ThresholdLabels
        ``fn.threshold`` is the threshold used.

    Raises
    ------
    patchworks.errors.InvalidImageError
        When the sample has fewer than two distinct finite values (nothing to separate).

    Examples
    --------
    >>> image = np.zeros((32, 32), dtype="uint16")
    >>> image[4:10, 4:10] = image[20:30, 20:30] = 1000
    >>> fn = otsu_fn(image)
    >>> 0 <= fn.threshold < 1000, int(fn(image).max())
    (True, 2)
    """
    from skimage.filters import threshold_otsu

    sample = image_sample(
        image, level=level, channel=channel, sample_size=sample_size, max_voxels=max_voxels
    ).ravel()
    if sample.dtype.kind == "f":
        sample = sample[np.isfinite(sample)]
    if sample.size == 0 or sample.min() == sample.max():
        value = "no finite value" if not sample.size else f"only the value {sample.min().item()!r}"
        raise InvalidImageError(
            f"`image` has {value} in the sample read ({sample.size} voxels), so it has no "
            "Otsu threshold; give the threshold yourself (ThresholdLabels(threshold=T))."
        )
    threshold = float(threshold_otsu(sample))  # type: ignore[no-untyped-call]
    return ThresholdLabels(threshold=threshold, connectivity=connectivity)
