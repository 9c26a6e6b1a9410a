"""Turns bench/run.sh's results into docs/benchmarks.md and an SVG plot.

Usage: python3 bench/report.py RESULTS.tsv BENCHMARKS.md PLOT.svg   (standard library only)
"""

import datetime
import os
import platform
import subprocess
import sys

results_path, md_path, svg_path = sys.argv[1:4]
r = {}
for line in open(results_path):
    key, _, value = line.rstrip("\n").partition("\t")
    r[key] = float(value) if value else float("nan")

CONNECTIONS = [1, 4, 16, 64, 256]


def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def fs_of(path):
    out = subprocess.run(["df", "-T", path], capture_output=True, text=True).stdout.splitlines()
    return out[-1].split()[1] if len(out) > 1 else "?"


def mib(kib):
    return f"{kib / 1024:.1f} MiB"


def row(name, ours, theirs, ratio, target, met):
    return f"| {name} | {ours} | {theirs} | {ratio} | {target} | {'met' if met else '**not met**'} |"


tp = r["pp_rps_50"] / r["redis_rps_50"]
lat = r["pp_p50_1"] / r["redis_p50_1"]
rd = r["reader_p50_huge"] / r["reader_p50_small"]
peak = max(r["reader_peak_rss_kib_small"], r["reader_peak_rss_kib_huge"])
idle = max(r["pp_idle_rss_kib"], r["reader_idle_rss_kib"], r["writer_idle_rss_kib"])
img = max(r["image_bytes_pingpong"], r["image_bytes_log-output"])
start = max(r["pp_start_ms"], r["reader_start_ms"])

rows = [
    "| measure | pingpong / log-output | alternative | ratio | target | |",
    "| --- | --- | --- | --- | --- | --- |",
    row("GET /pingpong, 50 connections (req/s, median of 3)", f"{r['pp_rps_50']:,.0f}", f"Redis INCR: {r['redis_rps_50']:,.0f}",
        f"{tp:.2f}x", "at least 1.0x", tp >= 1.0),
    row("one connection, p50 latency (median of 3)", f"{r['pp_p50_1']:.3f} ms", f"Redis INCR: {r['redis_p50_1']:.3f} ms",
        f"{lat:.2f}x", "at most 1.5x", lat <= 1.5),
    row("reader GET /, p50 latency (median of 3 runs)", f"1 GiB log: {r['reader_p50_huge']:.3f} ms",
        f"1 KiB log: {r['reader_p50_small']:.3f} ms", f"{rd:.2f}x", "at most 1.2x", rd <= 1.2),
    row("reader peak RSS (VmHWM, both logs, with /log?tail=1000 load)", mib(peak), "", "", "at most 16 MiB",
        peak <= 16 * 1024),
    row("image size (largest)", f"{img / 1e6:.1f} MB", "", "", "at most 15 MiB", img <= 15 * 1024 * 1024),
    row("idle RSS (largest of pingpong, reader, writer)", mib(idle), "", "", "at most 10 MiB", idle <= 10 * 1024),
    row("start to /readyz 200 (median of 10, slower of the two)", f"{start:.1f} ms", "", "", "at most 100 ms",
        start <= 100),
]

detail = [
    "| connections | pingpong req/s | Redis INCR req/s | ratio |",
    "| --- | --- | --- | --- |",
] + [
    f"| {c} | {r[f'pp_rps_c{c}']:,.0f} | {r[f'redis_rps_c{c}']:,.0f} | {r[f'pp_rps_c{c}'] / r[f'redis_rps_c{c}']:.2f}x |"
    for c in CONNECTIONS
]
footprint = [
    "| process | idle RSS | start to /readyz |",
    "| --- | --- | --- |",
    f"| pingpong | {mib(r['pp_idle_rss_kib'])} | {r['pp_start_ms']:.1f} ms |",
    f"| log-output reader | {mib(r['reader_idle_rss_kib'])} | {r['reader_start_ms']:.1f} ms |",
    f"| log-output writer | {mib(r['writer_idle_rss_kib'])} | (no HTTP) |",
    f"| image pingpong:0.1.0 | {r['image_bytes_pingpong'] / 1e6:.2f} MB | |",
    f"| image log-output:0.1.0 | {r['image_bytes_log-output'] / 1e6:.2f} MB | |",
]

