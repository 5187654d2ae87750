//! Policies that need no training: the exact optimum (backward induction over the
//! episode's steps on the discretised MDP), the myopic policy (the best action for the next
//! step alone) and the Kubernetes Horizontal Pod Autoscaler as a user would run it.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::env::autoscale::{ScaleState, ScalingSpec, Source};
use crate::error::{Error, Result};

/// A state without its hidden next load: what a decision may depend on.
type Key = (usize, u32, Vec<u32>);

fn key(s: &ScaleState) -> Key {
    (s.load, s.ready, s.starting.clone())
}

/// Expected reward of `delta` in `s` plus the value `v` of where it leads (0 after an ending).
fn q_value(spec: &ScalingSpec, s: &ScaleState, delta: i32, source: Source, next_values: Option<&HashMap<Key, f64>>) -> f64 {
    spec.next_load_distribution(s.load, s.t)
        .into_iter()
        .map(|(l, p)| {
            let from = ScaleState { next_load: l, ..s.clone() };
            let o = spec.transition(&from, delta, 0, source);
            let future = match (o.ended, next_values) {
                (None, Some(v)) => v.get(&key(&o.next)).copied().unwrap_or(0.0),
                _ => 0.0,
            };
            p * (o.reward + future)
        })
        .sum()
}

/// Ties go to staying, then to scaling down (the cheaper choice).
const ORDER: [i32; 3] = [0, -1, 1];

fn best(mut q: impl FnMut(i32) -> f64) -> (i32, f64) {
    let mut out = (0, f64::NEG_INFINITY);
    for d in ORDER {
        let v = q(d);
        if v > out.1 + 1e-12 {
            out = (d, v);
        }
    }
    out
}

/// The optimal decision at every step and state of an episode, and the optimal expected
/// return from every first state: exact for the undiscounted return of `horizon` steps.
pub struct Optimum {
    /// `decision[t][state]`.
    decision: Vec<HashMap<Key, i32>>,
    value0: HashMap<Key, f64>,
}

impl Optimum {
    pub fn solve(spec: &ScalingSpec, source: Source) -> Optimum {
        let mut decision = vec![HashMap::new(); spec.horizon];
        let mut next: Option<HashMap<Key, f64>> = None;
        for t in (0..spec.horizon).rev() {
            let mut values = HashMap::new();
            for s in spec.states_at(t) {
                let (d, v) = best(|d| q_value(spec, &s, d, source, next.as_ref()));
                decision[t].insert(key(&s), d);
                values.insert(key(&s), v);
            }
            next = Some(values);
        }
        Optimum { decision, value0: next.unwrap_or_default() }
    }

    pub fn decide(&self, s: &ScaleState) -> i32 {
        self.decision.get(s.t).and_then(|m| m.get(&key(s))).copied().unwrap_or(0)
    }

    /// The optimal expected return from a first state.
    pub fn value(&self, s: &ScaleState) -> f64 {
        self.value0.get(&key(s)).copied().unwrap_or(f64::NAN)
    }
}

/// The best action for the next step alone.
pub fn myopic(spec: &ScalingSpec, s: &ScaleState, source: Source) -> i32 {
    best(|d| q_value(spec, s, d, source, None)).0
}

/// The Horizontal Pod Autoscaler's settings (autoscaling/v2 defaults but the target).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HpaConfig {
    /// Targets (requests per second per ready replica), each scored as its own HPA;
    /// default: the most one replica serves under the soft bound on the model (what a user
    /// would read off a load test) and half of it (a user who keeps headroom).
    pub targets_rps_per_replica: Option<Vec<f64>>,
    /// Seconds between the controller's syncs (`--horizontal-pod-autoscaler-sync-period`: 15).
    pub sync_s: f64,
    /// No change while the metric is within this share of the target (10 %).
    pub tolerance: f64,
    /// Scale-up limit per 15 s: the larger of this many pods and this percent of the current.
    pub scale_up_pods: u32,
    pub scale_up_percent: f64,
    /// Scale-down stabilisation: the highest recommendation of this many seconds (300).
    pub scale_down_window_s: f64,
}

