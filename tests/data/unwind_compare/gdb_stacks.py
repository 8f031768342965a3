# gdb's side of tests/unwind_compare.rs: a breakpoint at the first instruction of a function
# (where rbt's uprobe fires) prints the whole stack and continues. The tag is the first argument. One block per stop:
#   stack TAG
#   PC START NAME      (one line per frame, innermost first; START is the function's start)
#   end
# Inlined frames are left out (they share their caller's pc; rbt's perf mode marks them). A
# frame's function is looked up at its pc where that is exact (the innermost frame, a signal
# trampoline, a frame a signal interrupted) and at pc - 1 for a return address, as gdb does.
import re

import gdb

SYMBOL = re.compile(r"^(\S+)(?: \+ (\d+))? in section ")


def function_at(address):
    """The function containing `address`: (start, name), or (None, "??") without a symbol."""
    found = SYMBOL.match(gdb.execute("info symbol 0x%x" % address, to_string=True))
    if not found:
        return None, "??"
    return address - int(found.group(2) or 0), found.group(1)


class Stop(gdb.Breakpoint):
    def stop(self):
        tag = int(gdb.parse_and_eval("$rdi"))
        lines = ["stack %d" % tag]
        frame = gdb.newest_frame()
        exact = True
        while frame is not None:
            kind = frame.type()
            if kind != gdb.INLINE_FRAME:
                pc = frame.pc()
                trampoline = kind == gdb.SIGTRAMP_FRAME
                start, name = function_at(pc if exact or trampoline else pc - 1)
                lines.append("%x %s %s" % (pc, "-" if start is None else "%x" % start, name))
                exact = trampoline
            frame = frame.older()
        print("\n".join(lines) + "\nend", flush=True)
        return False


gdb.execute("set pagination off")
gdb.execute("set confirm off")
gdb.execute("set debuginfod enabled off")
gdb.execute("set backtrace past-main on")
gdb.execute("set disable-randomization on")
gdb.execute("handle SIGALRM nostop noprint pass")
gdb.execute("handle SIGSEGV nostop noprint pass")
# `$stop_at` names the function (`probe_point` by default); where it is in a library, `$start_at`
# names a function of the executable to stop at first, once the libraries are loaded.
stop_at = gdb.convenience_variable("stop_at")
start_at = gdb.convenience_variable("start_at")
if start_at is None:
    Stop("*" + (stop_at.string() if stop_at is not None else "probe_point"))
    gdb.execute("run")
else:
    gdb.Breakpoint("*" + start_at.string(), temporary=True)
    gdb.execute("run")
    Stop("*" + stop_at.string())
    gdb.execute("continue")
