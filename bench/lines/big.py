#!/usr/bin/env python3
"""Writes a C file for bench/line_listing.sh: `big`, one function of about 1,000 source lines
(each a statement on its own line, locals in and out of scope as blocks open and close), in a
binary made large by FUNCS other functions of 30 lines each. Usage: big.py FUNCS > big.c"""
import sys

funcs = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
out = ["#include <stdio.h>", "#include <stdlib.h>", ""]
for f in range(funcs):
    out.append(f"__attribute__((noinline)) long other{f}(long a, long b) {{")
    out.append("    long acc = a;")
    for i in range(28):
        out.append(f"    acc = acc * {i + 3} + (b ^ {f + i});")
    out.append("    return acc;")
    out.append("}")
out.append("__attribute__((noinline)) long big(long n, volatile long *sink) {")
out.append("    long total = 0;")
for block in range(100):
    out.append(f"    for (long i{block} = 0; i{block} < n; i{block}++) {{")
    out.append(f"        long v{block} = i{block} * {block + 1};")
    for k in range(7):
        out.append(f"        total += v{block} ^ {k};")
    out.append(f"        *sink = total;")
    out.append("    }")
out.append("    return total;")
out.append("}")
out.append("int main(int argc, char **argv) {")
out.append("    volatile long sink = 0;")
out.append("    long n = argc > 1 ? atol(argv[1]) : 1, s = big(n, &sink);")
for f in range(funcs):
    out.append(f"    s += other{f}(n, s);")
out.append('    printf("%ld\\n", s);')
out.append("    return 0;")
out.append("}")
print("\n".join(out))
