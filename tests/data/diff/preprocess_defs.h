// Macros for preprocess_include.rbt.
#define GREETING "hello"
#define ANSWER 2 * 21
