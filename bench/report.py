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
# The commits compared against, by name (bench/run.sh's BASELINE, QUEUED_REV, DIRECT_REV).
revs = {}
for line in open(results_path):
    key, _, value = line.rstrip("\n").partition("\t")
    if key.startswith("rev_"):
        revs[key[4:]] = value
        continue
    r[key] = float(value) if value else float("nan")
baseline, queued_rev, direct_rev = (f"`{revs.get(k, '?')}`" for k in ("baseline", "queued", "direct"))

CONNECTIONS = [1, 4, 16, 64, 256]
# Rounds per count in the connection table (results recorded before it was
# a setting of bench/run.sh ran 3).
connection_rounds = int(r.get("connection_rounds", 3))


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
    verdict = "" if met is None else "met" if met else "**not met**"
    return f"| {name} | {ours} | {theirs} | {ratio} | {target} | {verdict} |"


lat = r["pp_p50_1"] / r["redis_p50_1"]
rd = r["reader_p50_huge"] / r["reader_p50_small"]
peak = max(r["reader_peak_rss_kib_small"], r["reader_peak_rss_kib_huge"])
idle = max(r["pp_idle_rss_kib"], r["reader_idle_rss_kib"], r["writer_idle_rss_kib"])
img = max(r["image_bytes_pingpong"], r["image_bytes_log-output"])
start = max(r["pp_start_ms"], r["reader_start_ms"], r["writer_start_ms"])
# Rounds of three runs (the order rotated): medians of the rounds' ratios,
# since a round's runs share the disk's drift. The control is the same
# binary as the baseline, so its ratio shows the noise floor.
def round_ratios(side):
    return sorted(r[k] / r[k.replace(f"_{side}_", "_baseline_")] for k in r if k.startswith(f"pp_rps_50_{side}_r"))


