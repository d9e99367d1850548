#!/usr/bin/env bash
# The test command: sets up .venv if needed and runs the whole test suite on the newest dependencies, then
# again at the lowest version of every declared dependency against the built wheel (scripts/floor.sh), then
# the vLLM tests in their own environment (scripts/vllm.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/bootstrap.sh"
cd "$root"
# Exit code 5 (no tests collected) is a failure, as is any other non-zero code.
echo "[test] the test suite on the newest dependencies (editable checkout)"
python -m pytest -q -p no:cacheprovider "$@"
# The same suite at the lower end of every dependency range, against the built wheel.
bash "$root/scripts/floor.sh" "$@"
# The vLLM backend's tests, in .venv-vllm (vLLM pins its own torch and transformers).
bash "$root/scripts/vllm.sh"
