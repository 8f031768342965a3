/* A program whose functions take arguments of the kinds bpftrace 0.17 reads through DWARF
 * (a uprobe's `args->NAME`, casts to the program's own structs): integers of every width,
 * an enum, a typedef, pointers to a struct holding a char array, a two-dimensional array and a
 * nested struct, to one with bitfields and an anonymous union, and to a self-referential list. Each function is
 * called once, with the values the tests expect. Built with `gcc -g -O0` by the tests
 * (tests::dwarf_target, catalog's dwarf tests). */
#include <stddef.h>

struct Point {
  int x;
  int y;
};

enum Color { RED, GREEN = 5, BLUE };

typedef unsigned long counter_t;

struct Sample {
  int id;
  char name[12];
  short grid[2][3];
  struct Point where;
  struct Point *next;
  enum Color color;
  counter_t count;
  const char *label;
};

/* bpftrace 0.17 reads no member of a struct with bitfields from DWARF; rbt reads them all. */
struct Flags {
  int id;
  unsigned int flag : 1;
  unsigned int level : 3;
  union {
    int as_int;
    unsigned char bytes[4];
  };
};

struct List {
  int value;
  struct List *next;
};

/* Declared only here; no unit of this program defines it. */
struct Opaque;

__attribute__((noinline)) int take_scalars(int a, char c, unsigned short s, long l, counter_t n,
                                           enum Color color)
{
  return a + c + s + (int)l + (int)n + (int)color;
}

__attribute__((noinline)) int take_sample(struct Sample *sample, const char *label)
{
  return sample->id + (label != NULL);
}

__attribute__((noinline)) int take_flags(struct Flags *flags)
{
  return flags->level;
}

__attribute__((noinline)) int take_list(struct List *list)
{
  int sum = 0;
  for (; list != NULL; list = list->next)
    sum += list->value;
  return sum;
}

__attribute__((noinline)) int take_point(struct Point p, struct Opaque *o)
{
  return p.x + (o != NULL);
}

__attribute__((noinline)) long take_many(long a1, long a2, long a3, long a4, long a5, long a6,
                                         long a7)
{
  return a1 + a2 + a3 + a4 + a5 + a6 + a7;
}

int main(void)
{
  /* On the stack, so the strings' pages are present when the probes read them. */
  char label[] = "labelled";
  char argument[] = "argument";
  struct Point next = { .x = 7, .y = 8 };
  struct Sample sample = {
    .id = 42,
    .name = "sample",
    .grid = { { 1, 2, 3 }, { -4, -5, -6 } },
    .where = { .x = 3, .y = -9 },
    .next = &next,
    .color = BLUE,
    .count = 123456789,
    .label = label,
  };
  struct Flags flags = { .id = 9, .flag = 1, .level = 5, .as_int = 0x44434241 };
  struct List third = { .value = 3, .next = NULL };
  struct List second = { .value = 2, .next = &third };
  struct List first = { .value = 1, .next = &second };
  int total = take_scalars(-17, 'q', 65535, -5000000000L, 18000000000UL, GREEN);
  total += take_sample(&sample, argument);
  total += take_flags(&flags);
  total += take_list(&first);
  total += take_point(next, NULL);
  total += (int)take_many(1, 2, 3, 4, 5, 6, 7);
  return total == 0;
}
