#!/usr/bin/env python3
"""Regenerates docs/benchmarks.md from a fresh run of pushpoll-bench.

    python bench/report.py --bench build/bench/bench/harness/pushpoll-bench

Runs, each design in its own process as pushpoll-bench always does:
  1. the default scenario (what `make run` shows),
  2. a subscriber sweep at the maximum rate (N = 1, 10, 100, 1000 by default),
  3. the `bars` scenario (every bar of the benchmark issue; skip with --no-bars),
then writes the markdown report (tables, and the plots drawn by bench/plot.py into the image directory,
docs/img/ by default). --from DIR rebuilds the report from the JSON files of an earlier run instead.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import plot  # noqa: E402  (bench/plot.py)
from plot import human_ns as ns, si  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = [
    "build/bench/bench/harness/pushpoll-bench",
    "build/default/bench/harness/pushpoll-bench",
    "build/ci/bench/harness/pushpoll-bench",
]
SWEEP_DESIGNS = "pushpoll,poll-1ms,spsc-push,zmq"


# ---- running ----------------------------------------------------------------------------------


def find_bench(given: str | None) -> Path:
    if given:
        p = Path(given)
        if not p.exists():
            sys.exit(f"report.py: {p} does not exist")
        return p
    for c in CANDIDATES:
        p = ROOT / c
        if p.exists():
            return p
    sys.exit("report.py: pushpoll-bench not found; build it (cmake --preset bench && cmake --build --preset bench) "
             "or pass --bench PATH")


def run(bench: Path, args: list[str], json_path: Path) -> None:
    cmd = [str(bench), *args, "--json", str(json_path)]
    print("$ " + " ".join(cmd[1:]), flush=True)
    rc = subprocess.run(cmd).returncode
    if rc == 2 or not json_path.exists():
        sys.exit(f"report.py: pushpoll-bench failed (exit {rc})")
    if rc == 1:
        print("report.py: pushpoll-bench reported delivery violations; they are in the report", file=sys.stderr)


# ---- formatting -------------------------------------------------------------------------------


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def num(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    if a >= 0.01:
        return f"{v:.3f}"
    return f"{v:.2g}"


def ratio(x: float) -> str:
    if x >= 100:
        return f"{x:.0f}×"
    if x >= 10:
        return f"{x:.1f}×"
    if x >= 0.1:
        return f"{x:.2f}×"
    return f"{x:.3f}×"


def table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def ok_results(phase: dict) -> list[dict]:
    return [r for r in phase["results"] if r.get("ok")]


def reference(phase: dict) -> dict | None:
    rs = ok_results(phase)
    for r in rs:
        if r["design"] == "pushpoll":
            return r
    return next((r for r in rs if r["design"].startswith("pushpoll")), None)


def get(r: dict, path: str) -> float | None:
    cur = r
    for k in path.split("."):
        if not isinstance(cur, dict) or k not in cur:
            return None
        cur = cur[k]
    return cur if isinstance(cur, (int, float)) and not isinstance(cur, bool) else None


def summary(cfg: dict) -> str:
    rate = cfg["rate"]
    rate_text = "as fast as each design allows" if rate == "max" else ("nothing published (idle)" if rate == 0
                                                                     else f"{si(rate)} msgs/s")
    parts = [f"P={cfg['publishers']} publisher(s)", f"N={cfg['subscribers']} subscribers",
             f"T={cfg['threads']} reader thread(s)", f"{cfg['size']} B", rate_text,
             f"{cfg['duration_ns'] / 1e9:g} s per design", "lossless" if cfg["overflow"] == "block" else "lossy"]
    if cfg.get("tags", 1) > 1:
        parts.append(f"{cfg['tags']} tags")
    if cfg.get("realtime") and rate != "max":
        parts.append("SCHED_FIFO")
    if cfg.get("nice"):
        parts.append(f"nice {cfg['nice']} (own autogroup)")
    if cfg.get("send_spin_ns"):
        parts.append(f"send spin {ns(cfg['send_spin_ns'])}")
    return ", ".join(parts)


def results_md(phase: dict) -> str:
    rows = []
    for r in phase["results"]:
        if not r.get("ok"):
            rows.append([r["design"], ("skipped: " if r.get("skipped") else "FAILED: ") + r.get("error", "?")]
                        + [""] * 9)
            continue
        lat = r["latency_ns"]
        has = lat["count"] > 0
        f = (lambda k: ns(lat[k]) if has else "–")
        rows.append([r["design"], si(r["published_per_s"]), si(r["delivered_per_s"]),
                     num(r["delivered_bytes_per_s"] / 1e6), f("p50"), f("p90"), f("p99"), f("p999"), f("max"),
                     str(r["gaps"]), str(r["violations"]["total"])])
    return table(["design", "published/s", "delivered/s", "MB/s", "p50", "p90", "p99", "p99.9", "max", "gaps",
                  "violations"], rows)


def cost_md(phase: dict) -> str:
    rows = []
    for r in ok_results(phase):
        sc = r["syscalls"]
        ge = "≥" if sc.get("partial") else ""
        has = r["delivered"] > 0
        cpu = r["cpu"]
        rows.append([r["design"], si(r["wakeups_sent"]), si(r["wakeups_coalesced"]), ge + si(sc["total"]),
                     ge + num(sc["per_delivered"]) if has else "–",
                     num(cpu["per_million_delivered_s"]) if has else "–",
                     f"{cpu['percent_of_one_cpu']:.1f} %",
                     f"{100 * cpu['readers_s'] / r['elapsed_s']:.1f} %" if r["elapsed_s"] else "–",
                     mib(r["peak_rss_kib"])])
    return table(["design", "wake-ups sent", "coalesced", "syscalls", "syscalls/msg", "CPU s per M msgs",
                  "CPU (all threads)", "CPU (readers)", "peak RSS"], rows)


METRICS = [
    ("delivered/s", "delivered_per_s", True, si),
    ("p50", "latency_ns.p50", True, ns),
    ("p99", "latency_ns.p99", True, ns),
    ("CPU s/M msgs", "cpu.per_million_delivered_s", True, num),
    ("CPU %", "cpu.percent_of_one_cpu", False, lambda v: f"{v:.1f} %"),
    ("syscalls/msg", "syscalls.per_delivered", True, num),
    ("peak RSS", "peak_rss_kib", False, mib),
]


def comparison_md(phase: dict) -> str | None:
    ref = reference(phase)
    if ref is None:
        return None
    rows = []
    for r in ok_results(phase):
        row = [r["design"]]
        for _, path, needs_deliveries, fmt in METRICS:
            a, b = get(r, path), get(ref, path)
            if a is None or (needs_deliveries and (r["delivered"] == 0 or ref["delivered"] == 0)):
                row.append("–")
                continue
            cell = fmt(a)
            if path == "syscalls.per_delivered" and r["syscalls"].get("partial"):
                cell = "≥" + cell
            if b:
                cell += f" ({ratio(a / b)})"
            row.append(cell)
        rows.append(row)
    return table(["design"] + [m[0] for m in METRICS], rows)


# ---- the bars of the benchmark issue ------------------------------------------------------------


def find_phase(docs: list[dict], name: str) -> dict | None:
    for doc in docs:
        for phase in doc["phases"]:
            if phase["config"]["phase"] == name:
                return phase
    return None


def result(phase: dict | None, design: str) -> dict | None:
    if phase is None:
        return None
    return next((r for r in ok_results(phase) if r["design"] == design), None)


def bars_md(docs: list[dict]) -> str | None:
    rows = []

    def verdict(good: bool) -> str:
        return "met" if good else "**not met**"

    fan = find_phase(docs, "fanout-1000-max")
    pp, zmq, spsc = result(fan, "pushpoll"), result(fan, "zmq"), result(fan, "spsc-push")
    if pp and zmq:
        x = pp["delivered_per_s"] / zmq["delivered_per_s"]
        rows.append(["N = 1,000, 64 B, max rate: pushpoll delivers ≥ 20× ZeroMQ's msgs/s",
                     f"{si(pp['delivered_per_s'])}/s vs {si(zmq['delivered_per_s'])}/s: {ratio(x)}", verdict(x >= 20)])
    if pp and spsc:
        x = pp["delivered_per_s"] / spsc["delivered_per_s"]
        rows.append(["… and ≥ 20× the per-subscriber-queue push design's",
                     f"{si(pp['delivered_per_s'])}/s vs {si(spsc['delivered_per_s'])}/s: {ratio(x)}",
                     verdict(x >= 20)])
    if pp and zmq and spsc:
        c = {k: v["cpu"]["per_million_delivered_s"] for k, v in (("pushpoll", pp), ("zmq", zmq), ("spsc", spsc))}
        rows.append(["… at lower CPU seconds per million delivered than both",
                     f"{num(c['pushpoll'])} vs {num(c['zmq'])} (zmq), {num(c['spsc'])} (spsc-push)",
                     verdict(c["pushpoll"] < c["zmq"] and c["pushpoll"] < c["spsc"])])
    lat1 = find_phase(docs, "latency-1-10k")
    pp1, poll1 = result(lat1, "pushpoll"), result(lat1, "poll-1ms")
    if pp1 and poll1:
        x = poll1["latency_ns"]["p99"] / max(pp1["latency_ns"]["p99"], 1)
        rows.append([f"1 subscriber at {si(lat1['config']['rate'])} msgs/s: p99 ≥ 10× lower than polling every 1 ms",
                     f"{ns(pp1['latency_ns']['p99'])} vs {ns(poll1['latency_ns']['p99'])}: {ratio(x)} lower",
                     verdict(x >= 10)])
    lat1000 = find_phase(docs, "latency-1000-groups")
    poll1000 = result(lat1000, "poll-1ms")
    for design in ("pushpoll-groups", "pushpoll", "pushpoll-sentinel"):
        r = result(lat1000, design)
        if r and poll1000:
            a, b = r["latency_ns"]["p99"], poll1000["latency_ns"]["p99"]
            rows.append([f"N = 1,000 at {si(lat1000['config']['rate'])} msgs/s: {design} p99 below polling's (1 ms)",
                         f"{ns(a)} vs {ns(b)}", verdict(a < b)])
    idle = find_phase(docs, "idle-1000")
    poll_idle = result(idle, "poll-1ms")
    for design in ("pushpoll-groups", "pushpoll-sentinel", "pushpoll"):
        r = result(idle, design)
        if r and poll_idle:
            a, b = r["cpu"]["percent_of_one_cpu"], poll_idle["cpu"]["percent_of_one_cpu"]
            rows.append([f"idle, N = 1,000: {design} uses a fraction of polling's (1 ms) CPU",
                         f"{a:.2f} % vs {b:.2f} % of one CPU ({ratio(a / b) if b else '–'})", verdict(a < b / 2)])
    if not rows:
        return None
    return table(["bar (from the benchmark issue)", "measured here", ""], rows)


# ---- the report -------------------------------------------------------------------------------


def machine_md(doc: dict, loads: list[float]) -> str:
    m = doc["machine"]
    model = m.get("cpu", "?")
    if shutil.which("lscpu"):
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    nproc = os.cpu_count()
    parts = [f"**CPU:** {model}, {nproc} CPUs (`nproc`: {len(os.sched_getaffinity(0))})",
             f"**kernel:** {m.get('kernel', platform.release())} ({m.get('arch', platform.machine())})",
             f"**compiler:** {m.get('compiler', '?')}, {m.get('build_type', '?')} build"
             + (" with assertions" if m.get("assertions") else ""),
             f"**libzmq:** {m.get('libzmq') or 'not built'}", f"**Boost:** {m.get('boost', '?')}",
             f"**io_uring:** {m.get('io_uring', '?')}"]
    text = "- " + "\n- ".join(parts)
    if loads:
        text += (f"\n- **load average** at the start of each design's run: {min(loads):.1f} to {max(loads):.1f}"
                 f" on {nproc} CPUs" + (" (other work was running: tails of latency include its scheduling "
                                        "delays)" if max(loads) > 0.75 * (nproc or 1) else ""))
    return text


def phase_md(phase: dict, img_rel: str | None) -> str:
    cfg = phase["config"]
    parts = [f"### {cfg['phase']}: {cfg['title']}", "", summary(cfg) + ".", "", results_md(phase), "",
             cost_md(phase), ""]
    cmp = comparison_md(phase)
    if cmp:
        parts += [f"Side by side; (ratio) = design ÷ {reference(phase)['design']}. Delivered/s: higher is better;"
                  " the rest: lower is better.", "", cmp, ""]
    if img_rel:
        parts += [f"![latency, {cfg['phase']}]({img_rel})", ""]
    return "\n".join(parts)


def sweep_md(docs: list[dict]) -> str:
    by_design: dict[str, dict[int, dict]] = {}
    ns_seen = set()
    for doc in docs:
        for phase in doc["phases"]:
            n = phase["config"]["subscribers"]
            ns_seen.add(n)
            for r in ok_results(phase):
                by_design.setdefault(r["design"], {})[n] = r
    cols = sorted(ns_seen)
    rows = []
    for design, per_n in by_design.items():
        rows.append([design] + [f"{si(per_n[n]['delivered_per_s'])}/s · {num(per_n[n]['cpu']['per_million_delivered_s'])}"
                                if n in per_n else "–" for n in cols])
    return table(["design"] + [f"N = {n:,}" for n in cols], rows)


def descriptions_md(docs: list[dict]) -> str:
    seen: dict[str, str] = {}
    for doc in docs:
        for phase in doc["phases"]:
            for r in ok_results(phase):
                seen.setdefault(r["design"], r.get("description", ""))
    return "\n".join(f"- **{d}**: {text}" for d, text in seen.items())


def write_report(out: Path, img_dir: Path, default: dict, sweep: list[dict], bars: dict | None, bench_cmd: str) -> None:
    img_dir.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(img_dir, out.parent)
    all_docs = [default, *sweep] + ([bars] if bars else [])
    loads = [r["loadavg_at_start"] for d in all_docs for ph in d["phases"] for r in ok_results(ph)
             if r.get("loadavg_at_start", -1) >= 0]
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `make bench-report` (`bench/report.py`) on {dt.date.today().isoformat()}: every number "
        "below comes from one fresh run of `pushpoll-bench` on the machine named here. Each design runs the same "
        "workload in its own process (so CPU time and peak memory are its own); deliveries are checked exactly "
        "once and in order in lossless runs.",
        "",
        "## Machine",
        "",
        machine_md(default, loads),
        "",
    ]
    # The bars scenario first: its phases are the ones the bars are about (the default scenario has a
    # shorter phase of the same name).
    bar_table = bars_md(([bars] if bars else []) + [default])
    if bar_table:
        lines += ["## The bars", "", bar_table, ""]
    scaling = plot.plot_scaling(sweep, img_dir, "scaling.png") if sweep else None
    if sweep:
        lines += ["## Fan-out: delivered messages/s against subscribers",
                  "",
                  f"One publisher, {sweep[0]['phases'][0]['config']['size']} B, the maximum rate, one reader thread;"
                  " each cell: delivered messages/s (all subscribers) · CPU seconds per million delivered.",
                  "", sweep_md(sweep), ""]
        if scaling:
            lines += [f"![delivered msgs/s and CPU against subscribers]({rel}/{scaling.name})", ""]
    sections = [("The default scenario (`make run`)", default)]
    if bars:
        sections.append(("The bars scenario (`--scenario bars`)", bars))
    for title, doc in sections:
        lines += [f"## {title}", ""]
        for phase in doc["phases"]:
            img = plot.plot_latency(phase, img_dir)
            lines += [phase_md(phase, f"{rel}/{img.name}" if img else None)]
    lines += ["## The designs", "", descriptions_md(all_docs), "",
              "## How the numbers are taken", "",
              "- Latency is publish → receive, from a timestamp in the payload. At a fixed rate publishers follow a "
              "grid of intended send times and latency counts from the intended time (coordinated-omission safe); "
              "every delivery is timed. At the maximum rate the clock is read once per batch, one delivery in 64 "
              "of each subscriber is timed (`--sample-every`), and latency is mostly time spent queued in a full "
              "buffer. Every delivery of every design is checked (exactly once, in order, well-formed) whether "
              "timed or not; the checks are the same code for every design.",
              "- Latencies go into a log-linear histogram (HdrHistogram-style, at most 0.8 % above the true value).",
              "- CPU is `getrusage(RUSAGE_SELF)` of the design's process over the run (all its threads: publishers, "
              "readers, notifier); \"CPU %\" is of one CPU. Peak RSS is the process's `VmHWM`.",
              "- Syscalls: pushpoll's come from the hub's own counters (`Hub::wake_stats()`: notifier writes or "
              "io_uring submissions, eventfd drains, membarriers, blocking polls) plus the readers' `epoll_wait`s; "
              "the other designs count their own. ZeroMQ's internal syscalls are invisible: its figure adds the "
              "read/write calls the kernel counted for the process (`/proc/self/io`) and is a lower bound (≥).",
              "- Polling designs (`poll-DELAY`) read the same pushpoll topic with the same cursors, without wake-ups: "
              "they differ from `pushpoll` only in how readers learn that there is something to read.",
              "",
              "## Reproduce",
              "",
              "```sh",
              "make bench-report                       # this page",
              "make run                                # the default scenario",
              f"{bench_cmd} --scenario bars --realtime  # the bars",
              f"{bench_cmd} --help",
              "```",
              ""]
    out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {out} and the plots in {img_dir}")
    update_readme(bar_table, sweep_md(sweep) if sweep else None, default)


README_BEGIN = "<!-- bench-report:begin (generated by make bench-report; do not edit by hand) -->"
README_END = "<!-- bench-report:end -->"


def update_readme(bar_table: str | None, sweep_table: str | None, default: dict) -> None:
    """Replaces the generated block of README.md with the bars and the fan-out sweep of this run."""
    readme = ROOT / "README.md"
    if not readme.exists():
        return
    text = readme.read_text(encoding="utf-8")
    if README_BEGIN not in text or README_END not in text:
        return
    machine = default.get("machine", {})
    cpu = machine.get("cpu") or platform.processor() or "unknown CPU"
    block = [README_BEGIN, "",
             f"Measured by `make bench-report` on {dt.date.today().isoformat()} ({cpu}, "
             f"{machine.get('cpus_online', os.cpu_count())} CPUs, {machine.get('kernel', platform.release())}); "
             "details and plots in `docs/benchmarks.md`.", ""]
    if bar_table:
        block += [bar_table, ""]
    if sweep_table:
        block += ["Fan-out, one publisher, 64 B, maximum rate, one reader thread (delivered messages/s · CPU s per"
                  " million delivered):", "", sweep_table, ""]
    block.append(README_END)
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    readme.write_text(head + "\n".join(block) + tail, encoding="utf-8")
    print(f"updated the benchmark block of {readme}")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", help="path to pushpoll-bench (default: look in build/)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"), help="the markdown file to write")
    ap.add_argument("--img", help="directory for the plots (default: img/ next to --out)")
    ap.add_argument("--work", default=str(ROOT / "build" / "bench-report"), help="where the JSON results go")
    ap.add_argument("--sweep", default="1,10,100,1000", help="subscriber counts of the fan-out sweep")
    ap.add_argument("--sweep-duration", default="1s", help="time per design in the sweep")
    ap.add_argument("--no-bars", action="store_true", help="skip the bars scenario")
    ap.add_argument("--realtime", action="store_true",
                    help="run the fixed-rate and idle phases of the bars scenario SCHED_FIFO (needs root; "
                         "steadier latency tails on a busy machine)")
    ap.add_argument("--nice", type=int, help="run every design at this niceness (negative needs root; see "
                    "pushpoll-bench --help)")
    ap.add_argument("--from", dest="from_dir", help="build the report from the JSON files in this directory; run nothing")
    args = ap.parse_args(argv)

    out = Path(args.out)
    img = Path(args.img) if args.img else out.parent / "img"
    work = Path(args.from_dir or args.work)
    work.mkdir(parents=True, exist_ok=True)
    counts = [int(x) for x in args.sweep.split(",") if x.strip()]
    bench_cmd = "pushpoll-bench"
    if not args.from_dir:
        bench = find_bench(args.bench)
        try:
            bench_cmd = str(bench.resolve().relative_to(ROOT))
        except ValueError:
            bench_cmd = bench.name
        extra = ["--nice", str(args.nice)] if args.nice is not None else []
        run(bench, ["--scenario", "default", *extra], work / "default.json")
        for n in counts:
            run(bench, ["--name", f"sweep-N{n}", "-N", str(n), "-T", "1", "--rate", "max", "--duration",
                        args.sweep_duration, "--designs", SWEEP_DESIGNS, "--quiet", *extra], work / f"sweep-{n}.json")
        if not args.no_bars:
            run(bench, ["--scenario", "bars", *extra] + (["--realtime"] if args.realtime else []), work / "bars.json")
    default = json.loads((work / "default.json").read_text())
    sweep = [json.loads((work / f"sweep-{n}.json").read_text()) for n in counts if (work / f"sweep-{n}.json").exists()]
    bars_path = work / "bars.json"
    bars = json.loads(bars_path.read_text()) if bars_path.exists() and not args.no_bars else None
    out.parent.mkdir(parents=True, exist_ok=True)
    write_report(out, img, default, sweep, bars, bench_cmd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
