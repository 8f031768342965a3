# The Python target of tests/unwind_compare.rs: a warm-up sleep (rbt loads the process's tables
# when it first sees it), then sleeps at the bottom of a recursion whose every third level is
# called back from C (`map`, `sorted`'s key function), so the interpreter is re-entered.
import time

time.sleep(0.8)


def nap(rounds):
    for _ in range(rounds):
        time.sleep(0.002)
    return 0


def descend(depth):
    if depth == 0:
        return nap(5)
    if depth % 3 == 1:
        return sum(map(descend, [depth - 1]))
    if depth % 3 == 2:
        return sorted([depth - 1], key=descend)[0]
    return descend(depth - 1)


for depth in range(12):
    descend(depth)