impl Default for HpaConfig {
    fn default() -> Self {
        HpaConfig {
            targets_rps_per_replica: None,
            sync_s: 15.0,
            tolerance: 0.1,
            scale_up_pods: 4,
            scale_up_percent: 100.0,
            scale_down_window_s: 300.0,
        }
    }
}

impl HpaConfig {
    pub fn validate(&self) -> Result<()> {
        if !(self.sync_s > 0.0 && self.tolerance >= 0.0 && self.scale_up_percent >= 0.0 && self.scale_down_window_s >= 0.0) {
            return Err(Error::config("hpa: sync_s must be > 0 and tolerance, scale_up_percent, scale_down_window_s >= 0"));
        }
        if self.targets_rps_per_replica.as_ref().is_some_and(|t| t.is_empty() || t.iter().any(|x| x.is_nan() || *x <= 0.0)) {
            return Err(Error::config("hpa.targets_rps_per_replica must be one or more targets > 0"));
        }
        Ok(())
    }

    /// The targets: configured, or the largest load one replica serves under the soft
    /// bound and half of it.
    pub fn targets(&self, spec: &ScalingSpec) -> Vec<f64> {
        self.targets_rps_per_replica.clone().unwrap_or_else(|| {
            let one = spec.min_replicas;
            let served = (0..spec.loads.len())
                .filter(|&l| spec.latency(Source::Model, l, one) <= spec.reward.soft_s)
                .map(|l| spec.loads[l] / one as f64);
            let capacity = served.fold(spec.loads[0] / one as f64, f64::max);
            vec![capacity, capacity / 2.0]
        })
    }
}

/// One HPA controller through an episode: syncs every `sync_s`, keeps its recommendations.
pub struct Hpa<'a> {
    cfg: &'a HpaConfig,
    target: f64,
    /// (time, recommendation) within the stabilisation window.
    history: Vec<(f64, u32)>,
}

