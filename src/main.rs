//! The `meshrl` command: parse, run, print the whole error chain, exit 2 on any error.

mod cli;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    if let Err(err) = cli::run(cli) {
        eprintln!("error: {err:#}");
        std::process::exit(2);
    }
}
