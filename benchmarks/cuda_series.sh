#!/usr/bin/env bash
# The whole series on a CUDA machine, in one go: what a Colab GPU session runs.
#
#     bash benchmarks/cuda_series.sh OUT [WHEELS]
#
# For a machine whose python3 already has torch, torchvision, matplotlib, numpy, tqdm and PyYAML but
# not the Jupyter packages or the two weight packages: wheels of those (WHEELS, default .whl: the
# versions in benchmarks/cuda_wheels.txt, fetched for that machine's Python) are installed into /tmp/site first.
# Writes into OUT: series.md (the table), series.json, log.txt and executed.tar.gz (the executed
# notebooks, to read their figures and numbers). Exit status: series.py's.
set -u
out=${1:?usage: bash benchmarks/cuda_series.sh OUT [WHEELS]}
wheels=${2:-.whl}
mkdir -p "$out"
export PYTHONUNBUFFERED=1  # no MPLBACKEND: the kernels draw their figures inline, as in JupyterLab
if [ -d "$wheels" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$wheels"/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
fi
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
    python3 benchmarks/series.py --timeout 300 --json "$out/series.json" --markdown "$out/series.md" --keep /tmp/executed "${@:3}"
} 2>&1 | tee "$out/log.txt"
status=${PIPESTATUS[0]}
tar -czf "$out/executed.tar.gz" -C /tmp executed 2>/dev/null
exit "$status"
