"""Exceptions raised by patchworks.

Every exception derives from :class:`PatchworksError` *and* from the builtin a caller
would expect, so ``except ValueError`` keeps working for code that does not know about
patchworks. Messages state the rule and the value received, for example::

    `tile_shape` must have one entry per image axis (3); got (512, 512).
"""

from __future__ import annotations

__all__ = [
    "ChannelNeededError",
    "ClusterConfigurationError",
    "ImageNotFoundError",
    "ImageReadError",
    "IncompleteOutputError",
    "InvalidImageError",
    "InvalidLabelsError",
    "InvalidParameterError",
    "LabelOverflowError",
    "MissingDependencyError",
    "OutputExistsError",
    "OutputLockedError",
    "OutputNotWritableError",
    "ParameterTypeError",
    "PatchworksError",
    "ResumeMismatchError",
    "StagedDataMissingError",
    "StitchingWarning",
    "StorageNotSharedError",
    "TileFunctionError",
]


class PatchworksError(Exception):
    """Root of every error raised by patchworks."""


class InvalidParameterError(PatchworksError, ValueError):
    """A parameter has a value outside what is accepted (names the parameter and value)."""


class ChannelNeededError(InvalidParameterError):
    """The image has several channels and neither ``channel`` nor ``channel_axis`` says
    which to segment; ``axis`` is the channel axis and ``n_channels`` its length."""

    def __init__(self, message: str, *, axis: int, n_channels: int) -> None:
        super().__init__(message)
        self.axis = axis
        self.n_channels = n_channels


class ParameterTypeError(PatchworksError, TypeError):
    """A parameter has the wrong type (for example a ``fn`` that is not callable)."""


class InvalidImageError(PatchworksError, ValueError):
    """The ``image`` (or ``labeled``) input cannot be read as an array."""


class ImageNotFoundError(PatchworksError, FileNotFoundError):
    """The ``image`` path does not exist."""


class ImageReadError(PatchworksError, OSError):
    """Reading a tile of the input failed (a damaged chunk, a lost network store)."""


class InvalidLabelsError(PatchworksError, ValueError):
    """Labels returned by ``fn`` (or read from a label store) break the label contract.

    The contract: an integer (not bool, not float) array with the tile's spatial shape,
    no negative values, 0 meaning background.
    """


class LabelOverflowError(InvalidLabelsError, OverflowError):
    """There are more labels than the output ``dtype`` can hold."""


class TileFunctionError(PatchworksError, RuntimeError):
    """``fn`` raised while processing a tile; the original exception is chained."""


class OutputExistsError(PatchworksError, FileExistsError):
    """``write_to`` already exists and ``overwrite=True`` was not given."""


class IncompleteOutputError(PatchworksError, RuntimeError):
    """An output store was found that a previous run did not finish."""


class ResumeMismatchError(IncompleteOutputError, ValueError):
    """``resume=True`` found an interrupted run made with other inputs or parameters."""


class OutputLockedError(PatchworksError, BlockingIOError):
    """Another patchworks run is writing the same ``write_to`` right now."""


class OutputNotWritableError(PatchworksError, PermissionError):
    """The output (or its folder) cannot be written; found before any tile runs."""


class ClusterConfigurationError(PatchworksError, RuntimeError):
    """The active dask client cannot run patchworks (for example an in-process cluster)."""


class StagedDataMissingError(PatchworksError, FileNotFoundError):
    """Data a tile staged for a later stage (its labels, halo, face frame) cannot be found
    or decoded where that stage looks; the message names the tile and the location."""


class StorageNotSharedError(ClusterConfigurationError):
    """A dask worker cannot read or write the run's scratch or output location (found by
    the preflight, before ``fn`` runs anywhere)."""


class MissingDependencyError(PatchworksError, ImportError):
    """An optional dependency is needed; the message gives the ``pip install`` line."""


class StitchingWarning(UserWarning):
    """The tiles suggest the stitching options do not match ``fn`` (its connectivity, or
    instance labels stitched by touch)."""


def missing_dependency(package: str, extra: str, purpose: str) -> MissingDependencyError:
    """Build the error raised when an optional dependency is not installed."""
    return MissingDependencyError(
        f"{purpose} needs the optional package {package!r}, which is not installed; "
        f'install it with: pip install "patchworks[{extra}]"'
    )
