//! Istio's durations: a string with one unit (`500ms`, `1s`), parsed strictly.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration of an Istio field, in seconds, written as a string with one unit (`500ms`,
/// `1s`, `3m`, `1h`). Parsed strictly: a typo in a unit must not silently mean seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IstioDuration(pub f64);

impl IstioDuration {
    pub fn parse(text: &str) -> std::result::Result<f64, String> {
        let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let scale = match unit {
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("duration `{text}` has no unit (use ms, s, m or h, e.g. \"30s\")")),
            _ => return Err(format!("duration `{text}`: unknown unit `{unit}` (use ms, s, m or h)")),
        };
        let well_formed = {
            let mut parts = number.splitn(2, '.');
            let whole = parts.next().unwrap_or("");
            let frac = parts.next();
            !whole.is_empty() && frac.is_none_or(|f| !f.is_empty() && !f.contains('.'))
        };
        let x: f64 = match number.parse() {
            Ok(x) if well_formed => x,
            _ => return Err(format!("duration `{text}`: expected a number then a unit, e.g. \"30s\" or \"500ms\"")),
        };
        // Dividing by 1000 (not multiplying by 1e-3) keeps "500ms" exactly 0.5.
        let seconds = if unit == "ms" { x / 1000.0 } else { x * scale };
        if !(seconds.is_finite() && seconds > 0.0) {
            return Err(format!("duration `{text}` must be > 0"));
        }
        Ok(seconds)
    }

    /// The shortest text that parses back to exactly these seconds: whole seconds as `30s`,
    /// whole milliseconds as `500ms`, anything else as decimal seconds.
    pub fn format(seconds: f64) -> String {
        if seconds.fract() == 0.0 {
            return format!("{seconds}s");
        }
        let ms = seconds * 1000.0;
        if ms.fract() == 0.0 && ms / 1000.0 == seconds {
            return format!("{ms}ms");
        }
        format!("{seconds}s")
    }
}

impl Serialize for IstioDuration {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&Self::format(self.0))
    }
}

impl<'de> Deserialize<'de> for IstioDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map(IstioDuration).map_err(serde::de::Error::custom)
    }
}

/// serde_yaml places an error raised inside a value at the enclosing map, so the duration
/// fields add their own name.
fn named_duration<'de, D: Deserializer<'de>>(d: D, field: &str) -> std::result::Result<IstioDuration, D::Error> {
    IstioDuration::deserialize(d).map_err(|e| serde::de::Error::custom(format!("{field}: {e}")))
}
pub(super) fn interval<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<IstioDuration, D::Error> {
    named_duration(d, "interval")
}
pub(super) fn base_ejection_time<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<IstioDuration, D::Error> {
    named_duration(d, "baseEjectionTime")
}

/// A duration Istio keeps to whole milliseconds (`connectTimeout`, a retry `backoff`), in
/// ms. Istio refuses a duration below 1 ms or with a fraction of one (its `ValidateDuration`),
/// so the reader refuses them too rather than read a value no cluster ran.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IstioMillis(pub f64);

impl IstioMillis {
    pub fn parse(text: &str) -> std::result::Result<f64, String> {
        let ms = IstioDuration::parse(text)? * 1000.0;
        let whole = ms.round();
        // "0.1s" is 100.00000000000001 ms after the product: whole in Istio's terms.
        if whole < 1.0 || (ms - whole).abs() > 1e-9 * whole {
            return Err(format!("duration `{text}`: Istio takes whole milliseconds, at least 1ms"));
        }
        Ok(whole)
    }

    /// Whole seconds as `10s`, other whole milliseconds as `250ms`; `None` for a value Istio
    /// cannot hold (below 1 ms, a fraction of a ms, not finite).
    pub fn format(ms: f64) -> Option<String> {
        if !(ms.is_finite() && ms >= 1.0 && ms.fract() == 0.0) {
            return None;
        }
        Some(if ms % 1000.0 == 0.0 { format!("{}s", ms / 1000.0) } else { format!("{ms}ms") })
    }
}

impl Serialize for IstioMillis {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        // The writers check the value first ([`rule_spelling`]); this fallback never shows.
        s.serialize_str(&Self::format(self.0).unwrap_or_else(|| format!("{}ms", self.0)))
    }
}

impl<'de> Deserialize<'de> for IstioMillis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map(IstioMillis).map_err(serde::de::Error::custom)
    }
}

fn named_millis<'de, D: Deserializer<'de>>(d: D, field: &str) -> std::result::Result<Option<IstioMillis>, D::Error> {
    IstioMillis::deserialize(d).map(Some).map_err(|e| serde::de::Error::custom(format!("{field}: {e}")))
}
pub(super) fn connect_timeout<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<IstioMillis>, D::Error> {
    named_millis(d, "connectTimeout")
}
pub(super) fn per_try_timeout<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<IstioMillis>, D::Error> {
    named_millis(d, "perTryTimeout")
}
pub(super) fn route_timeout<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<IstioMillis>, D::Error> {
    named_millis(d, "timeout")
}
pub(super) fn backoff<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<IstioMillis>, D::Error> {
    named_millis(d, "backoff")
}
