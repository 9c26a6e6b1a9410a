"""Why pingpong makes a new temp file for every increment: the two ways of
recycling it instead are about twice as fast, and readers that do not take the
lock then see the count go back now and then.

For each protocol it times one durable increment (median of COST_ROUNDS) and
then, for READ_SECONDS, lets a writer process increment as fast as it can
(without fsyncs, which only slow it) while this process opens and reads the
counter in a loop, like `cat` would, and counts the reads that show a smaller
value than the read before. It tries:

  classic   write a new temp file, fdatasync, rename it over the counter,
            fsync the directory (what pingpong does)
  exchange  overwrite the temp file in place, fdatasync, swap it with the
            counter by renameat2(RENAME_EXCHANGE), fsync the directory
  link      overwrite a spare in place, fdatasync, hard-link the counter to
            the other spare name, rename the spare over the counter, fsync
            the directory (the old counter stays alive as the next spare)

Usage: python3 bench/recycling.py DIR RESULTS.tsv
(appends recycle_<protocol>_{us,reads,back} rows)
"""

import ctypes
import multiprocessing
import os
import statistics
import sys
import time

COST_ROUNDS = 400
READ_SECONDS = 3
RENAME_EXCHANGE = 2
AT_FDCWD = -100
libc = ctypes.CDLL(None, use_errno=True)


def renameat2(old, new, flags):
    if libc.renameat2(AT_FDCWD, old.encode(), AT_FDCWD, new.encode(), flags) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno), old)


class Counter:
    def __init__(self, directory, protocol):
        self.dir = os.path.join(directory, protocol)
        os.makedirs(self.dir, exist_ok=True)
        self.path = os.path.join(self.dir, "counter.txt")
        self.spares = [self.path + ".tmp", self.path + ".tmp2"]
        self.step = getattr(self, protocol)
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        for path in (self.path, self.spares[0]):
            with open(path, "w") as f:
                f.write("1000000\n")
                f.flush()
                os.fsync(f.fileno())
        self.dir_fd = os.open(self.dir, os.O_RDONLY)
        os.fsync(self.dir_fd)
        self.turn = 0

    def overwrite(self, path, value, sync):
        fd = os.open(path, os.O_WRONLY)
        os.pwrite(fd, b"%d\n" % value, 0)
        if sync:
            os.fdatasync(fd)
        os.close(fd)

    def classic(self, value, sync):
        fd = os.open(self.spares[0], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, b"%d\n" % value)
        if sync:
            os.fdatasync(fd)
        os.close(fd)
        os.rename(self.spares[0], self.path)

    def exchange(self, value, sync):
        self.overwrite(self.spares[0], value, sync)
        renameat2(self.spares[0], self.path, RENAME_EXCHANGE)

    def link(self, value, sync):
        spare, other = self.spares[self.turn], self.spares[1 - self.turn]
        self.overwrite(spare, value, sync)
        os.link(self.path, other)
        os.rename(spare, self.path)
        self.turn = 1 - self.turn

    def increment(self, value, sync=True):
        self.step(value, sync)
        if sync:
            os.fsync(self.dir_fd)


def spin(directory, protocol, ready, stop):
    counter, value = Counter(directory, protocol), 1000000
    ready.set()
    while not stop.is_set():
        value += 1
        counter.increment(value, sync=False)


def main():
    directory, results = sys.argv[1], sys.argv[2]
    rows = []
    for protocol in ("classic", "exchange", "link"):
        counter = Counter(directory, protocol)
        times = []
        for i in range(COST_ROUNDS):
            t0 = time.perf_counter()
            counter.increment(1000001 + i)
            times.append((time.perf_counter() - t0) * 1e6)
        ready, stop = multiprocessing.Event(), multiprocessing.Event()
        writer = multiprocessing.Process(target=spin, args=(directory, protocol, ready, stop))
        writer.start()
        ready.wait()
        reads = back = last = 0
        deadline = time.monotonic() + READ_SECONDS
        while time.monotonic() < deadline:
            try:
                with open(counter.path, "rb") as f:
                    value = int(f.read())
            except FileNotFoundError:
                continue
            reads += 1
            back += value < last
            last = value
        stop.set()
        writer.join()
        rows += [(f"recycle_{protocol}_us", f"{statistics.median(times):.0f}"),
                 (f"recycle_{protocol}_reads", reads), (f"recycle_{protocol}_back", back)]
        print(f"{protocol:9s} increment {statistics.median(times):6.0f} us, {back} of {reads} reads went back")
    with open(results, "a") as out:
        out.writelines(f"{k}\t{v}\n" for k, v in rows)


if __name__ == "__main__":
    main()
