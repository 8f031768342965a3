// Read with --include before preprocess_include.rbt.
#define PRELUDE 7
