//! `meshrl serve`: a policy file behind HTTP (the library's [`meshrl::serve`]).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use meshrl::serve::ServeOptions;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The policy: a lookup table (`.csv` or `.json`) or a trained network (any other
    /// extension), e.g. `policies/<scenario>/ppo.csv` or `ppo.policy` of an autoscale run.
    pub policy: PathBuf,
    /// Address to listen on; port 0 picks a free port. The address is printed once the
    /// server accepts connections.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Worker threads, 1-1024 (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,
    /// Seconds the requests in flight may take after SIGTERM or Ctrl-C before the server
    /// stops anyway.
    #[arg(long, default_value_t = 10.0)]
    pub grace: f64,
}

pub fn serve(args: &ServeArgs) -> Result<()> {
    let grace = std::time::Duration::try_from_secs_f64(args.grace)
        .map_err(|_| meshrl::Error::config(format!("--grace must be a number of seconds >= 0, but is {}", args.grace)))?;
    // Before the policy loads (a network may start candle's threads).
    meshrl::serve::single_threaded_kernels();
    let policy = meshrl::policy::load_policy(&args.policy)?;
    let options = ServeOptions { addr: args.addr, workers: args.workers.map(usize::from), grace };
    meshrl::serve::serve(policy, &options, |addr| {
        // Tests and scripts read the port from here (with --addr ...:0): flush at once.
        println!("listening on http://{addr} (POST /predict, GET /healthz)");
        let _ = std::io::stdout().flush();
    })?;
    eprintln!("meshrl serve: stopped");
    Ok(())
}
