//! A structured search space: fields with their values, not a listed-out vector of
//! candidates. A point is one value index per field. The kind of a field says what a method
//! may assume of it: an integer or ordered field's neighbouring indices are neighbouring
//! settings (a CMA-ES or a Gaussian process may interpolate between them), a categorical
//! field's are not (a load balancer).

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// Whole numbers in steps of one (index i is the i-th number).
    Integer,
    /// Settings in increasing order, not evenly spaced (1, 10, 100, unlimited).
    Ordered,
    /// Settings without order.
    Categorical,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    pub kind: FieldKind,
    /// Each value's label, as tables print it.
    pub labels: Vec<String>,
}

impl Field {
    pub fn new(name: impl Into<String>, kind: FieldKind, labels: Vec<String>) -> Field {
        Field { name: name.into(), kind, labels }
    }

    pub fn size(&self) -> usize {
        self.labels.len()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchSpace {
    pub fields: Vec<Field>,
}

impl SearchSpace {
    pub fn new(fields: Vec<Field>) -> SearchSpace {
        SearchSpace { fields }
    }

    pub fn sizes(&self) -> Vec<usize> {
        self.fields.iter().map(Field::size).collect()
    }

    /// The number of points, saturating (a mesh's rule sets overflow any integer type soon).
    pub fn points(&self) -> u128 {
        self.fields.iter().fold(1u128, |n, f| n.saturating_mul(f.size() as u128))
    }

    /// Point number `index` of [`SearchSpace::points`] in mixed radix, the first field
    /// varying slowest (the order `alternatives` lists a small space in).
    pub fn point(&self, mut index: u128) -> Vec<usize> {
        let mut p = vec![0; self.fields.len()];
        for (i, f) in self.fields.iter().enumerate().rev() {
            let n = f.size() as u128;
            p[i] = (index % n) as usize;
            index /= n;
        }
        p
    }

    /// One point drawn uniformly: one draw per field.
    pub fn random_point(&self, rng: &mut ChaCha8Rng) -> Vec<usize> {
        self.fields.iter().map(|f| rng.random_range(0..f.size())).collect()
    }

    /// `n` points of a Latin hypercube: each field's values are spread over the points as
    /// evenly as its size allows (stratum k of n maps to value floor(k * size / n)), the
    /// strata shuffled independently per field.
    pub fn latin_hypercube(&self, n: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<usize>> {
        let mut points = vec![vec![0; self.fields.len()]; n];
        for (i, f) in self.fields.iter().enumerate() {
            let mut strata: Vec<usize> = (0..n).collect();
            for k in (1..n).rev() {
                strata.swap(k, rng.random_range(0..=k));
            }
            for (p, &k) in points.iter_mut().zip(&strata) {
                p[i] = k * f.size() / n;
            }
        }
        points
    }

    /// A point as numbers in [0, 1] for methods that work in a box: value i of a field of
    /// n values sits at the middle of its slice, (i + 0.5) / n.
    pub fn to_unit(&self, point: &[usize]) -> Vec<f64> {
        point.iter().zip(&self.fields).map(|(&i, f)| (i as f64 + 0.5) / f.size() as f64).collect()
    }

    /// The point whose slices hold `x` (clamped into the box): the inverse of `to_unit`.
    pub fn from_unit(&self, x: &[f64]) -> Vec<usize> {
        x.iter().zip(&self.fields).map(|(&v, f)| ((v.clamp(0.0, 1.0) * f.size() as f64) as usize).min(f.size() - 1)).collect()
    }

    /// "field=label, ..." for tables and logs.
    pub fn describe(&self, point: &[usize]) -> String {
        point.iter().zip(&self.fields).map(|(&i, f)| format!("{}={}", f.name, f.labels[i])).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn space() -> SearchSpace {
        let labels = |n: usize| (0..n).map(|i| i.to_string()).collect();
        SearchSpace::new(vec![
            Field::new("a", FieldKind::Integer, labels(3)),
            Field::new("b", FieldKind::Categorical, labels(4)),
            Field::new("c", FieldKind::Ordered, labels(5)),
        ])
    }

    #[test]
    fn points_number_in_mixed_radix_and_the_unit_box_round_trips() {
        let s = space();
        assert_eq!(s.points(), 60);
        assert_eq!(s.point(0), [0, 0, 0]);
        assert_eq!(s.point(59), [2, 3, 4]);
        assert_eq!(s.point(5), [0, 1, 0]);
        for i in 0..60 {
            let p = s.point(i);
            assert_eq!(s.from_unit(&s.to_unit(&p)), p);
        }
        assert_eq!(s.from_unit(&[-1.0, 2.0, 1.0]), [0, 3, 4]);
    }

    #[test]
    fn a_latin_hypercube_spreads_every_field() {
        let s = space();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let design = s.latin_hypercube(20, &mut rng);
        for (i, f) in s.fields.iter().enumerate() {
            let mut counts = vec![0; f.size()];
            for p in &design {
                counts[p[i]] += 1;
            }
            let (lo, hi) = (20 / f.size(), 20usize.div_ceil(f.size()));
            assert!(counts.iter().all(|&c| (lo..=hi).contains(&c)), "field {i}: {counts:?}");
        }
    }

    #[test]
    fn a_huge_space_saturates_instead_of_overflowing() {
        let f = Field::new("x", FieldKind::Integer, (0..1000).map(|i| i.to_string()).collect());
        let s = SearchSpace::new(vec![f; 20]);
        assert_eq!(s.points(), u128::MAX);
    }
}
