#!/usr/bin/env bash
# Installs the libraries the benchmark compares tfvis against (xplique, tf-keras-vis,
# tf-explain; the Adversarial Robustness Toolbox for scripts/benchmark_adversarial.py) into a
# virtual environment WITHOUT letting them change its TensorFlow.
#
# Usage: bash scripts/setup_bench.sh [VENV]        (default: .venv)
# Then:  VENV/bin/python scripts/benchmark.py --others
#
# Why --no-deps: xplique 2.0.2 pins tensorflow[and-cuda]<=2.20, so a plain install replaces
# the project's TensorFlow 2.21 with another build plus gigabytes of CUDA wheels. The three
# libraries are installed alone, then only the light packages they import. xplique's import
# also needs tf-keras (matched to the installed TensorFlow) and tensorflow-probability. The
# script fails if TensorFlow's version changed.
set -euo pipefail

VENV=${1:-.venv}
PY="$VENV/bin/python"
if [ ! -x "$PY" ]; then
    echo "no python at $PY: create the venv and install tfvis first (pip install -e .)" >&2
    exit 1
fi
tf_version() { "$PY" -c "import importlib.metadata as m; print(m.version('tensorflow'))"; }
BEFORE=$(tf_version)
FAMILY=$(echo "$BEFORE" | cut -d. -f1,2)
echo "TensorFlow $BEFORE in $VENV"

"$PY" -m pip install --no-deps \
    "xplique==2.0.2" "tf-keras-vis==0.8.7" "tf-explain==0.3.1" \
    "tensorflow-probability==0.25.0" "tf-keras==${FAMILY}.*" \
    "adversarial-robustness-toolbox==1.20.1"
# What those imports need (none of these depend on TensorFlow).
"$PY" -m pip install \
    "psutil>=5.9" "deprecated>=1.1" "einops>=0.1" "scikit-image>=0.19,<=0.25.2" \
    "scikit-learn>=1.0,<=1.7.2" "scipy>=1.9,<=1.15.3" decorator cloudpickle dm-tree pillow \
    imageio packaging six setuptools tqdm

AFTER=$(tf_version)
if [ "$AFTER" != "$BEFORE" ]; then
    echo "TensorFlow changed from $BEFORE to $AFTER: reinstall tensorflow==$BEFORE" >&2
    exit 1
fi
"$PY" - <<'EOF'
import importlib
for name in ("xplique", "tf_keras_vis", "tf_explain", "art"):
    try:
        importlib.import_module(name)
        print(f"{name}: imports")
    except Exception as error:  # noqa: BLE001 - report every library
        print(f"{name}: import fails ({type(error).__name__}: {error})")
EOF
