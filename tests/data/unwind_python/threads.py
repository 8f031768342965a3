# Two threads that wait off the CPU (tests/unwind_python.rs): one sleeps in a loop, one writes
# and fsyncs a file in the directory given, for 0.8 s, for offcputime to show both whole.
import os
import sys
import threading
import time

# A moment of start-up first, as a daemon has before its work: rbt loads the process's unwind
# tables when it first sees it, and on a loaded machine that takes a while.
time.sleep(0.3)
END = time.monotonic() + 0.8

def sleeper():
    while time.monotonic() < END:
        time.sleep(0.01)

def writer(path):
    with open(path, "wb") as f:
        while time.monotonic() < END:
            f.write(b"x" * 65536)
            f.flush()
            os.fsync(f.fileno())

threads = [threading.Thread(target=sleeper), threading.Thread(target=writer, args=(os.path.join(sys.argv[1], "data"),))]
for t in threads:
    t.start()
for t in threads:
    t.join()
