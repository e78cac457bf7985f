#!/usr/bin/env bash
# setup.sh: installs what lat needs on Debian 12 (run as root), then builds it into build/.
# Safe to run again: it installs only what is missing and rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

# what each package is for:
#   build-essential cmake pkg-config   compiler and build
#   libluajit-5.1-dev                  LuaJIT, the scripting layer and the lat command
#   libopenblas-dev                    sgemm for every matrix product (header)
#   libopenblas0-openmp                the OpenBLAS build lat links: it shares lat's OpenMP threads
#   libpng-dev libzstd-dev zlib1g-dev  images, compressed checkpoints, gzip'd data files
#   libedit-dev                        line editing and history in the REPL (BSD licence)
#   lua-cjson                          JSON for tests and results files
#   python3-torch python3-numpy        the reference the tests and benchmarks compare against
#   python3-torchvision                torchvision's resnet18, which tests/test_torchvision.lua loads into lat
#   bc                                 arithmetic in the benchmark script
#   zstd                               the zstd command, which tests use to check .zst checkpoints
#   gnuplot-nox                        line and scatter plots as PNG (lat.plot; optional at run time)
#   python3-ipykernel jupyter-client jupyter-nbconvert jupyter-notebook
#                                      the notebooks: lat's Jupyter kernel, its test, running them in CI, opening them
#   clang libclang-rt-14-dev libomp-14-dev
#                                      the fuzz build (tests/fuzz/run.sh): clang, its libFuzzer and
#                                      sanitizer runtimes, and its OpenMP runtime
#   openmpi-bin libopenmpi-dev         Open MPI: mpirun, and the library data-parallel training
#                                      (build/liblat_mpi.so, lat.dist) is built against
#   slurm-wlm munge                    Slurm's controller, node daemon and commands, and its
#                                      authentication, for the single-node cluster of tests/slurm
PACKAGES="build-essential cmake pkg-config libluajit-5.1-dev libopenblas-dev libopenblas0-openmp libpng-dev
  libzstd-dev zlib1g-dev libedit-dev lua-cjson python3-torch python3-numpy bc zstd gnuplot-nox
  python3-ipykernel jupyter-client jupyter-nbconvert jupyter-notebook python3-torchvision
  clang libclang-rt-14-dev libomp-14-dev openmpi-bin libopenmpi-dev slurm-wlm munge"

missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $missing
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build -j"$(nproc)"

# lat's Jupyter kernel (the spec CMake wrote, naming this build), so that `jupyter notebook
# notebooks/` opens the notebooks with lat
/usr/bin/jupyter kernelspec install --user --name=lat build/jupyter/kernels/lat > /dev/null

# the data sets (Fashion-MNIST, SpamAssassin, Moby Dick, State of the Union) into $LAT_DATA or data/
datasets/fetch.sh
