# The target of tests/unwind_python.rs: Python recursion, every other level called back from C
# (`map` calls `descend`, so the interpreter is re-entered and the C stack holds one
# `_PyEval_EvalFrameDefault` frame per such level), then the leaf's work: sleeping in a loop
# (`sleep ROUNDS`) or spinning on the CPU (`spin SECONDS`: after printing `ready`, waits for a
# line on stdin, then spins for that much CPU time, so that a loaded machine gives as many
# profile samples).
import sys
import time

DEPTH = 12


def sleep(rounds):
    for _ in range(rounds):
        time.sleep(0.005)
    return 0


def spin(seconds):
    deadline = time.process_time() + seconds
    total = 0
    while time.process_time() < deadline:
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
        sys.stdin.readline()
        descend(DEPTH, spin, float(amount))
    else:
        descend(DEPTH, sleep, int(amount))


main()
