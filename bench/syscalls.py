"""Times one durable counter increment each way, alone, on the directory given:
in place (what pingpong does: pread, pwrite the 21-byte record at offset 0,
fdatasync), replace-by-rename (what it does for a file that is not a record:
temp file, fdatasync, rename, directory fsync), and what Redis does with
`appendfsync always` (append to a log, fdatasync).

Usage: python3 bench/syscalls.py DIR RESULTS.tsv
(appends syscall_* rows: microseconds, median of 300, with p99 rows)
"""

import os
import statistics
import sys
import time

directory, results = sys.argv[1], sys.argv[2]
os.makedirs(directory, exist_ok=True)
counter, tmp = os.path.join(directory, "counter.txt"), os.path.join(directory, "counter.txt.tmp")


def record(value):
    return b"%-20d\n" % value


with open(counter, "wb") as f:
    f.write(record(0))
dir_fd = os.open(directory, os.O_RDONLY)
fd = os.open(counter, os.O_RDWR)
log_fd = os.open(os.path.join(directory, "append.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
times = {"inplace": [], "replace": [], "append_fdatasync": []}
for i in range(300):
    t0 = time.perf_counter()
    value = int(os.pread(fd, 64, 0)) + 1
    os.pwrite(fd, record(value), 0)
    os.fdatasync(fd)
    t1 = time.perf_counter()
    out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.write(out, record(value))
    os.fdatasync(out)
    os.close(out)
    os.rename(tmp, counter + ".replaced")
    os.fsync(dir_fd)
    t2 = time.perf_counter()
    os.write(log_fd, b"*2\r\n$4\r\nINCR\r\n$7\r\ncounter\r\n")
    os.fdatasync(log_fd)
    t3 = time.perf_counter()
    for name, a, b in (("inplace", t0, t1), ("replace", t1, t2), ("append_fdatasync", t2, t3)):
        times[name].append((b - a) * 1e6)
with open(results, "a") as out:
    for name, values in times.items():
        values.sort()
        out.write(f"syscall_{name}\t{statistics.median(values):.0f}\n")
        out.write(f"syscall_{name}_p99\t{values[int(len(values) * 0.99) - 1]:.0f}\n")
