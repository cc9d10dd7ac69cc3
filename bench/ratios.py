#!/usr/bin/env python3
"""Runs rows of pushpoll_ring_bench interleaved (so that every row sees the same machine) and prints,
per row, the median, worst and best items/s of its repetitions, and each row's median as a ratio of
a baseline row's median measured in the same run.

    bench/ratios.py BENCH_BINARY --filter REGEX --baseline REGEX [--repetitions N]

The machine these numbers come from is a noisy 2-core VM: absolute numbers drift between runs,
ratios within one run hold. Rows whose names match --baseline are the denominators: a row is
compared with the baseline row that has the same arguments after the benchmark's name, if there is
one, else with the first baseline row.
"""
import argparse
import json
import re
import statistics
import subprocess
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench")
    ap.add_argument("--filter", required=True)
    ap.add_argument("--baseline", required=True, help="regex of the rows that are the denominators")
    ap.add_argument("--repetitions", type=int, default=5)
    args = ap.parse_args()
    cmd = [args.bench, f"--benchmark_filter={args.filter}", f"--benchmark_repetitions={args.repetitions}",
           "--benchmark_enable_random_interleaving=true", "--benchmark_format=json"]
    print("$ " + " ".join(cmd), file=sys.stderr)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    data = json.loads(out)
    runs: dict[str, list[float]] = {}
    errors: dict[str, str] = {}
    for b in data["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        name = b["run_name"]
        if b.get("error_occurred"):
            errors[name] = b.get("error_message", "error")
            continue
        runs.setdefault(name, []).append(b["items_per_second"])
    base_re = re.compile(args.baseline)

    def args_of(name: str) -> str:
        return name.split("/", 1)[1] if "/" in name else ""

    baselines = {args_of(n): statistics.median(v) for n, v in runs.items() if base_re.search(n)}
    first_base = next(iter(baselines.values()), None)
    ctx = data.get("context", {})
    print(f"# {ctx.get('date', '')} on {ctx.get('host_name', '')}, {ctx.get('num_cpus', '?')} CPUs; "
          f"{args.repetitions} repetitions each, interleaved; items/s")
    print(f"{'row':<72} {'median':>10} {'worst':>10} {'best':>10} {'worst/med':>9} {'ratio':>7}")
    for name, values in runs.items():
        med = statistics.median(values)
        base = baselines.get(args_of(name), first_base)
        ratio = f"{med / base:.2f}x" if base else "-"
        print(f"{name:<72} {med / 1e6:>9.1f}M {min(values) / 1e6:>9.1f}M {max(values) / 1e6:>9.1f}M "
              f"{min(values) / med:>9.2f} {ratio:>7}")
    for name, err in errors.items():
        print(f"{name:<72} ERROR: {err}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
