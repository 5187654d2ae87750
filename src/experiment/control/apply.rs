//! One row of a control policy as what a cluster operator runs: the VirtualService that
//! splits traffic between the two subsets by the routing weight, and the `kubectl scale`
//! command that sets the replicas (`meshrl apply-policy`).

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{Error, Result};

/// The cluster's names (the control config's `[deploy]` table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeployNames {
    /// The VirtualService's name and the service host it routes (default "compute").
    pub service: String,
    pub namespace: String,
    /// The DestinationRule subsets: the routing weight goes to the first, the rest to the second.
    pub subsets: [String; 2],
    /// The deployment whose replicas the policy sets (default "compute").
    pub deployment: String,
}

impl DeployNames {
    /// Refuses names Kubernetes and Istio would refuse: they reach a manifest and a printed
    /// `kubectl` command.
    pub fn validate(&self) -> Result<()> {
        use crate::k8s::{check_name, NameKind};
        check_name("deploy.namespace", NameKind::Label1123, &self.namespace)?;
        check_name("deploy.service", NameKind::Label1035, &self.service)?;
        check_name("deploy.deployment", NameKind::Subdomain1123, &self.deployment)?;
        for (i, s) in self.subsets.iter().enumerate() {
            check_name(&format!("deploy.subsets[{i}]"), NameKind::Label1123, s)?;
        }
        Ok(())
    }
}

impl Default for DeployNames {
    fn default() -> Self {
        DeployNames {
            service: "compute".into(),
            namespace: "default".into(),
            subsets: ["node1".into(), "node2".into()],
            deployment: "compute".into(),
        }
    }
}

/// One row of a policy file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolicyRow {
    pub load: f64,
    pub routing: f64,
    pub replicas: u32,
    pub blocking: Option<f64>,
}

/// The most replicas a Deployment can hold.
const MAX_REPLICAS: f64 = crate::k8s::MAX_REPLICAS as f64;

/// Reads the row of `load` from a policy CSV (`l,r,p,c,d[,blocking]`). The whole file is
/// checked first, each error naming the row and field: a load or delay below 0, a routing
/// weight outside [0, 100], replicas that are not a whole number in 1..=2^31-1, a blocking
/// share outside [0, 1], a load listed twice, no rows, and, with `trace_loads` (the control
/// config's trace), a load outside the loads the trace measured.
pub fn read_row(path: &Path, load: f64, trace_loads: Option<(f64, f64)>) -> Result<PolicyRow> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let blocking = match header.trim() {
        "l,r,p,c,d" => false,
        "l,r,p,c,d,blocking" => true,
        other => return Err(Error::file(path, format!("header must be `l,r,p,c,d` or `l,r,p,c,d,blocking`, but is `{other}`"))),
    };
    let names = ["l", "r", "p", "c", "d", "blocking"];
    let mut rows: Vec<(usize, PolicyRow)> = Vec::new();
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let row = i + 1;
        let fields: Vec<&str> = line.split(',').collect();
        let want = if blocking { 6 } else { 5 };
        if fields.len() != want {
            return Err(Error::field(path, row, "l", format!("expected {want} fields, found {}", fields.len())));
        }
        let mut v = [0.0; 6];
        for (j, f) in fields.iter().enumerate() {
            v[j] = f
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| Error::field(path, row, names[j], format!("not a number: {f:?}")))?;
        }
        let bad = |name: &str, why: String| Err(Error::field(path, row, name, why));
        if v[0] < 0.0 {
            return bad("l", format!("a load must be >= 0, but is {}", v[0]));
        }
        if !(0.0..=100.0).contains(&v[2]) {
            return bad("p", format!("routing weight must lie in [0, 100], but is {}", v[2]));
        }
        if !(1.0..=MAX_REPLICAS).contains(&v[3]) || v[3].fract() != 0.0 {
            return bad("c", format!("replicas must be a whole number in 1..={MAX_REPLICAS} (a Deployment's int32), but is {}", v[3]));
        }
        if v[4] < 0.0 {
            return bad("d", format!("a delay must be >= 0, but is {}", v[4]));
        }
        if blocking && !(0.0..=1.0).contains(&v[5]) {
            return bad("blocking", format!("a blocked share must lie in [0, 1], but is {}", v[5]));
        }
        if let Some((lo, hi)) = trace_loads.filter(|(lo, hi)| v[0] < *lo || v[0] > *hi) {
            return bad("l", format!("load {} lies outside the loads the config's trace measured, {lo}-{hi}", v[0]));
        }
        if let Some((first, _)) = rows.iter().find(|(_, r)| (r.load - v[0]).abs() < 1e-9) {
            return bad("l", format!("load {} already has row {first}: which to apply would depend on the order", v[0]));
        }
        rows.push((row, PolicyRow { load: v[0], routing: v[2], replicas: v[3] as u32, blocking: blocking.then_some(v[5]) }));
    }
    if rows.is_empty() {
        return Err(Error::file(path, "the policy has no rows"));
    }
    match rows.iter().find(|(_, r)| (r.load - load).abs() < 1e-9) {
        Some((_, r)) => Ok(PolicyRow { load, ..*r }),
        None => {
            let loads: Vec<String> = rows.iter().map(|(_, r)| r.load.to_string()).collect();
            Err(Error::file(path, format!("no row for load {load}; the policy covers loads {}", loads.join(", "))))
        }
    }
}

