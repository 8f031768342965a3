#!/usr/bin/env python3
"""REPL benchmarks (not a test): drives `rbt` in a pseudo-terminal as a user would.

1. Enter to attached: type a one-tracepoint entry, press Enter, and time until rbt prints
   `Attached 1 probe`. Median of N entries (each detached before the next).
2. Keystroke echo under load: while a probe prints about 100,000 lines per second (the workload
   makes 10,000 getppid calls every 100 ms), type single characters and time until each one is
   echoed. Median and worst of N keystrokes; also the lines per second actually printed.

Usage, as root: bench/repl.py [N]   (default 15). Prints Markdown rows for BENCHMARKS.md.
"""

import os
import pty
import select
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RBT = os.path.join(ROOT, "target/release/rbt")
WORKLOAD = os.path.join(ROOT, "target/release/rbt-workload")


class Pty:
    def __init__(self, argv):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.environ["XDG_STATE_HOME"] = "/tmp/rbt-bench-state"
            os.execv(argv[0], argv)
        # Output not yet matched by wait_for.
        self.seen = b""
        self.total = 0
        self.lines = 0

    def read(self, timeout):
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return b""
        try:
            data = os.read(self.fd, 1 << 16)
        except OSError:
            return b""
        self.total += len(data)
        self.lines += data.count(b"\n")
        # Keep only a tail: the flood would otherwise grow without bound.
        self.seen = (self.seen + data)[-65536:]
        return data

    def wait_for(self, needle, timeout=10.0):
        """Seconds until `needle` appears in the output not matched yet; consumes through it."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            at = self.seen.find(needle)
            if at >= 0:
                self.seen = self.seen[at + len(needle):]
                return time.monotonic() - start
            self.read(0.01)
        raise TimeoutError(f"no {needle!r} after {timeout} s; last output: {self.seen[-300:]!r}")

    def send(self, text):
        os.write(self.fd, text.encode())

    def drain(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.read(0.01)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "runtime", "-p", "tests"], cwd=ROOT, check=True)
    repl = Pty([RBT])
    repl.wait_for(b"rbt> ")

    # 1. Enter to attached.
    times = []
    for i in range(n):
        entry = f"tracepoint:syscalls:sys_enter_getppid /pid == {100000 + i}/ {{ @e{i} = count(); }}"
        repl.send(entry)
        repl.drain(0.05)
        repl.seen = b""
        start = time.monotonic()
        repl.send("\r")
        repl.wait_for(b"Attached 1 probe")
        times.append(time.monotonic() - start)
        repl.wait_for(b"rbt> ")
        repl.send(":detach all\r")
        repl.wait_for(b"rbt> ")
    enter_ms = statistics.median(times) * 1000
    print(f"enter to attached: {[round(t * 1000, 1) for t in times]}", file=sys.stderr)

    # 2. Keystroke echo while a probe prints ~100,000 lines a second.
    repl.send('tracepoint:syscalls:sys_enter_getppid /comm == "rbt-workload"/ { printf("%d\\n", tid); }\r')
    repl.wait_for(b"Attached 1 probe")
    steps = ["getppid", "13000", "nap", "100000", "1"] * 60
    load = subprocess.Popen([WORKLOAD] + steps)
    repl.drain(0.5)
    echoes = []
    before = repl.lines
    flood_start = time.monotonic()
    for _ in range(n):
        start = time.monotonic()
        repl.send("Q")
        # The echo is the only Q in the output: printed lines hold digits only.
        while True:
            data = repl.read(0.005)
            if b"Q" in data:
                echoes.append(time.monotonic() - start)
                break
            if time.monotonic() - start > 5:
                echoes.append(5.0)
                break
        repl.drain(0.1)
        repl.send("\x7f")  # backspace
        repl.drain(0.1)
    print(f"echo: {[round(t * 1000, 1) for t in echoes]}", file=sys.stderr)
    seconds = time.monotonic() - flood_start
    printed = (repl.lines - before) / seconds
    load.kill()
    load.wait()
    repl.send("\x03")
    # Typed-ahead input after Ctrl-C is dropped with the interrupted line: let it finish first.
    repl.drain(0.5)
    repl.send(":quit\r")
    # Keep reading until rbt exits: its last output must not block on a full terminal.
    while os.waitpid(repl.pid, os.WNOHANG) == (0, 0):
        repl.drain(0.1)

    print("| measure | rbt (median) | target |")
    print("|---|---|---|")
    print(f"| REPL: Enter to attached, one tracepoint (median of {n}) | {enter_ms:.1f} ms | 50 ms |")
    print(f"| REPL: keystroke echo while printing (median of {n}) | {statistics.median(echoes) * 1000:.1f} ms | 20 ms |")
    print(f"| REPL: keystroke echo while printing (worst of {n}) | {max(echoes) * 1000:.1f} ms | |")
    print(f"| REPL: lines printed per second during the echo test | {printed:,.0f} | 100,000 |")


if __name__ == "__main__":
    main()
