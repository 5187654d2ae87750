//! `meshrl serve`: a policy file behind HTTP (the library's [`meshrl::serve`]).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use meshrl::serve::{ServeOptions, Timeouts};

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
    /// Seconds a client may take from the first byte of a request to its last; a slower one
    /// is disconnected.
    #[arg(long, default_value_t = 10.0)]
    pub request_timeout: f64,
    /// Seconds a keep-alive connection may idle between requests before it is closed.
    #[arg(long, default_value_t = 60.0)]
    pub idle_timeout: f64,
}

/// A flag's seconds as a duration: a finite number > 0 (>= 0 where `zero` is allowed).
fn seconds(flag: &str, value: f64, zero: bool) -> meshrl::Result<Duration> {
    let ok = value.is_finite() && (value > 0.0 || (zero && value == 0.0));
    Duration::try_from_secs_f64(value).ok().filter(|_| ok).ok_or_else(|| {
        let bound = if zero { ">= 0" } else { "> 0" };
        meshrl::Error::config(format!("{flag} must be a number of seconds {bound}, but is {value}"))
    })
}

pub fn serve(args: &ServeArgs) -> Result<()> {
    let timeouts = Timeouts {
        grace: seconds("--grace", args.grace, true)?,
        request: seconds("--request-timeout", args.request_timeout, false)?,
        idle: seconds("--idle-timeout", args.idle_timeout, false)?,
    };
    // Before the policy loads (a network may start candle's threads).
    meshrl::serve::single_threaded_kernels();
    let policy = meshrl::policy::load_policy(&args.policy)?;
    let options = ServeOptions { addr: args.addr, workers: args.workers.map(usize::from), timeouts };
    meshrl::serve::serve(policy, &options, |addr| {
        // Tests and scripts read the port from here (with --addr ...:0): flush at once.
        println!("listening on http://{addr} (POST /predict, GET /healthz)");
        let _ = std::io::stdout().flush();
    })?;
    eprintln!("meshrl serve: stopped");
    Ok(())
}
