"""Times each step of one durable counter increment, as pingpong does it, and
one Redis-style append + fdatasync, on the directory given.

Usage: python3 bench/syscalls.py DIR RESULTS.tsv   (appends syscall_* rows, microseconds, median of 300)
"""

import os
import statistics
import sys
import time

directory, results = sys.argv[1], sys.argv[2]
os.makedirs(directory, exist_ok=True)
counter, tmp = os.path.join(directory, "counter.txt"), os.path.join(directory, "counter.txt.tmp")
with open(counter, "w") as f:
    f.write("0\n")
dir_fd = os.open(directory, os.O_RDONLY)
steps = {"create_write": [], "fdatasync_new_file": [], "rename_over_old": [], "fsync_dir": [], "append_fdatasync": []}
log_fd = os.open(os.path.join(directory, "append.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
for i in range(300):
    t0 = time.perf_counter()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.write(fd, b"%d\n" % i)
    t1 = time.perf_counter()
    os.fdatasync(fd)
    os.close(fd)
    t2 = time.perf_counter()
    os.rename(tmp, counter)
    t3 = time.perf_counter()
    os.fsync(dir_fd)
    t4 = time.perf_counter()
    os.write(log_fd, b"*3\r\n$3\r\nSET\r\n$7\r\ncounter\r\n$4\r\n%4d\r\n" % (i % 10000))
    os.fdatasync(log_fd)
    t5 = time.perf_counter()
    for name, a, b in (("create_write", t0, t1), ("fdatasync_new_file", t1, t2), ("rename_over_old", t2, t3),
                       ("fsync_dir", t3, t4), ("append_fdatasync", t4, t5)):
        steps[name].append((b - a) * 1e6)
with open(results, "a") as out:
    for name, times in steps.items():
        out.write(f"syscall_{name}\t{statistics.median(times):.0f}\n")
