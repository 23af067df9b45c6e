"""patchworks._engine.execute: running a stage's tasks on local threads."""

from __future__ import annotations

import sys
import threading

import dask
import pytest

from patchworks._engine.execute import IN_PROCESS_FIX, Executor, check_client
from patchworks.errors import ClusterConfigurationError, InvalidParameterError, TileFunctionError

WAIT_S = 30  # a safety net against a hang, never reached when the test passes


@pytest.fixture(autouse=True)
def _local_threads():
    """Four local threads and no dask client, whatever the machine."""
    with dask.config.set(num_workers=4, scheduler=None):
        executor = Executor()
        assert executor.client is None, "these tests need no active dask client"
        yield


def _square(job, index):
    return job["scale"] * index * index


def test_map_returns_results_in_the_order_of_indices():
    results = Executor().map(_square, {"scale": 2}, [7, 3, 5, 0, 11], desc="t")
    assert results == [98, 18, 50, 0, 242]


def test_map_of_no_or_one_index_runs_inline():
    here = threading.get_ident()
    seen = []

    def stage(job, index):
        seen.append(threading.get_ident())
        return index

    assert Executor().map(stage, None, [], desc="t") == []
    assert Executor().map(stage, None, [4], desc="t") == [4]
    assert seen == [here]


def test_map_keeps_indices_order_when_tasks_finish_in_reverse():
    """Task k waits for task k + 1, so they finish last to first."""
    n = 4
    done = [threading.Event() for _ in range(n)]
    finished = []

    def stage(job, index):
        if index + 1 < n:
            assert done[index + 1].wait(WAIT_S)
        done[index].set()
        return f"result {index}"

    def on_result(index, value):
        finished.append((index, value))

    results = Executor().map(stage, None, list(range(n)), desc="t", on_result=on_result)
    assert results == [f"result {i}" for i in range(n)]
    # every result is reported once, with its own index (in whatever order they arrive)
    assert sorted(finished) == [(i, f"result {i}") for i in range(n)]


def test_map_runs_on_several_threads():
    n = 3
    barrier = threading.Barrier(n, timeout=WAIT_S)  # passes only if n tasks run at once

    def stage(job, index):
        barrier.wait()
        return threading.get_ident()

    idents = Executor().map(stage, None, list(range(n)), desc="t")
    assert len(set(idents)) == n and threading.get_ident() not in idents


def test_synchronous_scheduler_runs_every_task_in_the_calling_thread():
    here = threading.get_ident()
    with dask.config.set(scheduler="sync"):
        executor = Executor()
        assert executor.n_workers == 1
        idents = executor.map(lambda job, i: threading.get_ident(), None, range(5), desc="t")
    assert idents == [here] * 5


def test_n_workers_follows_dask_num_workers():
    with dask.config.set(num_workers=3):
        assert Executor().n_workers == 3


def test_map_without_progress_never_imports_tqdm(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # importing it would now fail
    assert Executor(progress=False).map(_square, {"scale": 1}, [1, 2, 3], desc="t") == [1, 4, 9]
    assert capsys.readouterr() == ("", "")
    from patchworks._engine import progress

    monkeypatch.setattr(progress, "_interactive", lambda stream: True)  # bars: tqdm needed
    with pytest.raises(ImportError):
        Executor(progress=True).map(_square, {"scale": 1}, [1, 2, 3], desc="t")


def test_map_with_progress_reports_every_task(capsys):
    Executor(progress=True).map(_square, {"scale": 1}, list(range(6)), desc="squares")
    err = capsys.readouterr().err
    assert "squares" in err and "6/6" in err


def test_the_failure_of_a_task_is_raised_as_is_with_its_cause():
    cause = KeyError("inner")

    def stage(job, index):
        if index == 2:
            try:
                raise cause
            except KeyError as exc:
                raise TileFunctionError(f"`fn` raised on tile {index}.") from exc
        return index

    with pytest.raises(TileFunctionError, match=r"`fn` raised on tile 2\.") as info:
        Executor().map(stage, None, list(range(6)), desc="t")
    assert info.value.__cause__ is cause


def test_a_failure_still_hands_over_the_tasks_that_finished():
    """The tasks that finished before the failure reach ``on_result`` (resume keeps them)."""
    started = threading.Barrier(3, timeout=WAIT_S)
    collected = {}

    def stage(job, index):
        started.wait()  # tasks 0, 1 and 2 run at once
        if index == 0:
            raise ValueError("tile 0 failed")
        return index * 10

    def on_result(index, value):
        collected[index] = value

    with dask.config.set(num_workers=3), pytest.raises(ValueError, match="tile 0 failed"):
        Executor().map(stage, None, [0, 1, 2], desc="t", on_result=on_result)
    assert collected == {1: 10, 2: 20}


def test_a_failure_in_inline_mode_is_raised_unchanged():
    error = RuntimeError("boom")

    def stage(job, index):
        raise error

    with pytest.raises(RuntimeError) as info:
        Executor().map(stage, None, [0], desc="t")
    assert info.value is error


@pytest.mark.parametrize("retries", [-1, 1.5, True, "2", None])
def test_retries_must_be_a_non_negative_integer(retries):
    with pytest.raises(InvalidParameterError) as info:
        Executor(retries=retries)
    assert str(info.value) == f"`retries` must be a non-negative integer; got {retries!r}."


def test_retries_accepts_non_negative_integers():
    assert Executor(retries=0).retries == 0
    assert Executor(retries=3).retries == 3


def test_compute_returns_delayed_results_in_order():
    tasks = [dask.delayed(_square)({"scale": 1}, i) for i in (4, 1, 3)]
    assert Executor().compute(tasks, desc="t") == [16, 1, 9]


def test_compute_raises_the_first_failure():
    def fail(x):
        raise ValueError(f"bad {x}")

    with pytest.raises(ValueError, match="bad 1"):
        Executor().compute([dask.delayed(fail)(1)], desc="t")


class _FakeClient:
    def __init__(self, *addresses):
        self.addresses = addresses

    def scheduler_info(self):
        return {"workers": {a: {"nthreads": 2} for a in self.addresses}}


def test_check_client_rejects_workers_inside_this_process():
    with pytest.raises(ClusterConfigurationError) as info:
        check_client(_FakeClient("tcp://127.0.0.1:1", "inproc://10.0.0.1/123/4"))
    assert str(info.value) == IN_PROCESS_FIX
    assert isinstance(info.value, RuntimeError)


def test_check_client_accepts_process_workers():
    check_client(_FakeClient("tcp://127.0.0.1:1", "tcp://127.0.0.1:2"))
    check_client(_FakeClient())
