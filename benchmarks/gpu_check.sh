#!/bin/sh
# The GPU tests and benchmarks in one call, with a markdown and a JSON report:
#   bash benchmarks/gpu_check.sh [OUT_DIR]      (PYTHON=... picks the interpreter)
# See benchmarks/gpu_check.py; without a GPU it stops at once (exit status 2).
exec "${PYTHON:-python3}" "$(dirname "$0")/gpu_check.py" "$@"
