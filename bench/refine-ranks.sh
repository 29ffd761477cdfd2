#!/usr/bin/env bash
# Refinement of one scene by 1 process of 1 thread against N MPI ranks of 1 thread each, which
# share its rows of tiles (rank 0 blends and writes): Mpx/s of each, their ratio, and whether the
# outputs' pixels are the same bits.
#
#   bash bench/refine-ranks.sh [--size 4096] [--ranks 2] [--rounds 2]
#
# Builds nothing: run `make build` first. The model is DeepDEM's default U-Net (depth 5, 64
# filters, chip 256) after one training step (its speed does not depend on its weights).
set -euo pipefail
cd "$(dirname "$0")/.."
size=4096 ranks=2 rounds=2
while [ $# -gt 0 ]; do
    case $1 in
        --size) size=$2; shift 2 ;;
        --ranks) ranks=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        *) echo "refine-ranks.sh: unknown argument $1" >&2; exit 1 ;;
    esac
done
bin=.build/release/deepdem
work=.build-bench/refine-ranks
mkdir -p "$work"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
[ -d "$work/scene_$size" ] || "$bin" synth --out "$work/scene_$size" --size "$size" 2>/dev/null
[ -d "$work/scene_512" ] || "$bin" synth --out "$work/scene_512" --size 512 2>/dev/null
if [ ! -f "$work/run/last.safetensors" ]; then
    "$bin" train --data "$work/scene_512" --out "$work/run" --chip_size 256 --batch_size 2 --max_steps 1 \
        --samples_per_epoch 2 --val_samples 2 --train_split 0.5 --overwrite >/dev/null
fi
refine=(refine --checkpoint "$work/run/last.safetensors" --data "$work/scene_$size" --threads 1 --json --overwrite)
mpx() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); print(d["mpx_per_s"], d["kernel"])'; }
for round in $(seq "$rounds"); do
    one=$("$bin" "${refine[@]}" --out "$work/one.tif" 2>/dev/null | mpx)
    many=$(mpirun --oversubscribe -np "$ranks" "$bin" "${refine[@]}" --out "$work/many.tif" 2>/dev/null | mpx)
    gdal_translate -q -of ENVI "$work/one.tif" "$work/one.bin"
    gdal_translate -q -of ENVI "$work/many.tif" "$work/many.bin"
    same=$(cmp -s "$work/one.bin" "$work/many.bin" && echo yes || echo NO)
    read -r a kernel <<<"$one"; read -r b _ <<<"$many"
    printf 'round %d: %d² px, OpenBLAS %s: 1 process × 1 thread %.3f Mpx/s, %d ranks × 1 thread %.3f Mpx/s, ratio %.2f, same pixels: %s\n' \
        "$round" "$size" "$kernel" "$a" "$ranks" "$b" "$(python3 -c "print($b / $a)")" "$same"
done
