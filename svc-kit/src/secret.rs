//! Settings that must not end up in a log: a signing secret, and URLs that
//! may carry a password (`postgres://user:password@host/db`).
//!
//! Both types print redacted through `Debug` and `Display`, so a config
//! struct can derive `Debug` and be logged whole. The value itself is only
//! reachable through `expose`, which makes every use easy to find.
//!
//! They serialize to their plain value: `config::load` layers the environment
//! over the defaults by serializing the defaults. Nothing else serializes a
//! config. The `secrecy` crate was the candidate, but its strings cannot be
//! serialized, and it would print a URL's host as redacted as its password.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A secret that never prints.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "Secret(empty)"
        } else {
            "Secret(***)"
        })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A URL whose password, if it has one, never prints; the rest does, so a
/// log still says which host could not be reached.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// The URL with its password.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password replaced by `***`; each of a
    /// comma-separated list of URLs (several NATS servers) alike.
    pub fn redacted(&self) -> String {
        self.0.split(',').map(redact_one).collect::<Vec<_>>().join(",")
    }
}

/// `url` with its password replaced by `***`.
fn redact_one(url: &str) -> String {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url[authority_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| authority_start + i);
    let authority = &url[authority_start..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let Some(colon) = authority[..at].find(':') else {
        return url.to_owned();
    };
    let password_start = authority_start + colon + 1;
    let password_end = authority_start + at;
    format!("{}***{}", &url[..password_start], &url[password_end..])
}

impl From<String> for SecretUrl {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for SecretUrl {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let secret = Secret::from("hunter2");
        let shown = format!("{secret:?} {secret} {:?}", Some(&secret));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn a_urls_password_never_prints_but_its_host_does() {
        for (url, shown) in [
            (
                "postgres://app:hunter2@db:5432/taxi",
                "postgres://app:***@db:5432/taxi",
            ),
            ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
            ("nats://user:p@ss:word@nats:4222", "nats://user:***@nats:4222"),
            (
                "postgres://postgres@127.0.0.1:5432/taxi",
                "postgres://postgres@127.0.0.1:5432/taxi",
            ),
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            (
                "nats://a:p1@n1:4222,nats://b:p2@n2:4222",
                "nats://a:***@n1:4222,nats://b:***@n2:4222",
            ),
            (
                "postgres://app@db/taxi?password=x:y@z",
                "postgres://app@db/taxi?password=x:y@z",
            ),
        ] {
            let url = SecretUrl::from(url);
            assert_eq!(url.to_string(), shown);
            assert_eq!(format!("{url:?}"), format!("{shown:?}"));
        }
    }

    #[test]
    fn both_survive_the_config_layers_and_still_do_not_print() {
        #[derive(Serialize, Deserialize, Debug, Default)]
        struct Settings {
            secret: Secret,
            url: SecretUrl,
        }
        let defaults = Settings {
            secret: "s3cret".into(),
            url: "postgres://a:b@h/d".into(),
        };
        // What `config::load` does with the defaults.
        let settings: Settings = figment::Figment::from(figment::providers::Serialized::defaults(defaults))
            .extract()
            .expect("valid settings");
        assert_eq!(settings.secret.expose(), "s3cret");
        assert_eq!(settings.url.expose(), "postgres://a:b@h/d");
        let shown = format!("{settings:?}");
        assert!(!shown.contains("s3cret") && !shown.contains(":b@"), "{shown}");
    }
}
