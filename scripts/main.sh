#!/usr/bin/env bash
# The main job: sets up .venv if needed, then runs a quick evaluation of every text suite on the embedded
# SmolLM2-135M-Instruct model and prints the summary table (report and plots in outputs/quick/).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/bootstrap.sh"
cd "$root"
# The evaluation data: $MI_DECODE_DATA_DIR, else the shared/data folder beside the checkout.
if [ -z "${MI_DECODE_DATA_DIR:-}" ] && [ -d "$root/../shared/data" ]; then
    export MI_DECODE_DATA_DIR="$root/../shared/data"
fi
echo "== one generation with locally typical sampling (tau=0.95) =="
mi-decode generate --prompt "Once upon a time" --max-new-tokens 32 --typical-p 0.95
echo
echo "== quick evaluation: grounding, summarization, open_ended, prompt_selection =="
exec mi-decode eval --quick --output-dir "${MI_DECODE_OUTPUT:-outputs/quick}" "$@"
