//! `meshrl mesh`: service graphs in Isotope's format (the library's [`meshrl::mesh`]).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};

use meshrl::mesh::generate::{Fanout, TreeSpec};

#[derive(Subcommand, Debug)]
pub enum MeshCommand {
    /// Write a tree of services as an Isotope topology (e.g. topologies/tree100.yaml).
    Tree(TreeArgs),
}

#[derive(Args, Debug)]
pub struct TreeArgs {
    /// Services in all, the entry included.
    #[arg(long, default_value_t = 100)]
    pub services: usize,
    /// Services each inner service calls.
    #[arg(long, default_value_t = 3, conflicts_with = "heavy_tail")]
    pub fanout: usize,
    /// A heavy-tailed fan-out instead: P(k) proportional to k^-ALPHA, k up to --max-fanout.
    #[arg(long, value_name = "ALPHA")]
    pub heavy_tail: Option<f64>,
    /// The largest fan-out of a heavy tail.
    #[arg(long, default_value_t = 20)]
    pub max_fanout: usize,
    /// Each service's own time is drawn uniformly between these, ms.
    #[arg(long, num_args = 2, value_names = ["LOW", "HIGH"], default_values_t = [0.5, 2.0])]
    pub sleep_ms: Vec<f64>,
    /// Master seed of the fan-outs and service times.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The topology file to write (atomically).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(command: &MeshCommand) -> Result<()> {
    match command {
        MeshCommand::Tree(args) => {
            let fanout = match args.heavy_tail {
                Some(alpha) => Fanout::HeavyTailed { alpha, max: args.max_fanout },
                None => Fanout::Fixed(args.fanout),
            };
            let spec = TreeSpec { services: args.services, fanout, sleep_ms: (args.sleep_ms[0], args.sleep_ms[1]), seed: args.seed };
            meshrl::atomic::write_file(&args.out, spec.yaml()?)?;
            println!("wrote {} ({} services)", args.out.display(), args.services);
            Ok(())
        }
    }
}
