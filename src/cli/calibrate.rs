//! `meshrl calibrate`: the emulator fitted to a trace of the user's own Fortio runs.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use meshrl::calibrate::{self, report, suggest, CalibrateConfig};
use meshrl::emulator::Scenario;

#[derive(Args, Debug)]
pub struct CalibrateArgs {
    /// A trace in the protocol schema (for example from `meshrl ingest fortio`): several
    /// configurations (rule and load), normally with repeated runs.
    pub trace: PathBuf,
    /// The fitted scenario TOML to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Calibration config (fields and bounds, grid, budget, method; configs/calibrate.toml);
    /// defaults built in.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The scenario the fit starts from and leaves the unfitted fields at (default: the
    /// built-in one).
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Master seed (overrides the config's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Hold the last N configurations of the trace out of the fit, and check the fitted
    /// scenario's predictions of them.
    #[arg(long, default_value_t = 0)]
    pub hold_out: usize,
    /// Name the N configurations whose runs would narrow the loose fields most, with their
    /// DestinationRule, VirtualService and `fortio load` command.
    #[arg(long, default_value_t = 0)]
    pub suggest: usize,
    /// Where the suggested rule bundles go (default: beside --out, `<out stem>.suggest/`).
    #[arg(long)]
    pub suggest_dir: Option<PathBuf>,
    /// The service host of the suggested commands and rules.
    #[arg(long, default_value = "httpbin")]
    pub host: String,
    /// Also write the fit's tables as Markdown here.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

pub fn calibrate(args: &CalibrateArgs) -> Result<()> {
    let mut cfg = match &args.config {
        Some(path) => CalibrateConfig::load(path)?,
        None => CalibrateConfig::default(),
    };
    if let Some(seed) = args.seed {
        cfg.seed = seed;
    }
    let base = match &args.scenario {
        Some(path) => meshrl::generate::load_scenario(path)?,
        None => Scenario::default(),
    };
    let mut inputs = vec![args.trace.clone()];
    inputs.extend(args.config.iter().cloned());
    inputs.extend(args.scenario.iter().cloned());
    meshrl::paths::refuse_input_as_output("--out", &args.out, &inputs)?;
    let observed = calibrate::read_observed(&args.trace, &cfg.metrics)?;
    let n = observed.configurations.len();
    if args.hold_out >= n {
        return Err(meshrl::Error::file(
            &args.trace,
            format!("--hold-out {} leaves no configuration to fit: the trace has {n}", args.hold_out),
        )
        .into());
    }
    let fitted: Vec<usize> = (0..n - args.hold_out).collect();
    let held: Vec<usize> = (n - args.hold_out..n).collect();
    let fit_on = observed.subset(&fitted);
    let held_out = observed.subset(&held);
    let runs: usize = fit_on.configurations.iter().map(|c| c.runs()).sum();
    println!(
        "calibrate: {} configuration(s), {runs} run(s) of {} ({}); fields {:?}; {} candidates by {} then a sweep of each field; seed {}",
        fit_on.configurations.len(),
        args.trace.display(),
        if fit_on.single_run() { "single-run mode: one run per configuration, wide intervals" } else { "repeated runs" },
        cfg.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        cfg.budget,
        cfg.method.name(),
        cfg.seed
    );
    let started = std::time::Instant::now();
    let fit = calibrate::fit(fit_on, &base, &cfg)?;
    let scenario = fit.scenario();
    println!("fitted in {:.1} s", started.elapsed().as_secs_f64());
    let mut md = format!(
        "Fit of {} (seed {}): distance {:.4} over {} scenarios{}.\n\n",
        args.trace.display(),
        cfg.seed,
        fit.best().distance,
        fit.candidates.len(),
        if fit.single_run { "; single-run mode" } else { "" }
    );
    md += &report::field_table(&fit);
    for note in &fit.notes {
        md += &format!("\nNote: {note}\n");
    }
    md += "\nThe fitted configurations, observed against emulated under the fit:\n\n";
    md += &report::comparison_table(&report::compare(
        &scenario,
        &fit.observed.configurations,
        &fit.observed.metrics,
        cfg.runs.max(100),
        cfg.seed,
    ));
    if !held.is_empty() {
        let rows = report::predict(&fit, &held_out.configurations, 400, meshrl::seeding::mix(cfg.seed, 5));
        let inside = rows.iter().filter(|r| r.inside()).count();
        md += &format!("\nHeld out of the fit, predicted over the resampled fits ({inside} of {} observed medians inside the predicted 5-95 % band):\n\n", rows.len());
        md += &report::comparison_table(&rows);
    }
    if args.suggest > 0 {
        let dir = args.suggest_dir.clone().unwrap_or_else(|| args.out.with_extension("suggest"));
        let candidates = suggest::candidates(&fit, &cfg);
        let picks = suggest::suggest(&fit, &candidates, args.suggest, cfg.seed);
        let commands = suggest::write_bundles(&dir, &args.host, &picks)?;
        md += &format!(
            "\nRun these next: the configurations whose runs would tell the plausible scenarios apart best (bundles in {}):\n\n",
            dir.display()
        );
        for (c, s) in commands.iter().zip(&picks) {
            md += &format!("- score {:.2}: {c}\n", s.score);
        }
    }
    report::write_scenario(&args.out, &fit, &args.trace.display().to_string())?;
    md += &format!("\nWrote {}.\n", args.out.display());
    if let Some(path) = &args.report {
        meshrl::atomic::write_file(path, &md)?;
    }
    print!("{md}");
    Ok(())
}
