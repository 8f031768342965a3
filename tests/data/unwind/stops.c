/* Stacks the unwinder cannot finish, for the marker frames that end them (tests/unwind.rs).
 * `stops cfi N`: getppid under odd(), whose CFI puts the CFA in r12, which rbt's tables cannot
 * express (a STOP row). `stops bare N`: getppid under bare(), which has no CFI at all and
 * leaves rbp below the stack pointer, so there is no frame pointer to walk either. N rounds,
 * 2 ms apart. Built with -O2 -fomit-frame-pointer. */
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

__attribute__((noinline, used)) void leaf(void) {
    syscall(SYS_getppid);
    __asm__ volatile("" ::: "memory");
}

void odd(void);
void bare(void);

__asm__(
    ".text\n"
    ".globl odd\n"
    ".type odd, @function\n"
    "odd:\n"
    ".cfi_startproc\n"
    "    push %r12\n"
    ".cfi_adjust_cfa_offset 8\n"
    ".cfi_offset r12, -16\n"
    "    mov %rsp, %r12\n"
    ".cfi_def_cfa_register r12\n"
    "    call leaf\n"
    "    mov %r12, %rsp\n"
    ".cfi_def_cfa_register rsp\n"
    "    pop %r12\n"
    ".cfi_adjust_cfa_offset -8\n"
    "    ret\n"
    ".cfi_endproc\n"
    ".size odd, .-odd\n"
    /* No CFI: the table has a gap here, and rbp (callee-saved, so leaf and libc keep it)
     * points below the stack pointer. */
    ".globl bare\n"
    ".type bare, @function\n"
    "bare:\n"
    "    push %rbp\n"
    "    lea -64(%rsp), %rbp\n"
    "    call leaf\n"
    "    pop %rbp\n"
    "    ret\n"
    ".size bare, .-bare\n");

int main(int argc, char **argv) {
    int rounds = argc > 2 ? atoi(argv[2]) : 10;
    int use_cfi = argc > 1 && strcmp(argv[1], "cfi") == 0;
    struct timespec nap = {0, 2 * 1000 * 1000};
    for (int i = 0; i < rounds; i++) {
        if (use_cfi)
            odd();
        else
            bare();
        nanosleep(&nap, NULL);
    }
    return 0;
}