now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
machine = f"{os.cpu_count()} cores ({cpu_model()}), {platform.system()} {platform.release()}, files on {fs_of('bench')}"
md = f"""# Benchmarks

Made by `bench/run.sh` on {now}: {machine}. Both sides ran in the same run on
the same machine, with their files on the same disk; ratios are what counts,
absolute numbers drift on these shared machines. pingpong answers each ping
only after its count is durable (temp file fsync'd, renamed, directory
fsync'd); Redis runs with `appendonly yes` and `appendfsync always`.
Load: `wrk` for HTTP, `redis-benchmark -t incr` for Redis.

{chr(10).join(rows)}

## Throughput against connections

![throughput against connections](throughput.svg)

{chr(10).join(detail)}

## Footprint

{chr(10).join(footprint)}

## Why pingpong is slower than Redis here

One durable increment, timed step by step on the same disk in the same run
(`bench/syscalls.py`, median of 300, microseconds):

| step | time |
| --- | --- |
| create the temp file and write the count | {r['syscall_create_write']:.0f} µs |
| `fdatasync` the new temp file (a journal commit: new inode, new block) | {r['syscall_fdatasync_new_file']:.0f} µs |
| `rename` it over the counter (frees the old inode) | {r['syscall_rename_over_old']:.0f} µs |
| `fsync` the directory (a second journal commit) | {r['syscall_fsync_dir']:.0f} µs |
| **the whole increment** | **{r['syscall_create_write'] + r['syscall_fdatasync_new_file'] + r['syscall_rename_over_old'] + r['syscall_fsync_dir']:.0f} µs** |
| what Redis does instead: append to its log and `fdatasync` it | {r['syscall_append_fdatasync']:.0f} µs |

The contract asks for a file that is replaced atomically (no reader ever sees
a torn or empty file) and durable before the answer. Portably that takes the
new file's data on disk before the rename and the rename on disk before the
answer: two ordered journal commits per acknowledged ping, where Redis's
append-only log needs one. Over one connection nothing can be shared, so the
latency ratio follows the ratio of these costs, and the 1.5x target is out of
reach without changing the file protocol. Under load, group commit shares one
increment among all waiting pings (`pingpong/src/commit.rs`): the batch holds
about all 50 connections, and what remains is the cost of a cycle plus the
HTTP round trip of 50 requests on two cores that wrk shares; the ratio climbs
with the number of connections (see the plot).

### Faster protocols, and why pingpong does not use them

Most of the increment is the new inode: its allocation makes the temp file's
`fdatasync` a journal commit, and freeing the old one makes the rename slow.
Recycling the temp file avoids both, and this run measured two ways
(`bench/recycling.py`: one increment, median of 400, then 3 s of a
writer incrementing as fast as it can while a reader opens and reads the
counter in a loop, as `cat` does, without the lock):

| protocol | one increment | reads that showed a smaller count than the read before |
| --- | --- | --- |
| new temp file, `rename` over the counter (pingpong) | {r['recycle_classic_us']:.0f} µs | {r['recycle_classic_back']:.0f} of {r['recycle_classic_reads']:,.0f} |
| temp file overwritten in place, `renameat2(RENAME_EXCHANGE)` | {r['recycle_exchange_us']:.0f} µs | {r['recycle_exchange_back']:.0f} of {r['recycle_exchange_reads']:,.0f} |
| spare overwritten in place, old counter hard-linked as the next spare, `rename` | {r['recycle_link_us']:.0f} µs | {r['recycle_link_back']:.0f} of {r['recycle_link_reads']:,.0f} |

Both recycling protocols are faster, but while the old counter file lives on,
an `open` racing with the rename now and then returns the file that was the
counter a moment before (in a separate check, a `stat` right after such a
read already showed the name on the newer file); and
since that file is the one the next increment overwrites in place, such a
reader could also catch a half-written value. The contract promises readers
never see a torn file without asking them to lock, so pingpong keeps a new
file per increment. (A reader that takes the lock shared is safe with either;
a contract change that made readers lock would allow the faster protocol.)

The reader read a {r['reader_log_bytes_huge'] / 2**30:.1f} GiB log for the large case; the
writer keeps the real log under 1 MiB by rotation, so that size only happens
with a log written by something else.
"""
open(md_path, "w").write(md)

# Plot: throughput against connections, log-scale x.
W, H, L, B, T, R = 640, 360, 70, 50, 30, 150
top = max(max(r[f"pp_rps_c{c}"], r[f"redis_rps_c{c}"]) for c in CONNECTIONS) * 1.1
xs = {c: L + i * (W - L - R) / (len(CONNECTIONS) - 1) for i, c in enumerate(CONNECTIONS)}
y = lambda v: H - B - v / top * (H - B - T)  # noqa: E731
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<text x="{L}" y="18" font-size="14">Durable increments per second against connections</text>',
       f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
       f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>']
for c, x in xs.items():
    svg.append(f'<text x="{x}" y="{H - B + 18}" text-anchor="middle">{c}</text>')
svg.append(f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">connections</text>')
for i in range(5):
    v = top * i / 4
    svg.append(f'<line x1="{L - 4}" y1="{y(v)}" x2="{W - R}" y2="{y(v)}" stroke="#ddd"/>')
    svg.append(f'<text x="{L - 8}" y="{y(v) + 4}" text-anchor="end">{v / 1000:.0f}k</text>')
for key, name, colour in (("pp", "pingpong GET /pingpong", "#d62728"), ("redis", "Redis INCR, fsync always", "#1f77b4")):
    pts = " ".join(f"{xs[c]:.1f},{y(r[f'{key}_rps_c{c}']):.1f}" for c in CONNECTIONS)
    svg.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"/>')
    for c in CONNECTIONS:
        svg.append(f'<circle cx="{xs[c]:.1f}" cy="{y(r[f"{key}_rps_c{c}"]):.1f}" r="3" fill="{colour}"/>')
    ly = T + 20 + (0 if key == "pp" else 20)
    svg.append(f'<line x1="{W - R + 10}" y1="{ly - 4}" x2="{W - R + 30}" y2="{ly - 4}" stroke="{colour}" stroke-width="2"/>')
    svg.append(f'<text x="{W - R + 34}" y="{ly}" font-size="10">{name}</text>')
svg.append("</svg>")
open(svg_path, "w").write("\n".join(svg) + "\n")
print(md)
