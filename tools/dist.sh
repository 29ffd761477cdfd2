#!/usr/bin/env bash
# make dist: a folder users copy to a cluster whose nodes have no Swift, as one tarball.
#
#   tools/dist.sh [openmpi|mpich]
#
# writes dist/deepdem-VERSION[-mpich]-linux-x86_64.tar.gz and prints its path, alone, on
# stdout (the build's output goes to stderr). The binary carries the Swift runtime and
# Foundation inside it; MPI, GDAL and OpenBLAS stay shared libraries, because a cluster's
# modules (its MPI above all, built for its network) must be the ones that run.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "dist.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }

mpi=${1:-openmpi}
case $mpi in
    openmpi) flavour="" built_for="Open MPI" packages="libopenmpi3 openmpi-bin" module="openmpi/4.1"
             abi="Open MPI 4.x" ;;
    mpich) flavour="-mpich" built_for="MPICH" packages="libmpich12 mpich" module="mpich"
           abi="MPICH 4.x, or by ABI Cray MPICH, Intel MPI or MVAPICH (untested)" ;;
    *) die "MPI must be openmpi or mpich, not '$mpi'" ;;
esac
SWIFT=${SWIFT:-swift}
scratch=.build-dist$flavour
if [ -z "${DEEPDEM_COMMIT:-}" ]; then
    DEEPDEM_COMMIT=$(git describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)
fi
export DEEPDEM_COMMIT DEEPDEM_MPI=$mpi

# Static Swift runtime and Foundation; no $ORIGIN run path either, since the bundle ships no
# library of its own for one to find. --as-needed drops the libraries a pkg-config line names
# but deepdem never calls (MPICH's names hwloc and UCX), which another MPI of the ABI may lack.
say "building deepdem for $mpi in $scratch (commit $DEEPDEM_COMMIT)"
"$SWIFT" build -c release --static-swift-stdlib --disable-local-rpath -Xlinker --as-needed \
    --scratch-path "$scratch" --product deepdem >&2
built=$scratch/release/deepdem

# The name comes from the binary itself, so it cannot disagree with what it prints.
banner=$("$built" --version)
version=$(awk 'NR == 1 {print $2}' <<<"$banner")
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]] || die "$built --version printed no version: $banner"
grep -q "^MPI: built for $built_for " <<<"$banner" ||
    die "asked for $mpi, but the build is for $(sed -n 's/^MPI: built for //p' <<<"$banner") (does Package.swift select it from DEEPDEM_MPI?)"

# A run path naming a folder of this machine would make the nodes look for libraries there.
runpath=$(readelf -d "$built" | sed -nE 's/.*\((RUNPATH|RPATH)\).*\[(.*)\]/\2/p')
[ -z "$runpath" ] || die "$built has run path '$runpath'; the bundle must have none"
needed=$(readelf -d "$built" | sed -nE 's/.*\(NEEDED\).*\[(.*)\]/\1/p')
# MPICH's pkg-config line also names hwloc and UCX, which the link keeps despite --as-needed
# (measured: libhwloc.so.15, libucp.so.0, libucs.so.0), though deepdem calls neither; another MPI
# of the ABI (Cray MPICH, Intel MPI) may not ship them, so they go when nothing of theirs is used.
unused=()
for lib in $(grep -E '^lib(hwloc|ucp|ucs)\.so' <<<"$needed" || true); do
    prefix=$(sed -E 's/^lib([a-z]+)\.so.*/\1_/' <<<"$lib")
    nm -D --undefined-only "$built" | grep -q " $prefix" || unused+=("$lib")
done
if [ ${#unused[@]} -gt 0 ]; then
    command -v patchelf >/dev/null || die "patchelf is needed to drop ${unused[*]} from $built (apt-get install patchelf)"
    for lib in "${unused[@]}"; do patchelf --remove-needed "$lib" "$built"; done
    say "dropped ${unused[*]}, which deepdem never calls, from the libraries it needs"
    needed=$(readelf -d "$built" | sed -nE 's/.*\(NEEDED\).*\[(.*)\]/\1/p')
fi
if grep -q '^libswift\|^libFoundation' <<<"$needed"; then
    die "$built still needs a Swift library: $(grep '^libswift\|^libFoundation' <<<"$needed" | tr '\n' ' ')"
fi

name=deepdem-$version$flavour-linux-x86_64
mkdir -p dist
stage=$(mktemp -d "dist/.$name.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/$name
mkdir -p "$root/bin"
# The nodes need no debug sections (8 MB); the symbol table stays, so backtraces keep their names.
objcopy --strip-debug "$built" "$root/bin/deepdem"
cp -R slurm "$root/slurm"
cp LICENSE "$root/"

cat > "$root/INSTALL.md" <<EOF
# deepdem $version for Linux x86-64 ($built_for)

\`bin/deepdem\` needs no Swift: the Swift runtime and Foundation are linked into it. It was built
from commit $DEEPDEM_COMMIT on Debian 12 and loads these shared libraries, which the machine
that runs it must provide:

$(sed 's/^/    /' <<<"$needed")

On Debian 12 (bookworm), whose libraries these are (without recommends, to keep it small):

    apt-get install --no-install-recommends libgdal32 libopenblas0-pthread $packages

(\`libopenblas0\` or \`libopenblas0-openmp\` do as well: any OpenBLAS with \`libopenblas.so.0\`.)

On a cluster, load the modules that provide them before running or submitting, e.g.

    module load $module gdal openblas

deepdem was built for $(sed -n 's/^MPI: built for //p' <<<"$banner"): the MPI must have its ABI ($abi).
GDAL must provide \`libgdal.so.32\` (GDAL 3.6).
\`bin/deepdem --version\` says what the binary was built for and which OpenBLAS kernels the
CPU gets; \`ldd bin/deepdem\` must resolve every library.

Then point the Slurm scripts at the binary and submit (\`slurm/README.md\` says more):

    export DEEPDEM=\$PWD/bin/deepdem
    sbatch slurm/train.sbatch my_site.yaml
EOF

tarball=dist/$name.tar.gz
tar -C "$stage" -czf "$stage/$name.tar.gz" "$name"
mv "$stage/$name.tar.gz" "$tarball"
say "wrote $tarball ($(du -h "$tarball" | cut -f1))"
echo "$tarball"
