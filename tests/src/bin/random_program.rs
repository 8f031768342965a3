//! Prints the random program `tests/verifier_fuzz.rs` generates for a seed, to reproduce and
//! minimize a failure: `cargo run -p tests --bin rbt-random-program -- SEED`.

fn main() {
    let Some(seed) = std::env::args().nth(1).and_then(|s| s.parse::<u64>().ok()) else {
        eprintln!("usage: rbt-random-program SEED");
        std::process::exit(2);
    };
    print!("{}", tests::random_program::program(seed));
}
