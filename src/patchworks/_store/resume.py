"""What one run owns on disk: its locked run directory (:mod:`patchworks._store.rundir`),
temporary data, and the resume state.

With ``resume=True`` the run directory holds the resume state in ``state/``:

* the staged arrays (local labels and face planes) and ``staging.pkl``, the handle to them;
* ``manifest.json``, written last and atomically: the run's fingerprint (see
  :mod:`patchworks._store.fingerprint`); its presence means the staged arrays are complete;
* ``tiles.log``, one line per finished tile (its index, its pickled summary and a CRC),
  appended by the client only after the worker has written and flushed the tile's chunks.
  A torn or corrupt line only means that tile runs again.

A restarted run with the same fingerprint re-runs only the tiles missing from the log;
the merge stages are cheap and always re-run. Without ``resume`` an interrupted state is
never silently discarded: the call raises :class:`~patchworks.errors.IncompleteOutputError`
until it is resumed or ``overwrite=True`` is given.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
from collections.abc import Callable
from typing import Any, cast

from patchworks._fs import atomic_write_bytes, fsync_dir, remove_tree
from patchworks._store.rundir import lock_run_dir, run_dir_for
from patchworks._store.staging import Staging, create_staging, scratch_dir
from patchworks._store.tilelog import (
    DurableTiles,
    TileLog,
    read_tile_log,
    run_durably,
    staged_arrays,
)
from patchworks.errors import (
    IncompleteOutputError,
    InvalidParameterError,
    OutputExistsError,
    ResumeMismatchError,
)
from patchworks.io._zarr_sink import open_result

logger = logging.getLogger(__name__)

MANIFEST, STAGING, LOG = "manifest.json", "staging.pkl", "tiles.log"


def check_resume(resume: Any, write_to: str | None) -> bool:
    if not isinstance(resume, bool):
        raise InvalidParameterError(f"`resume` must be True or False; got {resume!r}.")
    if resume and write_to is None:
        raise InvalidParameterError(
            "`resume=True` needs `write_to` (the resume state is kept next to the output); "
            "got write_to=None."
        )
    return resume


def _read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def fingerprint_digest(fingerprint: dict[str, Any]) -> str:
    import hashlib

    text = json.dumps(fingerprint, sort_keys=True).encode()
    return hashlib.blake2b(text, digest_size=16).hexdigest()


class OutputRun:
    """What one call owns on disk: the run directory (locked), scratch data, resume state.

    With ``write_to=None`` there is no run directory and this only manages scratch data.
    """

    def __init__(
        self,
        write_to: str | None,
        *,
        resume: bool = False,
        overwrite: bool = False,
        temp_dir: str | None = None,
        keep_temp: bool = False,
    ) -> None:
        self.write_to, self.resume, self.overwrite = write_to, resume, overwrite
        self.temp_dir, self.keep_temp = temp_dir, keep_temp
        self.run_dir = run_dir_for(write_to) if write_to is not None else None
        self.scratch: str | None = None
        self.log: TileLog | None = None
        self._fingerprint: dict[str, Any] | None = None
        self._fd: int | None = None
        if self.run_dir is not None:
            self._fd = lock_run_dir(self.run_dir)
            try:
                self._check_leftovers()
            except BaseException:
                self._release(remove=False)
                raise

    @property
    def state_dir(self) -> str:
        assert self.run_dir is not None
        return os.path.join(self.run_dir, "state")

    def _check_leftovers(self) -> None:
        """Refuse to drop an interrupted run's state silently; clear anything else stale."""
        assert self.run_dir is not None
        manifest = _read_json(os.path.join(self.state_dir, MANIFEST))
        if manifest is not None and not self.resume and not self.overwrite:
            n_total = int(manifest.get("n_tiles", 0))
            n_done = len(read_tile_log(os.path.join(self.state_dir, LOG), n_total))
            raise IncompleteOutputError(
                f"`write_to` {self.write_to!r} has an interrupted run ({n_done} of "
                f"{n_total} tiles finished, state in {self.run_dir!r}); "
                "pass resume=True to finish it, or overwrite=True to discard it."
            )
        for name in os.listdir(self.run_dir):
            if self.resume and name == "state" and manifest is not None:
                continue
            logger.info("removing stale data of an interrupted run: %s", name)
            remove_tree(os.path.join(self.run_dir, name))

    def stored_tile_shape(self, requested: Any) -> tuple[int, ...] | None:
        """The tile shape of the interrupted run being resumed, when ``requested`` is
        ``None`` or ``"auto"`` (free memory may differ after a restart)."""
        if not self.resume or not (
            requested is None or (isinstance(requested, str) and requested == "auto")
        ):
            return None
        manifest = _read_json(os.path.join(self.state_dir, MANIFEST)) or {}
        shape = manifest.get("fingerprint", {}).get("tile_shape")
        return tuple(int(n) for n in shape) if shape else None

    def fingerprint(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        """The run's fingerprint (:func:`~patchworks._store.fingerprint.run_fingerprint`) when
        resuming; None otherwise (nothing to compare against)."""
        if not self.resume:
            return None
        from patchworks._store.fingerprint import run_fingerprint

        self._fingerprint = run_fingerprint(*args, **kwargs)
        return self._fingerprint

    def info(self) -> dict[str, Any]:
        """What the output's metadata records about resumability."""
        if self._fingerprint is None:
            return {}
        return {"fingerprint": fingerprint_digest(self._fingerprint)}

    def finished_result(self, *, compute: bool) -> Any:
        """Release the run and return the already complete ``write_to``."""
        self.close()
        assert self.write_to is not None  # only a run with an output finishes early
        return open_result(self.write_to, compute=compute)

    def finished(self, fingerprint: dict[str, Any] | None) -> bool:
        """True when ``write_to`` is already the complete result of this very call."""
        from patchworks.io._zarr_sink import METADATA_KEY

        if fingerprint is None or self.write_to is None or not os.path.exists(self.write_to):
            return False
        info: dict[str, Any] = {}
        with contextlib.suppress(Exception):
            import zarr

            attrs: dict[str, Any] = dict(zarr.open_array(self.write_to, mode="r").attrs)
            info = attrs.get(METADATA_KEY, {})
        if info.get("complete") and info.get("fingerprint") == fingerprint_digest(fingerprint):
            return True
        if self.overwrite:
            return False
        why = (
            "was written without resume=True, so nothing records which call made it"
            if info.get("complete") and "fingerprint" not in info
            else "is not the finished result of this same call (other image, fn or parameters)"
        )
        raise OutputExistsError(
            f"`write_to` {self.write_to!r} already exists and {why}; pass overwrite=True to "
            "replace it (only once the new result is complete) or choose another path."
        )

    def staging(self, plan: Any, labels_dtype: Any, fingerprint: dict[str, Any] | None) -> Staging:
        """The staged arrays: reused from an interrupted run with this fingerprint, or new."""
        if not self.resume or fingerprint is None:
            return create_staging(
                plan, labels_path=None, labels_dtype=labels_dtype, scratch=self.new_scratch()
            )
        self.scratch = self.state_dir
        staging = self._reuse(plan, fingerprint)
        if staging is None:
            staging = self._create(plan, labels_dtype, fingerprint)
        self.log = TileLog(os.path.join(self.state_dir, LOG), plan.n_tiles)
        return staging

    def new_scratch(self) -> str:
        """A private folder for this run's temporary data (inside the run directory)."""
        parent = (
            self.temp_dir if self.temp_dir is not None or self.run_dir is None else (self.run_dir)
        )
        self.scratch = scratch_dir(self.write_to, parent)
        return self.scratch

    def _reuse(self, plan: Any, fingerprint: dict[str, Any]) -> Staging | None:
        from patchworks._store.fingerprint import differences

        manifest = _read_json(os.path.join(self.state_dir, MANIFEST))
        if manifest is None:
            return None
        changed = differences(manifest.get("fingerprint", {}), fingerprint)
        if {"format", "version"} & set(changed) and not self.overwrite:
            raise ResumeMismatchError(
                f"`resume=True` found an interrupted run of {self.write_to!r} made by another "
                f"version of patchworks ({manifest.get('fingerprint', {}).get('version')}); "
                "its tiles cannot be reused by this one. Finish it with that version, or pass "
                "overwrite=True to discard it and start over."
            )
        if changed and not self.overwrite:
            raise ResumeMismatchError(
                f"`resume=True` found an interrupted run of {self.write_to!r} made with a "
                f"different {', '.join(changed)}; its tiles cannot be reused. Repeat the "
                "original call to finish it, or pass overwrite=True to discard it and start "
                "over."
            )
        if changed:
            logger.info("discarding an interrupted run with a different %s", changed)
            return None
        try:
            with open(os.path.join(self.state_dir, STAGING), "rb") as f:
                staging = cast(Staging, pickle.load(f))
            for array in staged_arrays(staging):
                _ = array.shape  # opens the metadata
        except Exception as exc:
            if self.overwrite:  # the advice below: discard it and start over
                logger.info("discarding a damaged resume state (%s: %s)", type(exc).__name__, exc)
                return None
            raise IncompleteOutputError(
                f"the resume state of {self.write_to!r} in {self.state_dir!r} is damaged "
                f"({type(exc).__name__}: {exc}); pass overwrite=True to discard it and start "
                "over."
            ) from exc
        remove_tree(os.path.join(self.state_dir, "output.zarr"))  # a half-done relabel
        return staging

    def _create(self, plan: Any, labels_dtype: Any, fingerprint: dict[str, Any]) -> Staging:
        from patchworks._fs import fsync_tree

        remove_tree(self.state_dir)
        os.makedirs(self.state_dir)
        staging = create_staging(
            plan, labels_path=None, labels_dtype=labels_dtype, scratch=self.state_dir
        )
        fsync_tree(self.state_dir)
        atomic_write_bytes(os.path.join(self.state_dir, STAGING), pickle.dumps(staging))
        manifest = {"fingerprint": fingerprint, "n_tiles": plan.n_tiles}
        atomic_write_bytes(
            os.path.join(self.state_dir, MANIFEST), json.dumps(manifest, indent=1).encode()
        )
        return staging

    def run_tiles(
        self,
        executor: Any,
        stage: Callable[[Any, int], Any],
        job: Any,
        n_tiles: int,
        *,
        desc: str = "tiles",
    ) -> list[Any]:
        """Run ``stage`` over the tiles not finished yet; summaries of all tiles, in order."""
        if self.log is None:
            return cast("list[Any]", executor.map(stage, job, range(n_tiles), desc=desc))
        done = dict(self.log.done)
        todo = [i for i in range(n_tiles) if i not in done]
        logger.info("resume: %d of %d tiles already finished", len(done), n_tiles)
        executor.announce(f"resuming: {len(done)} of {n_tiles} tiles already finished")
        fresh = executor.map(
            run_durably,
            DurableTiles(stage=stage, job=job),
            todo,
            desc=desc,
            on_result=self.log.record,
        )
        done.update(zip(todo, fresh, strict=True))
        self.log.sync()
        return [done[i] for i in range(n_tiles)]

    def close(self) -> None:
        """The run succeeded: remove the run directory and release the lock."""
        if self.log is not None:
            self.log.close()
        self._release(remove=True)  # scratch without write_to is the merge's to remove

    def abort(self) -> None:
        """The run failed: keep resume state (or scratch with ``keep_temp``), drop the rest."""
        if self.log is not None:
            self.log.close()
        keep = self.keep_temp or self.resume  # resume state is never dropped on failure
        if self.scratch is not None and not keep:
            remove_tree(self.scratch)
        self._release(remove=not keep)

    def _release(self, *, remove: bool) -> None:
        if self.run_dir is None:
            return
        if remove:
            remove_tree(self.run_dir)
            fsync_dir(os.path.dirname(self.run_dir))
        elif self._fd is not None and not os.listdir(self.run_dir):
            with contextlib.suppress(OSError):
                os.rmdir(self.run_dir)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
