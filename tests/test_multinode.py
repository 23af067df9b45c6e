"""A simulated multi-node cluster: a ``dask scheduler`` on 127.0.0.1 and two ``dask worker``
processes, each in its own mount namespace with a private tmpfs on ``/tmp`` (as a worker on
another machine has its own ``/tmp``), sharing one folder outside ``/tmp``.

Every run either gives exactly the labels of a single-machine run or stops in the preflight
with StorageNotSharedError, before any worker creates anything; never wrong labels. Needs
root and ``unshare --mount`` (skipped cleanly otherwise).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from cluster_fns import threshold_label
from patchworks import output_status, tile_process
from patchworks.errors import StorageNotSharedError

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
PRIVATE_TMP = "mount -t tmpfs tmpfs /tmp && exec {cmd}"
#: When the checkout (and its .venv) lives under /tmp, as a CI clone may, it is bound back
#: into the private /tmp: the code is installed on every node, the scratch is not shared.
KEEP_CHECKOUT = (
    "mkdir -p {keep} && mount --bind {root} {keep} && mount -t tmpfs tmpfs /tmp && "
    "mkdir -p {root} && mount --bind {keep} {root} && exec {cmd}"
)
ROOT = os.path.realpath(os.path.dirname(HERE))


def _private_tmp(cmd: str, keep: str) -> str:
    if ROOT == "/tmp" or ROOT.startswith("/tmp/"):
        return KEEP_CHECKOUT.format(keep=keep, root=ROOT, cmd=cmd)
    return PRIVATE_TMP.format(cmd=cmd)


def _unshare_works() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        "mount -t tmpfs tmpfs /tmp",
    ]
    try:
        return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


pytestmark = pytest.mark.skipif(
    not _unshare_works(), reason="needs root and `unshare --mount` (private /tmp per worker)"
)


def _shared_root() -> str:
    """A folder outside /tmp that the workers see too."""
    for parent in ("/var/tmp", os.path.expanduser("~")):
        if os.path.isdir(parent) and os.access(parent, os.W_OK):
            return tempfile.mkdtemp(prefix="patchworks-multinode-", dir=parent)
    pytest.skip("no writable folder outside /tmp to share with the workers")


@pytest.fixture(scope="module")
def nodes():
    """(client, shared folder): two workers, each with its own private /tmp."""
    distributed = pytest.importorskip("distributed")
    shared = _shared_root()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, HERE])}
    env.pop("TMPDIR", None)
    scheduler_file = os.path.join(shared, "scheduler.json")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", "0", "--no-dashboard", "--scheduler-file", scheduler_file],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(scheduler_file) and time.monotonic() < deadline:
            time.sleep(0.1)
        for k in range(2):
            worker = (
                f"{sys.executable} -m distributed.cli.dask_worker --scheduler-file "
                f"{scheduler_file} --nthreads 2 --no-nanny --no-dashboard "
                f"--local-directory {shared}/worker-{k}"
            )
            procs.append(
                subprocess.Popen(
                    ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                     _private_tmp(worker, f"{shared}/checkout-{k}")],
                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
        with open(scheduler_file) as f:
            address = json.load(f)["address"]
        client = distributed.Client(address, timeout=60, set_as_default=False)
        client.wait_for_workers(2, timeout=60)
        yield client, shared
        client.close()
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(shared, ignore_errors=True)


@pytest.fixture(scope="module")
def volume():
    from scipy import ndimage as ndi

    rng = np.random.default_rng(11)
    return (ndi.gaussian_filter(rng.random((24, 40, 40)), 1.5) * 2 - 0.5).astype("float32")


def _single_machine(volume, **kwargs):
    """The same call without a cluster (local threads)."""
    return tile_process(volume, threshold_label, tile_shape=(8, 16, 16), compute=True, **kwargs)


def _workers_tmp_is_empty(client):
    """Nothing in any worker's /tmp (but the checkout bound there, see KEEP_CHECKOUT)."""
    kept = {os.path.relpath(ROOT, "/tmp").split(os.sep)[0]} if ROOT.startswith("/tmp/") else set()
    return all(not set(names) - kept for names in client.run(os.listdir, "/tmp").values())