impl<'a> Hpa<'a> {
    pub fn new(cfg: &'a HpaConfig, target: f64) -> Hpa<'a> {
        Hpa { cfg, target, history: Vec::new() }
    }

    /// The replicas to add in state `s` (0 between syncs).
    pub fn decide(&mut self, spec: &ScalingSpec, s: &ScaleState) -> i32 {
        let (start, end) = (s.t as f64 * spec.step_s, (s.t + 1) as f64 * spec.step_s);
        // Syncs at 0, 15, 30, ... s: is there one in this step?
        let first = (start / self.cfg.sync_s).ceil() * self.cfg.sync_s;
        if first >= end {
            return 0;
        }
        let now = first;
        let current = s.replicas();
        let starting = current - s.ready;
        // Requests per second per ready pod against the target. Pods not ready yet have no
        // metric: the controller counts them at 0 when scaling up and at the target when
        // scaling down, and keeps the count if that flips the direction or lands within
        // the tolerance.
        let load = spec.loads[s.load];
        let ratio = load / s.ready as f64 / self.target;
        let within = |r: f64| (r - 1.0).abs() <= self.cfg.tolerance;
        let mut recommended = if within(ratio) {
            current
        } else if starting == 0 {
            (s.ready as f64 * ratio).ceil() as u32
        } else {
            let assumed = if ratio > 1.0 { 0.0 } else { starting as f64 * self.target };
            let adjusted = (load + assumed) / current as f64 / self.target;
            if within(adjusted) || (adjusted > 1.0) != (ratio > 1.0) {
                current
            } else {
                (current as f64 * adjusted).ceil() as u32
            }
        };
        recommended = recommended.clamp(spec.min_replicas, spec.max_replicas);
        self.history.retain(|(t, _)| now - t < self.cfg.scale_down_window_s);
        self.history.push((now, recommended));
        let mut desired = recommended;
        if desired < current {
            // Scale down only to the highest recommendation of the window.
            desired = self.history.iter().map(|h| h.1).max().unwrap_or(desired).min(current);
        }
        // The larger of the two scale-up policies (selectPolicy Max), per period.
        let by_percent = (current as f64 * (1.0 + self.cfg.scale_up_percent / 100.0)).ceil() as u32;
        let limit = (current + self.cfg.scale_up_pods).max(by_percent);
        desired = desired.min(limit).clamp(spec.min_replicas, spec.max_replicas);
        desired as i32 - current as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::autoscale::tests::spec;
    use crate::env::autoscale::LoadDynamics;

    #[test]
    fn the_optimum_scales_ahead_of_a_known_ramp_and_beats_the_myopic_policy() {
        // Low load for 5 steps, then high: with a one-step delay the second replica must be
        // started two steps before the ramp.
        let mut s = spec(1);
        s.horizon = 10;
        s.dynamics = LoadDynamics::Profile { by_step: vec![0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1] };
        let opt = Optimum::solve(&s, Source::Model);
        let mut state = ScaleState { t: 0, load: 0, next_load: 0, ready: 1, starting: vec![0] };
        let (mut opt_return, mut ups) = (0.0, vec![]);
        for t in 0..10 {
            let d = opt.decide(&state);
            if d > 0 {
                ups.push(t);
            }
            let next_load = if t < 4 { 0 } else { 1 };
            let o = s.transition(&ScaleState { next_load, ..state.clone() }, d, 0, Source::Model);
            opt_return += o.reward;
            assert!(o.ended.is_none(), "the optimum never breaks the hard bound here");
            state = o.next;
        }
        assert_eq!(ups.first(), Some(&3), "started at step 3, serving at step 5 when the load arrives");
        assert!((opt.value(&ScaleState { t: 0, load: 0, next_load: 0, ready: 1, starting: vec![0] }) - opt_return).abs() < 1e-9);
        // The myopic policy waits until the next step's latency is at stake: too late.
        let late = ScaleState { t: 4, load: 0, next_load: 0, ready: 1, starting: vec![0] };
        assert_eq!(myopic(&s, &late, Source::Model), 0, "scaling up costs now and pays only in two steps");
    }

    #[test]
    fn the_hpa_syncs_every_15_s_scales_up_fast_and_down_slowly() {
        let s = spec(0);
        let cfg = HpaConfig::default();
        let mut hpa = Hpa::new(&cfg, 1.0);
        // Step 0 covers 0-10 s: a sync at 0 s. 4 req/s on one pod: 4 times the target.
        let high = ScaleState { t: 0, load: 1, next_load: 1, ready: 1, starting: vec![] };
        assert_eq!(hpa.decide(&s, &high), 2, "up to the maximum of 3 at once");
        // Step 1 covers 10-20 s: a sync at 15 s. Low load: recommendation 1, but the window holds 3.
        let low = ScaleState { t: 1, load: 0, next_load: 0, ready: 3, starting: vec![] };
        assert_eq!(hpa.decide(&s, &low), 0);
        // Step 2 covers 20-30 s: no sync.
        assert_eq!(hpa.decide(&s, &ScaleState { t: 2, ..low.clone() }), 0);
        // After 300 s of low load it scales down.
        let later = ScaleState { t: 33, ..low.clone() };
        assert_eq!(hpa.decide(&s, &later), -2);
        assert_eq!(HpaConfig::default().targets(&s), vec![1.0, 0.5], "one replica meets the soft bound only at 1 req/s");
        // A pod still starting counts at the target when scaling down: 1 req/s on one ready
        // pod and one starting is on target, so nothing is removed.
        let s1 = spec(1);
        let mut hpa = Hpa::new(&cfg, 1.0);
        let fresh = ScaleState { t: 0, load: 0, next_load: 0, ready: 1, starting: vec![1] };
        assert_eq!(hpa.decide(&s1, &fresh), 0);
        // And at zero when scaling up: 4 req/s on one ready pod and one starting asks for 4, capped at 3.
        let mut hpa = Hpa::new(&cfg, 1.0);
        assert_eq!(hpa.decide(&s1, &ScaleState { load: 1, ..fresh }), 1);
    }
}
