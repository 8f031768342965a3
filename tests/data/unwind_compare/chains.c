/* The target of tests/unwind_compare.rs: call chains that each stop at `probe_point`, where
 * rbt's uprobe and gdb's breakpoint take the same stack. Built with -O2 -fomit-frame-pointer, so
 * only CFI unwinds it. Every call here is followed by more work so that it is not a tail call
 * (a tail call drops its caller's frame for both unwinders alike, which would test nothing).
 * The chains: recursion of varying depth (one function with a variable-length array, whose CFA
 * is rbp-based), calls through a function pointer, libc's qsort calling our comparator (libc's
 * frames between ours), a SIGALRM handler on a stack interrupted in nanosleep, and SIGSEGV
 * handlers for faults inside hand-written functions whose CFA changes at the faulting
 * instruction (the interrupted pc is exact, not a return address). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

volatile long sink;

__attribute__((noinline)) void probe_point(long tag) {
    sink += tag;
    __asm__ volatile("" ::: "memory");
}

/* Alternates between a plain frame and one with a VLA, by depth. */
__attribute__((noinline)) long recurse_vla(int depth, long tag);

__attribute__((noinline)) long recurse(int depth, long tag) {
    if (depth == 0) {
        probe_point(tag);
        return sink;
    }
    long r = recurse_vla(depth - 1, tag);
    sink += r;
    return r + 1;
}

__attribute__((noinline)) long recurse_vla(int depth, long tag) {
    volatile char pad[16 + (depth & 7) * 8];
    pad[0] = (char)depth;
    long r = depth == 0 ? (probe_point(tag), sink) : recurse(depth - 1, tag);
    sink += pad[0];
    return r + 2;
}

__attribute__((noinline)) long op_add(long x) {
    probe_point(x);
    sink += 3;
    return x + 1;
}

__attribute__((noinline)) long op_mul(long x) {
    long r = recurse(3, x);
    sink += r;
    return x * 2;
}

long (*volatile ops[2])(long) = {op_add, op_mul};

__attribute__((noinline)) long through_pointer(int which, long tag) {
    long r = ops[which & 1](tag);
    sink += r;
    return r;
}

static long compare_calls;

__attribute__((noinline)) int compare_ints(const void *a, const void *b) {
    probe_point(4000 + compare_calls++);
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

__attribute__((noinline)) void sort_numbers(int n) {
    int values[64];
    for (int i = 0; i < n; i++)
        values[i] = (i * 37 + 11) % 61;
    qsort(values, n, sizeof values[0], compare_ints);
    sink += values[0];
}

__attribute__((noinline)) void alarm_work(int sig) {
    probe_point(5000 + sig);
    sink += 1;
}

void on_alarm(int sig) {
    alarm_work(sig);
    sink += 2;
}

__attribute__((noinline)) void sleep_until_alarm(void) {
    struct itimerval timer = {.it_value = {.tv_usec = 20000}};
    setitimer(ITIMER_REAL, &timer, NULL);
    struct timespec nap = {.tv_sec = 5};
    nanosleep(&nap, NULL); /* interrupted by SIGALRM */
    sink += 1;
}

static sigjmp_buf recover;

__attribute__((noinline)) void fault_work(int sig) {
    probe_point(6000 + sig);
    sink += 1;
}

void on_fault(int sig) {
    fault_work(sig);
    siglongjmp(recover, 1);
}

/* Faults at the instruction after a push: its CFA is rsp + 16 where the byte before has rsp + 8. */
void fault_after_push(void);
/* Faults after the stack pointer moved down by 40 bytes. */
void fault_after_sub(void);
__asm__(".text\n"
        ".globl fault_after_push\n"
        ".type fault_after_push, @function\n"
        "fault_after_push:\n"
        ".cfi_startproc\n"
        "    push %rbx\n"
        ".cfi_adjust_cfa_offset 8\n"
        ".cfi_rel_offset %rbx, 0\n"
        "    movl $0, 0\n"
        "    pop %rbx\n"
        ".cfi_adjust_cfa_offset -8\n"
        ".cfi_restore %rbx\n"
        "    ret\n"
        ".cfi_endproc\n"
        ".size fault_after_push, .-fault_after_push\n"
        ".globl fault_after_sub\n"
        ".type fault_after_sub, @function\n"
        "fault_after_sub:\n"
        ".cfi_startproc\n"
        "    sub $40, %rsp\n"
        ".cfi_adjust_cfa_offset 40\n"
        "    movl $0, 0\n"
        "    add $40, %rsp\n"
        ".cfi_adjust_cfa_offset -40\n"
        "    ret\n"
        ".cfi_endproc\n"
        ".size fault_after_sub, .-fault_after_sub\n");

__attribute__((noinline)) void fault_in(void (*target)(void)) {
    if (sigsetjmp(recover, 1) == 0)
        target();
    sink += 1;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 1;
    signal(SIGALRM, on_alarm);
    signal(SIGSEGV, on_fault);
    /* The first stack rbt sees of a process is taken before its unwind tables are loaded: a
     * warm-up stop (tag 0), then time for rbt to load them. */
    probe_point(0);
    usleep(300000);
    for (int round = 0; round < rounds; round++) {
        for (int depth = 0; depth < 12; depth++)
            sink += recurse(depth, 1000 + depth);
        for (int i = 0; i < 4; i++)
            sink += through_pointer(i, 2000 + i);
        compare_calls = 0;
        sort_numbers(24);
        sleep_until_alarm();
        fault_in(fault_after_push);
        fault_in(fault_after_sub);
    }
    probe_point(9999);
    return 0;
}
