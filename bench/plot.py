#!/usr/bin/env python3
"""Plots pushpoll-bench results (the JSON written by `pushpoll-bench --json FILE`).

    python bench/plot.py RESULT.json [RESULT.json ...] --out DIR

Draws, into DIR:
  latency-<phase>.png       per phase: the latency CDF of each design (publish to receive), and the
                            complementary CDF on a log scale so that the tail is visible
  scaling.png               delivered messages/s and CPU seconds per million delivered messages against
                            the subscriber count, one line per design, from every max-rate phase given
                            (run pushpoll-bench once per subscriber count and pass all the files)
Prints the paths it wrote.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib.ticker import FuncFormatter  # noqa: E402

# One colour and marker per design family, stable across plots.
STYLE = {
    "pushpoll": ("#1f77b4", "o"),
    "pushpoll-groups": ("#17becf", "s"),
    "pushpoll-sentinel": ("#2ca02c", "D"),
    "spsc-push": ("#d62728", "v"),
    "zmq": ("#9467bd", "^"),
}
POLL_COLOURS = ["#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"]


def style(design: str, index: int) -> tuple[str, str]:
    if design in STYLE:
        return STYLE[design]
    if design.startswith("poll-"):
        return POLL_COLOURS[index % len(POLL_COLOURS)], "x"
    return "#333333", "."


def load(paths: list[str]) -> list[dict]:
    docs = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            docs.append(json.load(f))
    return docs


def human_ns(ns: float) -> str:
    if ns < 1e3:
        return f"{ns:.0f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.3g} µs"
    if ns < 1e9:
        return f"{ns / 1e6:.3g} ms"
    return f"{ns / 1e9:.3g} s"


def si(v: float) -> str:
    """1234 -> "1.23k", 999_600 -> "1.00M": three significant digits, never an exponent."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, "")):
        x = v / div
        if abs(x) >= 0.9995 or div == 1.0:
            if suffix == "" and x == int(x):
                return f"{int(x)}"
            text = f"{x:.0f}" if abs(x) >= 99.95 else f"{x:.1f}" if abs(x) >= 9.995 else f"{x:.2f}"
            return text + suffix


def phase_title(cfg: dict) -> str:
    rate = cfg["rate"]
    rate_text = "max rate" if rate == "max" else ("idle" if rate == 0 else f"{si(rate)} msgs/s")
    return (f"{cfg['phase']}: P={cfg['publishers']} N={cfg['subscribers']} T={cfg['threads']}, "
            f"{cfg['size']} B, {rate_text}")


def plot_latency(phase: dict, out: Path) -> Path | None:
    """CDF and complementary CDF of each design's latency in one phase."""
    results = [r for r in phase["results"] if r.get("ok") and r["latency_ns"]["count"] > 0]
    if not results:
        return None
    fig, (ax_cdf, ax_tail) = plt.subplots(1, 2, figsize=(12, 4.6))
    poll_index = 0
    for r in results:
        colour, _ = style(r["design"], poll_index)
        poll_index += r["design"].startswith("poll-")
        points = r["latency_ns"]["cdf"]
        xs = [max(p[0], 1) for p in points]
        ys = [p[1] for p in points]
        label = f"{r['design']} (p99 {human_ns(r['latency_ns']['p99'])})"
        ax_cdf.step(xs, ys, where="post", color=colour, label=label)
        # 1 - F(x) just below each point: the fraction of messages slower than x.
        tail_x, tail_y = [], []
        prev = 0.0
        for x, y in zip(xs, ys):
            tail_x.append(x)
            tail_y.append(max(1.0 - prev, 1e-7))
            prev = y
        ax_tail.step(tail_x, tail_y, where="post", color=colour, label=r["design"])
    for ax in (ax_cdf, ax_tail):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: human_ns(v)))
        ax.set_xlabel("publish → receive latency")
        ax.grid(True, which="both", alpha=0.3)
    ax_cdf.set_ylabel("fraction of messages ≤ latency")
    ax_cdf.set_ylim(0, 1.02)
    ax_cdf.legend(fontsize=8, loc="lower right")
    ax_tail.set_yscale("log")
    ax_tail.set_ylabel("fraction of messages slower (log)")
    for q in (0.5, 0.1, 0.01, 0.001):
        ax_tail.axhline(q, color="#999999", lw=0.6, ls=":")
        ax_tail.text(ax_tail.get_xlim()[0], q, f" p{100 * (1 - q):g}", fontsize=7, va="bottom", color="#666666")
    fig.suptitle("Latency: " + phase_title(phase["config"]), fontsize=10)
    fig.tight_layout()
    path = out / f"latency-{phase['config']['phase']}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_scaling(docs: list[dict], out: Path, name: str = "scaling.png") -> Path | None:
    """Delivered msgs/s and CPU s per M against the subscriber count (max-rate phases only)."""
    rate_series: dict[str, dict[int, float]] = defaultdict(dict)
    cpu_series: dict[str, dict[int, float]] = defaultdict(dict)
    sizes = set()
    for doc in docs:
        for phase in doc["phases"]:
            cfg = phase["config"]
            if cfg["rate"] != "max":
                continue
            sizes.add(cfg["size"])
            for r in phase["results"]:
                if not r.get("ok") or r["delivered"] == 0:
                    continue
                n = cfg["subscribers"]
                rate_series[r["design"]][n] = r["delivered_per_s"]
                cpu_series[r["design"]][n] = r["cpu"]["per_million_delivered_s"]
    if not any(len(s) >= 2 for s in rate_series.values()):
        return None
    fig, (ax_rate, ax_cpu) = plt.subplots(1, 2, figsize=(12, 4.6))
    poll_index = 0
    for design in sorted(rate_series, key=lambda d: (not d.startswith("pushpoll"), d)):
        colour, marker = style(design, poll_index)
        poll_index += design.startswith("poll-")
        ns = sorted(rate_series[design])
        ax_rate.plot(ns, [rate_series[design][n] for n in ns], marker=marker, color=colour, label=design)
        ax_cpu.plot(ns, [cpu_series[design][n] for n in ns], marker=marker, color=colour, label=design)
    for ax in (ax_rate, ax_cpu):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("subscribers")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    ax_rate.set_ylabel("delivered messages/s (all subscribers)")
    ax_rate.yaxis.set_major_formatter(FuncFormatter(lambda v, _: si(v)))
    ax_cpu.set_ylabel("CPU seconds per million delivered")
    size_text = ", ".join(f"{s} B" for s in sorted(sizes))
    fig.suptitle(f"Fan-out at the maximum rate ({size_text}): higher left, lower right is better", fontsize=10)
    fig.tight_layout()
    path = out / name
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="+", help="pushpoll-bench --json output files")
    ap.add_argument("--out", default=".", help="directory for the PNG files")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    docs = load(args.json)
    written = []
    for doc in docs:
        for phase in doc["phases"]:
            p = plot_latency(phase, out)
            if p:
                written.append(p)
    p = plot_scaling(docs, out)
    if p:
        written.append(p)
    for p in written:
        print(p)
    if not written:
        print("nothing to plot (no deliveries, or one subscriber count only)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
