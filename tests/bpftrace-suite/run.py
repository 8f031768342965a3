#!/usr/bin/env python3
"""Runs bpftrace 0.17's own runtime test suite (vendored in upstream/) against rbt and bpftrace.

The suite's engine (upstream/runtime/engine) runs `$BPFTRACE_RUNTIME_TEST_EXECUTABLE/bpftrace`; this
driver builds the suite's test programs with gcc as its CMake files do, points that variable at a
directory whose `bpftrace` is the tool under test, runs the engine once per tool, and reports per
test: bpftrace's result, rbt's, and rbt's output where they differ.

It fails (exit 1) when a test listed in rbt-passes.txt fails under rbt twice in a row: a regression.
Tests bpftrace passes and rbt does not are listed with rbt's output, marked when allow.txt says rbt
differs on purpose. `--update` rewrites rbt-passes.txt from this run. See README.md.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
UPSTREAM = os.path.join(HERE, "upstream")
STATUS = re.compile(r"^\[ *(RUN|OK|FAILED|TIMEOUT|SKIP) *\] ?(.*)$")


def sdt_header():
    for path in ("/usr/include/sys/sdt.h", "/usr/include/x86_64-linux-gnu/sys/sdt.h"):
        if os.path.exists(path):
            return True
    return False


def newer(source, target):
    return not os.path.exists(target) or os.path.getmtime(source) > os.path.getmtime(target)


def gcc(args):
    result = subprocess.run(["gcc", "-Wno-undef"] + args, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit("error: gcc %s failed:\n%s" % (" ".join(args), result.stderr))


def build(build_dir):
    """Copies the suite into build_dir and compiles testprogs/ and testlibs/ as bpftrace's CMake does:
    `-g -O0`, programs linked `-no-pie`, libraries shared and not executable."""
    defines = ["-DHAVE_SYSTEMTAP_SYS_SDT_H"] if sdt_header() else []
    runtime = os.path.join(build_dir, "runtime")
    if os.path.exists(runtime):
        shutil.rmtree(runtime)
    shutil.copytree(os.path.join(UPSTREAM, "runtime"), runtime)
    # CMake fills this in; rbt and bpftrace 0.17 from Debian both lack the AOT runtime.
    with open(os.path.join(runtime, "engine", "cmake_vars.py"), "w") as f:
        f.write("LIBBCC_BPF_CONTAINS_RUNTIME = False\n")
    libs = os.path.join(build_dir, "testlibs")
    os.makedirs(libs, exist_ok=True)
    for name in sorted(os.listdir(os.path.join(UPSTREAM, "testlibs"))):
        if not name.endswith(".c"):
            continue
        source = os.path.join(UPSTREAM, "testlibs", name)
        target = os.path.join(libs, "lib%s.so" % name[:-2])
        if newer(source, target):
            gcc(defines + ["-g", "-O0", "-fPIC", "-shared", "-o", target, source])
            os.chmod(target, 0o644)
    progs = os.path.join(build_dir, "testprogs")
    os.makedirs(progs, exist_ok=True)
    for name in sorted(os.listdir(os.path.join(UPSTREAM, "testprogs"))):
        if not name.endswith(".c"):
            continue
        source = os.path.join(UPSTREAM, "testprogs", name)
        target = os.path.join(progs, name[:-2])
        extra = []
        if name == "usdt_lib.c":
            # CMake links it against the usdt_tp test library, found by rpath.
            extra = ["-I", os.path.join(UPSTREAM, "testlibs"), "-L", libs, "-lusdt_tp", "-Wl,-rpath," + libs]
        if newer(source, target):
            gcc(defines + ["-g", "-O0", "-no-pie", "-o", target, source] + extra)


def run_engine(build_dir, tool, path, test_filter, log):
    """Runs the suite's engine with `tool` as bpftrace; returns {test: (status, details)}."""
    bindir = os.path.join(build_dir, "bin-" + tool)
    os.makedirs(bindir, exist_ok=True)
    link = os.path.join(bindir, "bpftrace")
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(os.path.abspath(path), link)
    env = dict(os.environ, BPFTRACE_RUNTIME_TEST_EXECUTABLE=bindir, PYTHONWARNINGS="ignore")
    command = [sys.executable, "runtime/engine/main.py"]
    if test_filter:
        command += ["--filter", test_filter]
    with open(log, "w") as out:
        subprocess.run(command, cwd=build_dir, env=env, stdout=out, stderr=subprocess.STDOUT)
    return parse_log(log)


