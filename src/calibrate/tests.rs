//! Known answers: runs emulated under a scenario the test keeps to itself.

use super::*;
use crate::emulator::calibration::calibration_rules;
use crate::rules::{Load, TrafficRules};
use rand::SeedableRng;

/// A configuration with `runs` runs emulated under `hidden` (seeds apart from any fit's).
pub(crate) fn emulated_configuration(
    hidden: &Scenario,
    rules: TrafficRules,
    load: Load,
    runs: usize,
    seed: u64,
    metrics: &[Metric],
) -> Configuration {
    let mut c = Configuration { rules, load, rows: (1..=runs).collect(), values: vec![] };
    c.values = emulate(hidden, std::slice::from_ref(&c), metrics, runs, mix(seed, 99)).remove(0);
    c
}

pub(crate) fn hidden() -> Scenario {
    Scenario { service_time_ms: 3.0, handshake_ms: 1.2, fault_share: 0.0, ..Scenario::default() }
}

pub(crate) fn configurations(runs: usize, metrics: &[Metric]) -> Vec<Configuration> {
    let rule = |n: u32| TrafficRules { max_connections: n, max_pending_requests: n, ..calibration_rules() };
    let mut out = Vec::new();
    for (k, (n, threads)) in [(1, 2), (1, 8), (10, 8), (10, 32), (100, 32), (100, 4), (1, 32), (10, 2)].into_iter().enumerate() {
        out.push(emulated_configuration(&hidden(), rule(n), Load { threads, calls: threads * 50 }, runs, k as u64, metrics));
    }
    out
}

pub(crate) fn small_config() -> CalibrateConfig {
    CalibrateConfig {
        fields: vec![
            FieldBounds { name: "service_time_ms".into(), low: 0.3, high: 10.0 },
            FieldBounds { name: "handshake_ms".into(), low: 0.05, high: 5.0 },
            FieldBounds { name: "envoy_workers".into(), low: 1.0, high: 8.0 },
        ],
        levels: 17,
        runs: 10,
        budget: 120,
        resamples: 100,
        ..CalibrateConfig::default()
    }
}

#[test]
fn a_hidden_scenario_is_recovered_where_identifiable_and_held_out_runs_fall_in_their_bands() {
    let cfg = small_config();
    let all = Observed { path: "hidden.csv".into(), metrics: cfg.metrics.clone(), configurations: configurations(5, &cfg.metrics) };
    let fit = fit(all.subset(&[0, 1, 2, 3, 4, 5]), &Scenario { fault_share: 0.0, ..Scenario::default() }, &cfg).unwrap();
    let table = report::field_table(&fit);
    println!("{table}\n{:?}\n{} candidates", fit.notes, fit.candidates.len());
    assert!(!fit.single_run);
    let hidden = hidden();
    for i in &fit.intervals {
        let truth = match i.name.as_str() {
            "service_time_ms" => hidden.service_time_ms,
            "handshake_ms" => hidden.handshake_ms,
            _ => hidden.envoy_workers as f64,
        };
        if i.pinned {
            assert!(i.low <= truth * 1.25 && truth <= i.high * 1.25, "{} pinned away from the hidden {truth}:\n{table}", i.name);
        }
    }
    assert!(fit.intervals.iter().any(|i| i.pinned), "nothing pinned:\n{table}");
    let held = all.subset(&[6, 7]);
    let rows = report::predict(&fit, &held.configurations, 400, 12345);
    let inside = rows.iter().filter(|r| r.inside()).count();
    assert_eq!(inside, rows.len(), "held out:\n{}\nfields:\n{table}", report::comparison_table(&rows));
}

/// One published run as a single-run configuration.
fn published_configuration(p: &crate::emulator::calibration::PublishedRun, metrics: &[Metric]) -> Configuration {
    let values = metrics
        .iter()
        .map(|m| {
            let v = match m {
                Metric::FailureRate => p.failure_rate,
                Metric::Qps => p.qps.expect("a run with qps"),
                Metric::LatencyMeanMs => p.latency_mean_ms.expect("a run with latency"),
            };
            vec![m.transform(v)]
        })
        .collect();
    Configuration { rules: calibration_rules(), load: Load { threads: p.threads, calls: p.calls }, rows: vec![1], values }
}