def median_of(values):
    return (values[(len(values) - 1) // 2] + values[len(values) // 2]) / 2


pairs, control = round_ratios("metrics"), round_ratios("control")
cost = median_of(pairs)
def ratios(a, b, at):
    """The rounds' ratios a/b, sorted: at 50 connections (`at` "50") or in the
    connection table (`at` "c16", …)."""
    return sorted(r[k] / r[k.replace(f"{a}_", f"{b}_", 1)] for k in r if k.startswith(f"{a}_rps_{at}_r"))


vs_redis = ratios("pp", "redis", "50")
vs_nginx_50, vs_nginx_256 = ratios("healthz", "nginx", "50"), ratios("healthz", "nginx", "c256")
tp = median_of(vs_redis)

rows = [
    "| measure | pingpong / log-output | alternative | ratio | target | |",
    "| --- | --- | --- | --- | --- | --- |",
    row(f"GET /pingpong, 50 connections (req/s, medians of {len(vs_redis)} rounds; ratio: median of the rounds' ratios, which ranged {vs_redis[0]:.2f}x to {vs_redis[-1]:.2f}x)",
        f"{r['pp_rps_50']:,.0f}", f"Redis INCR: {r['redis_rps_50']:,.0f}",
        f"{tp:.2f}x", "at least 1.0x", tp >= 1.0),
    row("GET /healthz, 50 connections, same server (req/s, median of 5): the HTTP ceiling",
        f"{r['healthz_rps_50']:,.0f}", f"/pingpong: {r['pp_rps_50']:,.0f}", f"{r['pp_rps_50'] / r['healthz_rps_50']:.2f}x",
        "", None),
    row(f"GET /healthz against nginx `return 200` (2 workers), 50 connections (req/s, medians; ratio: median of the {len(vs_nginx_50)} rounds' ratios, {vs_nginx_50[0]:.2f}x to {vs_nginx_50[-1]:.2f}x)",
        f"{r['healthz_rps_50']:,.0f}", f"nginx: {r['nginx_rps_50']:,.0f}", f"{median_of(vs_nginx_50):.2f}x",
        "at least 0.85x", median_of(vs_nginx_50) >= 0.85),
    row(f"GET /healthz against nginx, 256 connections (median of the {len(vs_nginx_256)} rounds' ratios, {vs_nginx_256[0]:.2f}x to {vs_nginx_256[-1]:.2f}x)",
        f"{r['healthz_rps_c256']:,.0f}", f"nginx: {r['nginx_rps_c256']:,.0f}", f"{median_of(vs_nginx_256):.2f}x",
        "at least 0.85x", median_of(vs_nginx_256) >= 0.85),
    row(f"GET /pingpong, 50 connections, against the build of {baseline} (both scraped every second; req/s, medians; ratio: median of {len(pairs)} rounds' ratios, which ranged {pairs[0]:.2f}x to {pairs[-1]:.2f}x; that build against itself, the noise floor: {median_of(control):.2f}x, ranging {control[0]:.2f}x to {control[-1]:.2f}x)",
        f"{r['pp_rps_50_metrics']:,.0f}", f"{baseline}: {r['pp_rps_50_baseline']:,.0f}",
        f"{cost:.2f}x", "at least 0.97x", cost >= 0.97),
    row("one connection, p50 latency (median of 3)", f"{r['pp_p50_1']:.3f} ms", f"Redis INCR: {r['redis_p50_1']:.3f} ms",
        f"{lat:.2f}x", "at most 1.5x", lat <= 1.5),
    row("reader GET /, p50 latency (median of 3 runs)", f"1 GiB log: {r['reader_p50_huge']:.3f} ms",
        f"1 KiB log: {r['reader_p50_small']:.3f} ms", f"{rd:.2f}x", "at most 1.2x", rd <= 1.2),
    row("reader peak RSS (VmHWM, both logs, with /log?tail=1000 load)", mib(peak), "", "", "at most 16 MiB",
        peak <= 16 * 1024),
    row("image size (largest)", f"{img / 1e6:.1f} MB", "", "", "at most 15 MiB", img <= 15 * 1024 * 1024),
    row("idle RSS (largest of pingpong, reader, writer)", mib(idle), "", "", "at most 10 MiB", idle <= 10 * 1024),
    row("start to /readyz 200 (median of 10, slowest of the three)", f"{start:.1f} ms", "", "", "at most 100 ms",
        start <= 100),
]

def verdict(rounds):
    """The median of the rounds' ratios, with their range."""
    return f"{median_of(rounds):.2f}x ({rounds[0]:.2f}–{rounds[-1]:.2f})"


detail = [
    "| connections | pingpong (file) req/s | Redis INCR req/s | pingpong / Redis | `/healthz` req/s | `/healthz` / Redis: the most any `/pingpong` could reach | pingpong / `/healthz` | nginx req/s | `/healthz` / nginx | pingpong (PostgreSQL) req/s |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
] + [
    f"| {c} | {r[f'pp_rps_c{c}']:,.0f} | {r[f'redis_rps_c{c}']:,.0f} | {verdict(ratios('pp', 'redis', f'c{c}'))} "
    f"| {r[f'healthz_rps_c{c}']:,.0f} | {verdict(ratios('healthz', 'redis', f'c{c}'))} "
    f"| {verdict(ratios('pp', 'healthz', f'c{c}'))} | {r[f'nginx_rps_c{c}']:,.0f} | {verdict(ratios('healthz', 'nginx', f'c{c}'))} "
    f"| {r[f'pg_rps_c{c}']:,.0f} |"
    for c in CONNECTIONS
]
# Where even the HTTP ceiling is below Redis, no commit design reaches 1.0x.
beyond = [c for c in CONNECTIONS if median_of(ratios("healthz", "redis", f"c{c}")) < 1.0]


def cpu(side, c, group):
    """The median over the rounds of the CPU per request, in µs."""
    return median_of(sorted(r[k] for k in r if k.startswith(f"cpu_{side}_c{c}_r") and k.endswith(f"_{group}")))


cpu_rows = [
    "| load | req/s | HTTP threads, µs per request | commit thread, µs per ping | whole process, µs per request | pings per commit |",
    "| --- | --- | --- | --- | --- | --- |",
]
for c in (50, 256):
    batch = median_of(sorted(r[k] for k in r if k.startswith(f"batch_c{c}_r")))
    cpu_rows += [
        f"| `/pingpong`, {c} connections | {cpu('pp', c, 'rps'):,.0f} | {cpu('pp', c, 'http'):.1f} | {cpu('pp', c, 'commit'):.1f} | {cpu('pp', c, 'total'):.1f} | {batch:.1f} |",
        f"| `/healthz`, {c} connections | {cpu('healthz', c, 'rps'):,.0f} | {cpu('healthz', c, 'http'):.1f} | | {cpu('healthz', c, 'total'):.1f} | |",
        f"| Redis `INCR`, {c} clients | {cpu('redis', c, 'rps'):,.0f} | | | {cpu('redis', c, 'total'):.1f} (its `fdatasync` included) | |",
    ]


def paired(a, b):
    """The median of the rounds' ratios a/b, and their range."""
    rounds = ratios(a, b, "50")
    return median_of(rounds), rounds[0], rounds[-1], len(rounds)


pg_vs_pgbench, pg_vs_file = paired("pg", "pgbench"), paired("pg", "file")
design = [
    "| measure | chosen: direct commit and regroup | every ping through the worker (replaced) | target | chosen / queued, paired |",
    "| --- | --- | --- | --- | --- |",
    f"| 50 connections, against Redis (median of the rounds' ratios) | {tp:.2f}x ({r['pp_rps_50']:,.0f} req/s) | {median_of(ratios('queued', 'redis', '50')):.2f}x ({r['queued_rps_50']:,.0f} req/s) | at least 1.2x | {verdict(ratios('pp', 'queued', '50'))} |",
    f"| 50 connections, `/pingpong` against its own `/healthz` | {r['pp_rps_50'] / r['healthz_rps_50']:.2f}x | {r['queued_rps_50'] / r['queued_healthz_rps_50']:.2f}x | at least 0.8x | |",
    f"| one connection, p50 against Redis | {lat:.2f}x ({r['pp_p50_1']:.3f} ms) | {r['queued_p50_1'] / r['redis_p50_1']:.2f}x ({r['queued_p50_1']:.3f} ms) | at most 1.0x | {r['pp_p50_1'] / r['queued_p50_1']:.2f}x (latency) |",
] + [
    f"| {c} connection{'s' if c > 1 else ''}, against Redis (median of {connection_rounds} rounds' ratios) | {median_of(ratios('pp', 'redis', f'c{c}')):.2f}x "
    f"| {median_of(ratios('queued', 'redis', f'c{c}')):.2f}x | at least 1.0x | {verdict(ratios('pp', 'queued', f'c{c}'))} |"
    for c in CONNECTIONS
]
# What each part of the chosen design adds, per count: the direct commit
# alone against the queued design, and the wait for the group on top.
parts = [
    "| connections | chosen req/s | direct commit alone req/s | queued req/s | direct alone / queued | chosen / direct alone: what the regroup adds |",
    "| --- | --- | --- | --- | --- | --- |",
] + [
    f"| {c} | {r[f'pp_rps_c{c}']:,.0f} | {r[f'direct_rps_c{c}']:,.0f} | {r[f'queued_rps_c{c}']:,.0f} "
    f"| {verdict(ratios('direct', 'queued', f'c{c}'))} | {verdict(ratios('pp', 'direct', f'c{c}'))} |"
    for c in CONNECTIONS
]
pg_design = [
    "| connections | pingpong on PostgreSQL req/s | without the regroup (the replaced design) req/s | with / without, paired |",
    "| --- | --- | --- | --- |",
] + [
    f"| {c} | {r[f'pg_rps_c{c}']:,.0f} | {r[f'pgqueued_rps_c{c}']:,.0f} | {verdict(ratios('pg', 'pgqueued', f'c{c}'))} |"
    for c in CONNECTIONS
]
pg_lat = r["pg_p50_1"] / r["file_p50_1"]
pg_rows = [
    "| measure | pingpong on PostgreSQL | alternative | ratio | target | |",
    "| --- | --- | --- | --- | --- | --- |",
    row(f"50 connections (req/s, medians of {pg_vs_pgbench[3]} rounds; ratio: median of the rounds' ratios, {pg_vs_pgbench[1]:.1f}x to {pg_vs_pgbench[2]:.1f}x)",
        f"{r['pg_rps_50']:,.0f}", f"one transaction per request (pgbench -M prepared -c 50): {r['pgbench_rps_50']:,.0f} tps",
        f"{pg_vs_pgbench[0]:.1f}x", "at least 15x", pg_vs_pgbench[0] >= 15),
    row(f"50 connections, against the file store (ratio: median of the rounds', {pg_vs_file[1]:.2f}x to {pg_vs_file[2]:.2f}x)",
        f"{r['pg_rps_50']:,.0f}", f"pingpong on the file: {r['file_rps_50']:,.0f}", f"{pg_vs_file[0]:.2f}x", "at least 0.8x",
        pg_vs_file[0] >= 0.8),
    row("one connection, p50 latency (median of 5)", f"{r['pg_p50_1']:.3f} ms", f"pingpong on the file: {r['file_p50_1']:.3f} ms",
        f"{pg_lat:.2f}x", "at most 1.5x", pg_lat <= 1.5),
    row("one client, for reference", "", f"pgbench -c 1: {r['pgbench_tps_1']:,.0f} tps", "", "", None),
]
footprint = [
    "| process | idle RSS | start to /readyz |",
    "| --- | --- | --- |",
    f"| pingpong | {mib(r['pp_idle_rss_kib'])} | {r['pp_start_ms']:.1f} ms |",
    f"| log-output reader | {mib(r['reader_idle_rss_kib'])} | {r['reader_start_ms']:.1f} ms |",
    f"| log-output writer | {mib(r['writer_idle_rss_kib'])} | {r['writer_start_ms']:.1f} ms (its metrics port) |",
    f"| image pingpong:0.1.0 | {r['image_bytes_pingpong'] / 1e6:.2f} MB | |",
    f"| image log-output:0.1.0 | {r['image_bytes_log-output'] / 1e6:.2f} MB | |",
]

if beyond:
    ceiling_text = (f"At {' and '.join(map(str, beyond))} connections even `/healthz` serves less than Redis "
                    "does with its flush: there the target of 1.0x Redis is out of reach for any commit design.")
else:
    ceiling_text = "At every count `/healthz` serves more than Redis."
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
machine = f"{os.cpu_count()} cores ({cpu_model()}), {platform.system()} {platform.release()}, files on {fs_of('bench')}"
if "busy_before_pct" in r:
    machine += f", {r['busy_before_pct']:.0f}% of the CPU busy with other work just before the run"
md = f"""# Benchmarks

Made by `bench/run.sh` on {now}: {machine}. Both sides ran in the same run on
the same machine, with their files on the same disk; ratios are what counts,
absolute numbers drift on these shared machines. pingpong answers each ping
only after its count is durable (its 21-byte record overwritten in place and
`fdatasync`'d under the lock); Redis runs with `appendonly yes` and `appendfsync always`.
Load: `wrk` for HTTP, `redis-benchmark -t incr` for Redis.

{chr(10).join(rows)}

## Throughput against connections

![throughput against connections](throughput.svg)

{chr(10).join(detail)}

Each count ran {connection_rounds} rounds of six sides in a rotated order (this pingpong,
the design it replaced, the direct commit alone: see "The commit design",
Redis, `/healthz`, nginx's `return 200`); ratios are the
medians of the rounds' ratios (their range in brackets), the req/s columns
the medians of the runs. `/healthz` is the same server answering without
counting, so it is the most any design of `/pingpong` on this HTTP stack can
serve at that count; nginx (Debian's `nginx-light`, two workers, no access
log) is what an HTTP server's request costs on this machine (where the
kit's time goes against it: [http-path.md](http-path.md)). {ceiling_text}

## Where the CPU goes

The same server's CPU per request, by thread (`bench/cpu.py`, from
`/proc/PID/task/*/stat`; medians of 3 rounds of 4 s), and Redis's, under the
same load; "pings per commit" from `pingpong_commit_pings` over the same
runs. The two cores are shared with the load generator, so a server that
needs more CPU per request serves fewer: at these counts the machine is
saturated, and req/s follows the whole process's column.

{chr(10).join(cpu_rows)}

## The commit design

The chosen design has two parts, both only while at most four connections
are open (with more, every ping takes the replaced design's path):
- a lone ping (no other ping in flight, the commit worker idle with nothing
  queued) is committed by its own request, on its own thread, with no
  hand-off to the worker and back ("try alone" in `pingpong/src/commit/pace.rs`);
- after answering a group of two or more pings, the worker waits up to
  200 µs for that group to be back, so that the group shares the next flush
  with the pings that queued meanwhile instead of taking turns with them
  ("hold for the group", the same file).

Against the design it replaced, every ping handed to the worker as soon as
it queues (a build of {queued_rev}, the commit before the direct commit), in the same rounds and
connection runs as above. Targets are issue 19's.

{chr(10).join(design)}

Each part on its own, in the same connection runs (the direct commit alone:
a build of {direct_rev}, the commit before the wait for the group):

{chr(10).join(parts)}

## The PostgreSQL store

pingpong with `DATABASE_URL` on a PostgreSQL of the run's own (Debian's, on
the same disk, `fsync` and `synchronous_commit` on), side by side with the
usual solution of the course's exercise 2.07, one transaction per request
updating the one row (`pgbench -n -M prepared -c 50 -j 2` with the script
`UPDATE pingpong_counter SET count = count + 1 WHERE id = 1 RETURNING count;`:
each transaction holds the row lock across its commit's WAL flush, so more
clients do not help), and with pingpong on the file, in alternating rounds.
Group commit is the lever: one `UPDATE … SET count = count + k` per batch,
as for the file.

{chr(10).join(pg_rows)}

Against connections, with the worker's wait for its group (this pingpong)
and without it (the replaced design's binary on the same database; the
direct commit does not apply to a database), {connection_rounds} rotated rounds of 4 s per
count:

{chr(10).join(pg_design)}

## Footprint

{chr(10).join(footprint)}

## One increment, alone

One durable increment each way, timed alone on the same disk in the same run
(`bench/syscalls.py`, median and p99 of 300, microseconds):

| protocol | median | p99 |
| --- | --- | --- |
| in place (pingpong): `pread`, `pwrite` of the 21-byte record at offset 0, `fdatasync` | {r['syscall_inplace']:.0f} µs | {r['syscall_inplace_p99']:.0f} µs |
| replace-by-rename (pingpong, only for a file that is not a record): temp file, `fdatasync`, `rename`, directory `fsync` | {r['syscall_replace']:.0f} µs | {r['syscall_replace_p99']:.0f} µs |
| Redis `appendfsync always`: append to its log, `fdatasync` | {r['syscall_append_fdatasync']:.0f} µs | {r['syscall_append_fdatasync_p99']:.0f} µs |

A same-size overwrite of a block that is already allocated changes no
metadata, so `fdatasync` flushes one data block and commits no journal
transaction: one device flush, the floor, and less than Redis's append, whose
size change must be journalled. Replacing by rename costs two ordered journal
commits (the new file's data before the rename, the rename before the
answer). Why in place is safe: the record lies inside the first 512-byte
sector and is written by one `pwrite`, so a crash leaves the old or the new
record, and a power loss does too on any device that writes a sector
atomically, the assumption PostgreSQL makes for `pg_control`. The price is
paid by readers that do not lock: on ext4 a buffered `read` does not lock
against a concurrent `write`, so `cat` may very rarely see a mix of two
records; `/pings` and the log-output writer read under the lock, shared.

The disk here is an ext4 without a journal (these machines' root filesystem);
on a journaled ext4 or XFS, as on a laptop or a k3d node, replace-by-rename's
two ordered flushes are journal commits, while the in-place overwrite still
needs none (reasoned from how `fdatasync` works, not measured here).

Over one connection nothing is shared, so the latency is one increment plus
the HTTP round trip and the hand-offs between the HTTP worker and the commit
thread. Under load, group commit shares one increment among all the pings
that queued while the last one was flushed (`pingpong/src/commit.rs`); the
`/healthz` row shows how far the durable `/pingpong` is from what this HTTP
stack serves at all on two cores shared with wrk. How the batching rule was
chosen: [`batching.md`](batching.md).

The reader read a {r['reader_log_bytes_huge'] / 2**30:.1f} GiB log for the large case; the
writer keeps the real log under 1 MiB by rotation, so that size only happens
with a log written by something else.
"""
open(md_path, "w").write(md)

# Plot: throughput against connections, log-scale x.
W, H, L, B, T, R = 640, 360, 70, 50, 30, 150
top = max(max(r[f"{k}_rps_c{c}"] for k in ("pp", "redis", "pg", "healthz", "nginx")) for c in CONNECTIONS) * 1.1
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
for key, name, colour in (("pp", "pingpong, the file", "#d62728"), ("redis", "Redis INCR, fsync always", "#1f77b4"),
                          ("pg", "pingpong, PostgreSQL", "#2ca02c"), ("healthz", "/healthz (no count)", "#7f7f7f"),
                          ("nginx", "nginx return 200", "#bcbd22")):
    pts = " ".join(f"{xs[c]:.1f},{y(r[f'{key}_rps_c{c}']):.1f}" for c in CONNECTIONS)
    svg.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"/>')
    for c in CONNECTIONS:
        svg.append(f'<circle cx="{xs[c]:.1f}" cy="{y(r[f"{key}_rps_c{c}"]):.1f}" r="3" fill="{colour}"/>')
    ly = T + 20 + {"pp": 0, "redis": 20, "pg": 40, "healthz": 60, "nginx": 80}[key]
    svg.append(f'<line x1="{W - R + 10}" y1="{ly - 4}" x2="{W - R + 30}" y2="{ly - 4}" stroke="{colour}" stroke-width="2"/>')
    svg.append(f'<text x="{W - R + 34}" y="{ly}" font-size="10">{name}</text>')
svg.append("</svg>")
open(svg_path, "w").write("\n".join(svg) + "\n")
print(md)
