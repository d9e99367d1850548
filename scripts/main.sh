#!/usr/bin/env bash
# The main job: sets up .venv if needed, then runs a quick evaluation of every text suite on the embedded
# SmolLM2-135M-Instruct model and prints the summary table (report and plots in outputs/quick/).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
started=$SECONDS
source "$root/scripts/bootstrap.sh"
cd "$root"
# The evaluation data: $MI_DECODE_DATA_DIR, else the shared/data folder beside the checkout.
if [ -z "${MI_DECODE_DATA_DIR:-}" ] && [ -d "$root/../shared/data" ]; then
    export MI_DECODE_DATA_DIR="$root/../shared/data"
fi
output="${MI_DECODE_OUTPUT:-outputs/quick}"
echo "== one generation with locally typical sampling (tau=0.95) =="
echo "(the first run converts the embedded model to a float32 cache, about 25 s on 2 CPU cores; later loads take about 2 s)"
mi-decode generate --prompt "Once upon a time" --max-new-tokens 32 --typical-p 0.95
echo
echo "== quick evaluation: grounding, summarization, open_ended, prompt_selection =="
echo "(a few examples per task, with progress bars; report and plots in $output/)"
if [ -n "${MI_DECODE_DATA_DIR:-}" ]; then echo "(evaluation data: $MI_DECODE_DATA_DIR)"; fi
status=0
mi-decode eval --quick --output-dir "$output" "$@" || status=$?
echo "[main] finished in $(( (SECONDS - started) / 60 )) min $(( (SECONDS - started) % 60 )) s (exit code $status)"
exit "$status"