#[test]
fn fitted_on_one_published_run_per_testbed_the_other_falls_in_its_band() {
    use crate::emulator::calibration::{calibration_scenario, PUBLISHED_RUNS};
    let cfg = CalibrateConfig { min_configurations: 1, budget: 150, levels: 17, resamples: 100, ..CalibrateConfig::default() };
    let base = calibration_scenario(&Scenario::default());
    let mut checked = 0;
    let mut report_rows = String::new();
    for source in ["Istio docs, Fortio 0.6.2 (2018)", "Istio docs, Fortio 1.3.1 (2020)", "2022 write-up, Fortio 1.17.1"] {
        let runs: Vec<_> = PUBLISHED_RUNS.iter().filter(|p| p.source == source).collect();
        assert_eq!(runs.len(), 2, "{source}");
        for (fit_on, predict) in [(0, 1), (1, 0)] {
            let observed = Observed {
                path: source.into(),
                metrics: cfg.metrics.clone(),
                configurations: vec![published_configuration(runs[fit_on], &cfg.metrics)],
            };
            let fit = fit(observed, &base, &cfg).unwrap();
            assert!(fit.single_run && fit.notes[0].starts_with("single-run mode"));
            let target = published_configuration(runs[predict], &cfg.metrics);
            let rows = report::predict(&fit, &[target], 400, 777);
            report_rows += &format!(
                "{source}, fitted on -c {}:\n{}{}\n",
                runs[fit_on].threads,
                report::field_table(&fit),
                report::comparison_table(&rows)
            );
            // The 503 share, the quantity the paper's reward counts, must be inside.
            checked += 1;
            assert!(rows[0].inside(), "{report_rows}");
        }
    }
    println!("{report_rows}");
    assert_eq!(checked, 6);
}

#[test]
fn the_shipped_config_is_the_default() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/calibrate.toml");
    assert_eq!(CalibrateConfig::load(&path).unwrap(), CalibrateConfig::default());
}

/// The summed width of the loose fields' intervals, in grid steps over the grid's length.
fn loose_width(fit: &Fit, fields: &[String]) -> f64 {
    fit.intervals
        .iter()
        .zip(&fit.grid.values)
        .filter(|(i, _)| fields.contains(&i.name))
        .map(|(i, values)| {
            let at = |v: f64| values.iter().position(|&x| x == v).expect("a grid value") as f64;
            (at(i.high) - at(i.low)) / (values.len() - 1) as f64
        })
        .sum()
}

#[test]
fn three_suggested_configurations_narrow_the_loose_fields_more_than_three_random_ones() {
    use rand::seq::IndexedRandom;
    let cfg = CalibrateConfig { suggest_threads: vec![1, 2, 4, 8, 16], suggest_calls_per_thread: vec![20, 50], ..small_config() };
    let metrics = cfg.metrics.clone();
    let base = Scenario { fault_share: 0.0, ..Scenario::default() };
    // A first trace that leaves fields loose: two rules at low load.
    let rule = |n: u32| TrafficRules { max_connections: n, max_pending_requests: n, ..calibration_rules() };
    let first: Vec<Configuration> = [(1, 2), (10, 2), (1, 4)]
        .into_iter()
        .enumerate()
        .map(|(k, (n, threads))| emulated_configuration(&hidden(), rule(n), Load { threads, calls: threads * 50 }, 5, k as u64, &metrics))
        .collect();
    let observed = Observed { path: "first.csv".into(), metrics: metrics.clone(), configurations: first.clone() };
    let fit0 = fit(observed, &base, &cfg).unwrap();
    let loose: Vec<String> = fit0.intervals.iter().filter(|i| !i.pinned && i.identified).map(|i| i.name.clone()).collect();
    assert!(!loose.is_empty(), "the first trace pins everything:\n{}", report::field_table(&fit0));
    let candidates = suggest::candidates(&fit0, &cfg);
    let refit = |extra: &[Configuration]| {
        let mut configurations = first.clone();
        for (k, c) in extra.iter().enumerate() {
            configurations.push(emulated_configuration(&hidden(), c.rules, c.load, 5, 100 + k as u64, &metrics));
        }
        let fit = fit(Observed { path: "more.csv".into(), metrics: metrics.clone(), configurations }, &base, &cfg).unwrap();
        loose_width(&fit, &loose)
    };
    let picks = suggest::suggest(&fit0, &candidates, 3, 7);
    let suggested: Vec<Configuration> =
        picks.iter().map(|s| Configuration { rules: s.rules, load: s.load, rows: vec![], values: vec![] }).collect();
    let with_suggested = refit(&suggested);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let random: Vec<f64> = (0..4).map(|_| refit(&candidates.choose_multiple(&mut rng, 3).cloned().collect::<Vec<_>>())).collect();
    let random_mean = random.iter().sum::<f64>() / random.len() as f64;
    println!("loose {loose:?}: before {:.2}, suggested {with_suggested:.2}, random {random:?}", loose_width(&fit0, &loose));
    assert!(with_suggested < random_mean, "suggested {with_suggested:.2} against random {random:?}");
}
