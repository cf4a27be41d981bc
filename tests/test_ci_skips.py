"""The CI skip guard of conftest.py: in CI a skip fails unless its reason is a missing GPU."""
import os
import subprocess
import sys
import textwrap


def _run(tmp_path, ci):
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "conftest.py")) as f:
        (tmp_path / "conftest.py").write_text(f.read())
    (tmp_path / "test_x.py").write_text(textwrap.dedent("""
        import pytest
        def test_gpu():
            pytest.skip("needs a CUDA device")
        def test_missing_package():
            pytest.importorskip("no_such_package_nw")
        def test_plain():
            assert True
    """))
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(tmp_path)], capture_output=True, text=True, env=env,
                          cwd=tmp_path)


def test_outside_ci_both_skips_are_skips(tmp_path):
    out = _run(tmp_path, ci=False).stdout
    assert "1 passed, 2 skipped" in out, out


def test_in_ci_only_the_gpu_skip_is_allowed(tmp_path):
    proc = _run(tmp_path, ci=True)
    assert proc.returncode == 1
    assert "1 failed, 1 passed, 1 skipped" in proc.stdout, proc.stdout
    assert "no_such_package_nw" in proc.stdout and "CI must run this test" in proc.stdout
