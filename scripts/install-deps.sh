#!/usr/bin/env bash
# Installs what pushpoll needs to build, test and benchmark, and nothing that is already there.
# Idempotent: run it as often as you like.
#
#   scripts/install-deps.sh            Debian packages (as root) + the project virtualenv (.venv)
#   scripts/install-deps.sh --check    only report what is missing; exit 1 if anything is
#
# As a non-root user it prints the exact apt-get command to run with sudo and exits non-zero.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${PUSHPOLL_VENV:-$here/.venv}"
check_only=0
[[ "${1:-}" == "--check" ]] && check_only=1

# C/C++ libraries come from Debian. One line per package: what it gives us.
debian_packages=(
  build-essential    # g++ 12, make
  cmake              # the build
  ninja-build        # fast parallel builds
  pkg-config         # finds liburing and libzmq
  liburing-dev       # io_uring fan-out of eventfd wake-ups
  libboost-dev       # Boost.Lockfree (header-only)
  libgtest-dev       # GoogleTest
  libgmock-dev       # GoogleMock (ships beside GoogleTest)
  libbenchmark-dev   # Google Benchmark
  libzmq3-dev        # ZeroMQ, a baseline in the load-test harness
  libcli11-dev       # command-line options of pushpoll-bench
  nlohmann-json3-dev # --json output of pushpoll-bench
  python3-dev        # headers for the extension module
  python3-venv       # the project virtualenv
  strace             # cross-checks the syscall counters once
)

missing=()
for p in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  if ((check_only)); then
    echo "missing Debian packages: ${missing[*]}"; exit 1
  fi
  if [[ $(id -u) -ne 0 ]]; then
    echo "pushpoll needs these Debian packages: ${missing[*]}" >&2
    echo "run:  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  echo "==> apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # A fresh machine has no package lists; update before the first install.
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Python tooling from PyPI, into the project's virtualenv.
python_packages=(pytest pytest-timeout hypothesis numpy pyzmq matplotlib scikit-build-core pybind11 build)
if [[ ! -x "$venv/bin/python" ]]; then
  ((check_only)) && { echo "missing virtualenv $venv"; exit 1; }
  echo "==> creating virtualenv $venv"
  python3 -m venv "$venv"
fi
need=()
for p in "${python_packages[@]}"; do
  "$venv/bin/python" -m pip show -q "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
  ((check_only)) && { echo "missing Python packages: ${need[*]}"; exit 1; }
  echo "==> pip install ${need[*]}"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${need[@]}"
fi
((check_only)) && echo "all dependencies present"
exit 0
