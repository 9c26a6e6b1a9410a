"""Where a server's CPU goes per request: runs one load against it and
appends to the results, per thread group, the CPU time (user + system, from
/proc/PID/task/*/stat) divided by the requests the load made.

Usage: python3 bench/cpu.py RESULTS KEY PID REQUESTS -- LOAD-COMMAND...
  REQUESTS: a number (the load's own, redis-benchmark -n), or `wrk` to read
  it from wrk's "N requests in" line.
Appends KEY_http (the tokio runtime's threads), KEY_commit (pingpong's
commit thread), KEY_total (every thread of PID), in microseconds per request,
and KEY_rps. Standard library only.
"""

import os
import re
import subprocess
import sys
import time

results, key, pid, requests = sys.argv[1:5]
command = sys.argv[sys.argv.index("--") + 1:]
TICK = os.sysconf("SC_CLK_TCK")
GROUPS = {"tokio-rt-worker": "http", "counter-commit": "commit"}


def ticks():
    """CPU ticks by thread group, summed over the threads alive now."""
    by = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            comm = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
            # The fields after the command name, which may hold spaces.
            fields = open(f"/proc/{pid}/task/{tid}/stat").read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue  # the thread ended meanwhile
        group = GROUPS.get(comm, "other")
        by[group] = by.get(group, 0) + int(fields[11]) + int(fields[12])
    return by


before, start = ticks(), time.perf_counter()
out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
elapsed, after = time.perf_counter() - start, ticks()
n = int(re.search(r"(\d+) requests in", out).group(1)) if requests == "wrk" else int(requests)
used = {g: after.get(g, 0) - before.get(g, 0) for g in set(before) | set(after)}
per_request = lambda t: t / TICK * 1e6 / n  # noqa: E731
with open(results, "a") as r:
    for group in ("http", "commit"):
        r.write(f"{key}_{group}\t{per_request(used.get(group, 0)):.2f}\n")
    r.write(f"{key}_total\t{per_request(sum(used.values())):.2f}\n")
    r.write(f"{key}_rps\t{n / elapsed:.0f}\n")
