//! The `meshrl` command: parse, run, print the whole error chain, exit 2 on any error.

use clap::Parser;

fn main() {
    let cli = meshrl::cli::Cli::parse();
    if let Err(err) = meshrl::cli::run(cli) {
        eprintln!("error: {err:#}");
        std::process::exit(2);
    }
}
