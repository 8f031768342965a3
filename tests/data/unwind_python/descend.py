# The target of tests/unwind_python.rs: Python recursion, every other level called back from C
# (`map` calls `descend`, so the interpreter is re-entered and the C stack holds one
# `_PyEval_EvalFrameDefault` frame per such level), then the leaf's work: sleeping in a loop
# (`sleep ROUNDS`) or spinning on the CPU for a time (`spin SECONDS`, after printing `ready`).
import sys
import time

DEPTH = 12


def sleep(rounds):
    for _ in range(rounds):
        time.sleep(0.005)
    return 0


def spin(seconds):
    deadline = time.monotonic() + seconds
    total = 0
    while time.monotonic() < deadline:
        for i in range(10000):
            total += i * i % 7
    return total


def descend(depth, work, amount):
    if depth == 0:
        return work(amount)
    if depth % 2:
        return sum(map(lambda d: descend(d, work, amount), [depth - 1]))
    return descend(depth - 1, work, amount)


def main():
    mode, amount = sys.argv[1], sys.argv[2]
    if mode == "spin":
        print("ready", flush=True)
        descend(DEPTH, spin, float(amount))
    else:
        descend(DEPTH, sleep, int(amount))


main()
