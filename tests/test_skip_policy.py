"""CI's skip policy, run for real: a test that skips for any reason but a missing optional system
package (Chromium, PostgreSQL, docker-compose) fails the run, so a broken check cannot hide as a skip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ALLOWED = "pytest.skip('chromium is not installed (apt install chromium)')"


def _run(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_probe.py").write_text(f"import pytest\n\n\ndef test_probe() -> None:\n    {body}\n")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "tests.conftest", "-p", "no:cacheprovider",
         str(tmp_path / "test_probe.py")],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def test_a_skip_for_a_missing_python_module_or_file_fails_the_run(tmp_path: Path) -> None:
    done = _run(tmp_path, "pytest.skip('the reference table is not beside this checkout')")
    assert done.returncode == 1, done.stdout
    assert "not an optional system package: failing" in done.stdout


def test_a_skip_for_a_missing_optional_system_package_passes(tmp_path: Path) -> None:
    done = _run(tmp_path, ALLOWED)
    assert done.returncode == 0, done.stdout
    assert "1 skipped" in done.stdout