/// The VirtualService YAML and the scale command for one row.
pub fn render(row: &PolicyRow, names: &DeployNames) -> Result<String> {
    let first = row.routing.round() as u32;
    let vs = json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": { "name": names.service, "namespace": names.namespace },
        "spec": {
            "hosts": [names.service],
            "http": [{ "route": [
                { "destination": { "host": names.service, "subset": names.subsets[0] }, "weight": first },
                { "destination": { "host": names.service, "subset": names.subsets[1] }, "weight": 100 - first },
            ]}],
        },
    });
    let yaml = serde_yaml::to_string(&vs).map_err(|e| Error::config(e.to_string()))?;
    let mut text = format!("# The policy's setting at offered load {} req/s.\n{yaml}", row.load);
    text.push_str(&format!(
        "---\n# Then set the replicas:\n#   kubectl scale {} --replicas={} -n {}\n",
        crate::k8s::shell_word(&format!("deployment/{}", names.deployment)),
        row.replicas,
        crate::k8s::shell_word(&names.namespace)
    ));
    if let Some(b) = row.blocking.filter(|b| *b > 0.0) {
        text.push_str(&format!(
            "# and have the front end's rate limiter admit {:.3} req/s ({} % blocked).\n",
            (1.0 - b) * row.load,
            (b * 100.0).round()
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_becomes_weights_and_a_scale_command() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.csv");
        std::fs::write(&path, "l,r,p,c,d\n1,5,100,1,0.28\n4,4,60,2,0.3\n").unwrap();
        let row = read_row(&path, 4.0, None).unwrap();
        assert_eq!(row, PolicyRow { load: 4.0, routing: 60.0, replicas: 2, blocking: None });
        let text = render(&row, &DeployNames::default()).unwrap();
        assert!(text.contains("subset: node1\n      weight: 60") && text.contains("subset: node2\n      weight: 40"), "{text}");
        assert!(text.contains("kubectl scale deployment/compute --replicas=2 -n default"), "{text}");
        let err = read_row(&path, 3.0, None).unwrap_err().to_string();
        assert!(err.contains("no row for load 3") && err.contains("1, 4"), "{err}");
    }

    #[test]
    fn bad_rows_name_the_file_row_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.csv");
        std::fs::write(&path, "l,r,p,c,d\n1,5,100,0,0.28\n").unwrap();
        let err = read_row(&path, 1.0, None).unwrap_err().to_string();
        assert!(err.contains("p.csv") && err.contains("row 1") && err.contains("c"), "{err}");
        std::fs::write(&path, "l,p,c\n").unwrap();
        assert!(read_row(&path, 1.0, None).unwrap_err().to_string().contains("header"));
        // The whole file is checked, whichever load is asked for.
        let cases = [
            ("l,r,p,c,d,blocking\n1,5,100,1,0.3,0\n2,5,100,1,0.3,1.5\n", "row 2", "blocking", "[0, 1]"),
            ("l,r,p,c,d\n1,5,100,1,0.3\n2,5,100,3000000000,0.3\n", "row 2", "c", "int32"),
            ("l,r,p,c,d\n1,5,100,1,0.3\n1,5,50,2,0.3\n", "row 2", "l", "already has row 1"),
            ("l,r,p,c,d\n1,5,100,1,0.3\n2,5,100,1,-0.1\n", "row 2", "d", "delay"),
            ("l,r,p,c,d\n-1,5,100,1,0.3\n", "row 1", "l", ">= 0"),
        ];
        for (text, row, field, why) in cases {
            std::fs::write(&path, text).unwrap();
            let err = read_row(&path, 1.0, None).unwrap_err().to_string();
            assert!(err.contains(row) && err.contains(&format!("`{field}`")) && err.contains(why), "{text}: {err}");
        }
        std::fs::write(&path, "l,r,p,c,d\n").unwrap();
        assert!(read_row(&path, 1.0, None).unwrap_err().to_string().contains("no rows"));
        std::fs::write(&path, "l,r,p,c,d\n1,5,100,1,0.3\n9,5,100,2,0.3\n").unwrap();
        let err = read_row(&path, 1.0, Some((1.0, 5.0))).unwrap_err().to_string();
        assert!(err.contains("row 2") && err.contains("load 9 lies outside") && err.contains("1-5"), "{err}");
    }
}
