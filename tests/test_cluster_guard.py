"""``make_local_cluster`` in a script without ``if __name__ == "__main__":``: one clear
error with the fix, instead of multiprocessing's wall of tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from patchworks._tools.cluster import _is_main_test


def run_script(path, text):
    path.write_text(textwrap.dedent(text))
    return subprocess.run(
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=path.parent,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def test_a_script_without_the_guard_gets_one_line_with_the_fix(tmp_path):
    done = run_script(
        tmp_path / "noguard.py",
        """
        from patchworks import make_local_cluster

        client, cluster = make_local_cluster(n_workers=1, dashboard_address=None)
        client.close(); cluster.close()
        """,
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("patchworks.errors.ClusterConfigurationError: make_local_cluster()")
    assert "noguard.py (line 4)" in last and 'under `if __name__ == "__main__":`' in last
    assert "Nanny" not in done.stderr and done.stderr.count("Traceback") == 1


def test_a_call_through_a_function_at_the_top_level_is_caught_too(tmp_path):
    done = run_script(
        tmp_path / "viafunction.py",
        """
        from patchworks import make_local_cluster

        def main():
            return make_local_cluster(n_workers=1, dashboard_address=None)

        main()
        """,
    )
    assert done.returncode == 1 and "viafunction.py (line 7)" in done.stderr


def test_a_guarded_script_starts_its_cluster(tmp_path):
    done = run_script(
        tmp_path / "guarded.py",
        """
        from patchworks import make_local_cluster

        def main():
            client, cluster = make_local_cluster(n_workers=1, dashboard_address=None)
            print("workers", len(client.scheduler_info()["workers"]))
            client.close(); cluster.close()

        if __name__ == "__main__":
            main()
        """,
    )
    assert done.returncode == 0, done.stderr
    assert "workers 1" in done.stdout


def test_a_worker_process_starting_up_is_refused(tmp_path):
    # The script is guarded, but in the child (imported as __mp_main__ while it starts)
    # the else branch calls make_local_cluster: the child-side check answers.
    done = run_script(
        tmp_path / "child.py",
        """
        import multiprocessing

        if __name__ == "__main__":
            process = multiprocessing.get_context("spawn").Process(target=print)
            process.start(); process.join()
        else:
            from patchworks import make_local_cluster
            from patchworks.errors import ClusterConfigurationError

            try:
                make_local_cluster(n_workers=1)
            except ClusterConfigurationError as exc:
                print("child:", exc)
        """,
    )
    assert done.returncode == 0, done.stderr
    assert "child: make_local_cluster() was called while a worker process was starting" in (
        done.stdout
    )
    assert 'under `if __name__ == "__main__":`' in done.stdout


def test_the_guard_test_either_way_round():
    import ast

    for text in ('__name__ == "__main__"', '"__main__" == __name__'):
        assert _is_main_test(ast.parse(text, mode="eval").body)
    for text in ('__name__ != "__main__"', 'name == "__main__"', "__name__ == 1"):
        assert not _is_main_test(ast.parse(text, mode="eval").body)
