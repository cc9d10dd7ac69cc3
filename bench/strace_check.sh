#!/usr/bin/env bash
# strace_check.sh — cross-checks the hub's syscall counters (WakeStats) against `strace -c -f`.
#
# Runs `pushpoll_wake_bench --strace-check=<backend>,<messages>,<gap_ns>`: one short stream to
# 1,000 subscribers, as in BM_Stream_SyscallsPerMessage with one host thread (polling, parking in a
# WakeGroup when caught up), in 5 bursts. Two streams per backend: at the maximum rate (few parks)
# and paced at one message per 100 us (the host catches up and parks between messages: many
# syscalls on both sides). Each runs twice under `strace -c -f`: with no messages (start-up and
# teardown only: the dynamic loader's reads, the membarrier registration, the report's write) and
# with messages. The syscalls the hub counts map to strace's names as follows:
#   notifier_syscalls   = io_uring_enter (io_uring backend) or write (syscall backend)
#   subscriber_syscalls = read (eventfd drains) + ppoll (blocking) + membarrier (heavy barrier)
# and the difference between the two runs must be the same on both sides. (sched_yield comes from
# the harness's publisher waiting for the subscribers, not from the hub.)
#
# Usage: bench/strace_check.sh [path/to/pushpoll_wake_bench] [messages]   (default 20000; the paced
# stream sends a tenth of them)
set -euo pipefail

bin=${1:-}
messages=${2:-20000}
if [[ -z "$bin" ]]; then
  here=$(cd "$(dirname "$0")/.." && pwd)
  for c in "$here/build-wakebench/pushpoll_wake_bench" "$here/build/bench/bench/pushpoll_wake_bench" \
           "$here/build/default/bench/pushpoll_wake_bench" "$here/build-bench/bench/pushpoll_wake_bench"; do
    if [[ -x "$c" ]]; then bin=$c; break; fi
  done
fi
if [[ -z "$bin" || ! -x "$bin" ]]; then
  echo "strace_check.sh: pushpoll_wake_bench not found; pass its path as the first argument" >&2
  exit 2
fi
if ! command -v strace >/dev/null 2>&1; then
  echo "strace_check.sh: strace is not installed (Debian: apt-get install strace)" >&2
  exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# calls <strace -c table> <syscall>: the calls column (4th) of that syscall's row, or 0.
calls() { awk -v name="$2" '$NF == name && $1 ~ /^[0-9.]+$/ { n = $4 } END { print n + 0 }' "$1"; }
# hub <report> <counter>: a counter printed by --strace-check.
hub() { sed -n "s/^$2=//p" "$1"; }

status=0
for backend in io_uring syscall; do
  for config in "$messages,0" "$((messages / 10)),100000"; do
    count=${config%%,*}
    gap=${config##*,}
    tag=$backend.$count.$gap
    for n in 0 "$count"; do
      if ! strace -c -f -o "$tmp/$tag.$n.strace" "$bin" --strace-check="$backend,$n,$gap" >"$tmp/$tag.$n.out"; then
        echo "strace_check.sh: the $backend run with $n messages (gap $gap ns) failed:" >&2
        cat "$tmp/$tag.$n.out" >&2
        exit 1
      fi
    done
    run=$tmp/$tag.$count
    base=$tmp/$tag.0
    echo "==== backend $backend: $count messages to 1000 subscribers, gap ${gap} ns (0: maximum rate); strace -c -f ===="
    cat "$run.strace"
    echo "---- the hub's counters (--strace-check) ----"
    cat "$run.out"

    if [[ $backend == io_uring ]]; then notifier_call=io_uring_enter; else notifier_call=write; fi
    sub_strace() { echo $(( $(calls "$1" read) + $(calls "$1" ppoll) + $(calls "$1" membarrier) )); }
    st_notifier=$(( $(calls "$run.strace" $notifier_call) - $(calls "$base.strace" $notifier_call) ))
    st_sub=$(( $(sub_strace "$run.strace") - $(sub_strace "$base.strace") ))
    hub_notifier=$(( $(hub "$run.out" hub_notifier_syscalls) - $(hub "$base.out" hub_notifier_syscalls) ))
    hub_sub=$(( $(hub "$run.out" hub_subscriber_syscalls) - $(hub "$base.out" hub_subscriber_syscalls) ))
    delivered=$(hub "$run.out" delivered)
    echo "---- cross-check (run with $count messages minus the run with none) ----"
    printf '%-22s %12s %12s   %s\n' "" "hub" "strace" "strace syscalls"
    printf '%-22s %12d %12d   %s\n' "notifier syscalls" "$hub_notifier" "$st_notifier" "$notifier_call"
    printf '%-22s %12d %12d   %s\n' "subscriber syscalls" "$hub_sub" "$st_sub" "read + ppoll + membarrier"
    printf '%-22s %12d %12d\n' "total" $((hub_notifier + hub_sub)) $((st_notifier + st_sub))
    echo "start-up and teardown alone (no messages): strace $notifier_call=$(calls "$base.strace" $notifier_call)" \
         "read+ppoll+membarrier=$(sub_strace "$base.strace"); hub notifier=$(hub "$base.out" hub_notifier_syscalls)" \
         "subscriber=$(hub "$base.out" hub_subscriber_syscalls)"
    awk -v s=$((st_notifier + st_sub)) -v d="$delivered" -v m="$count" \
      'BEGIN { if (d > 0) printf "syscalls (strace): %.3g per delivered message, %.3g per published message\n", s / d, s / m }'
    if [[ $hub_notifier -ne $st_notifier || $hub_sub -ne $st_sub ]]; then
      echo "MISMATCH: the hub's counters and strace disagree (backend $backend, gap $gap ns)"
      status=1
    else
      echo "OK: the hub's counters match strace (backend $backend, gap $gap ns)"
    fi
    echo
  done
done
exit $status
