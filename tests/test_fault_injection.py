"""SIGKILL real runs at random moments (tests/crash_run.py); resumed labels are identical."""

from __future__ import annotations

import pytest

import crash_run


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crash")
    return str(folder), crash_run.prepare(str(folder))


def check(report):
    assert report["identical"], report
    assert report["complete"], report
    assert report["leftovers"] == [], report


@pytest.mark.parametrize("seed", [0, 1])
def test_random_sigkills_then_resume_give_identical_labels(prepared, seed):
    folder, duration = prepared
    check(crash_run.crash_and_resume(folder, seed, kills=3, duration=duration))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2, 12))
def test_many_random_sigkills(prepared, seed):
    folder, duration = prepared
    check(crash_run.crash_and_resume(folder, seed, kills=8, duration=duration))


@pytest.mark.slow
def test_script_entry_point_reports_success(tmp_path, capsys):
    assert (
        crash_run.main(
            ["--seeds", "5", "--kills", "1", "--shape", "8", "32", "32", "--folder", str(tmp_path)]
        )
        == 0
    )
    assert '"identical": true' in capsys.readouterr().out