@pytest.mark.parametrize("stitch", ["touch", "iou"])
def test_write_to_on_shared_storage_gives_the_single_machine_labels(nodes, volume, stitch):
    client, shared = nodes
    overlap = 4 if stitch == "iou" else 0
    expected = _single_machine(volume, stitch=stitch, overlap=overlap)
    out = os.path.join(shared, f"labels-{stitch}.zarr")
    with client.as_current():
        labels = tile_process(
            volume, threshold_label, tile_shape=(8, 16, 16), stitch=stitch, overlap=overlap,
            write_to=out, compute=True,
        )  # fmt: skip
    np.testing.assert_array_equal(labels, expected)
    assert output_status(out) == "complete"
    assert _workers_tmp_is_empty(client)


def test_temp_dir_on_shared_storage_without_write_to(nodes, volume):
    client, shared = nodes
    scratch = os.path.join(shared, "scratch")
    os.makedirs(scratch, exist_ok=True)
    with client.as_current():
        labels = tile_process(
            volume, threshold_label, tile_shape=(8, 16, 16), temp_dir=scratch, compute=True
        )
    np.testing.assert_array_equal(labels, _single_machine(volume))


@pytest.mark.parametrize("stitch", ["touch", "iou"])
def test_scratch_on_the_clients_tmp_fails_in_the_preflight(nodes, volume, stitch):
    """The quick start on a cluster (no write_to, scratch in the client's /tmp)."""
    client, _ = nodes
    with client.as_current(), pytest.raises(StorageNotSharedError) as info:
        tile_process(
            volume, threshold_label, tile_shape=(8, 16, 16), stitch=stitch,
            overlap=4 if stitch == "iou" else 0, compute=True,
        )  # fmt: skip
    message = str(info.value)
    assert message.startswith("not every dask worker sees the run's storage as the client does:")
    assert "the run's scratch folder '/tmp/" in message and "does not exist there" in message
    assert "put `write_to` (and `temp_dir`, where scratch goes) on a shared filesystem" in message
    assert _workers_tmp_is_empty(client)  # nothing was created in the workers' private /tmp


def test_write_to_on_the_clients_tmp_fails_in_the_preflight(nodes, volume, tmp_path):
    client, _ = nodes
    out = str(tmp_path / "labels.zarr")
    with (
        client.as_current(),
        pytest.raises(StorageNotSharedError, match="the folder of `write_to`"),
    ):
        tile_process(volume, threshold_label, tile_shape=(8, 16, 16), write_to=out)
    assert output_status(out) == "missing"
    assert _workers_tmp_is_empty(client)


def test_a_folder_of_the_same_name_on_a_worker_is_not_the_clients(nodes, volume, tmp_path):
    """The worker has a folder at the path of the client's, but it is another folder."""
    client, _ = nodes
    top = os.path.join("/tmp", os.path.relpath(str(tmp_path), "/tmp").split(os.sep)[0])
    client.run(os.makedirs, str(tmp_path))
    try:
        with client.as_current(), pytest.raises(StorageNotSharedError) as info:
            tile_process(
                volume, threshold_label, tile_shape=(8, 16, 16), write_to=str(tmp_path / "l.zarr")
            )
        assert f"the folder of `write_to` {str(tmp_path)!r} exists there but is not the " in str(
            info.value
        )
        assert all(names == [] for names in client.run(os.listdir, str(tmp_path)).values())
    finally:
        client.run(shutil.rmtree, top)


def _clear_workers_tmp(client):
    root = ROOT  # a checkout under /tmp is bound into each worker's /tmp: keep it

    def clear():
        for name in os.listdir("/tmp"):
            path = os.path.join("/tmp", name)
            if root == path or root.startswith(path + os.sep):
                continue
            shutil.rmtree(path, ignore_errors=True)

    client.run(clear)


