//! The `rbt` command.

mod output;

fn main() {}
