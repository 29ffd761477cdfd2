#!/usr/bin/env bash
# The demo: synthesize a scene, train with 2 MPI ranks, refine, evaluate on the held-out
# part, draw figures. Everything lands in runs/demo/. Re-running reuses the scene.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release/deepdem
out=runs/demo
scene=$out/scene
size=${DEMO_SIZE:-1024}
steps=${DEMO_STEPS:-1500}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
[ -t 1 ] && export DEEPDEM_PROGRESS=live
mkdir -p "$out"

if [ ! -f "$scene/final_asp_dsm.tif" ]; then
    echo "== synthesizing a ${size}×${size} m scene (terrain, buildings, trees; stereo-like DSM errors)"
    "$bin" synth --out "$scene" --size "$size" --seed 7
else
    echo "== reusing the scene in $scene"
fi

cat > "$out/train.yaml" <<YAML
data: $scene
bands: [asp_dsm, ortho_channel1, ortho_channel2, ndvi, nodata_mask, triangulation_error]
target: lidar_data
arch: unet
unet: {depth: 4, start_kernel: 16, max_filter_depth: 128, do_BN: false, bias_conv_layer: true}
chip_size: 64
gsf: auto
batch_size: 8
lr: 1.0e-3
samples_per_epoch: 1600
val_samples: 128
max_epochs: 1000
max_steps: $steps
train_split: 0.8
lr_scheduler: {kind: plateau, factor: 0.5, patience: 3, threshold: 0.01}
early_stopping: {patience: 20, min_delta: 0.0}
checkpoint_every: 200
log_every: 50
seed: 0
out: $out/run
YAML
rm -rf "$out/run"
echo "== training on the left 80 % of the scene with 2 MPI ranks (config: $out/train.yaml)"
mpirun --oversubscribe -np 2 "$bin" train --config "$out/train.yaml"

echo "== refining the whole scene with the best checkpoint"
"$bin" refine --checkpoint "$out/run/best.safetensors" --data "$scene" --out "$out/refined.tif" --overwrite

echo "== evaluating on the held-out right 20 % (never seen in training)"
evaluate=("$bin" evaluate --prediction "$out/refined.tif" --truth "$scene/final_lidar_data.tif"
          --initial "$scene/final_asp_dsm.tif" --region right:0.2)
"${evaluate[@]}"
"${evaluate[@]}" --json > "$out/evaluation.json.tmp"
mv "$out/evaluation.json.tmp" "$out/evaluation.json"

echo "== drawing figures"
"$bin" figure --data "$scene" --refined "$out/refined.tif" --out "$out/figure.png" --overwrite
# A close-up of the held-out part: a square of its width, 40 % down the scene (the window evaluate reports).
read -r x y w h < <(sed -nE 's/.*"window": \{"x": ([0-9]+), "y": ([0-9]+), "width": ([0-9]+), "height": ([0-9]+)\}.*/\1 \2 \3 \4/p' "$out/evaluation.json")
"$bin" figure --data "$scene" --refined "$out/refined.tif" --out "$out/figure_heldout.png" --overwrite \
    --window "$x,$(( y + h * 4 / 10 )),$w,$w"

echo "demo done: everything is in $out/ (evaluation.json, refined.tif, run/ with checkpoints, metrics.jsonl and loss.svg, figure.png, figure_heldout.png)"
