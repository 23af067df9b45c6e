"""patchworks._fs: atomic writes, flushing files and folders, removing trees."""

from __future__ import annotations

import os

import pytest

from patchworks import _fs


@pytest.fixture
def flushed(monkeypatch):
    """Record the files and folders the helpers flush, in call order."""
    calls: list[tuple[str, str]] = []
    real_file, real_dir = _fs.fsync_file, _fs.fsync_dir

    def file(path):
        calls.append(("file", path))
        return real_file(path)

    def folder(path):
        calls.append(("dir", path))
        real_dir(path)

    monkeypatch.setattr(_fs, "fsync_file", file)
    monkeypatch.setattr(_fs, "fsync_dir", folder)
    return calls


def test_atomic_write_creates_then_replaces_without_leftovers(tmp_path):
    path = tmp_path / "state.json"
    _fs.atomic_write_bytes(str(path), b"old")
    _fs.atomic_write_bytes(str(path), b"new contents")
    assert path.read_bytes() == b"new contents"
    assert os.listdir(tmp_path) == ["state.json"]


def test_atomic_write_accepts_a_relative_path(tmp_path):
    # the autouse fixture runs every test inside tmp_path
    _fs.atomic_write_bytes("relative.bin", b"\x00\x01")
    assert (tmp_path / "relative.bin").read_bytes() == b"\x00\x01"
    assert os.listdir(tmp_path) == ["relative.bin"]


def test_atomic_write_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    path.write_bytes(b"old")

    def broken_replace(src, dst):
        assert os.path.exists(src)  # the new data was written under a temporary name
        raise OSError("disk full")

    monkeypatch.setattr(_fs.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        _fs.atomic_write_bytes(str(path), b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["state.json"]


def test_atomic_write_into_a_missing_folder_raises_and_leaves_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        _fs.atomic_write_bytes(str(tmp_path / "missing" / "state.json"), b"x")
    assert os.listdir(tmp_path) == []


def test_fsync_file_reports_whether_the_file_exists(tmp_path):
    path = tmp_path / "a.bin"
    assert _fs.fsync_file(str(path)) is False
    path.write_bytes(b"data")
    assert _fs.fsync_file(str(path)) is True


def test_fsync_dir_skips_what_it_cannot_open(tmp_path):
    (tmp_path / "file").write_bytes(b"")
    _fs.fsync_dir(str(tmp_path))
    _fs.fsync_dir(str(tmp_path / "missing"))  # no error: nothing to flush
    _fs.fsync_dir(str(tmp_path / "file"))  # not a directory: skipped too


def test_fsync_paths_flushes_each_file_then_each_folder_once(tmp_path, flushed):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for name in ("a/1", "a/2", "b/1"):
        (tmp_path / name).write_bytes(b"x")
    paths = [str(tmp_path / n) for n in ("a/1", "b/1", "a/2", "a/missing")]
    _fs.fsync_paths(paths)
    assert flushed == [("file", p) for p in paths] + [
        ("dir", str(tmp_path / "a")),
        ("dir", str(tmp_path / "b")),
    ]


def test_fsync_paths_uses_the_current_folder_for_bare_names(tmp_path, flushed):
    (tmp_path / "bare").write_bytes(b"x")
    _fs.fsync_paths(["bare"])
    assert flushed == [("file", "bare"), ("dir", ".")]


def test_fsync_tree_flushes_every_file_and_folder(tmp_path, flushed):
    root = tmp_path / "store.zarr"
    (root / "c" / "0").mkdir(parents=True)
    (root / "zarr.json").write_bytes(b"{}")
    (root / "c" / "0" / "0").write_bytes(b"chunk")
    _fs.fsync_tree(str(root))
    assert sorted(p for kind, p in flushed if kind == "file") == [
        str(root / "c" / "0" / "0"),
        str(root / "zarr.json"),
    ]
    assert sorted(p for kind, p in flushed if kind == "dir") == sorted(
        [str(root), str(root / "c"), str(root / "c" / "0")]
    )


def test_durable_replace_flushes_both_folders(tmp_path, flushed):
    (tmp_path / "src").mkdir()
    (tmp_path / "dst").mkdir()
    (tmp_path / "src" / "f").write_bytes(b"payload")
    _fs.durable_replace(str(tmp_path / "src" / "f"), str(tmp_path / "dst" / "f"))
    assert (tmp_path / "dst" / "f").read_bytes() == b"payload"
    assert not (tmp_path / "src" / "f").exists()
    assert flushed == [("dir", str(tmp_path / "dst")), ("dir", str(tmp_path / "src"))]


def test_durable_replace_within_one_folder_flushes_it_once(tmp_path, flushed):
    (tmp_path / "a").write_bytes(b"new")
    (tmp_path / "b").write_bytes(b"old")
    _fs.durable_replace(str(tmp_path / "a"), str(tmp_path / "b"))
    assert (tmp_path / "b").read_bytes() == b"new"
    assert flushed == [("dir", str(tmp_path))]


def test_remove_tree_deletes_a_tree(tmp_path):
    root = tmp_path / "scratch"
    (root / "deep" / "er").mkdir(parents=True)
    (root / "deep" / "er" / "f").write_bytes(b"x")
    _fs.remove_tree(str(root))
    assert not root.exists()


@pytest.mark.parametrize("path", [None, "", "missing"])
def test_remove_tree_ignores_nothing_to_remove(tmp_path, path):
    _fs.remove_tree(path)
    assert os.listdir(tmp_path) == []


def test_remove_tree_tolerates_a_tree_removed_concurrently(tmp_path, monkeypatch):
    root = tmp_path / "scratch"
    root.mkdir()

    def gone(path):
        raise FileNotFoundError(path)

    monkeypatch.setattr(_fs.shutil, "rmtree", gone)
    _fs.remove_tree(str(root))  # another process won the race: no error
