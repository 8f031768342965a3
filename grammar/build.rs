fn main() {
    lalrpop::process_root().expect("lalrpop grammar failed to build");
}
