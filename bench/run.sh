#!/usr/bin/env bash
# This project against PyTorch on the same work, side by side (performance issue 6):
# training tiles/s of unet (chip 128), resnet18-unet and resnet50-unet (chip 256), batch 4; refinement of a
# synthetic scene in Mpx/s with each model; peak RSS of each; the gradient all-reduce of 2 ranks.
# PyTorch runs in fp32 as shipped and as a user who knows this CPU would run it: bf16 autocast,
# channels_last, and both (issue 20: compare best with best). The two sides run alternately,
# several rounds, and the table reports medians; it is printed and written to bench/RESULTS.md.
#
#   bench/run.sh [--rounds 3] [--size 4096] [--steps 10] [--quick]
#
# --quick is a smoke run (1 round, 1024² scene, 3 steps) whose table goes to $SCRATCH/data/RESULTS.md,
# so that a smoke run never stands in for a measurement. PYTHON=/path/to/python uses an existing
# interpreter with torch and segmentation-models-pytorch instead of making bench/.venv (once).
# SCRATCH=dir builds there instead of .build-bench. NATIVE=1 compiles for this machine's CPU (see the Makefile). This script alone lets OpenBLAS pick
# its kernel for this CPU: it unsets OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for the Swift side,
# and the report names the kernel that ran. With Linux perf installed, bench/layer_profile.py adds where
# the time goes by layer type.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3 size=4096 steps=10 results=bench/RESULTS.md
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=$2; shift 2 ;;
        --size) size=$2; shift 2 ;;
        --steps) steps=$2; shift 2 ;;
        --quick) rounds=1 size=1024 steps=3 quick=1; shift ;;
        *) echo "usage: bench/run.sh [--rounds N] [--size N] [--steps N] [--quick]" >&2; exit 2 ;;
    esac
done

scratch=${SCRATCH:-.build-bench}
data=$scratch/data
log=$data/results.jsonl
[ "${quick:-0}" = 1 ] && results=$data/RESULTS.md
mkdir -p "$data"
: > "$log"

flags=()
if [ "${NATIVE:-0}" = 1 ]; then
    cpu=$(gcc -march=native -Q --help=target 2>/dev/null | awk '$1=="-march=" {print $2}')
    flags=(-Xswiftc -target-cpu -Xswiftc "$cpu")
fi
echo "== building (release${flags[*]:+, ${flags[*]}})" >&2
swift build -c release --scratch-path "$scratch" "${flags[@]}" >&2
bin=$(swift build -c release --scratch-path "$scratch" "${flags[@]}" --show-bin-path)

python=${PYTHON:-bench/.venv/bin/python}
if [ ! -x "$python" ]; then
    echo "== making bench/.venv (torch, segmentation-models-pytorch; once)" >&2
    python3 -m venv bench/.venv
    bench/.venv/bin/pip install --quiet torch segmentation-models-pytorch
    python=bench/.venv/bin/python
fi

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
swift_env=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
archs=(unet resnet18-unet resnet50-unet)
scene=$data/scene$size

for n in "$size" 1024; do   # the profile refines a 1024² scene
    if [ ! -f "$data/scene$n/final_asp_dsm.tif" ]; then
        echo "== synthetic ${n}² scene" >&2
        "$bin/deepdem" synth --out "$data/scene$n" --size "$n" >&2
    fi
done
for arch in "${archs[@]}"; do
    [ -f "$data/$arch.safetensors" ] || "$python" bench/pytorch_bench.py checkpoint --arch "$arch" --out "$data/$arch.safetensors"
done

# Appends a run's JSON line with the round and the command that produced it.
record() {  # record ROUND COMMAND-STRING JSON
    "$python" -c 'import json,sys; d=json.loads(sys.argv[3]); d.update(round=int(sys.argv[1]), command=sys.argv[2]); print(json.dumps(d, sort_keys=True))' \
        "$1" "$2" "$3" >> "$log"
}

# Runs a command under /usr/bin/time; prints its output's JSON line (a "JSON {…}" line of the
# benchmarks, or the object `deepdem refine --json` prints) with peak_rss_mb from time.
timed_json() {
    local out
    out=$(/usr/bin/time -f "RSS_KB %M" "$@" 2>&1) || { echo "$out" >&2; return 1; }
    local rss=$(echo "$out" | awk '/^RSS_KB/ {print $2}')
    local json=$(echo "$out" | sed -n 's/^JSON //p; /^{/p' | tail -1)
    "$python" -c 'import json,sys; d=json.loads(sys.argv[1]); d["peak_rss_mb"]=int(sys.argv[2])/1024; print(json.dumps(d))' "$json" "$rss"
}

# PyTorch's modes, "PRECISION MEMORY-FORMAT": the first is PyTorch as shipped, the one the
# fp32-against-fp32 rows compare with.
torch_modes=("fp32 contiguous" "bf16 contiguous" "fp32 channels_last" "bf16 channels_last")

torch_train() {  # ROUND ARCH THREADS PRECISION MEMORY-FORMAT
    local cmd=("$python" bench/pytorch_bench.py train --arch "$2" --threads "$3" --steps "$steps"
               --precision "$4" --memory-format "$5")
    echo "   PyTorch train $2, $4, $5, $3 thread(s)" >&2
    record "$1" "${cmd[*]}" "$(timed_json "${cmd[@]}")"
}

