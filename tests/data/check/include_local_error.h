// Included by include_local_error.rbt: a macro, and a probe with a type error.
#define LIMIT 10

END
{
  @x = "a" + 1;
}
