//! Generates the parser from `src/parser.lalrpop` at build time.
fn main() {
    lalrpop::process_root().expect("lalrpop grammar failed to build");
}
