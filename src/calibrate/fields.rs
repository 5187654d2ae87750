//! The scenario fields a fit may move, their bounds, and the grid of values the search walks:
//! a field is set by name on the scenario's TOML table, so any numeric field of
//! [`Scenario`] can be fitted and a name it lacks is refused.

use serde::{Deserialize, Serialize};

use crate::emulator::Scenario;
use crate::search::{Field, FieldKind, SearchSpace};

/// One fitted field and its bounds (config: `[[field]] name = "handshake_ms", low = 0.05, high = 5`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldBounds {
    pub name: String,
    pub low: f64,
    pub high: f64,
}

/// The default fields: what differs between clusters most (a slower pod, slower mTLS
/// handshakes, a longer network path, more Envoy workers, a noisier node).
pub fn default_fields() -> Vec<FieldBounds> {
    let f = |name: &str, low: f64, high: f64| FieldBounds { name: name.into(), low, high };
    vec![
        f("service_time_ms", 0.3, 10.0),
        f("handshake_ms", 0.05, 5.0),
        f("upstream_hop_ms", 0.1, 5.0),
        f("envoy_workers", 1.0, 8.0),
        f("run_speed_sigma", 0.05, 1.0),
    ]
}

/// The fitted fields as a grid: each field's values, and the scenario of a point.
#[derive(Debug, Clone)]
pub struct FieldGrid {
    base: toml::Table,
    pub names: Vec<String>,
    /// Per field, its values in increasing order.
    pub values: Vec<Vec<f64>>,
    /// Per field, whether the scenario holds it as a whole number.
    pub integer: Vec<bool>,
}

impl FieldGrid {
    /// Checks the fields against `base` and lays out `levels` values per field: every whole
    /// number of an integer field's bounds (or `levels` of them, spaced geometrically),
    /// geometric spacing for a positive lower bound (times and shapes are scales), else even.
    /// The error names the field.
    pub fn new(base: &Scenario, fields: &[FieldBounds], levels: usize) -> std::result::Result<FieldGrid, String> {
        let base_table = toml::Table::try_from(base).map_err(|e| format!("the base scenario does not serialise: {e}"))?;
        let full = base.full_table();
        if fields.is_empty() {
            return Err("no field to fit: give at least one `[[field]]`".into());
        }
        if levels < 2 {
            return Err(format!("levels must be >= 2, but is {levels}"));
        }
        let mut grid = FieldGrid { base: base_table, names: vec![], values: vec![], integer: vec![] };
        for (i, f) in fields.iter().enumerate() {
            if fields[..i].iter().any(|g| g.name == f.name) {
                return Err(format!("field `{}` is listed twice", f.name));
            }
            let current = grid.base.get(&f.name).or_else(|| full.get(&f.name));
            let integer = match current {
                Some(toml::Value::Integer(_)) => true,
                Some(toml::Value::Float(_)) => false,
                Some(_) => return Err(format!("field `{}` is not a number in the scenario, so it cannot be fitted", f.name)),
                None => return Err(format!("field `{}`: the scenario has no such field", f.name)),
            };
            if !(f.low.is_finite() && f.high.is_finite()) || f.low >= f.high {
                return Err(format!("field `{}`: bounds [{}, {}] are empty or inverted (need low < high)", f.name, f.low, f.high));
            }
            let values = if integer {
                let (lo, hi) = (f.low.ceil() as i64, f.high.floor() as i64);
                if lo > hi {
                    return Err(format!("field `{}`: bounds [{}, {}] hold no whole number", f.name, f.low, f.high));
                }
                if (hi - lo + 1) as usize <= levels {
                    (lo..=hi).map(|v| v as f64).collect()
                } else {
                    let mut v: Vec<f64> = spaced(lo.max(1) as f64, hi as f64, levels, lo > 0).iter().map(|x| x.round()).collect();
                    v.dedup();
                    v
                }
            } else {
                spaced(f.low, f.high, levels, f.low > 0.0)
            };
            for &v in [values[0], values[values.len() - 1]].iter() {
                grid.scenario_with(&[(f.name.as_str(), v, integer)]).map_err(|e| format!("field `{}` = {v}: {e}", f.name))?;
            }
            grid.names.push(f.name.clone());
            grid.values.push(values);
            grid.integer.push(integer);
        }
        Ok(grid)
    }

