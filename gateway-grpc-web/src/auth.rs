//! Bearer-token authentication. Tokens are JWTs signed with HS256 (a shared
//! secret) or RS256 (a public key or a JWKS file); only the configured
//! algorithm is accepted, so `alg: none` and algorithm confusion (an RS256
//! public key used as an HS256 secret) are refused. `exp`, `nbf`, `iss` and
//! `aud` are checked. The subject is a UUID and the role one of customer,
//! driver, analyst: a token can never claim the internal `service` role.

use std::{collections::HashMap, time::Duration};

use anyhow::Context as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, jwk::JwkSet};
use serde::{Deserialize, Serialize};
use svc_kit::identity::Caller;
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

/// Verifies bearer tokens.
pub struct Authenticator {
    keys: Keys,
    validation: Validation,
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
        Ok(Self { keys, validation })
    }

    /// The verified caller of a request carrying `authorization: Bearer <jwt>`.
    pub fn verify(&self, authorization: Option<&http::HeaderValue>) -> Result<Caller, Status> {
        let token = authorization
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or_else(|| Status::unauthenticated("a bearer token is required"))?;
        let key = match &self.keys {
            Keys::Single(key) => key,
            Keys::Set(keys) => {
                let header = jsonwebtoken::decode_header(token)
                    .map_err(|_| Status::unauthenticated("malformed token"))?;
                header
                    .kid
                    .as_ref()
                    .and_then(|kid| keys.get(kid))
                    .ok_or_else(|| Status::unauthenticated("token signed by an unknown key"))?
            }
        };
        let claims = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(|error| {
                tracing::debug!(%error, "token refused");
                Status::unauthenticated(format!("invalid token: {}", reason(&error)))
            })?
            .claims;
        let subject = Uuid::parse_str(&claims.sub)
            .map_err(|_| Status::unauthenticated("the token's subject is not a UUID"))?;
        match claims.role.as_str() {
            "customer" => Ok(Caller::Customer(subject)),
            "driver" => Ok(Caller::Driver(subject)),
            "analyst" => Ok(Caller::Analyst(subject)),
            other => Err(Status::unauthenticated(format!(
                "the token's role {other:?} is not accepted"
            ))),
        }
    }
}

/// A short reason a client may see (never key material).
fn reason(error: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match error.kind() {
        K::ExpiredSignature => "expired",
        K::ImmatureSignature => "not valid yet",
        K::InvalidSignature => "bad signature",
        K::InvalidAlgorithm | K::InvalidAlgorithmName => "algorithm not accepted",
        K::InvalidIssuer => "wrong issuer",
        K::InvalidAudience => "wrong audience",
        K::MissingRequiredClaim(_) => "missing claim",
        _ => "malformed",
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
