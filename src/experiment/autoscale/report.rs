//! The autoscaling report: one table per scenario (yardsticks and agents on the same load
//! paths), learning curves, one episode drawn, the HPA manifest and the policies.

use std::fmt::Write as _;

use serde_json::json;

use super::evaluate::{run_episodes, EpisodeStats, Trace};
use super::yardsticks::{myopic, Hpa, Optimum};
use super::{AutoscaleCell, AutoscaleConfig};
use crate::agent::LearnerKind;
use crate::env::autoscale::{ScaleState, ScalingSpec, Source};
use crate::error::Result;
use crate::experiment::compare::{paired, SeedValue};
use crate::experiment::rundir::RunDir;
use crate::policy::LookupPolicy;
use crate::report::plot::{curves_grid, series_grid, Curve, CurvePanel};
use crate::report::{finite, fmt_of_n, markdown_table, mean_std};

/// One row of a scenario's table: per seed, the episodes on the model and measured.
struct Row {
    label: String,
    per_seed: Vec<(u64, EpisodeStats, EpisodeStats)>,
    episode: Vec<Trace>,
}

fn yardstick_rows(cfg: &AutoscaleConfig, spec: &ScalingSpec, optimum: &Optimum) -> Result<Vec<Row>> {
    let measured_optimum = Optimum::solve(spec, Source::Truth);
    let mut rows = Vec::new();
    type Decide<'a> = Box<dyn Fn() -> Box<dyn FnMut(&ScaleState) -> Result<i32> + 'a> + 'a>;
    let mut policies: Vec<(String, Decide)> = vec![
        ("Optimum on the model (backward induction)".into(), Box::new(|| Box::new(|s: &ScaleState| Ok(optimum.decide(s))))),
        ("Optimum on the measured latency".into(), Box::new(|| Box::new(|s: &ScaleState| Ok(measured_optimum.decide(s))))),
        ("Myopic (best next step, model)".into(), Box::new(|| Box::new(|s: &ScaleState| Ok(myopic(spec, s, Source::Model))))),
    ];
    for target in cfg.hpa.targets(spec) {
        policies.push((
            format!("HPA, target {target} req/s per pod"),
            Box::new(move || {
                let mut hpa = Hpa::new(&cfg.hpa, target);
                Box::new(move |s: &ScaleState| {
                    if s.t == 0 {
                        hpa = Hpa::new(&cfg.hpa, target);
                    }
                    Ok(hpa.decide(spec, s))
                })
            }),
        ));
    }
    for (label, make) in &policies {
        let mut row = Row { label: label.clone(), per_seed: vec![], episode: vec![] };
        for seed in cfg.seed_list() {
            let (m, episode) = run_episodes(spec, Source::Model, seed, cfg.eval_episodes, make())?;
            let (t, _) = run_episodes(spec, Source::Truth, seed, cfg.eval_episodes, make())?;
            if seed == cfg.seed {
                row.episode = episode;
            }
            row.per_seed.push((seed, m, t));
        }
        rows.push(row);
    }
    Ok(rows)
}

fn returns(row: &Row, measured: bool) -> Vec<SeedValue> {
    row.per_seed.iter().map(|(s, m, t)| (*s, if measured { t.episode_return } else { m.episode_return })).collect()
}

