#!/usr/bin/env bash
# The bundle of `make dist` on a machine without Swift: a minimal Debian 12 root holding only
# the runtime libraries INSTALL.md names (no -dev package, no compiler), in which the unpacked
# bundle synthesizes a scene, trains with 2 MPI ranks, refines and evaluates.
#
#   Tests/Bundle/chroot.sh dist/deepdem-VERSION[-mpich]-linux-x86_64.tar.gz
#
# Needs root (debootstrap, chroot, mount). The root, packages installed, is cached in
# .build-chroot/ under a hash of what it was made from; each run sees it through an overlay
# whose writes are thrown away, so every run starts from the same root and none copies it.
# When the root must be made and the mirror cannot be reached, or without root, it says why
# and exits 0 (skipped); any failed check exits 1.
set -Eeuo pipefail

say() { echo "chroot.sh: $*" >&2; }
die() { say "FAIL: $*"; exit 1; }
skip() { say "skipped: $*"; exit 0; }

[ $# = 1 ] || { say "usage: $0 BUNDLE.tar.gz"; exit 1; }
bundle=$(realpath -e "$1" 2>/dev/null) || die "no bundle at $1"
[ "$(id -u)" = 0 ] || skip "needs root for debootstrap, chroot and mount"
command -v debootstrap >/dev/null || die "debootstrap is missing (make test-deps installs it)"
# A mount namespace of its own: whatever ends this script, its mounts cannot outlive it.
if [ -z "${DEEPDEM_CHROOT_NAMESPACE:-}" ]; then
    DEEPDEM_CHROOT_NAMESPACE=1 exec unshare --mount --propagation private bash "$(realpath "$0")" "$bundle"
fi
cd "$(dirname "$0")/../.."

name=$(basename "$bundle" .tar.gz)
case $name in
    *-mpich-linux-x86_64) mpi_packages="libmpich12 mpich" launch=(mpiexec.mpich -n 2) ;;
    *-linux-x86_64) mpi_packages="libopenmpi3 openmpi-bin" launch=(mpirun --oversubscribe -np 2) ;;
    *) die "$name is not a bundle name of make dist" ;;
