#!/usr/bin/env bash
# GPU smoke + timing of the real S2CAC trainer and predictor (paper network, AMP) on a small synthetic cohort:
# data stages, a training run killed with SIGKILL after epoch 2 and resumed, peak CUDA memory, predict on the
# test cases. Needs s2cac importable by python3 and a CUDA GPU. Results: benchmarks/RESULTS.md.
#   OUT=/tmp/smoke-out bash benchmarks/gpu_smoke.sh
set -uo pipefail
t0=$(date +%s)
export PYTHONUNBUFFERED=1
OUT=${OUT:-$PWD/results/benchmarks/gpu_smoke}; mkdir -p "$OUT"
python3 -c "import torch, nnunetv2, blosc2, SimpleITK, cc3d; print('torch', torch.__version__, torch.cuda.get_device_name(0))" || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
W=$(mktemp -d); cd "$W"
python3 -m s2cac synth --out data --n-cases 8 --negative-fraction 0.25 --seed 1 --threads 8 --quiet || exit 1
python3 -m s2cac nnunet-raw --cases data/cases.tsv --raw-root raw --dataset-id 501 --name syn --threads 8 > raw.log 2>&1 || { tail raw.log; exit 1; }
python3 -m s2cac preprocess --raw raw/Dataset501_syn --preprocessed-root pre --patch-size 24 256 256 --threads 8 --log pre.log || { tail -30 pre.log; exit 1; }
python3 -m s2cac splits --cases data/cases.tsv --out splits --n-folds 2 --test-fraction 0.25 --labeled-ratios 0.5 || exit 1
echo "data ready after $(( $(date +%s) - t0 )) s"
cat > exp.yaml <<'YAML'
experiments:
  paper_amp:
    network: paper
    epochs: 6
    iterations_per_epoch: 25
    val_iterations: 5
    consistency_ramp_step: 5
    consistency_ramp_length: 20
    nsb: {tau: 2, b: 1.0}
YAML
TRAIN="python3 -m s2cac train --preprocessed pre/Dataset501_syn --split splits/fold0/labeled50.json --experiment paper_amp --experiments-file exp.yaml --fold 0 --output model --device cuda --threads 8"
# interrupted run: killed (SIGKILL) once epoch 2 is logged; then the same training resumes
$TRAIN > train1.log 2>&1 &
pid=$!
for i in $(seq 300); do grep -q "^epoch 2/" train1.log && break; sleep 0.5; done
kill -9 $pid; wait $pid; echo "first run killed (exit $?)"
grep "^epoch" train1.log | cut -c1-400
ls model
python3 - > train2.log 2>&1 <<'PY'
import time, torch
from s2cac.training.config import load_method_config
from s2cac.training.run import read_split, train_model
cfg = load_method_config(None, "paper_amp", "exp.yaml")
t = time.time()
s = train_model("pre/Dataset501_syn", read_split("splits/fold0/labeled50.json"), cfg, "model", fold=0, device="cuda")
print("SUMMARY", s, "wall_s", round(time.time() - t, 1), "max_mem_GiB", round(torch.cuda.max_memory_allocated() / 2**30, 2))
PY
echo "second run exit $?"
grep -E "^epoch|SUMMARY|resum|Error|error" train2.log | cut -c1-400
mkdir -p testin; for c in $(python3 -c "import json;print(' '.join(json.load(open('splits/fold0/labeled50.json'))['test']))"); do cp data/images/$c.nii.gz testin/; done
python3 -m s2cac predict --model model --input testin --output pred --device cuda --tta 2>&1 | tail -5
cat pred/scores.csv
python3 -m s2cac evaluate --help > /dev/null && echo evaluate-ok
cp model/training_log.txt model/curves.png train1.log train2.log pred/scores.csv "$OUT"/ 2>/dev/null
echo "total $(( $(date +%s) - t0 )) s"
