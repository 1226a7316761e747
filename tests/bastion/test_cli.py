"""The `bastion` console script, run as a user runs it: a subprocess, real model server, real index."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CORPUS
from tests.retrieval.fixtures import make_png

pytestmark = pytest.mark.llm
BASTION = str(Path(sys.executable).with_name("bastion"))


HANG_S = 1800
"""A guard against a hung command, not a speed check: a demo that takes 190 s beside two busy loops
took over 300 s with a third heavy job on the same two cores, and failed for that alone."""


def bastion(
    *args: str,
    data_dir: Path,
    model_url: str | None = None,
    timeout_s: float = HANG_S,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "BASTION_DATA_DIR": str(data_dir), "BASTION_LOCAL_AUTO_START": "false"}
    if model_url:
        full["BASTION_MODEL_URL"] = model_url
    return subprocess.run(
        [BASTION, *args],
        capture_output=True,
        text=True,
        env={**full, **(env or {})},
        timeout=timeout_s,
        check=False,
    )


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("cli-data")
    done = bastion("index", str(CORPUS), data_dir=data_dir)
    assert done.returncode == 0, done.stderr
    assert "Indexed 6 document(s)" in done.stdout
    return data_dir


def test_search_json_gives_spans_into_the_files(indexed: Path) -> None:
    done = bastion("search", "minimum password length", "--json", "-n", "3", data_dir=indexed)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)["results"]
    assert len(results) == 3
    for r in results:
        assert {"chunk_id", "source", "start", "end", "text", "score"} <= r.keys()
        assert Path(r["source"]).read_text()[r["start"] : r["end"]] == r["text"]
    assert Path(results[0]["source"]).name == "information-security-policy.md"


def test_search_respects_the_principal(indexed: Path) -> None:
    done = bastion("search", "password", "--json", "--user", "alice", "--groups", "hr", data_dir=indexed)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"] == []


@pytest.mark.parametrize("mode", ["hybrid", "dense", "sparse"])
def test_search_modes_and_filters(indexed: Path, mode: str) -> None:
    done = bastion(
        "search",
        "CCTV footage",
        "--json",
        "--mode",
        mode,
        "--under",
        str(CORPUS),
        "--type",
        "markdown",
        data_dir=indexed,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["mode"] == mode and result["results"]
    none = bastion("search", "CCTV footage", "--json", "--type", "pdf", data_dir=indexed)
    assert json.loads(none.stdout)["results"] == []


def test_bad_mode_is_a_usage_error(indexed: Path) -> None:
    done = bastion("search", "x", "--mode", "fuzzy", data_dir=indexed)
    assert done.returncode == 2 and "--mode" in done.stderr


def test_reindex_reports_unchanged(indexed: Path) -> None:
    done = bastion("index", str(CORPUS), "--json", "--optimize", data_dir=indexed)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["documents_indexed"], report["documents_unchanged"], report["chunks_written"]) == (0, 6, 0)


@pytest.mark.llm
def test_ask_with_a_picture_needs_a_model_that_reads_images(
    indexed: Path, llm_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # no message wrapped inside its box
    picture = make_png(tmp_path / "chart.png", 20, 10)
    done = bastion(
        "ask",
        "PIC-c11 what does this chart show?",
        "--image",
        str(picture),
        data_dir=indexed,
        model_url=llm_url,
    )
    # llama-server here reports no vision: refused before anything runs, and no thread is kept.
    assert done.returncode != 0 and "cannot read images" in done.stderr, done.stderr
    threads = indexed / "threads.sqlite"
    assert not threads.exists() or b"PIC-c11" not in threads.read_bytes()
    for bad, why in ((tmp_path / "notes.txt", "not a picture"), (tmp_path / "gone.png", "cannot be read")):
        if bad.suffix == ".txt":
            bad.write_text("x")
        refused = bastion("ask", "what is this?", "--image", str(bad), data_dir=indexed)
        assert refused.returncode == 2 and why in refused.stderr, refused.stderr
    code = bastion(
        "ask",
        "what is this?",
        "--agent",
        "code",
        "--repo",
        str(tmp_path),
        "--image",
        str(picture),
        data_dir=indexed,
    )
    assert code.returncode == 2 and "--agent qa" in code.stderr


@pytest.mark.capable_llm
def test_ask_json_cites_text_from_the_cited_file(indexed: Path, capable_llm_url: str) -> None:
    done = bastion(
        "ask", "How long is CCTV footage kept?", "--json", data_dir=indexed, model_url=capable_llm_url
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert {"answer", "citations", "reasoning_effort", "usage", "timings", "thread_id"} <= result.keys()
    assert {"prompt_tokens", "completion_tokens", "cached_tokens"} <= result["usage"].keys()
    assert result["citations"], result
    for c in result["citations"]:
        assert c["text"] in Path(c["source"]).read_text()
        assert Path(c["source"]).read_text()[c["start"] : c["end"]] == c["text"]
    follow = bastion(
        "ask",
        "And what about backups?",
        "--json",
        "--thread",
        result["thread_id"],
        data_dir=indexed,
        model_url=capable_llm_url,
    )
    assert follow.returncode == 0, follow.stderr
    assert json.loads(follow.stdout)["thread_id"] == result["thread_id"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: (p / "empty").mkdir() or p / "empty", "holds no indexable file"),
        (lambda p: (p / "x.txt").write_bytes(b"\x00\x01\x02binary") and p / "x.txt", "binary"),
        (
            lambda p: (p / "l.txt").write_bytes("na\xefve".encode("latin-1")) and p / "l.txt",
            "not valid UTF-8",
        ),
        (lambda p: p / "nowhere", "no such file or folder"),
    ],
)
def test_bad_index_input_fails_clearly_and_writes_nothing(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    data_dir = tmp_path / "data"
    done = bastion("index", str(CORPUS / "acceptable-use.md"), str(make(tmp_path)), data_dir=data_dir)
    assert done.returncode == 1
    assert message in done.stderr and "Nothing was indexed" in done.stderr
    assert "Traceback" not in done.stderr
    after = bastion("search", "personal use of company devices", "--json", data_dir=data_dir)
    assert json.loads(after.stdout)["results"] == []


def test_names_and_texts_are_shown_as_written_never_as_terminal_codes_or_markup(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    name = "evil\x1b[2J[red]boom.md"
    (docs / name).write_text("# Title \x1b[31m[bold]loud[/bold]\n\nThe zebra protocol has nine steps.\n")
    (docs / "payload\x1b]0;owned\x07.exe").write_text("not indexed")
    indexed = bastion("index", str(docs), data_dir=tmp_path / "data")
    assert indexed.returncode == 0, indexed.stderr
    found = bastion("search", "zebra protocol", data_dir=tmp_path / "data")
    assert found.returncode == 0, found.stderr
    for output in (indexed.stdout + indexed.stderr, found.stdout):
        assert "\x1b" not in output and "\x07" not in output
    assert "evil\\x1b[2J[red]boom.md" in found.stdout  # the name as written, not rendered
    assert "[bold]loud[/bold]" in found.stdout
    assert "payload\\x1b]0;owned\\x07.exe" in indexed.stdout


def test_index_check_finds_chunks_missing_from_the_store_and_a_damaged_manifest(tmp_path: Path) -> None:
    from retrieval import EdgeStore

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\n" + "Alpha paragraph about leave. " * 60)
    (docs / "b.md").write_text("# B\n\nBeta is short.\n")
    data = tmp_path / "data"
    assert bastion("index", str(docs), data_dir=data).returncode == 0
    ok = bastion("index", "--check", "--json", data_dir=data)
    assert ok.returncode == 0 and json.loads(ok.stdout)["documents"] == 2, ok.stderr
    store = EdgeStore(data / "index" / "edge", dimension=384)
    source = str((docs / "a.md").resolve())
    store.delete([next(iter(store.source_points(source)))])  # a point lost, as a damaged store loses it
    store.close()
    broken = bastion("index", "--check", data_dir=data)
    assert broken.returncode == 1 and "a.md" in broken.stderr and "b.md" not in broken.stderr
    for extra in data.glob("index/manifest.sqlite*"):
        extra.write_bytes(b"garbage" * 100)
    damaged = bastion("index", "--check", data_dir=data)
    assert damaged.returncode == 1 and "is damaged" in damaged.stderr and "Traceback" not in damaged.stderr


def test_unreachable_model_server_is_a_clear_error(indexed: Path) -> None:
    done = bastion(
        "ask", "How long is CCTV footage kept?", data_dir=indexed, model_url="http://127.0.0.1:9/v1"
    )
    assert done.returncode == 1
    assert "Cannot reach the model server" in done.stderr and "Traceback" not in done.stderr


def test_without_a_server_and_without_auto_start_it_says_what_to_do(indexed: Path) -> None:
    done = bastion("ask", "How long is CCTV footage kept?", data_dir=indexed)
    assert done.returncode == 1
    assert "bastion model serve" in done.stderr


def test_search_by_document_lists_each_document_once_with_its_passages(indexed: Path) -> None:
    done = bastion("search", "How long is CCTV footage kept?", "--by", "document", "--json", data_dir=indexed)
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    sources = [r["source"] for r in payload["results"]]
    assert payload["by"] == "document" and len(sources) == len(set(sources)) > 1
    assert sources[0].endswith("data-retention.md")
    for result in payload["results"]:
        text = Path(result["source"]).read_text()
        assert all(text[p["start"] : p["end"]] == p["text"] for p in result["passages"])
    wrong = bastion("search", "x", "--by", "paragraph", data_dir=indexed)
    assert wrong.returncode == 2 and "--by" in wrong.stderr


def test_bad_principal_flags_are_usage_errors(indexed: Path) -> None:
    done = bastion("search", "x", "--user", "bad user!", data_dir=indexed)
    assert done.returncode == 2
    assert "--user" in done.stderr


@pytest.mark.parametrize(
    ("raised", "code", "shown"),
    [
        ("retrieval.QueryError('the search query is empty')", 2, "Error: the search query is empty"),
        ("bastion.ConfigError('BASTION_USER is invalid')", 1, "Error: BASTION_USER is invalid"),
        ("agents.QuestionError('the question is empty')", 2, "Error: the question is empty"),
        # Not one of ours: a bug, which keeps its traceback rather than passing as a usage error.
        ("ValueError('a bug deep inside')", 1, "Traceback"),
    ],
)
def test_the_cli_turns_only_bastion_errors_into_messages(raised: str, code: int, shown: str) -> None:
    program = (
        "import agents, bastion, retrieval, bastion.cli as cli\n"
        f"def failing():\n    raise {raised}\n"
        "cli.app = failing\ncli.main()\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=False)
    assert done.returncode == code, done.stderr
    assert shown in done.stderr


def test_model_check_probes_a_server(tmp_path: Path, llm_url: str) -> None:
    done = bastion("model", "check", "--url", llm_url, "--json", data_dir=tmp_path)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["kind"] == "llama.cpp" and info["context_length"] == 8192
    assert info["smoke"]["completion_tokens"] > 0
    down = bastion("model", "check", "--url", "http://127.0.0.1:9/v1", data_dir=tmp_path)
    assert down.returncode == 1 and "Cannot reach the model server" in down.stderr


def test_launch_sglang_prints_validated_commands(tmp_path: Path) -> None:
    done = bastion(
        "model", "launch-sglang", "--profile", "4xh100", "--replicas", "2", "--print", data_dir=tmp_path
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 3 and "--tp-size 4" in lines[0] and "--policy cache_aware" in lines[2]
    assert lines[2].startswith("smg launch --worker-urls") and "--api-key ${SGLANG_API_KEY" in lines[2]
    assert "${SGLANG_API_KEY:?set SGLANG_API_KEY}" in lines[0], "the key is referenced, never inlined"
    unknown = bastion("model", "launch-sglang", "--profile", "8xa100", "--print", data_dir=tmp_path)
    assert unknown.returncode == 2 and "--profile" in unknown.stderr


@pytest.mark.parametrize("name", ["sglang", "vllm", "llama.cpp", "nim", "mistral-api", "transformers"])
def test_model_preset_writes_settings_bastion_accepts(tmp_path: Path, name: str) -> None:
    done = bastion("model", "preset", name, "--dir", str(tmp_path / "out"), data_dir=tmp_path / "data")
    assert done.returncode == 0, done.stderr
    env = dict(
        line.split("=", 1) for line in (tmp_path / "out" / f"{name}.env").read_text().splitlines() if line
    )
    # Every line is a real setting: loading them (references filled in) gives the configured client.
    filled = {k: ("secret" if v.startswith("${") else v) for k, v in env.items()}
    checked = subprocess.run(
        [sys.executable, "-c", "from bastion.settings import load_settings; s = load_settings(); "
         "print(s.model.url, s.model.reasoning, s.model.send_cache_salt)"],
        env={**os.environ, "BASTION_DATA_DIR": str(tmp_path / "data"), **filled},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert (tmp_path / "out" / f"{name}.sh").exists() == (name in ("sglang", "vllm", "llama.cpp"))
    if name == "mistral-api":
        assert checked.stdout.split() == ["https://api.mistral.ai/v1", "field", "False"]


def test_model_preset_refuses_an_unknown_path(tmp_path: Path) -> None:
    done = bastion("model", "preset", "tgi", "--print", data_dir=tmp_path)
    assert done.returncode == 2 and "use one of" in done.stderr


def test_router_train_then_ask_with_the_learned_router(indexed: Path, llm_url: str) -> None:
    trained = bastion("router", "train", "--json", data_dir=indexed)
    assert trained.returncode == 0, trained.stderr
    assert json.loads(trained.stdout)["examples"] == 80 and (indexed / "router.json").exists()
    env_ask = subprocess.run(
        [BASTION, "ask", "How long is CCTV footage kept?", "--json"],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "BASTION_DATA_DIR": str(indexed), "BASTION_MODEL_URL": llm_url,
             "BASTION_AGENT_ROUTER": "learned"},
    )  # fmt: skip
    assert env_ask.returncode == 0, env_ask.stderr
    assert json.loads(env_ask.stdout)["effort_reason"].startswith("learned router")


def test_model_status_json_when_stopped(tmp_path: Path) -> None:
    done = bastion("model", "status", "--json", data_dir=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"running": False, "healthy": False}


def test_chat_streams_resumes_a_thread_from_another_process_and_shows_it(
    tmp_path: Path, llm_url: str
) -> None:
    first = bastion("chat", "Hello, who are you?", "--json", data_dir=tmp_path, model_url=llm_url)
    assert first.returncode == 0, first.stderr
    events = [json.loads(line) for line in first.stdout.splitlines()]
    assert events[0]["kind"] == "node" and events[0]["node"] == "route"
    assert any(e["kind"] == "token" for e in events) and events[-1]["kind"] == "done"
    thread = events[-1]["thread_id"]
    # Messages on stdin, as a pipe sends them; the thread continues in this new process.
    second = subprocess.run(
        [BASTION, "chat", "--thread", thread],
        input="Thanks.\n/exit\n",
        capture_output=True,
        text=True,
        env={**os.environ, "BASTION_DATA_DIR": str(tmp_path), "BASTION_MODEL_URL": llm_url},
        timeout=300,
        check=False,
    )
    assert second.returncode == 0, second.stderr
    assert f"thread {thread}" in second.stderr and "cached" in second.stderr
    shown = bastion("chat", "--thread", thread, "--history", data_dir=tmp_path, model_url=llm_url)
    assert shown.returncode == 0, shown.stderr
    assert "Hello, who are you?" in shown.stdout and "Thanks." in shown.stdout
    bad = bastion("chat", "--history", data_dir=tmp_path, model_url=llm_url)
    assert bad.returncode == 2 and "--history needs --thread" in bad.stderr


def test_code_agent_from_the_cli(tmp_path: Path, llm_url: str) -> None:
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    done = bastion(
        "ask",
        "--agent",
        "code",
        "--repo",
        str(repo),
        "What does add do?",
        "--json",
        data_dir=tmp_path / "data",
        model_url=llm_url,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["mode"] == "whole" and result["packed_files"] == 1
    for c in result["citations"]:
        assert c["path"] == "pkg/calc.py" and 1 <= c["start_line"] <= c["end_line"] <= 2
    missing = bastion("ask", "--agent", "code", "q", data_dir=tmp_path / "data", model_url=llm_url)
    assert missing.returncode == 2 and "--repo" in missing.stderr


def test_model_gateway_serves_the_code_agent_through_smg_and_stops_everything(tmp_path: Path) -> None:
    """`bastion model gateway` puts SGLang's gateway in front of two local replicas; while it runs the
    CLI's model calls go through it, naming the model (smg routes by it) and counting tokens on a
    replica (smg forwards no /tokenize)."""
    env = {"BASTION_LOCAL_MODEL": "smollm2", "BASTION_LOCAL_PARALLEL": "1"}
    data = tmp_path / "data"
    bad = bastion("model", "gateway", "--policy", "lru", data_dir=data, env=env)
    assert bad.returncode == 2 and "--policy" in bad.stderr
    started = bastion("model", "gateway", "--replicas", "2", data_dir=data, env=env)
    try:
        assert started.returncode == 0, started.stderr
        state = json.loads((data / "gateway" / "gateway.json").read_text())
        assert state["policy"] == "cache_aware" and len(state["workers"]) == 2
        assert f"Gateway ready at {state['url']}" in started.stdout
        status = bastion("model", "status", "--json", data_dir=data, env=env)
        assert json.loads(status.stdout)["gateway"]["url"] == state["url"], status.stderr
        repo = tmp_path / "repo"
        (repo / "pkg").mkdir(parents=True)
        (repo / "pkg" / "calc.py").write_text("def add(a, b):\n    return a + b\n")
        done = bastion(
            "ask", "--agent", "code", "--repo", str(repo), "What does add do?", "--json",
            data_dir=data, env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["packed_files"] == 1
        log = Path(state["log_file"]).read_text()
        assert "Traceback" not in log
    finally:
        stopped = bastion("model", "gateway", "--stop", data_dir=data, env=env)
    assert stopped.returncode == 0 and "Stopped the gateway" in stopped.stdout
    assert not (data / "gateway" / "gateway.json").exists()
    for i in (0, 1):
        assert not (data / "gateway" / f"replica-{i}" / "llama-server.json").exists()


# The demo's questions (bastion/cli/demo.py), each with the fact a right answer states and its file.
DEMO_ANSWERS = [
    (("20 days", "twenty days"), "remote-work-policy.md"),
    (("line manager",), "remote-work-policy.md"),
    (("14 characters", "fourteen characters"), "information-security-policy.md"),
    (("30 days", "thirty days"), "data-retention.md"),
]


@pytest.mark.capable_llm
def test_demo_answers_right_cites_the_right_file_refuses_and_reports_cache_reuse(
    tmp_path: Path, capable_llm_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README command 1 on the default (capable) local model: right answers, not only a run."""
    monkeypatch.setenv("COLUMNS", "400")  # no line wrapped inside a file name
    done = bastion("demo", data_dir=tmp_path, model_url=capable_llm_url)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "6 document(s) indexed" in out
    turns = re.split(r"\nQ[:( ]", out)[1:]
    assert len(turns) == 4 + 1, out
    for turn, (facts, source) in zip(turns, DEMO_ANSWERS, strict=False):
        answer, _, rest = turn.partition("\n  [")  # the answer, then its citations
        assert any(f in " ".join(answer.split()) for f in facts), turn
        assert source in rest, turn
    assert "Not found in the documents you can access." in turns[-1]
    assert "Follow-up turns reused" in out and "model calls" in out


