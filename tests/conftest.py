"""Shared fixtures. Everything runs on the real components: the real llama-server, the real
MiniLM model, the real Qdrant engines. Nothing touches the user's own data directory."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from retrieval import SentenceTransformerEmbedder, default_model_path
from serving import LOCAL_MODELS, LocalServer, LocalServerConfig, ensure_llama_server, ensure_model

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "examples" / "corpus"
CACHE_DIR = Path(os.environ.get("BASTION_CACHE_DIR") or Path.home() / ".cache" / "bastion")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# The property tests draw the same examples on every run, so a CI failure always reproduces and a pass
# is never luck; HYPOTHESIS_PROFILE=explore draws new ones (and keeps failures in .hypothesis/).
settings.register_profile("repeatable", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


@pytest.fixture(autouse=True)
def _hermetic_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Like llm's LLM_USER_PATH fixture: no test reads or writes the real BASTION_DATA_DIR or config."""
    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path_factory.mktemp("data")))
    for name in list(os.environ):
        if name.startswith("BASTION_") and name not in (
            "BASTION_DATA_DIR",
            "BASTION_CACHE_DIR",
            "BASTION_TEST_MODEL_URL",
            "BASTION_TEST_CAPABLE_MODEL_URL",
        ):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def llama_binary() -> Path:
    return ensure_llama_server(CACHE_DIR)


@pytest.fixture(scope="session")
def llama_model() -> Path:
    return ensure_model(CACHE_DIR)


@pytest.fixture(scope="session")
def llm_url(tmp_path_factory: pytest.TempPathFactory, llama_binary: Path, llama_model: Path) -> Iterator[str]:
    """The base URL of a running llama-server: the one .ci/run started, or one started for this session."""
    given = os.environ.get("BASTION_TEST_MODEL_URL")
    if given:
        yield given
        return
    server = LocalServer(
        LocalServerConfig(
            binary=llama_binary, model=llama_model, state_dir=tmp_path_factory.mktemp("llm"), parallel=2
        )
    )
    state = server.start()
    try:
        yield state.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def capable_llm_url(tmp_path_factory: pytest.TempPathFactory, llama_binary: Path) -> Iterator[str]:
    """A llama-server with the capable local model (Qwen2.5-Coder-1.5B), for the tests that judge answers.

    Its own server, not the protocol tests' SmolLM2 one: both threads (nothing else runs while the
    answer tests do), one slot so the prefix cache serves one conversation at a time, and a context
    that holds a whole QA thread. BASTION_TEST_CAPABLE_MODEL_URL points at a running one instead.
    """
    given = os.environ.get("BASTION_TEST_CAPABLE_MODEL_URL")
    if given:
        yield given
        return
    server = LocalServer(
        LocalServerConfig(
            binary=llama_binary,
            model=ensure_model(CACHE_DIR, "qwen2.5-1.5b"),
            state_dir=tmp_path_factory.mktemp("capable-llm"),
            threads=2,
            ctx_size=16384,
            parallel=1,
            alias=LOCAL_MODELS["qwen2.5-1.5b"].alias,
            startup_timeout_s=300,
        )
    )
    state = server.start()
    try:
        yield state.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(default_model_path())


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throw-away real PostgreSQL server, where the machine has one installed (Debian's postgresql)."""
    import getpass
    import shutil
    import socket
    import subprocess

    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed here (apt install postgresql)")
    import tempfile

    # Not under pytest's temp root: that is private to this user, and the server may run as another.
    folder = Path(tempfile.mkdtemp(prefix="bastion-pg-"))
    data = folder / "data"
    # initdb refuses to run as root: run the server as the postgres system user then.
    as_user: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser")
        shutil.chown(folder, user="postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    user = "postgres" if as_user else getpass.getuser()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(
        [*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    subprocess.run(
        [
            *as_user,
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(folder / "log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://{user}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True
        )


# -- skips are failures, unless a machine merely lacks an optional system package -----------------

OPTIONAL_SYSTEM_PACKAGE = re.compile(r"is not installed \((apt install |scripts/test\.sh installs)")
"""The one acceptable reason to skip: Chromium, PostgreSQL or docker-compose missing from the OS.
Anything else that skips (a Python package not importable, a file not found) hides a broken check."""
_UNEXPECTED_SKIPS: list[str] = []


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    return str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = _skip_reason(report)
        if not OPTIONAL_SYSTEM_PACKAGE.search(reason):
            _UNEXPECTED_SKIPS.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _UNEXPECTED_SKIPS and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _UNEXPECTED_SKIPS:
        terminalreporter.section("skipped for a reason that is not an optional system package: failing")
        for line in _UNEXPECTED_SKIPS:
            terminalreporter.line(line)
