#!/usr/bin/env bash
# The test command: sets up .venv if needed, then runs the whole test suite.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/bootstrap.sh"
cd "$root"
# Exit code 5 (no tests collected) is a failure, as is any other non-zero code.
python -m pytest -q -p no:cacheprovider "$@"
