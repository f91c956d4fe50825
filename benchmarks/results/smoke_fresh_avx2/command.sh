cd /work/runs61/fresh
export PIP_NO_CACHE_DIR=1 KERAS_BACKEND=tensorflow TF_CPP_MIN_LOG_LEVEL=3
unset FER_DATA_DIR
t0=$(date +%s); date -u +%FT%TZ
python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt
t1=$(date +%s); echo "install_s=$((t1-t0))"
.venv/bin/python -m fer_utils.run --profile smoke
t2=$(date +%s); echo "run_s=$((t2-t1)) total_s=$((t2-t0))"; date -u +%FT%TZ
