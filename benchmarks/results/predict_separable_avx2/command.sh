#!/bin/bash
# after the smoke timing: 3 interleaved rounds of the fer package and --components (with the separable e2e row)
while ! grep -q "total_s" /work/runs61/smoke.log; do sleep 5; done
cd /work/runs61/m5 && git log --oneline | head -1
export KERAS_BACKEND=tensorflow TF_CPP_MIN_LOG_LEVEL=3 FER_DATA_DIR=/work/shared/data
PY=/work/main/.venv/bin/python
for r in 1 2 3; do
  date -u +"%F %T round $r fer"
  PYTHONPATH=/tmp/ferpkg $PY benchmarks/predict.py --fer-package --images 600 --out /work/runs61/rounds/r${r}
  date -u +"%F %T round $r components"
  $PY benchmarks/predict.py --components --images 600 --out /work/runs61/rounds/r${r}
done
date -u +"%F %T done"
