#!/usr/bin/env bash
# Installs everything (scripts/setup.sh), checks style and types, starts a local llama-server for the
# tests, runs the whole suite, and stops the server whatever happens. Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh || exit 1
# SGLang's and vLLM's request models and vLLM's argument parser, which tests check Bastion against.
bash scripts/reference-servers.sh || exit 1

# docker-compose validates docker-compose.yml (no Docker engine needed); best effort, the test skips without it.
if ! command -v docker-compose >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get install -y -q docker-compose >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q docker-compose >/dev/null 2>&1; }) \
    || echo "test: could not install docker-compose; its validation test will be skipped" >&2
fi

# PostgreSQL backs the Postgres checkpointer's tests (a throw-away server per run); they skip without it.
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get install -y -q --no-install-recommends postgresql >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends postgresql >/dev/null 2>&1; }) \
    || echo "test: could not install postgresql; the Postgres checkpointer tests will be skipped" >&2
fi

# Debian's chromium drives the web page's browser test (through Python's playwright); it skips without.
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; }) \
    || echo "test: could not install chromium; the web page's browser test will be skipped" >&2
fi

# The docs-faq and grounding suites fetch Python's documentation with `apt-get download` (no install):
# that needs the package lists, which a fresh container may not have yet.
if command -v apt-cache >/dev/null && [ "$(id -u)" = 0 ] \
  && ! apt-cache policy python3.11-doc python3-doc 2>/dev/null | grep -q "Candidate: [0-9]"; then
  apt-get update -q >/dev/null 2>&1 || echo "test: apt-get update failed; the Python-docs suites will fail" >&2
fi

echo "test: ruff and mypy"
.venv/bin/ruff check . || exit 1
.venv/bin/ruff format --check . || exit 1
.venv/bin/mypy || exit 1

# The model server the tests talk to, in a throw-away data dir so nothing else shares it.
state=$(mktemp -d -t bastion-test-XXXXXX)
stop_server() {
  .venv/bin/bastion --data-dir "$state" model stop >/dev/null 2>&1
  rm -rf "$state"
}
trap stop_server EXIT
# SmolLM2 on one thread for the protocol tests: fast, and steady on a loaded machine. The answer-quality
# tests start their own Qwen2.5-Coder-1.5B server (tests/conftest.py).
BASTION_LOCAL_MODEL=smollm2 BASTION_LOCAL_THREADS=1 .venv/bin/bastion --data-dir "$state" model serve || exit 1
BASTION_TEST_MODEL_URL=$(.venv/bin/bastion --data-dir "$state" model status --json \
  | .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)["url"])') || exit 1
export BASTION_TEST_MODEL_URL

.venv/bin/python -m pytest -q -rs -p no:cacheprovider --durations=10 "$@"
status=$?
if [ "$status" -eq 5 ]; then
  # pytest's "no tests collected": for this project that means a broken suite, not a pass.
  echo "test: pytest collected no tests; failing on purpose" >&2
  exit 1
fi
exit "$status"
