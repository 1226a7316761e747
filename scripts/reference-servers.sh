#!/usr/bin/env bash
# The request models and argument parsers of the servers Bastion deploys on but cannot run here, from
# their pinned releases on PyPI, so tests check our requests and launch commands against the servers'
# own code rather than against our reading of their docs:
#   SGLang 0.5.23  sglang/srt/entrypoints/openai/protocol.py (its chat-completions request model)
#   vLLM 0.34.0    its Python sources (no compiled kernels): `vllm serve`'s argument parser, its
#                  reasoning/tool parser registries and its chat-completions request model
# They live in ~/.cache/bastion/reference-servers (or $BASTION_CACHE_DIR), with a small virtualenv that
# adds what those modules import to the project's .venv (torch, transformers and pydantic come from it).
# Nothing here is committed or run as a server. A second run takes a second.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "reference-servers: $*" >&2; exit 1; }

SGLANG=0.5.23
VLLM=0.34.0
cache=${BASTION_CACHE_DIR:-$HOME/.cache/bastion}/reference-servers
venv_site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') \
  || fail "the project's .venv is missing: run scripts/setup.sh first"
want=$(cat scripts/reference-servers.sh | sha256sum | cut -d' ' -f1)

# The environment sees vLLM's sources and the project's packages after its own.
link_project() {
  local env_site
  env_site=$("$cache/env/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  printf '%s\n%s\n' "$cache/vllm" "$venv_site" > "$env_site/bastion-reference.pth"
}

if [ "$(cat "$cache/stamp" 2>/dev/null)" != "$want" ]; then
  echo "reference-servers: fetching SGLang $SGLANG's and vLLM $VLLM's Python sources (once, ~280 MB download)"
  rm -rf "$cache" && mkdir -p "$cache/wheels"
  .venv/bin/python -m pip download --quiet --disable-pip-version-check --no-deps -d "$cache/wheels" \
    "sglang==$SGLANG" "vllm==$VLLM" || fail "downloading the sglang and vllm wheels failed (see pip above)"
  # Only the request model from SGLang: importing its package would pull in its whole runtime. From
  # vLLM its Python, without compiled kernels and vendored binaries (nothing here runs a model).
  # Python's zipfile rather than unzip, which a fresh machine may lack.
  .venv/bin/python - "$cache" <<'PY' || fail "unpacking the wheels failed"
import sys, zipfile
from pathlib import Path
cache = Path(sys.argv[1])
wanted = {
    "sglang": lambda n: n == "sglang/srt/entrypoints/openai/protocol.py",
    "vllm": lambda n: n.startswith("vllm/") and not n.endswith(".so") and n != "vllm/vllm-rs"
    and not n.startswith("vllm/third_party/"),
}
for name, keep in wanted.items():
    (wheel,) = (cache / "wheels").glob(f"{name}-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(cache / name, [n for n in archive.namelist() if keep(n)])
PY
  rm -rf "$cache/wheels"
  python3 -m venv "$cache/env" || .venv/bin/python -m venv "$cache/env" || fail "could not create a virtualenv"
  link_project
  # What those modules import that the project does not install, pinned to the versions checked here
  # (after the link: what the project has, torch above all, is not installed twice).
  "$cache/env/bin/python" -m pip install --quiet --disable-pip-version-check \
    msgspec==0.23.0 psutil==7.2.2 pyzmq==27.3.0 aiohttp==3.14.5 pybase64==1.5.1 cachetools==8.0.2 \
    openai-harmony==0.0.8 cbor2==6.3.0 uvloop==0.23.0 py-cpuinfo==9.0.0 partial-json-parser==0.2.1.1.post7 \
    llguidance==1.9.1 \
    || fail "installing the reference environment's packages failed (see pip above)"
  # xgrammar without its dependencies: they would add triton's 1 GB, which nothing here needs.
  "$cache/env/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    xgrammar==0.2.9 apache-tvm-ffi==0.1.15.post2 || fail "installing xgrammar failed (see pip above)"
  echo "$want" > "$cache/stamp"
fi

link_project  # every run: the project's .venv may have moved (a fresh clone in CI)
echo "reference-servers: ready in $cache"
