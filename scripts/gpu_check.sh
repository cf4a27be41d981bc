#!/usr/bin/env bash
# The prepared GPU check (issue 12): run it once on a machine with CUDA GPUs, e.g. the lent
# device machine, from the repository root:
#     bash scripts/gpu_check.sh            # uses ./.venv if present, else python3
# It runs, in order, and stops at the first failure:
#   1. the CUDA tests (pytest -m gpu): device moves, float16 + GradScaler, bf16, clipping;
#   2. DDP with NCCL on every GPU (one process per GPU) through torchrun + an unchanged nw.fit;
#   3. FSDP2 with NCCL and bf16-mixed on every GPU;
#   4. torch.compile of the training step on one GPU.
# Each stage prints one line "GPU CHECK <stage>: ok ..." with its figures. Nothing is written
# outside a temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
GPUS=$($PY -c "import torch; print(torch.cuda.device_count())")
if [ "$GPUS" -lt 1 ]; then echo "GPU CHECK: no CUDA device here"; exit 1; fi
$PY -c "import torch; print('GPU CHECK torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0), 'x', torch.cuda.device_count())"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

$PY -m pytest -q -m gpu tests/test_cuda.py -p no:cacheprovider
echo "GPU CHECK cuda tests: ok"

cat > "$TMP/worker.py" <<'PYEOF'
import json, os, sys, time
import numpy as np, torch
import netwright as nw
strategy, precision, compile_, out = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
rng = np.random.default_rng(0)
X = rng.normal(size=(20000, 64)).astype("float32"); y = (X[:, :8].sum(1) > 0).astype("int64")
torch.manual_seed(0)
model = nw.build([{"linear": 512}, "relu", {"linear": 512}, "relu", {"linear": 2}], (64,))
t = time.perf_counter()
res = nw.fit(model, (X[:16000], y[:16000]), val=(X[16000:], y[16000:]), loss="cross_entropy",
             metrics=["accuracy"], epochs=3, batch_size=256, precision=precision, strategy=strategy,
             compile=compile_, run_dir=os.path.join(out, "run"), overwrite=True, verbose=0)
if os.environ.get("RANK", "0") == "0":
    dev = next(res.model.parameters()).device
    print(f"device={dev} val_accuracy={res.history[-1]['val_accuracy']:.4f} "
          f"seconds={time.perf_counter() - t:.1f}")
    assert res.history[-1]["val_accuracy"] > 0.9, res.history
PYEOF

if [ "$GPUS" -ge 2 ]; then  # NCCL takes one GPU per process: 2 processes need 2 GPUs
  $PY -m torch.distributed.run --standalone --nproc-per-node "$GPUS" "$TMP/worker.py" ddp 32 0 "$TMP/ddp" \
    | sed 's/^/GPU CHECK ddp (nccl): ok /'
  $PY -m torch.distributed.run --standalone --nproc-per-node "$GPUS" "$TMP/worker.py" fsdp bf16-mixed 0 "$TMP/fsdp" \
    | sed 's/^/GPU CHECK fsdp (nccl, bf16-mixed): ok /'
else
  echo "GPU CHECK ddp/fsdp: skipped (one GPU; NCCL needs one GPU per process)"
  $PY "$TMP/worker.py" none bf16-mixed 0 "$TMP/bf16" | sed 's/^/GPU CHECK bf16-mixed (one GPU): ok /'
fi
$PY "$TMP/worker.py" none 32 1 "$TMP/compile" | sed 's/^/GPU CHECK compile: ok /'
echo "GPU CHECK: all stages passed"