    /// The search space of the grid (every field ordered).
    pub fn space(&self) -> SearchSpace {
        SearchSpace::new(
            self.names
                .iter()
                .zip(&self.values)
                .map(|(n, v)| Field::new(n.clone(), FieldKind::Ordered, v.iter().map(|x| format_value(*x)).collect()))
                .collect(),
        )
    }

    /// The fields' values at a point.
    pub fn point_values(&self, point: &[usize]) -> Vec<f64> {
        point.iter().zip(&self.values).map(|(&i, v)| v[i]).collect()
    }

    /// The base scenario with the point's values.
    pub fn scenario(&self, point: &[usize]) -> std::result::Result<Scenario, String> {
        let values = self.point_values(point);
        let set: Vec<(&str, f64, bool)> = self.names.iter().zip(values).zip(&self.integer).map(|((n, v), &i)| (n.as_str(), v, i)).collect();
        self.scenario_with(&set)
    }

    fn scenario_with(&self, set: &[(&str, f64, bool)]) -> std::result::Result<Scenario, String> {
        let mut table = self.base.clone();
        for &(name, value, integer) in set {
            let v = if integer { toml::Value::Integer(value as i64) } else { toml::Value::Float(value) };
            table.insert(name.to_string(), v);
        }
        let scenario: Scenario = toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| e.to_string())?;
        scenario.validate()?;
        Ok(scenario)
    }
}

/// `n` values from `low` to `high`, geometric or even.
fn spaced(low: f64, high: f64, n: usize, geometric: bool) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let t = i as f64 / (n - 1) as f64;
            let v = if geometric { low * (high / low).powf(t) } else { low + (high - low) * t };
            // Four significant digits: values a user can type back.
            let digits = 4 - v.abs().log10().floor() as i32 - 1;
            let scale = 10f64.powi(digits);
            (v * scale).round() / scale
        })
        .collect()
}

/// A value as tables print it.
pub fn format_value(v: f64) -> String {
    if v == v.round() && v.abs() < 1e9 {
        format!("{v:.0}")
    } else {
        format!("{}", (v * 1e4).round() / 1e4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grid_sets_fields_by_name_and_refuses_what_the_scenario_lacks() {
        let base = Scenario::default();
        let grid = FieldGrid::new(&base, &default_fields(), 9).unwrap();
        assert_eq!(grid.values[3], (1..=8).map(f64::from).collect::<Vec<_>>(), "every envoy worker count");
        assert_eq!(grid.values[0].len(), 9);
        assert!((grid.values[0][0] - 0.3).abs() < 1e-9 && (grid.values[0][8] - 10.0).abs() < 1e-9);
        let s = grid.scenario(&[8, 0, 0, 3, 0]).unwrap();
        assert_eq!((s.service_time_ms, s.handshake_ms, s.envoy_workers), (10.0, 0.05, 4));
        assert_eq!(s.replica_concurrency, base.replica_concurrency, "other fields keep the base's values");
        let bad = |name: &str, low: f64, high: f64| FieldGrid::new(&base, &[FieldBounds { name: name.into(), low, high }], 9).unwrap_err();
        assert!(bad("handshake_millis", 0.1, 1.0).contains("no such field"), "{}", bad("handshake_millis", 0.1, 1.0));
        assert!(bad("handshake_ms", 1.0, 0.1).contains("empty or inverted"));
        assert!(bad("handshake_ms", 1.0, 1.0).contains("empty or inverted"));
        assert!(bad("ejection_rule", 0.0, 1.0).contains("not a number"));
        assert!(bad("fault_share", 0.0, 2.0).contains("fault_share"), "a bound the scenario refuses is named");
        // A field the default scenario leaves out of its TOML is still known.
        assert!(FieldGrid::new(&base, &[FieldBounds { name: "slow_connect_ms".into(), low: 200.0, high: 3000.0 }], 5).is_ok());
    }
}
