#!/usr/bin/env bash
# Build (once) the separate Python environment in which the MONAI Label 0.8.5 server runs, and install the
# current vnas_monai checkout into it. Idempotent: a complete environment is reused; only the vnas_monai
# install is refreshed when it points at another checkout.
#
#   bash tools/monailabel_env.sh            # prints the environment's python on its last line
#   VNAS_MONAILABEL_ENV=/some/dir bash tools/monailabel_env.sh
#
# Why a separate environment: MONAI Label needs torchvision, and PyPI's torchvision does not import beside the
# CPU torch 2.13.0 build used by vnas_monai. torch 2.14.1 + torchvision 0.29.1 (served from these machines'
# local wheel store, CPU execution) do. MONAI Label itself is installed without its dependencies because its
# requirements pull sam2 (and with it a CUDA torchvision of several GB); the list below is its
# requirements.txt without sam2 (the recipe in shared/monailabel-requirements.txt).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_DIR="${VNAS_MONAILABEL_ENV:-${HOME}/.cache/vnas_monai/monailabel-0.8.5}"
PYTHON_BIN="${VNAS_MONAILABEL_PYTHON:-python3.11}"
command -v "$PYTHON_BIN" >/dev/null 2>&1 || PYTHON_BIN=python3
STAMP="$ENV_DIR/.vnas_monailabel_complete"
RECIPE_VERSION="1"

log() { echo "[monailabel_env] $*" >&2; }

# one builder at a time (parallel test runs share the cached environment)
mkdir -p "$(dirname "$ENV_DIR")"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$ENV_DIR.lock"
    flock -w 3600 9
fi

if [[ ! -f "$STAMP" ]] || [[ "$(cat "$STAMP")" != "$RECIPE_VERSION" ]]; then
    log "building $ENV_DIR (a few minutes, once)"
    rm -rf "$ENV_DIR"
    mkdir -p "$(dirname "$ENV_DIR")"
    "$PYTHON_BIN" -m venv "$ENV_DIR"
    PIP=("$ENV_DIR/bin/python" -m pip --disable-pip-version-check --no-input)
    "${PIP[@]}" install -q --upgrade "pip>=24" "setuptools>=61" wheel
    "${PIP[@]}" install -q "torch==2.14.1" "torchvision==0.29.1"
    REQS="$(mktemp)"
    trap 'rm -f "$REQS"' EXIT
    cat >"$REQS" <<'EOF'
torch==2.14.1
torchvision==0.29.1
monai[fire,ignite,itk,nibabel,tqdm,tensorboard,skimage,psutil]==1.6.1
matplotlib>=3.7
uvicorn>=0.29.0
pydantic>=2.7.0
pydantic-settings>=2.2.1
python-dotenv>=1.0.1
fastapi>=0.110.2
python-multipart>=0.0.9
httpx>=0.27.0
schedule>=1.2.1
timeloop>=1.0.2
expiringdict>=1.2.2
expiring_dict>=1.1.0
cachetools>=5.3.3
watchdog>=4.0.0
pydicom==2.4.4
pydicom-seg==0.4.1
dicomweb-client==0.59.1
pynetdicom==2.0.2
pynrrd>=1.0.0
numpymaxflow>=0.0.7
girder-client>=3.2.3
ninja>=1.11.1.1
einops>=0.7.0
pyyaml>=6.0.1
filelock>=3.11.0
passlib>=1.7.4
pyjwt>=2.8.0
bcrypt>=4.1.2
shapely>=2.0.4
requests>=2.31.0
requests-toolbelt>=1.0.0
scikit-learn
scipy
google-auth>=2.29.0
EOF
    "${PIP[@]}" install -q -r "$REQS"
    "${PIP[@]}" install -q --no-deps "monailabel==0.8.5"
    "$ENV_DIR/bin/python" -c "import monailabel, monai, torch, torchvision; print('monailabel', monailabel.__version__)" >&2
    echo "$RECIPE_VERSION" >"$STAMP"
    log "environment complete"
fi

# vnas_monai from this checkout (editable, no dependencies: they are all above). Refreshed when the env points
# at another checkout, e.g. a fresh CI clone.
CHECK='import importlib.util, os; s = importlib.util.find_spec("vnas_monai")
print(os.path.dirname(os.path.dirname(s.origin)) if s and s.origin else "")'
CURRENT="$(cd / && "$ENV_DIR/bin/python" -I -c "$CHECK" 2>/dev/null || true)"
if [[ "$CURRENT" != "$REPO" ]]; then
    log "installing vnas_monai from $REPO"
    "$ENV_DIR/bin/python" -m pip --disable-pip-version-check --no-input install -q --no-deps --no-build-isolation \
        -e "$REPO"
fi
echo "$ENV_DIR/bin/python"
