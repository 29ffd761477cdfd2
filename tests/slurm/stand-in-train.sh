#!/usr/bin/env bash
# Stands in for `deepdem train` (same flags, exit codes and run folder files) until the real
# trainer exists, so the Slurm mechanics can be tested: every rank runs it, rank 0 writes the
# run folder, a signal to any rank checkpoints and exits 75, --resume continues.
set -uo pipefail
[ "${1:-}" = train ] || { echo "deepdem: error: stand-in knows only 'train'" >&2; exit 1; }
shift
config="" out="" data="" max_steps=20 resume=0
while [ $# -gt 0 ]; do
    case $1 in
        --config) config=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --data) data=$2; shift 2 ;;
        --max-steps) max_steps=$2; shift 2 ;;
        --threads) shift 2 ;;
        --resume) resume=1; shift ;;
        *) echo "deepdem: error: unknown flag $1" >&2; exit 1 ;;
    esac
done
[ -f "$config" ] || { echo "deepdem: error: config $config not found" >&2; exit 1; }
[ -n "$out" ] || out=$(sed -nE 's/^out:[[:space:]]*([^[:space:]#]+).*/\1/p' "$config")
[ -n "$data" ] || data=$(sed -nE 's/^data:[[:space:]]*([^[:space:]#]+).*/\1/p' "$config")
[ -d "$data" ] || { echo "deepdem: error: scene folder $data does not exist" >&2; exit 1; }

rank=${OMPI_COMM_WORLD_RANK:-${PMIX_RANK:-${SLURM_PROCID:-0}}}
size=${OMPI_COMM_WORLD_SIZE:-${SLURM_NTASKS:-1}}
step=0
if [ "$resume" = 1 ] && [ -f "$out/state/step" ]; then
    step=$(cat "$out/state/step")
    [ "$rank" = 0 ] && echo "resuming from step $step"
elif [ "$resume" = 1 ] && [ "$rank" = 0 ]; then
    echo "notice: no state in $out, starting fresh"
fi
[ "$rank" = 0 ] && mkdir -p "$out/state" && echo "rank $rank/$size on ${SLURMD_NODENAME:-?}" >>"$out/ranks"
[ "$rank" != 0 ] && echo "rank $rank/$size on ${SLURMD_NODENAME:-?}" >>"$out/ranks"

stop=0
trap 'stop=1' USR1 TERM INT
checkpoint() {
    [ "$rank" = 0 ] || return 0
    echo "$step" >"$out/state/step"
    echo "weights after $step steps" >"$out/last.safetensors"
}
while [ "$step" -lt "$max_steps" ]; do
    sleep 0.2
    [ "$stop" = 1 ] && { checkpoint; [ "$rank" = 0 ] && echo "stopped at step $step, checkpoint written"; exit 75; }
    step=$((step + 1))
    [ "$rank" = 0 ] && echo "{\"step\": $step, \"train_loss\": 1.0}" >>"$out/metrics.jsonl" && echo "step $step/$max_steps"
done
checkpoint
[ "$rank" = 0 ] && echo "finished after $step steps"
exit 0