pub fn write(cfg: &AutoscaleConfig, specs: &[ScalingSpec], cells: &[AutoscaleCell], dir: &RunDir) -> Result<()> {
    let mut out = dir.outputs();
    let n = cfg.seeds;
    let spec0 = &specs[0];
    let mut md = String::from("# Autoscaling over time: the exact optimum, the HPA and the agents\n\n");
    let _ = writeln!(
        md,
        "Latency: a forest ({} trees, seed {}) of `{}` at routing 100 and no blocking, by load and ready replicas; \
         \"measured\" replays the same episodes on the trace's own means. Replicas {}-{} (start {}), a new one serves \
         {} step(s) after it is started; {} steps of {} s per episode; loads {:?} req/s. Reward (004): {} x (max - replicas) / max \
         + {} x r2, r2 = 1 under the soft bound ({:.3} s), falling to 0 at the hard bound ({:.3} s), -1 above it (the episode \
         ends); an invalid action ends it with {}. Each seed ({}..{}) draws {} evaluation episodes, the same load paths for every \
         policy. Cells read \"mean ± std (seeds with a value of {n})\"; config: `config.resolved.toml`.\n",
        cfg.forest.trees,
        cfg.seed,
        cfg.trace.path.display(),
        cfg.min_replicas,
        cfg.max_replicas,
        cfg.start_replicas,
        cfg.provision_steps,
        cfg.horizon,
        cfg.step_s,
        cfg.loads,
        cfg.reward.replica_weight,
        cfg.reward.latency_weight,
        spec0.reward.soft_s,
        spec0.reward.hard_s,
        cfg.reward.invalid_reward,
        cfg.seed,
        cfg.seed + n as u64 - 1,
        cfg.eval_episodes
    );
    let _ = writeln!(
        md,
        "Common random numbers: every policy is scored on the same evaluation episodes of each seed (the same load paths, on the model and measured), \
         and every comparison below pairs two policies by seed. {}\n",
        cfg.tie_margin.explained()
    );
    let _ = writeln!(md, "Latency table (s), model / measured, rows loads, columns replicas {}-{}:\n", cfg.min_replicas, cfg.max_replicas);
    let mut header = vec!["Load".to_string()];
    header.extend((cfg.min_replicas..=cfg.max_replicas).map(|c| format!("{c}")));
    let body: Vec<Vec<String>> = cfg
        .loads
        .iter()
        .enumerate()
        .map(|(l, load)| {
            let mut r = vec![format!("{load}")];
            r.extend(
                (0..spec0.model_latency[l].len()).map(|c| format!("{:.3} / {:.3}", spec0.model_latency[l][c], spec0.truth_latency[l][c])),
            );
            r
        })
        .collect();
    md.push_str(&markdown_table(&header, &body));
    md.push('\n');
    let mut csv = String::from("scenario,policy,metric,mean,std,seeds_with_value,seeds\n");
    let mut curve_panels = Vec::new();
    let mut episode_panels = Vec::new();
    for (scenario, spec) in cfg.scenarios.iter().zip(specs) {
        let optimum = Optimum::solve(spec, Source::Model);
        let mut rows = yardstick_rows(cfg, spec, &optimum)?;
        for &learner in &cfg.learners {
            let mine: Vec<&AutoscaleCell> = cells.iter().filter(|c| c.scenario == scenario.name && c.learner == learner).collect();
            let episode = mine.iter().find(|c| c.seed == cfg.seed).map(|c| c.episode.clone()).unwrap_or_default();
            rows.push(Row {
                label: format!("{} (greedy)", learner.label()),
                per_seed: mine.iter().map(|c| (c.seed, c.on_model.clone(), c.measured.clone())).collect(),
                episode,
            });
            // Under a profile the agents' policies depend on the time: no table serves them.
            if let Some(c) = mine.iter().find(|c| c.seed == cfg.seed).filter(|_| !spec.is_profile()) {
                out.write(format!("policies/{}/{}.csv", scenario.name, learner.name()), c.table.to_csv())?;
                out.write(format!("policies/{}/{}.json", scenario.name, learner.name()), c.table.to_json())?;
            }
        }
        // A served table has no clock: under a profile, the optimum with the load held.
        let held = spec.with_load_held();
        let served_optimum = if spec.is_profile() { Some(Optimum::solve(&held, Source::Model)) } else { None };
        let optimum_table = match &served_optimum {
            Some(o) => LookupPolicy::tabulate(&held, 0, |s| Ok(o.decide(s)))?,
            None => LookupPolicy::tabulate(spec, 0, |s| Ok(optimum.decide(s)))?,
        };
        out.write(format!("policies/{}/optimum.csv", scenario.name), optimum_table.to_csv())?;
        out.write(format!("policies/{}/optimum.json", scenario.name), optimum_table.to_json())?;

        let _ = writeln!(md, "## Scenario `{}`: {}\n", scenario.name, describe_process(&scenario.load));
        let header: Vec<String> = [
            "Policy",
            "Return (model)",
            "Return (measured)",
            "Hard-bound endings (measured)",
            "Invalid endings",
            "Replica-hours per episode (measured)",
            "Steps per episode (measured)",
        ]
        .map(String::from)
        .to_vec();
        let mut body = Vec::new();
        for row in &rows {
            let col = |f: &dyn Fn(&EpisodeStats) -> f64, measured: bool| -> Vec<f64> {
                row.per_seed.iter().map(|(_, m, t)| f(if measured { t } else { m })).collect()
            };
            let metrics: [(&str, Vec<f64>, usize); 6] = [
                ("return_model", col(&|e| e.episode_return, false), 2),
                ("return_measured", col(&|e| e.episode_return, true), 2),
                ("hard_bound_endings_measured", col(&|e| e.hard_bound_endings, true), 2),
                ("invalid_endings_measured", col(&|e| e.invalid_endings, true), 2),
                ("replica_hours_measured", col(&|e| e.replica_hours, true), 3),
                ("steps_measured", col(&|e| e.steps, true), 1),
            ];
            let mut line = vec![row.label.clone()];
            for (name, values, decimals) in &metrics {
                line.push(fmt_of_n(values, n, *decimals, None));
                let f = finite(values);
                let (m, s) = mean_std(&f);
                let num = |x: f64| if x.is_finite() { format!("{x:.6}") } else { String::new() };
                let _ = writeln!(csv, "{},{},{name},{},{},{},{n}", scenario.name, row.label.replace(',', ";"), num(m), num(s), f.len());
            }
            body.push(line);
        }
        md.push_str(&markdown_table(&header, &body));
        md.push('\n');
        md.push_str(&findings(cfg, &rows));
        if spec.is_profile() {
            md.push_str("Under this profile every policy depends on the time, so `policies/` serves only the optimum with the load held where it is (a policy without a clock); the agents' tables and networks are not exported.\n\n");
        }
        curve_panels.push(curve_panel(cfg, &scenario.name, cells, &rows[0]));
        episode_panels.extend(episode_plot(&scenario.name, &rows));
    }
    out.write("autoscale.md", md)?;
    out.write("autoscale.csv", csv)?;
    out.write("hpa.yaml", hpa_yaml(cfg, spec0)?)?;
    let png = out.stage("curves.png")?;
    curves_grid(&png, "Mean reward per step of the agents' actions while training", "reward per step", &curve_panels, 2)?;
    let png = out.stage("episode.png")?;
    series_grid(&png, &format!("One evaluation episode (seed {}, episode 1), on the model", cfg.seed), "step", "", &episode_panels, 3)?;
    out.commit()
}

