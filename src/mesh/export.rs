//! A mesh's rules as Istio resources: one file per destination holding its DestinationRule
//! and its VirtualService, a folder that `kubectl apply -f` takes whole and that
//! [`MeshRules::load`] (`meshrl mesh run --rules-dir`) reads back to the same policies.

use std::fmt::Write as _;

use super::rules::MeshRules;
use super::topology::Topology;
use crate::destination_rule::{DestinationRule, IstioMillis, RetryBudgetSettings, VirtualService};

/// The files (`<service>.yaml`, text) for the destinations `services` (indices into the
/// topology), each DestinationRule written in full (Istio's defaults spelled out, so the
/// cluster runs what the emulator ran). An error names the service and the field that has
/// no Istio spelling.
pub fn rule_files(rules: &MeshRules, topology: &Topology, services: &[usize], header: &str) -> Result<Vec<(String, String)>, String> {
    services
        .iter()
        .map(|&s| {
            let name = &topology.services[s].name;
            let p = &rules.destinations[s];
            let fail = |what: &str, e: String| format!("{name}: {what}: {e}");
            let mut rule = DestinationRule::new_full(name, name, &p.rules).map_err(|e| fail("DestinationRule", e))?;
            rule.spec.traffic_policy.retry_budget =
                p.retry_budget.map(|b| RetryBudgetSettings { percent: Some(b.percent), min_retry_concurrency: Some(b.min_concurrency) });
            let mut vs = VirtualService::new(name, name, &p.rules.retries).map_err(|e| fail("VirtualService", e))?;
            let route = &mut vs.spec.http[0];
            route.timeout = p.timeout_ms.map(IstioMillis);
            if let Some(retry) = route.retries.as_mut().filter(|_| !p.rules.retries.is_off()) {
                retry.per_try_timeout = p.per_try_timeout_ms.map(IstioMillis);
                retry.retry_on = Some(p.retry_on.spelling());
            }
            let mut text = String::new();
            let _ = writeln!(text, "{header}");
            text += &rule.to_yaml().map_err(|e| fail("DestinationRule", e))?;
            text += "---\n";
            text += &vs.to_yaml().map_err(|e| fail("VirtualService", e))?;
            Ok((format!("{name}.yaml"), text))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::mesh_defend::grid::MeshRuleGrid;
    use crate::mesh::rules::IstioRelease;
    use rand::{Rng, SeedableRng};

    /// Random points of the defender's grid, written and read back, give the same policy
    /// on every destination.
    #[test]
    fn written_rules_read_back_to_the_same_policies() {
        let topology = crate::env::mesh_defend::topology("shop11-capacity.yaml");
        let release = IstioRelease::parse("1.30").unwrap();
        let grid = MeshRuleGrid::default();
        let sizes = grid.space(&topology).sizes();
        let destinations = MeshRuleGrid::destinations(&topology);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for round in 0..20 {
            let point: Vec<usize> = if round == 0 { vec![0; sizes.len()] } else { sizes.iter().map(|&n| rng.random_range(0..n)).collect() };
            let rules = grid.rules(&topology, release, &point);
            let dir = tempfile::tempdir().unwrap();
            for (file, text) in rule_files(&rules, &topology, &destinations, "# test").unwrap() {
                std::fs::write(dir.path().join(file), text).unwrap();
            }
            let back = MeshRules::load(&[dir.path().to_path_buf()], &topology, release).unwrap();
            for &d in &destinations {
                assert_eq!(back.destinations[d], rules.destinations[d], "round {round}, {}", topology.services[d].name);
            }
        }
    }
}