torch_train_modes() {  # ROUND ARCH
    local mode
    for mode in "${torch_modes[@]}"; do
        torch_train "$1" "$2" 1 $mode; torch_train "$1" "$2" 2 $mode
    done
}

# This project's precisions: bf16-mixed only where the CPU has AVX512_BF16 (train-bench refuses it elsewhere).
swift_precisions=(fp32)
grep -qw avx512_bf16 /proc/cpuinfo && swift_precisions+=(bf16-mixed)

swift_train() {  # ROUND ARCH RANKS THREADS PRECISION
    local cmd=("$bin/train-bench" --arch "$2" --threads "$4" --steps "$steps" --precision "$5" --json)
    [ "$3" -gt 1 ] && cmd=(mpirun -np "$3" "${cmd[@]}")
    echo "   Swift train $2, $5, $3 rank(s) × $4 thread(s)" >&2
    local out
    out=$("${swift_env[@]}" "${cmd[@]}")
    record "$1" "${cmd[*]}" "$(echo "$out" | sed -n 's/^JSON //p')"
}

swift_train_modes() {  # ROUND ARCH
    local p
    for p in "${swift_precisions[@]}"; do
        swift_train "$1" "$2" 1 2 "$p"; swift_train "$1" "$2" 2 1 "$p"
    done
}

torch_refine() {  # ROUND ARCH THREADS PRECISION MEMORY-FORMAT
    local cmd=("$python" bench/pytorch_bench.py refine --checkpoint "$data/$2.safetensors" --scene "$scene"
               --raw-dir "$data/raw$size" --out "$data/torch_${2}_${4}_${5}.f32" --threads "$3"
               --precision "$4" --memory-format "$5")
    echo "   PyTorch refine $2, $4, $5, $3 thread(s)" >&2
    record "$1" "${cmd[*]}" "$(timed_json "${cmd[@]}")"
}

torch_refine_modes() {  # ROUND ARCH (at the thread count probed for ARCH)
    local mode
    for mode in "${torch_modes[@]}"; do
        torch_refine "$1" "$2" "${refine_threads[$2]}" $mode
    done
}

swift_refine() {  # ROUND ARCH PRECISION
    local cmd=("$bin/deepdem" refine --checkpoint "$data/$2.safetensors" --data "$scene" --out "$data/swift_$2_$3.tif"
               --threads 2 --precision "$3" --overwrite --json)
    echo "   Swift refine $2, $3, 2 threads" >&2
    local json
    json=$(DEEPDEM_PROGRESS=plain timed_json "${swift_env[@]}" "${cmd[@]}")
    record "$1" "${cmd[*]}" "$("$python" -c 'import json,sys; d=json.loads(sys.argv[1]); d.update(side="swift", mode="refine", arch=sys.argv[2]); print(json.dumps(d))' "$json" "$2")"
}

swift_refine_modes() {  # ROUND ARCH
    local p
    for p in "${swift_precisions[@]}"; do swift_refine "$1" "$2" "$p"; done
}

declare -A refine_threads
for arch in "${archs[@]}"; do
    refine_threads[$arch]=$("$python" bench/pytorch_bench.py probe-refine --arch "$arch" | sed -n 's/^JSON //p' |
        "$python" -c 'import json,sys; print(json.load(sys.stdin)["threads"])')
done

for round in $(seq 1 "$rounds"); do
    echo "== round $round of $rounds ($(uptime | sed 's/.*load/load/'))" >&2
    for arch in "${archs[@]}"; do
        if [ $((round % 2)) = 1 ]; then
            torch_train_modes "$round" "$arch"; swift_train_modes "$round" "$arch"
        else
            swift_train_modes "$round" "$arch"; torch_train_modes "$round" "$arch"
        fi
    done
    for arch in "${archs[@]}"; do
        if [ $((round % 2)) = 1 ]; then
            torch_refine_modes "$round" "$arch"; swift_refine_modes "$round" "$arch"
        else
            swift_refine_modes "$round" "$arch"; torch_refine_modes "$round" "$arch"
        fi
    done
done

# summarize.py compares raw float32 heights: each GeoTIFF of this side gets a copy beside it.
for tif in "$data"/swift_*.tif; do
    gdal_translate -q -of ENVI -ot Float32 "$tif" "${tif%.tif}.f32"
done
rm -f "$data/profile.md"
if perf stat -e task-clock true >/dev/null 2>&1; then
    echo "== profile by layer type (perf)" >&2
    "$python" bench/layer_profile.py --bin "$bin" --scene "$data/scene1024" --checkpoints "$data" > "$data/profile.md" ||
        rm -f "$data/profile.md"
fi
"$python" bench/summarize.py "$log" --out "$results" --profile "$data/profile.md" \
    --machine "$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GB" \
    --swift "$(swift --version 2>&1 | head -1)" --build "swift build -c release${flags[*]:+ ${flags[*]}}" \
    --invocation "bench/run.sh --rounds $rounds --size $size --steps $steps${NATIVE:+ (NATIVE=$NATIVE)}"
