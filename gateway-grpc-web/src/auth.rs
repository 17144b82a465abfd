//! Bearer-token authentication. Tokens are JWTs signed with HS256 (a shared
//! secret) or RS256 (a public key or a JWKS file); only the configured
//! algorithm is accepted, so `alg: none` and algorithm confusion (an RS256
//! public key used as an HS256 secret) are refused. `exp`, `nbf`, `iss` and
//! `aud` are checked. The subject is a UUID and the role one of customer,
//! driver, analyst: a token can never claim the internal `service` role.
//!
//! Every refusal is counted in `gateway_auth_failures_total{reason}`, one of
//! a fixed set of reasons ([`Refusal`]), never the token or its subject.

use std::{collections::HashMap, time::Duration};

use anyhow::Context as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, jwk::JwkSet};
use serde::{Deserialize, Serialize};
use svc_kit::{
    identity::Caller,
    metrics::{
        Registry,
        prometheus_client::{
            encoding::EncodeLabelSet,
            metrics::{counter::Counter, family::Family},
        },
    },
};
use tonic::Status;
use uuid::Uuid;

use crate::config::AuthConfig;

/// The claims the gateway issues and accepts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: String,
    pub iss: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
}

enum Keys {
    Single(DecodingKey),
    /// By `kid`.
    Set(HashMap<String, DecodingKey>),
}

/// Why a token was refused: the `reason` label of
/// `gateway_auth_failures_total`, a closed set so the label stays bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `authorization: Bearer ...` header.
    Missing,
    /// Not a JWT, or one that does not decode.
    Malformed,
    /// A JWKS `kid` the gateway does not know.
    UnknownKey,
    Expired,
    /// `nbf` is still in the future.
    NotYetValid,
    BadSignature,
    /// Signed with an algorithm other than the configured one.
    WrongAlgorithm,
    WrongIssuer,
    WrongAudience,
    /// `exp`, `nbf`, `sub`, `iss` or `aud` is absent.
    MissingClaim,
    /// The subject is not a UUID.
    BadSubject,
    /// A role other than customer, driver, analyst.
    BadRole,
}

impl Refusal {
    /// Every reason, so each one's counter shows from the start.
    pub const ALL: [Self; 12] = [
        Self::Missing,
        Self::Malformed,
        Self::UnknownKey,
        Self::Expired,
        Self::NotYetValid,
        Self::BadSignature,
        Self::WrongAlgorithm,
        Self::WrongIssuer,
        Self::WrongAudience,
        Self::MissingClaim,
        Self::BadSubject,
        Self::BadRole,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::UnknownKey => "unknown_key",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::BadSignature => "bad_signature",
            Self::WrongAlgorithm => "wrong_algorithm",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::MissingClaim => "missing_claim",
            Self::BadSubject => "bad_subject",
            Self::BadRole => "bad_role",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Verifies bearer tokens.
pub struct Authenticator {
    keys: Keys,
    validation: Validation,
    failures: Family<ReasonLabels, Counter>,
}

impl Authenticator {
    /// Reads the key material named by `config`.
    pub fn from_config(config: &AuthConfig) -> anyhow::Result<Self> {
        let (keys, algorithm) = if !config.jwks_file.is_empty() {
            let text = std::fs::read_to_string(&config.jwks_file)
                .with_context(|| format!("cannot read JWKS file {}", config.jwks_file))?;
            let set: JwkSet =
                serde_json::from_str(&text).context("the JWKS file is not a JSON Web Key Set")?;
            let mut keys = HashMap::new();
            for jwk in &set.keys {
                let kid = jwk.common.key_id.clone().context("every JWKS key needs a kid")?;
                keys.insert(kid, DecodingKey::from_jwk(jwk).context("unusable JWKS key")?);
            }
            (Keys::Set(keys), Algorithm::RS256)
        } else if !config.rs256_public_key_file.is_empty() {
            let pem = std::fs::read(&config.rs256_public_key_file)
                .with_context(|| format!("cannot read {}", config.rs256_public_key_file))?;
            let key = DecodingKey::from_rsa_pem(&pem).context("not an RSA public key in PEM")?;
            (Keys::Single(key), Algorithm::RS256)
        } else {
            (
                Keys::Single(DecodingKey::from_secret(config.hs256_secret.expose().as_bytes())),
                Algorithm::HS256,
            )
        };
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "sub", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = config.leeway_secs;
        let failures = Family::default();
        for refusal in Refusal::ALL {
            // Each reason shows from the start, at 0.
            failures.get_or_create_owned(&ReasonLabels {
                reason: refusal.label(),
            });
        }
        Ok(Self {
            keys,
            validation,
            failures,
        })
    }

    /// Registers `gateway_auth_failures_total{reason}`.
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "gateway_auth_failures",
            "Requests refused as UNAUTHENTICATED, by why their bearer token was not accepted",
            self.failures.clone(),
        );
    }

    /// The verified caller of a request carrying `authorization: Bearer <jwt>`;
    /// a refusal is UNAUTHENTICATED and counted by its reason.
    pub fn verify(&self, authorization: Option<&http::HeaderValue>) -> Result<Caller, Status> {
        self.check(authorization).map_err(|(refusal, message)| {
            self.failures
                .get_or_create(&ReasonLabels {
                    reason: refusal.label(),
                })
                .inc();
            Status::unauthenticated(message)
        })
    }