def parse_log(log):
    """Reads the engine's log: {test: (status, details)}, status being OK, FAILED, TIMEOUT or SKIP."""
    results = {}
    seen = {}
    current = None  # the test whose verdict or details come next

    def unique(name):
        # Three names occur twice in the suite; the second is `NAME (2)`.
        seen[name] = seen.get(name, 0) + 1
        return name if seen[name] == 1 else "%s (%d)" % (name, seen[name])

    with open(log, errors="replace") as lines:
        for line in lines:
            if line.startswith("[==========]") and results:
                break  # the summary that follows repeats what was already read
            if line.startswith("[-") or line.startswith("[="):
                continue
            match = STATUS.match(line.rstrip("\n"))
            if match is None:
                # The engine prints a failure's command, expectation and output after its verdict.
                if current is not None and current in results:
                    status, text = results[current]
                    results[current] = (status, (text + "\n" + line.rstrip("\n")).strip("\n"))
                continue
            status, name = match.groups()
            if status == "RUN":
                current = unique(name)
            elif name and not re.match(r"^\d+ tests", name):
                # A test skipped for its kernel version gets a verdict without a RUN line.
                if current is None or current in results or not current.startswith(name):
                    current = unique(name)
                results[current] = (status, "")
    return results


def read_list(name):
    """Reads a list file: one test per line (`suite.name`, optionally `<TAB># reason`), # comments."""
    entries = {}
    path = os.path.join(HERE, name)
    if not os.path.exists(path):
        return entries
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            test, _, reason = line.partition("\t")
            entries[test.strip()] = reason.lstrip("# ").strip()
    return entries


def write_list(name, header, tests):
    with open(os.path.join(HERE, name), "w") as f:
        f.write(header)
        for test in sorted(tests):
            f.write(test + "\n")


def why(details):
    """The first lines of a failure's details that say something: the engine prints the command,
    the expected regex and the output found."""
    found = [l for l in details.splitlines() if l.strip()]
    text = " | ".join(l.strip() for l in found if not l.strip().startswith("Command:"))
    return text[:300]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rbt", required=True, help="the rbt binary under test")
    parser.add_argument("--bpftrace", default=shutil.which("bpftrace"), help="bpftrace 0.17 (default: from PATH)")
    parser.add_argument("--build-dir", required=True, help="where test programs and logs go")
    parser.add_argument("--filter", help="the engine's fnmatch filter over SUITE.NAME")
    parser.add_argument("--only", choices=["rbt", "bpftrace"], help="run one tool only")
    parser.add_argument("--reuse-logs", action="store_true", help="judge the last run's logs again, running nothing")
    parser.add_argument("--update", action="store_true", help="rewrite rbt-passes.txt from this run")
    args = parser.parse_args()

    if os.geteuid() != 0:
        sys.exit("error: the runtime suite loads BPF programs: run it as root")
    os.makedirs(args.build_dir, exist_ok=True)
    build(args.build_dir)

    results = {}
    started = time.time()
    for tool, path in (("bpftrace", args.bpftrace), ("rbt", args.rbt)):
        if args.only and args.only != tool:
            continue
        if not path or not os.path.exists(path):
            sys.exit("error: no %s to run (%s)" % (tool, path))
        tool_started = time.time()
        log = os.path.join(args.build_dir, tool + ".log")
        if args.reuse_logs:
            results[tool] = parse_log(log)
        else:
            results[tool] = run_engine(args.build_dir, tool, path, args.filter, log)
        print("%s: %d tests in %.0f s (engine log: %s)" % (tool, len(results[tool]), time.time() - tool_started, log))
    rbt = results.get("rbt", {})
    bpftrace = results.get("bpftrace", {})

    # A failure of a test rbt passed before may be the noisy machine: run it once more on its own.
    passes = read_list("rbt-passes.txt")
    for test in sorted(t for t in passes if t in rbt and rbt[t][0] != "OK"):
        again = run_engine(args.build_dir, "rbt", args.rbt, glob_escape(test),
                           os.path.join(args.build_dir, "rerun.log"))
        if test in again and again[test][0] == "OK":
            rbt[test] = ("OK", "passed when run again (failed first: %s)" % why(rbt[test][1]))

    report_and_judge(args, results, rbt, bpftrace, passes, started)


