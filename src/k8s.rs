//! Names that reach a cluster: checked as Kubernetes checks them, before they reach a
//! manifest or a printed command, and every printed command's words quoted for the shell.
//! A name from a config (`namespace = "x; rm -rf /"`) must never become a command.

use crate::error::{Error, Result};

/// The most replicas a Deployment can hold (`spec.replicas` is an int32).
pub const MAX_REPLICAS: u32 = i32::MAX as u32;

/// What kind of Kubernetes name a field holds (apimachinery's `validation.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// RFC 1123 label (namespaces, Istio subsets): at most 63 of `a-z0-9-`, alphanumeric at
    /// both ends.
    Label1123,
    /// RFC 1035 label (services): an RFC 1123 label that starts with a letter.
    Label1035,
    /// RFC 1123 subdomain (deployments, HPAs, DestinationRules): at most 253 characters,
    /// RFC 1123 labels joined by dots.
    Subdomain1123,
}

impl NameKind {
    fn describe(self) -> &'static str {
        match self {
            NameKind::Label1123 => "an RFC 1123 label (at most 63 of a-z, 0-9 and -, starting and ending with a letter or digit)",
            NameKind::Label1035 => {
                "an RFC 1035 label (at most 63 of a-z, 0-9 and -, starting with a letter, ending with a letter or digit)"
            }
            NameKind::Subdomain1123 => "an RFC 1123 subdomain (at most 253 characters: RFC 1123 labels joined by dots)",
        }
    }
}

fn is_label_1123(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Whether `value` is a valid name of this kind.
pub fn is_valid(kind: NameKind, value: &str) -> bool {
    match kind {
        NameKind::Label1123 => is_label_1123(value),
        NameKind::Label1035 => is_label_1123(value) && value.starts_with(|c: char| c.is_ascii_lowercase()),
        NameKind::Subdomain1123 => value.len() <= 253 && value.split('.').all(is_label_1123),
    }
}

/// Refuses `value` of the config field `field` unless it is a valid name of `kind`.
pub fn check_name(field: &str, kind: NameKind, value: &str) -> Result<()> {
    if is_valid(kind, value) {
        Ok(())
    } else {
        Err(Error::config(format!("{field} {value:?} is not {}", kind.describe())))
    }
}

/// Refuses a service host as Istio takes it (`spec.host`): a DNS name (an RFC 1123 subdomain,
/// short or fully qualified), optionally a `*.` wildcard.
pub fn check_host(field: &str, host: &str) -> Result<()> {
    let name = host.strip_prefix("*.").unwrap_or(host);
    if is_valid(NameKind::Subdomain1123, name) {
        Ok(())
    } else {
        Err(Error::config(format!(
            "{field} {host:?} is not a service host (a DNS name such as reviews or reviews.default.svc.cluster.local)"
        )))
    }
}

/// Refuses a URL Fortio is to load unless it is an absolute http or https URL.
pub fn check_url(field: &str, text: &str) -> Result<()> {
    match url::Url::parse(text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() && u.as_str() == text => Ok(()),
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            Err(Error::config(format!("{field} {text:?} is not written as a URL is (it reads as {:?}): write it that way", u.as_str())))
        }
        _ => Err(Error::config(format!("{field} {text:?} is not an absolute http:// or https:// URL"))),
    }
}

/// One word of a printed shell command, quoted when it needs to be.
pub fn shell_word(text: &str) -> String {
    // A NUL byte cannot be in a shell word at all; names reaching here are checked first.
    shlex::try_quote(text).map(|w| w.into_owned()).unwrap_or_else(|_| "''".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_as_kubernetes_checks_them() {
        for good in ["default", "istio-system", "a", "x1"] {
            assert!(is_valid(NameKind::Label1123, good), "{good}");
        }
        for bad in ["", "x; rm -rf /", "Default", "-a", "a-", "a.b", &"a".repeat(64)] {
            assert!(!is_valid(NameKind::Label1123, bad), "{bad}");
        }
        assert!(is_valid(NameKind::Label1123, "1abc") && !is_valid(NameKind::Label1035, "1abc"));
        assert!(is_valid(NameKind::Subdomain1123, "compute.v2") && !is_valid(NameKind::Subdomain1123, "compute..v2"));
        let err = check_name("deploy.namespace", NameKind::Label1123, "x; rm -rf /").unwrap_err().to_string();
        assert!(err.contains("deploy.namespace \"x; rm -rf /\" is not an RFC 1123 label"), "{err}");
        assert!(check_host("host", "reviews.default.svc.cluster.local").is_ok() && check_host("host", "*.example.com").is_ok());
        assert!(check_host("host", "httpbin\nkind: Secret").is_err() && check_host("host", "").is_err());
        assert!(check_url("url", "http://httpbin:8000/get").is_ok());
        assert!(check_url("url", "http://h:8000/get; rm -rf /").is_err(), "a blank is not in a URL");
        assert!(check_url("url", "file:///etc/passwd").is_err() && check_url("url", "httpbin").is_err());
    }

    #[test]
    fn printed_words_are_quoted() {
        assert_eq!(shell_word("http://httpbin:8000/get"), "http://httpbin:8000/get");
        assert_eq!(shell_word("x; rm -rf /"), "'x; rm -rf /'");
        assert_eq!(shell_word("it's"), "\"it's\"");
    }
}
