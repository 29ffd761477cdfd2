#!/usr/bin/env bash
# Gradient all-reduce on 2 ranks: a bare MPI_Allreduce of the unet (~31M floats) and
# resnet18-unet (~14M floats) gradients against the bucketed GradientReducer; then the same
# inside a real forward/backward, where buckets overlap with backward.
#   bench/allreduce/run.sh [ranks] [extra allreduce-bench options, e.g. --bucket-mb 8]
set -euo pipefail
cd "$(dirname "$0")/../.."
ranks=${1:-2}
shift || true
swift build -c release --product allreduce-bench
bin=$(swift build -c release --show-bin-path)/allreduce-bench
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun --oversubscribe -np "$ranks" "$bin" "$@"
mpirun --oversubscribe -np "$ranks" "$bin" --backward --iters 3 "$@"