    /// The caller, or why not and what to tell the client.
    fn check(&self, authorization: Option<&http::HeaderValue>) -> Result<Caller, (Refusal, String)> {
        let refused = |refusal, message: &str| (refusal, message.to_owned());
        let token = authorization
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or_else(|| refused(Refusal::Missing, "a bearer token is required"))?;
        let key = match &self.keys {
            Keys::Single(key) => key,
            Keys::Set(keys) => {
                let header = jsonwebtoken::decode_header(token)
                    .map_err(|_| refused(Refusal::Malformed, "malformed token"))?;
                header
                    .kid
                    .as_ref()
                    .and_then(|kid| keys.get(kid))
                    .ok_or_else(|| refused(Refusal::UnknownKey, "token signed by an unknown key"))?
            }
        };
        let claims = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(|error| {
                tracing::debug!(%error, "token refused");
                let (refusal, said) = reason(&error);
                (refusal, format!("invalid token: {said}"))
            })?
            .claims;
        let subject = Uuid::parse_str(&claims.sub)
            .map_err(|_| refused(Refusal::BadSubject, "the token's subject is not a UUID"))?;
        match claims.role.as_str() {
            "customer" => Ok(Caller::Customer(subject)),
            "driver" => Ok(Caller::Driver(subject)),
            "analyst" => Ok(Caller::Analyst(subject)),
            other => Err((
                Refusal::BadRole,
                format!("the token's role {other:?} is not accepted"),
            )),
        }
    }
}

/// Why a token did not verify, and the short reason a client may see (never
/// key material).
fn reason(error: &jsonwebtoken::errors::Error) -> (Refusal, &'static str) {
    use jsonwebtoken::errors::ErrorKind as K;
    match error.kind() {
        K::ExpiredSignature => (Refusal::Expired, "expired"),
        K::ImmatureSignature => (Refusal::NotYetValid, "not valid yet"),
        K::InvalidSignature => (Refusal::BadSignature, "bad signature"),
        K::InvalidAlgorithm | K::InvalidAlgorithmName => (Refusal::WrongAlgorithm, "algorithm not accepted"),
        K::InvalidIssuer => (Refusal::WrongIssuer, "wrong issuer"),
        K::InvalidAudience => (Refusal::WrongAudience, "wrong audience"),
        K::MissingRequiredClaim(_) => (Refusal::MissingClaim, "missing claim"),
        _ => (Refusal::Malformed, "malformed"),
    }
}

/// Mints an HS256 token, for development and tests.
pub fn mint(config: &AuthConfig, role: &str, subject: Uuid, ttl: Duration) -> anyhow::Result<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let claims = Claims {
        sub: subject.to_string(),
        role: role.to_owned(),
        iss: config.issuer.clone(),
        aud: config.audience.clone(),
        exp: now + ttl.as_secs(),
        nbf: now,
        iat: now,
    };
    let key = EncodingKey::from_secret(config.hs256_secret.expose().as_bytes());
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &key,
    )?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn header(token: &str) -> http::HeaderValue {
        http::HeaderValue::from_str(&format!("Bearer {token}")).unwrap()
    }

    fn failures(registry: &Registry, reason: &str) -> String {
        let text = svc_kit::metrics::encode(registry);
        let line = format!("gateway_auth_failures_total{{reason=\"{reason}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&line))
            .unwrap_or_else(|| panic!("{line} in {text}"))
            .to_owned()
    }

    #[test]
    fn each_refusal_is_counted_by_its_reason_and_a_good_token_not_at_all() {
        let config = AuthConfig::default();
        let auth = Authenticator::from_config(&config).unwrap();
        let mut registry = Registry::default();
        auth.register_metrics(&mut registry);
        let good = mint(&config, "customer", Uuid::new_v4(), Duration::from_secs(60)).unwrap();
        let other_key = AuthConfig {
            hs256_secret: "another-secret".into(),
            ..AuthConfig::default()
        };
        let forged = mint(&other_key, "customer", Uuid::new_v4(), Duration::from_secs(60)).unwrap();
        let service = mint(&config, "service", Uuid::new_v4(), Duration::from_secs(60)).unwrap();

        assert!(auth.verify(Some(&header(&good))).is_ok());
        let refusals = [
            auth.verify(None),
            auth.verify(Some(&http::HeaderValue::from_static("Basic abc"))),
            auth.verify(Some(&header("not.a.jwt"))),
            auth.verify(Some(&header(&forged))),
            auth.verify(Some(&header(&forged))),
            auth.verify(Some(&header(&service))),
        ];

        for refused in &refusals {
            assert_eq!(refused.as_ref().unwrap_err().code(), tonic::Code::Unauthenticated);
        }
        assert_eq!(failures(&registry, "missing"), "2");
        assert_eq!(failures(&registry, "malformed"), "1");
        assert_eq!(failures(&registry, "bad_signature"), "2");
        assert_eq!(failures(&registry, "bad_role"), "1");
        assert_eq!(failures(&registry, "expired"), "0", "every reason shows");
    }
}
