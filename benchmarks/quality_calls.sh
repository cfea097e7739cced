#!/usr/bin/env bash
# The device calls of 2026-12-07 (night) for issue 14, one function a call, on one H100:
#   LIMIT=530 bash benchmarks/quality_calls.sh listops_pool_and_mqar
#   bash benchmarks/quality_calls.sh listops_pool        (the same suite again: it resumed)
#   LIMIT=440 bash benchmarks/quality_calls.sh mqar_512_and_gpu_tests
# The device image lacks ml_collections, absl and tensorboardX: each call carried them
# (carry [".whl"]) in .whl/site, which git ignores, copied from a local `pip install -e .`:
#   mkdir -p .whl/site; for m in ml_collections absl tensorboardX; do
#     cp -r "$(python -c "import $m, os; print(os.path.dirname($m.__file__))")" .whl/site/; done
# The ListOps data is written before the suites start, outside LIMIT (about 35 s).
# Several suites share the one GPU at once; FRACTION caps the GPU memory of each of a
# suite's trainings (they take what they need up to it, not a share fixed in advance);
# every suite stops by SIGTERM before the call's limit (its runs save their step, and the
# same command run again on the warm machine resumes them). Results and logs come back
# as $OUT/results.tar.gz.
set -u
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
export PYTHONPATH=$PWD/.whl/site${PYTHONPATH:+:$PYTHONPATH}
LIMIT=${LIMIT:-540}

suite() {  # suite NAME FRACTION ARGS...: one suite in the background, its log in /tmp/res
  # (train.suite keeps an XLA_PYTHON_CLIENT_MEM_FRACTION it is given for every training)
  local name=$1 fraction=$2; shift 2
  XLA_PYTHON_CLIENT_MEM_FRACTION=$fraction timeout -s TERM "$LIMIT" \
    python -m train.suite "$@" --out "/tmp/$name" >"/tmp/res/$name.log" 2>&1 &
}

collect() {  # every suite's table, plot and log, in one file
  for log in /tmp/res/*.log; do
    name=$(basename "$log" .log)
    for f in /tmp/"$name"/quality_*; do [ -e "$f" ] && cp "$f" "/tmp/res/${name}__$(basename "$f")"; done
  done
  tar czf "$OUT/results.tar.gz" -C /tmp/res .
  tail -n 3 /tmp/res/*.log
}

start_listops_pool() {
  suite listops_pool 0.20 listops --size small --seeds 0,1 --jobs 2 --data /tmp/lo --steps 16000 \
    --variants linformer --set model.attention_kwargs.projection=pool
}

listops_pool_and_mqar() {
  mkdir -p /tmp/res
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee /tmp/res/device.txt
  [ -e /tmp/lo/basic_test.tsv ] || python -m train.listops --out /tmp/lo --workers 15 >/tmp/res/listops_data.log 2>&1
  start_listops_pool
  suite mqar_L256 0.48 mqar --lengths 256 --pairs 4,16 --jobs 8
  suite mqar_fixed_u 0.20 mqar --variants lowrank_qk --lengths 64,128 --jobs 4 \
    --set model.attention_kwargs.learn_u=false
  wait
  collect
}

listops_pool() {
  mkdir -p /tmp/res
  start_listops_pool
  wait
  collect
}

mqar_512_and_gpu_tests() {  # the GPU tests beside six trainings: a correctness run, no timings
  mkdir -p /tmp/res
  suite mqar_L512 0.06 mqar --lengths 512 --variants standard,linformer --jobs 6
  XLA_PYTHON_CLIENT_MEM_FRACTION=0.5 timeout -s TERM "$LIMIT" python -m pytest -q -rs tests/test_gpu.py \
    >/tmp/res/gpu_tests.log 2>&1
  wait
  collect
}

"$@"