def test_help_loads_no_agent_model_or_evaluation_library() -> None:
    """`bastion --help` (and every command's start) stays quick: LangGraph, the evaluation layer,
    qdrant-client and torch load only where a command uses them."""
    probe = (
        "import sys\n"
        "from bastion.cli import main\n"
        "sys.argv = ['bastion', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = ('agents', 'langgraph', 'evals', 'qdrant_client', 'torch', 'sentence_transformers')\n"
        "print(sorted(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode == 0, done.stderr
    assert "eval " in done.stdout and "index " in done.stdout
    assert done.stderr.strip().splitlines()[-1] == "[]", done.stderr


def test_a_lazily_loaded_group_is_listed_with_its_own_help_and_runs_as_itself(tmp_path: Path) -> None:
    import importlib

    import typer

    from bastion.cli import LAZY_GROUPS

    for module, summary in LAZY_GROUPS.values():
        real = typer.main.get_command(importlib.import_module(module).app)
        assert (real.help or "").startswith(summary), "the listing must say what the group's help says"
    listed = bastion("eval", "list", data_dir=tmp_path)
    assert listed.returncode == 0 and "retrieval-cwe" in listed.stdout, listed.stderr


def test_a_reindex_with_nothing_to_embed_loads_no_model_library(indexed: Path) -> None:
    probe = (
        "import sys\n"
        "from bastion.cli import main\n"
        f"sys.argv = ['bastion', '--data-dir', {str(indexed)!r}, 'index', {str(CORPUS)!r}, '--json']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = ('torch', 'sentence_transformers', 'transformers', 'agents', 'langgraph', 'qdrant_client')\n"
        "print(sorted(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
    )
    env = {**os.environ, "BASTION_LOCAL_AUTO_START": "false"}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=HANG_S, env=env
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["documents_unchanged"] == 6
    assert done.stderr.strip().splitlines()[-1] == "[]", done.stderr


def test_index_builds_the_search_index_by_itself_past_the_threshold(tmp_path: Path) -> None:
    env = {"BASTION_RETRIEVAL_OPTIMIZE_AFTER": "10"}
    first = bastion("index", str(CORPUS), data_dir=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    assert "Building the search index" in first.stderr and "OPTIMIZE_AFTER=10" in first.stderr
    # Nothing written since: no second build; and 0 turns the automatic build off.
    again = bastion("index", str(CORPUS), data_dir=tmp_path, env=env)
    assert again.returncode == 0 and "Building the search index" not in again.stderr
    other = tmp_path / "other"
    fresh = bastion("index", str(CORPUS), data_dir=other, env={"BASTION_RETRIEVAL_OPTIMIZE_AFTER": "0"})
    assert fresh.returncode == 0 and "Building the search index" not in fresh.stderr
