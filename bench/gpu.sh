#!/usr/bin/env bash
# The one-command GPU check, for the first time a GPU machine is at hand (under 8 minutes on an H100/H200;
# installs nothing from the network). Run from the project root, on a machine with torch, torchvision and timm:
#
#     bash bench/gpu.sh [OUT]        # OUT: folder for the logs (default: outputs/gpu-bench)
#
# If fastai / papermill / ipykernel are missing it installs them from the wheels in .whl/ (made beforehand, on a
# machine with network access, by `bash ../shared/gpu/fetch-wheels.sh`). Every figure is printed as a ratio to a
# plain PyTorch loop measured in the same run:
#   1. bench/loader.py   at 224 px: uint8 hand-over against a batch gather (and fastai's item-by-item loader)
#   2. bench/train.py    at 224 px: attnmed's fastai training against plain PyTorch (resnet50, vgg16, densenet121)
#   3. bench/models.py   at 224 px: parameters, FLOPs, and step time of every backbone x attention variant
#   4. a 4-cell grid with --jobs 4 on the GPU (resnet18, none vs se, 2 seeds, 224 px synthetic): seconds per cell
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${OUT:-outputs/gpu-bench}}"; mkdir -p "$OUT"
log() { echo "== $*" | tee -a "$OUT/summary.txt"; }
if ! python3 -c "import fastai, papermill, ipykernel" 2>/dev/null; then
  [ -d .whl ] || { echo "fastai / papermill / ipykernel missing and no .whl/ folder: run bash ../shared/gpu/fetch-wheels.sh first" >&2; exit 2; }
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 2
  export PYTHONPATH="/tmp/site:$PWD"
  python3 -m ipykernel install --user --name python3 >/dev/null
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('GPU:', torch.cuda.get_device_name())" | tee "$OUT/summary.txt" || exit 2
run() { local name=$1 limit=$2; shift 2; log "$name"; timeout "$limit" "$@" 2>&1 | grep -v -i warn | tee "$OUT/$name.txt" | tee -a "$OUT/summary.txt"; }
run loader 90  python3 bench/loader.py --sizes 28,64,224 --repeats 3
run train  200 python3 bench/train.py --size 224 --archs resnet50,vgg16,densenet121,resnet18 --n 2048 --epochs 3
run models 90  python3 bench/models.py --size 224
GRID="$OUT/grid"; rm -rf "$GRID"; mkdir -p "$GRID"
cat > "$GRID/gpu4.yaml" <<EOF
name: gpu4
datasets:
  - {name: synth-derm, format: synthetic, path: $GRID/data, n_train: 2048, n_val: 256, n_test: 512}
archs: [resnet18]
attentions: [none, se]
seeds: [0, 1]
epochs: 3
image_size: 224
batch_size: 128
device: cuda
EOF
log "grid: 4 cells, --jobs 4"
start=$(date +%s.%N)
timeout 240 python3 -c "from attnmed.cli import grid_cli; grid_cli()" "$GRID/gpu4.yaml" --out "$GRID/out" --jobs 4 2>&1 | tail -3 | tee -a "$OUT/summary.txt"
end=$(date +%s.%N)
python3 - "$GRID/out/gpu4" "$start" "$end" <<'EOF' | tee -a "$OUT/summary.txt"
import json, sys
from pathlib import Path
folder, t0, t1 = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
cells = sorted(folder.glob("*/*/*/*/seed*/metrics.json"))
secs = [json.loads(f.read_text()).get("seconds", float("nan")) for f in cells]
print(f"{len(cells)} cells done in {t1 - t0:.0f} s wall; seconds per cell inside its notebook: {', '.join(f'{s:.0f}' for s in secs)}")
EOF
log "done: figures in $OUT"
