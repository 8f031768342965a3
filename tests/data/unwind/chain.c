/* A call chain five deep, built by tests/tests/unwind.rs with -O2 -fomit-frame-pointer, that
 * ends in a nanosleep, a malloc and a raw syscall, ROUNDS times (argv[1]). The empty asm after
 * each call keeps gcc from turning it into a tail call, which would drop the caller's frame. */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

/* Where each round's allocation is kept until the next round frees it: an allocation that is
 * freed at once gcc removes altogether. */
void *volatile kept;

__attribute__((noinline)) void level5(void) {
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
    free(kept);
    kept = malloc(4096);
    syscall(SYS_getppid);
    __asm__ volatile("");
}
__attribute__((noinline)) void level4(void) { level5(); __asm__ volatile(""); }
__attribute__((noinline)) void level3(void) { level4(); __asm__ volatile(""); }
__attribute__((noinline)) void level2(void) { level3(); __asm__ volatile(""); }
__attribute__((noinline)) void level1(void) { level2(); __asm__ volatile(""); }

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 20;
    for (int i = 0; i < rounds; i++)
        level1();
    return 0;
}
