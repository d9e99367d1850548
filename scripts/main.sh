#!/usr/bin/env bash
# The main job: sets up .venv if needed, then runs a quick evaluation of every text suite on the embedded
# SmolLM2-135M-Instruct model and prints the summary table (report and plots in outputs/quick/).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
started=$SECONDS
source "$root/scripts/bootstrap.sh"
cd "$root"
output="${MI_DECODE_OUTPUT:-outputs/quick}"
echo "== one generation with locally typical sampling (tau=0.95) =="
echo "(the first run converts the embedded model to a float32 cache, about 25 s on 2 CPU cores; later loads take about 2 s)"
mi-decode generate --prompt "Once upon a time" --max-new-tokens 32 --typical-p 0.95
echo
echo "== quick evaluation: grounding, summarization, open_ended, prompt_selection =="
echo "(a few examples per task, with progress bars; report and plots in $output/)"
# The data: --data-dir if given in "$@", else $MI_DECODE_DATA_DIR, else this checkout's evals/data.
echo "(evaluation data: ${MI_DECODE_DATA_DIR:-evals/data, the copy in this repository})"
status=0
mi-decode eval --quick --output-dir "$output" "$@" || status=$?
echo "[main] finished in $(( (SECONDS - started) / 60 )) min $(( (SECONDS - started) % 60 )) s (exit code $status)"
exit "$status"