@pytest.mark.parametrize("stitch", ["touch", "iou"])
def test_without_the_preflight_the_run_still_never_returns_wrong_labels(
    nodes, volume, monkeypatch, stitch
):
    """The accounting behind the preflight: tiles staged in the workers' private /tmp are
    missing where the client looks, which stops the run with the tile named."""
    import patchworks._run as run_module
    from patchworks.errors import StagedDataMissingError

    client, _ = nodes
    monkeypatch.setattr(run_module, "preflight", lambda *args, **kwargs: None)
    try:
        with client.as_current(), pytest.raises(StagedDataMissingError) as info:
            tile_process(
                volume, threshold_label, tile_shape=(8, 16, 16), stitch=stitch,
                overlap=4 if stitch == "iou" else 0, compute=True,
            )  # fmt: skip
        message = str(info.value)
        assert "'/tmp/patchworks-" in message and "put `write_to` (and `temp_dir`" in message
        assert " of tile " in message or message.startswith("while staging tile ")
    finally:
        _clear_workers_tmp(client)


def test_a_module_missing_on_the_cluster_is_named_with_the_fix(
    nodes, volume, tmp_path, monkeypatch
):
    """fn's module exists only on the client: named before any tile runs, not dask's
    'lost dependencies'; after ``client.upload_file`` the same call works."""
    from patchworks.errors import ClusterConfigurationError

    client, shared = nodes
    module = tmp_path / "seg_only_on_client.py"
    module.write_text(
        "from cluster_fns import threshold_label\n\ndef fn(tile):\n    return threshold_label(tile)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "seg_only_on_client", raising=False)
    import seg_only_on_client

    out = os.path.join(shared, "missing-module.zarr")
    with client.as_current(), pytest.raises(ClusterConfigurationError) as info:
        tile_process(volume, seg_only_on_client.fn, tile_shape=(8, 16, 16), write_to=out)
    assert str(info.value) == (
        "`fn` cannot be loaded on the dask scheduler: No module named 'seg_only_on_client' "
        "there. Install 'seg_only_on_client' in the environment of the scheduler and every "
        "worker (the same as the client's), or send a single-file module with "
        f"`client.upload_file({str(module)!r})` before the run."
    )
    assert output_status(out) == "missing"
    client.upload_file(str(module))
    with client.as_current():
        labels = tile_process(
            volume, seg_only_on_client.fn, tile_shape=(8, 16, 16), write_to=out, compute=True
        )
    np.testing.assert_array_equal(labels, _single_machine(volume))


def test_cli_uploads_the_fn_file_and_its_sibling_modules(nodes, tmp_path):
    """``patchworks run --fn code/seg_helper.py:fn --scheduler-address ...`` where
    seg_helper imports helper.py beside it, on workers that do not see the client's /tmp."""
    from patchworks.datasets import write_blobs_zarr

    client, shared = nodes
    code = tmp_path / "code"
    code.mkdir()
    (code / "cli_helper.py").write_text("THRESHOLD = 400\n")
    (code / "cli_seg_helper.py").write_text(
        "from cli_helper import THRESHOLD\nfrom skimage.measure import label\n\n"
        "def fn(tile):\n    return label(tile > THRESHOLD).astype('int32')\n"
    )
    image = os.path.join(shared, "cli-image.zarr")
    out = os.path.join(shared, "cli-labels.zarr")
    write_blobs_zarr(image, (8, 64, 64), chunks=(4, 32, 32), radius=5)
    done = subprocess.run(
        [sys.executable, "-m", "patchworks", "run", image, "--fn", f"{code}/cli_seg_helper.py:fn",
         "--out", out, "--scheduler-address", client.scheduler.address],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": SRC},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert output_status(out) == "complete"


def test_an_input_the_workers_cannot_see_fails_in_the_preflight(nodes, volume, tmp_path):
    """A relative image path in the client's folder (the workers run elsewhere)."""
    import zarr

    client, shared = nodes
    zarr.create_array("img.zarr", data=volume, chunks=(8, 16, 16))  # in the client's /tmp
    out = os.path.join(shared, "from-private-input.zarr")
    with client.as_current(), pytest.raises(StorageNotSharedError) as info:
        tile_process("img.zarr", threshold_label, write_to=out)
    assert "the input 'img.zarr' does not exist there (from " in str(info.value)
    assert "give an absolute path" in str(info.value)
    assert output_status(out) == "missing"
