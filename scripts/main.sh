#!/usr/bin/env bash
# The main job: sets up .venv if needed, then runs a demo on the embedded SmolLM2-135M-Instruct model.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/bootstrap.sh"
cd "$root"
prompt="Once upon a time"
echo "== greedy =="
mi-decode generate --prompt "$prompt" --max-new-tokens 40
echo "== locally typical sampling, tau=0.2 =="
mi-decode generate --prompt "$prompt" --max-new-tokens 40 --typical-p 0.2
echo "== locally typical sampling, tau=0.95 =="
mi-decode generate --prompt "$prompt" --max-new-tokens 40 --typical-p 0.95