def glob_escape(name):
    return re.sub(r"([\[\]*?])", r"[\1]", name)


def report_and_judge(args, results, rbt, bpftrace, passes, started):
    allow = read_list("allow.txt")
    names = sorted(set(rbt) | set(bpftrace))
    report = os.path.join(args.build_dir, "report.txt")
    with open(report, "w") as f:
        f.write("%-60s %-9s %-9s %s\n" % ("test", "bpftrace", "rbt", "why they differ"))
        for name in names:
            b = bpftrace.get(name, ("-", ""))[0]
            r = rbt.get(name, ("-", ""))[0]
            reason = ""
            if b != r and name in rbt:
                reason = allow.get(name) or why(rbt[name][1])
            f.write("%-60s %-9s %-9s %s\n" % (name, b, r, reason))

    def count(res, status):
        return sum(1 for s, _ in res.values() if s == status)

    total = len(names)
    if bpftrace:
        print("bpftrace 0.17 passes %d of %d (%d skipped)" % (count(bpftrace, "OK"), total, count(bpftrace, "SKIP")))
    if rbt:
        print("rbt passes %d of %d (%d skipped)" % (count(rbt, "OK"), total, count(rbt, "SKIP")))
    print("per-test report: %s (%.0f s in all)" % (report, time.time() - started))

    regressions = sorted(t for t in passes if t in rbt and rbt[t][0] != "OK")
    behind = sorted(t for t in rbt if rbt[t][0] != "OK" and bpftrace.get(t, ("",))[0] == "OK")
    for test in behind:
        tag = "allowed: " + allow[test] if test in allow else why(rbt[test][1])
        print("  bpftrace passes, rbt %s: %s\n      %s" % (rbt[test][0], test, tag))
    if bpftrace and rbt:
        print("bpftrace passes and rbt does not: %d tests (%d of them on the allow-list)"
              % (len(behind), sum(1 for t in behind if t in allow)))
    # An allow-listed test is not required to pass, so it never joins the list of passes.
    newly = sorted(t for t in rbt if rbt[t][0] == "OK" and t not in passes and t not in allow)
    if newly and not args.update:
        print("%d tests pass that rbt-passes.txt does not list yet (run with --update to add them):" % len(newly))
        for test in newly:
            print("  " + test)
    if args.update and not args.filter and rbt:
        write_list("rbt-passes.txt", "# Tests of bpftrace 0.17's runtime suite that rbt passes on the CI machine.\n"
                   "# A test listed here that fails is a regression. Written by `run.py --update`.\n",
                   [t for t in rbt if rbt[t][0] == "OK" and t not in allow])
        print("updated rbt-passes.txt")
    if regressions:
        print("REGRESSIONS: %d tests rbt passed before fail now:" % len(regressions))
        for test in regressions:
            print("  %s: %s\n      %s" % (test, rbt[test][0], why(rbt[test][1])))
    sys.exit(1 if regressions else 0)


if __name__ == "__main__":
    main()
