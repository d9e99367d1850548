#!/usr/bin/env bash
# The test command: sets up .venv if needed and runs the whole test suite on the newest dependencies, then
# again at the lowest version of every declared dependency against the built wheel (scripts/floor.sh), then
# the vLLM tests in their own environment (scripts/vllm.sh).
#
# Every stage runs, whatever the ones before it did, and reports its result; the command exits non-zero
# if any stage failed. Exit code 5 (pytest collected no tests) is a failure, as is any other non-zero code.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/bootstrap.sh"
cd "$root"
started=$SECONDS
summary=()
failed=0
stage() {
    local name="$1" start=$SECONDS status=0
    shift
    echo "[test] stage: $name"
    "$@" || status=$?
    local took="$(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s"
    if [ "$status" -eq 0 ]; then
        summary+=("[test] $name: passed ($took)")
    else
        summary+=("[test] $name: FAILED with exit code $status ($took)")
        failed=1
    fi
}
stage "main (newest dependencies, editable checkout)" python -m pytest -q -p no:cacheprovider "$@"
stage "floor (lowest dependencies, the built wheel)" bash "$root/scripts/floor.sh" "$@"
stage "vllm (vLLM 0.32 in .venv-vllm)" bash "$root/scripts/vllm.sh"
echo
printf '%s\n' "${summary[@]}"
echo "[test] finished in $(( (SECONDS - started) / 60 )) min $(( (SECONDS - started) % 60 )) s"
exit "$failed"