esac
suite=bookworm
mirror=${DEEPDEM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages="libgdal32 libopenblas0-pthread $mpi_packages"
cache=.build-chroot
key=$(printf '%s\n' "$suite" "$mirror" minbase $packages | sha256sum | cut -c1-16)
image=$cache/$suite-minbase-$key
started=$SECONDS

work=""
cleanup() {
    [ -n "$work" ] || return 0
    local m
    for m in root/dev/shm root/proc root; do
        if mountpoint -q "$work/$m"; then umount "$work/$m" || umount -l "$work/$m"; fi
    done
    # --one-file-system: should an unmount have failed, never delete through it.
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT
mkdir -p "$cache"
work=$(mktemp -d "$cache/run.XXXXXX")

if [ ! -d "$image" ]; then
    # wget, because debootstrap depends on it.
    wget -q --spider --timeout=10 --tries=1 "$mirror/dists/$suite/Release" ||
        skip "cannot reach $mirror to make the Debian root (set DEEPDEM_DEBIAN_MIRROR for another mirror)"
    say "making a $suite root with $packages (once; cached as $image)"
    # --include resolves their dependencies but not their recommends, as apt's --no-install-recommends.
    debootstrap --variant=minbase --include="${packages// /,}" "$suite" "$work/new" "$mirror" \
        > "$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
    rm -rf "$work/new/var/cache/apt/archives/"*.deb "$work/new/var/lib/apt/lists/"*
    # Renamed only when complete, so an interrupted run leaves no root that looks finished; a run
    # beside this one may have finished its root first, which then serves.
    mv -T "$work/new" "$image" 2>/dev/null || [ -d "$image" ] || die "cannot rename the root to $image"
    say "root made in $((SECONDS - started)) s"
fi

root=$work/root
mkdir "$root" "$work/upper" "$work/overlay"
mount -t overlay overlay -o "lowerdir=$PWD/$image,upperdir=$PWD/$work/upper,workdir=$PWD/$work/overlay" "$root" ||
    die "cannot mount an overlay over $image"
for p in $packages; do chroot "$root" dpkg -s "$p" >/dev/null 2>&1 || die "$p is not installed in the root"; done
if chroot "$root" dpkg -l | awk '$1 == "ii" {print $2}' | grep -E -- '-dev(:|$)|swift'; then
    die "the root holds a -dev or Swift package (above)"
fi
tar -C "$root/opt" -xzf "$bundle"
home=/opt/$name
bin=$home/bin/deepdem
[ -x "$root$bin" ] || die "the bundle has no executable bin/deepdem"

runpath=$(readelf -d "$root$bin" | sed -nE 's/.*\((RUNPATH|RPATH)\).*\[(.*)\]/\2/p')
[ -z "$runpath" ] || die "bin/deepdem has a run path: $runpath"

mount -t proc proc "$root/proc"                   # Swift reads its arguments from /proc/self
mount -t tmpfs -o size=256m tmpfs "$root/dev/shm"  # the ranks' shared-memory transport, as on a node

# Nothing from this machine's environment (its PATH to Swift least of all) reaches the root.
inside() {
    chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root TMPDIR=/tmp \
        OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
        ${OPENBLAS_CORETYPE:+OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE} "$@"
}
step() {
    local what=$1; shift
    local t=$SECONDS
    local status=0
    inside "$@" > "$work/out" 2> "$work/err" || status=$?
    [ "$status" = 0 ] || { cat "$work/out" "$work/err" >&2; die "$what exited $status"; }
    say "ok: $what ($((SECONDS - t)) s)"
}
exists() { [ -s "$root$1" ] || die "$1 is missing or empty"; }

libraries=$(inside ldd "$bin") || die "ldd bin/deepdem failed: $libraries"
! grep -q 'not found' <<<"$libraries" || die "libraries the root lacks: $(grep 'not found' <<<"$libraries" | tr -s '\t\n' ' ')"
! grep -qi 'swift' <<<"$libraries" || die "bin/deepdem loads a Swift library: $libraries"
say "ok: ldd resolves all $(grep -c '=>' <<<"$libraries") libraries in the root"

step "deepdem --version" "$bin" --version
grep -q "^MPI: built for" "$work/out" || die "deepdem --version says nothing of MPI: $(cat "$work/out")"

step "deepdem synth" "$bin" synth --out /tmp/scene --size 256 --seed 3
exists /tmp/scene/final_asp_dsm.tif
exists /tmp/scene/final_lidar_data.tif

cat > "$root/tmp/train.yaml" <<YAML
data: /tmp/scene
bands: [asp_dsm, ortho_channel1, ortho_channel2, ndvi, nodata_mask, triangulation_error]
target: lidar_data
arch: unet
unet: {depth: 3, start_kernel: 8, max_filter_depth: 32}
chip_size: 64
batch_size: 4
samples_per_epoch: 8
val_samples: 8
max_steps: 4
train_split: 0.5
seed: 0
out: /tmp/run
YAML
step "${launch[*]} deepdem train (4 steps)" "${launch[@]}" "$bin" train --config /tmp/train.yaml
# Two singletons would train too, each as rank 0 of 1: the ranks must have found each other.
grep -q '^deepdem train: 2 ranks' "$work/out" || die "the training did not run as 2 ranks: $(head -3 "$work/out")"
exists /tmp/run/best.safetensors
exists /tmp/run/last.safetensors
[ "$(grep -c '"train_loss"' "$root/tmp/run/metrics.jsonl")" -ge 1 ] || die "metrics.jsonl has no training line"
[ "$(grep -c '"val_loss"' "$root/tmp/run/metrics.jsonl")" -ge 1 ] || die "metrics.jsonl has no validation line"

step "deepdem info" "$bin" info /tmp/run/best.safetensors
grep -q '^architecture *unet' "$work/out" || die "deepdem info does not describe the checkpoint: $(cat "$work/out")"

step "deepdem refine" "$bin" refine --checkpoint /tmp/run/best.safetensors --data /tmp/scene --out /tmp/refined.tif
exists /tmp/refined.tif

step "deepdem evaluate" "$bin" evaluate --prediction /tmp/refined.tif --truth /tmp/scene/final_lidar_data.tif \
    --initial /tmp/scene/final_asp_dsm.tif --json
for side in refined initial; do
    grep -Eq "^  \"$side\": \{\"count\": [1-9][0-9]*, \"bias\": -?[0-9]" "$work/out" ||
        die "evaluate's JSON has no $side errors: $(cat "$work/out")"
done
! grep -qiE 'nan|inf|null' "$work/out" || die "evaluate's JSON has a value that is not a number: $(cat "$work/out")"
say "passed in $((SECONDS - started)) s"
