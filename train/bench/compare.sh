#!/usr/bin/env bash
# Back-to-back training-step benchmark: masque (BenchmarkTrainStep) vs
# PyTorch (torch_bench.py), both forward+backward of the same ~34M-parameter
# Llama over one 256-token sequence on 2 threads. Run from the repository
# root. Reports wall time and CPU time (user+sys) per step, so that a loaded
# machine can be told apart from a slow engine.
#
#   train/bench/compare.sh [ROUNDS] [TORCH_REF]
#
# TORCH_REF is the path of torch_ref.py (default ../shared/reference/torch_ref.py;
# without it the script's own copy of the model is timed). Set
# OPENBLAS_DIR to a folder holding libblas.so.3 from OpenBLAS to time PyTorch
# with it instead of the system BLAS.
set -euo pipefail
rounds=${1:-3}
ref=${2:-../shared/reference/torch_ref.py}
refarg=()
[ -f "$ref" ] && refarg=(--torch-ref "$ref")
go test -c -o /tmp/masque-train-bench.test ./train/
for r in $(seq 1 "$rounds"); do
	echo "== round $r"
	(cd train && /usr/bin/time -f "go: %e s wall, %U s user, %S s sys (11 steps incl. warm-up and setup)" \
		/tmp/masque-train-bench.test -test.run '^$' -test.bench BenchmarkTrainStep -test.benchtime 10x -test.cpu 2) 2>&1 | grep -E 'Benchmark|go:'
	/usr/bin/time -f "torch: %e s wall, %U s user, %S s sys" \
		env ${OPENBLAS_DIR:+LD_LIBRARY_PATH=$OPENBLAS_DIR} OPENBLAS_NUM_THREADS=2 OMP_NUM_THREADS=2 \
		/usr/bin/python3 train/bench/torch_bench.py --threads 2 --reps 3 --warmup 1 "${refarg[@]}" 2>&1
done
