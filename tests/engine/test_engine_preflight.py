"""patchworks._engine.preflight: the worker's side of the check, run in this process."""

from __future__ import annotations

import os

import cloudpickle
import pytest

from patchworks._engine.preflight import Location, _check_reports, load_check, worker_probe
from patchworks.errors import ClusterConfigurationError, StorageNotSharedError


def _client_probe(folder, token):
    (folder / f".patchworks-probe-{token}-client").write_bytes(token.encode())


def test_a_worker_that_sees_the_folder_writes_a_probe_the_client_reads(tmp_path):
    _client_probe(tmp_path, "tok")
    report = worker_probe([Location("the run's scratch folder", str(tmp_path))], "tok", None)
    assert report["problems"] == [] and report["fn"] is None
    [probe] = report["written"]
    with open(probe, "rb") as f:
        assert f.read() == report["who"].encode()
    _check_reports({"tcp://w:1": report}, [], None)  # the client reads it back: no error


def test_a_missing_folder_is_reported_and_not_created(tmp_path):
    missing = tmp_path / "not-here"
    report = worker_probe([Location("the run's scratch folder", str(missing))], "tok", None)
    assert report["problems"] == [f"the run's scratch folder {str(missing)!r} does not exist there"]
    assert not missing.exists() and report["written"] == []
    with pytest.raises(StorageNotSharedError) as info:
        _check_reports({"tcp://w:1": report}, [], None)
    message = str(info.value)
    assert message.startswith(
        "not every dask worker sees the run's storage as the client does: worker tcp://w:1 on "
        f"host {report['host']}: the run's scratch folder {str(missing)!r} does not exist there. "
        "The run's staged data must be on storage that the client and every dask worker see"
    )
    assert message.endswith("(docs/storage.md).")


def test_a_folder_without_the_clients_probe_is_another_folder(tmp_path):
    report = worker_probe([Location("the folder of `write_to`", str(tmp_path))], "tok", None)
    assert report["problems"] == [
        f"the folder of `write_to` {str(tmp_path)!r} exists there but is not the client's "
        "folder of that name (the client's probe file is not in it)"
    ]
    assert os.listdir(tmp_path) == []


def test_a_probe_the_client_cannot_read_back_is_reported(tmp_path):
    _client_probe(tmp_path, "tok")
    report = worker_probe([Location("the run's scratch folder", str(tmp_path))], "tok", None)
    os.remove(report["written"][0])  # written where the client does not look
    with pytest.raises(
        StorageNotSharedError, match=r"a file it wrote in .* is not there for the client"
    ):
        _check_reports({"tcp://w:1": report}, [], None)


def test_an_input_is_only_checked_to_exist(tmp_path):
    image = tmp_path / "image.zarr"
    report = worker_probe([Location("the input", str(image), write=False)], "tok", None)
    assert report["problems"] == [f"the input {str(image)!r} does not exist there"]
    image.mkdir()
    assert (
        worker_probe([Location("the input", str(image), write=False)], "tok", None)["problems"]
        == []
    )


def test_fn_whose_module_is_missing_is_named_with_the_fix():
    import patchworks.demo as demo

    data = cloudpickle.dumps(demo.threshold_and_label).replace(
        b"patchworks.demo", b"nosuchmodx.demo"
    )
    assert load_check(data) == "module:nosuchmodx"
    assert load_check(cloudpickle.dumps(demo.threshold_and_label)) is None
    report = {"problems": [], "written": [], "who": "x", "host": "h", "fn": "module:nosuchmodx"}
    with pytest.raises(ClusterConfigurationError) as info:
        _check_reports({"tcp://w:1": report}, [], demo.threshold_and_label)
    assert str(info.value).startswith(
        "`fn` cannot be loaded on the dask worker tcp://w:1: No module named 'nosuchmodx' there. "
        "Install 'nosuchmodx' in the environment of the scheduler and every worker"
    )