fn describe_process(p: &super::LoadProcess) -> String {
    match p {
        super::LoadProcess::Markov { stay } => format!("a Markov chain over the loads (stay {stay}, else a neighbouring load)"),
        super::LoadProcess::Profile { start, stages } => {
            format!(
                "a profile from {start} req/s through stages {}",
                stages.iter().map(|(s, l)| format!("{l} req/s over {s} steps")).collect::<Vec<_>>().join(", ")
            )
        }
    }
}

/// The verdicts under a table: the optimum against the myopic policy, agents against the HPA.
fn findings(cfg: &AutoscaleConfig, rows: &[Row]) -> String {
    let mut s = String::new();
    let find = |prefix: &str| rows.iter().find(|r| r.label.starts_with(prefix));
    let (Some(opt), Some(my)) = (find("Optimum on the model"), find("Myopic")) else { return s };
    let hpas: Vec<&Row> = rows.iter().filter(|r| r.label.starts_with("HPA")).collect();
    let mean = |r: &Row| mean_std(&returns(r, false).iter().map(|x| x.1).collect::<Vec<_>>()).0;
    let gain = 100.0 * (mean(opt) - mean(my)) / mean(my).abs().max(1e-12);
    let _ = writeln!(
        s,
        "- The optimum gains {gain:.1} % over the myopic policy on the model{}.",
        if gain < 2.0 { ": **less than 2 %, so planning ahead buys little here**" } else { "" }
    );
    for learner in [LearnerKind::Dqn, LearnerKind::Ppo] {
        let Some(agent) = find(learner.label()) else { continue };
        let mut others: Vec<(&Row, String)> = hpas.iter().map(|h| (*h, format!("the {}", h.label))).collect();
        others.push((my, "the myopic policy".into()));
        others.push((opt, "the optimum".into()));
        for (other, name) in others {
            let m = paired(&returns(agent, false), &returns(other, false), cfg.tie_margin);
            let t = paired(&returns(agent, true), &returns(other, true), cfg.tie_margin);
            let _ = writeln!(
                s,
                "- {} against {name} ({} seed pairs): {} on the model ({:.2} vs {:.2}, difference {}), {} measured ({:.2} vs {:.2}, difference {}).",
                agent.label,
                m.pairs,
                m.verdict,
                m.mean_a,
                m.mean_b,
                m.difference_text(2),
                t.verdict,
                t.mean_a,
                t.mean_b,
                t.difference_text(2)
            );
        }
    }
    s.push('\n');
    s
}

