"""The skip policy of tests/conftest.py, run as pytest runs it: a child pytest with the project's
conftest and configuration on a small test file, with and without CI=true."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PASSING = "def test_passes():\n    assert True\n"


def run_pytest(tmp_path: Path, files: dict[str, str], *, ci: str | None) -> tuple[int, str]:
    """Exit code and output of pytest on `files` (name -> source) written to `tmp_path`."""
    for name, source in files.items():
        (tmp_path / name).write_text(textwrap.dedent(source))
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    completed = subprocess.run(
        [
            sys.executable,
            *("-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider"),
            *("-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path)),
            *sorted(files),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return completed.returncode, completed.stdout + completed.stderr


SKIPS = {
    "mark": """
        import pytest

        @pytest.mark.skip(reason="needs a thing CI has")
        def test_skipped():
            assert True
        """,
    "skipif": """
        import pytest

        @pytest.mark.skipif(True, reason="needs a thing CI has")
        def test_skipped():
            assert True
        """,
    "call": """
        import pytest

        def test_skipped():
            pytest.skip("needs a thing CI has")
        """,
    "module": """
        import pytest

        pytest.importorskip("a_module_that_is_not_installed_anywhere")

        def test_skipped():
            assert True
        """,
}


@pytest.mark.parametrize("how", sorted(SKIPS))
def test_ci_fails_on_a_skip_and_names_it(tmp_path: Path, how: str) -> None:
    code, output = run_pytest(
        tmp_path, {"test_ok.py": PASSING, "test_sample.py": SKIPS[how]}, ci="true"
    )
    assert code == 1, output
    assert "CI=true: the run FAILS on 1 skipped test" in output, output
    assert "skipped: test_sample.py" in output, output
    assert "needs a thing CI has" in output or "a_module_that_is_not_installed" in output


def test_ci_allows_a_listed_skip_and_says_why(tmp_path: Path) -> None:
    source = """
        import pytest

        def test_against_localstack():
            pytest.skip("LocalStack tier: no LocalStack answers at AWS_ENDPOINT_URL")
        """
    code, output = run_pytest(tmp_path, {"test_ok.py": PASSING, "test_ls.py": source}, ci="true")
    assert code == 0, output
    assert "1 skipped, allowed" in output, output
    assert "allowed: test_ls.py::test_against_localstack" in output, output
    assert "why: LocalStack needs Docker" in output, output
    assert "FAILS" not in output


def test_outside_ci_a_skip_passes_with_a_loud_warning(tmp_path: Path) -> None:
    code, output = run_pytest(
        tmp_path, {"test_ok.py": PASSING, "test_sample.py": SKIPS["mark"]}, ci=None
    )
    assert code == 0, output
    assert "WARNING: 1 skipped test; with CI=true the run fails" in output, output
    assert "skipped: test_sample.py::test_skipped: needs a thing CI has" in output, output


def test_ci_with_a_failure_and_a_skip_still_fails(tmp_path: Path) -> None:
    failing = "def test_fails():\n    assert False\n"
    code, output = run_pytest(
        tmp_path, {"test_bad.py": failing, "test_sample.py": SKIPS["mark"]}, ci="true"
    )
    assert code == 1, output
    assert "skipped: test_sample.py::test_skipped" in output, output


def test_an_unexpected_xpass_fails_the_run(tmp_path: Path) -> None:
    source = """
        import pytest

        @pytest.mark.xfail(reason="was broken")
        def test_now_passes():
            assert True

        @pytest.mark.xfail(reason="still broken")
        def test_still_fails():
            assert False
        """
    code, output = run_pytest(tmp_path, {"test_x.py": source}, ci=None)
    assert code == 1, output
    assert "XPASS(strict)" in output, output
    assert "1 xfailed" in output, output


def test_an_expected_failure_is_not_a_skip(tmp_path: Path) -> None:
    source = """
        import pytest

        @pytest.mark.xfail(reason="still broken")
        def test_still_fails():
            assert False
        """
    code, output = run_pytest(tmp_path, {"test_ok.py": PASSING, "test_x.py": source}, ci="true")
    assert code == 0, output
    assert "SKIPPED" not in output and "FAILS" not in output, output