fn curve_panel(cfg: &AutoscaleConfig, scenario: &str, cells: &[AutoscaleCell], optimum: &Row) -> CurvePanel {
    let mut curves = Vec::new();
    for &learner in &cfg.learners {
        let mine: Vec<&AutoscaleCell> = cells.iter().filter(|c| c.scenario == scenario && c.learner == learner).collect();
        if mine.is_empty() {
            continue;
        }
        let runs: Vec<&[f64]> = mine.iter().map(|c| c.curve.0.as_slice()).collect();
        curves.push(Curve::over_runs(learner.label(), &runs, cfg.epochs));
    }
    let per_step = mean_std(&optimum.per_seed.iter().map(|(_, m, _)| m.episode_return / m.steps.max(1.0)).collect::<Vec<_>>()).0;
    curves.push(Curve::flat("optimum", per_step, cfg.epochs));
    CurvePanel { title: scenario.to_string(), curves }
}

fn episode_plot(scenario: &str, rows: &[Row]) -> Vec<CurvePanel> {
    let pick = |f: &dyn Fn(&Trace) -> f64| -> Vec<Curve> {
        rows.iter()
            .filter(|r| !r.label.starts_with("Optimum on the measured") && !r.episode.is_empty())
            .map(|r| Curve::line(r.label.split(" (").next().unwrap_or(&r.label), r.episode.iter().map(f).collect()))
            .collect()
    };
    let load = rows
        .iter()
        .find(|r| !r.episode.is_empty())
        .map(|r| vec![Curve::line("offered load", r.episode.iter().map(|t| t.load).collect())])
        .unwrap_or_default();
    vec![
        CurvePanel { title: format!("{scenario}: load (req/s)"), curves: load },
        CurvePanel { title: format!("{scenario}: replicas"), curves: pick(&|t| t.replicas as f64) },
        CurvePanel { title: format!("{scenario}: latency (s)"), curves: pick(&|t| t.latency_s) },
    ]
}

/// The HPA baseline as an `autoscaling/v2` manifest.
fn hpa_yaml(cfg: &AutoscaleConfig, spec: &ScalingSpec) -> Result<String> {
    let h = &cfg.hpa;
    // The first target: the one read off the load test.
    let target = h.targets(spec)[0];
    let doc = json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": { "name": cfg.deployment },
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": cfg.deployment },
            "minReplicas": cfg.min_replicas,
            "maxReplicas": cfg.max_replicas,
            "metrics": [{
                "type": "Pods",
                "pods": {
                    "metric": { "name": "requests_per_second" },
                    "target": { "type": "AverageValue", "averageValue": format!("{}m", (target * 1000.0).round()) },
                },
            }],
            "behavior": {
                "scaleUp": {
                    "stabilizationWindowSeconds": 0,
                    "selectPolicy": "Max",
                    "policies": [
                        { "type": "Pods", "value": h.scale_up_pods, "periodSeconds": 15 },
                        { "type": "Percent", "value": h.scale_up_percent.round() as i64, "periodSeconds": 15 },
                    ],
                },
                "scaleDown": {
                    "stabilizationWindowSeconds": h.scale_down_window_s.round() as i64,
                    "policies": [{ "type": "Percent", "value": 100, "periodSeconds": 15 }],
                },
            },
        },
    });
    let yaml = serde_yaml::to_string(&doc).map_err(|e| crate::error::Error::config(e.to_string()))?;
    Ok(format!(
        "# The HPA meshrl scores as the baseline: {target} req/s per pod (a Pods metric, e.g. from the Prometheus adapter),\n\
         # tolerance {} (the controller's default), sync every {} s (--horizontal-pod-autoscaler-sync-period).\n{yaml}",
        h.tolerance, h.sync_s
    ))
}
