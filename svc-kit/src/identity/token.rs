//! Identity tokens: how a backend knows who is calling without trusting
//! whoever reaches its port.
//!
//! A caller inside the platform states the identity it acts for in one
//! metadata entry, [`IDENTITY_HEADER`]: a short-lived JWT (EdDSA, Ed25519)
//! signed with its own private key. The gateway signs the customer, driver or
//! analyst it authenticated; call-svc signs itself as a service. Each backend
//! holds only public keys ([`TrustConfig`]) and believes a token only if a key
//! that may vouch for its role signed it: the gateway's key for people, a
//! service key for the `service` role. A backend that is broken into can
//! therefore read tokens but not mint them.
//!
//! On the server, [`Verifier::establish`] runs before every handler (see
//! `grpc::serve_with_health`): it removes whatever `x-taxi-subject` and
//! `x-taxi-role` the request carried and, from a valid token, sets them to the
//! verified identity, which [`super::Caller::of`] then reads. Verified tokens
//! and signed ones are cached for their lifetime, so the signature work is paid
//! once per caller per minute, not per request.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Mutex,
};

use anyhow::Context as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::{Request, Status, codegen::http::HeaderMap, metadata::MetadataValue};
use uuid::Uuid;

use super::{Caller, ROLE_HEADER, SUBJECT_HEADER};

/// Metadata key carrying the signed identity token.
pub const IDENTITY_HEADER: &str = "x-taxi-identity";

/// How long a signed token is valid.
const LIFETIME_SECONDS: u64 = 60;
/// A cached signed token is replaced once less than this is left of it.
const RENEW_BEFORE_SECONDS: u64 = 30;
/// Clock skew tolerated between signer and verifier.
const LEEWAY_SECONDS: u64 = 5;
/// Entries a cache holds before it starts over (a bound, not a tuning knob:
/// the gateway has one entry per active user and minute).
const CACHE_LIMIT: usize = 16_384;

/// Which public keys a backend trusts, and for what.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TrustConfig {
    /// The gateway's Ed25519 public key (PEM): its tokens may name a
    /// customer, a driver or an analyst.
    pub gateway_public_key_file: PathBuf,
    /// Public keys (PEM) of the services whose tokens may claim the `service`
    /// role.
    pub service_public_key_files: Vec<PathBuf>,
}

impl Default for TrustConfig {
    /// The development keys `scripts/run.sh` creates under `.run/keys/`.
    fn default() -> Self {
        Self {
            gateway_public_key_file: ".run/keys/gateway.pub.pem".into(),
            service_public_key_files: vec![".run/keys/call-svc.pub.pem".into()],
        }
    }
}

/// The private key a caller signs its identity tokens with. (No `Default`:
/// the owning config's names its own development key.)
#[derive(Clone, Serialize, Deserialize)]
pub struct SignerConfig {
    /// An Ed25519 private key (PKCS#8 PEM).
    pub signing_key_file: PathBuf,
}

impl std::fmt::Debug for SignerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The path is not secret; the key behind it is never read here.
        f.debug_struct("SignerConfig")
            .field("signing_key_file", &self.signing_key_file)
            .finish()
    }
}

impl SignerConfig {
    /// The development key of `name` that `scripts/run.sh` creates.
    pub fn development(name: &str) -> Self {
        Self {
            signing_key_file: format!(".run/keys/{name}.key.pem").into(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    role: String,
    iat: u64,
    exp: u64,
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| {
        format!(
            "cannot read {what} {} (scripts/run.sh creates development keys; in production mount them and set the path)",
            path.display()
        )
    })
}

/// Signs the identities one caller acts for.
pub struct Signer {
    issuer: String,
    key: EncodingKey,
    signed: Mutex<HashMap<Caller, (String, u64)>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer named `issuer` with the key `config` names.
    pub fn from_config(issuer: &str, config: &SignerConfig) -> anyhow::Result<Self> {
        Self::from_pem(issuer, &read(&config.signing_key_file, "the signing key")?)
    }

    /// A signer named `issuer` with an Ed25519 private key in PKCS#8 PEM.
    pub fn from_pem(issuer: &str, pem: &[u8]) -> anyhow::Result<Self> {
        let key =
            EncodingKey::from_ed_pem(pem).context("the signing key is not an Ed25519 private key in PEM")?;
        Ok(Self {
            issuer: issuer.to_owned(),
            key,
            signed: Mutex::new(HashMap::new()),
        })
    }

    /// A token stating `caller`, valid for about a minute.
    pub fn token(&self, caller: &Caller) -> Result<String, Status> {
        let now = jsonwebtoken::get_current_timestamp();
        let mut signed = crate::sync::lock(&self.signed);
        if let Some((token, exp)) = signed.get(caller)
            && *exp > now + RENEW_BEFORE_SECONDS
        {
            return Ok(token.clone());
        }
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: caller.to_string(),
            role: caller.role().to_owned(),
            iat: now,
            exp: now + LIFETIME_SECONDS,
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.key).map_err(|error| {
                tracing::error!(%error, "cannot sign an identity token");
                Status::internal("internal error")
            })?;
        if signed.len() >= CACHE_LIMIT {
            signed.clear();
        }
        signed.insert(caller.clone(), (token.clone(), claims.exp));
        Ok(token)
    }

    /// Adds a token stating `caller` to `request`. Signing with a key that
    /// loaded cannot fail short of a bug; if it does, the request goes without
    /// a token and the backend refuses it as UNAUTHENTICATED.
    pub fn attach<T>(&self, caller: &Caller, request: &mut Request<T>) {
        if let Some(value) = self.metadata_value(caller) {
            request.metadata_mut().insert(IDENTITY_HEADER, value);
        }
    }

    /// The token stating `caller`, as a header value (see [`Self::attach`]).
    pub fn header_value(&self, caller: &Caller) -> Option<tonic::codegen::http::HeaderValue> {
        self.token(caller).ok()?.parse().ok()
    }

    fn metadata_value(&self, caller: &Caller) -> Option<MetadataValue<tonic::metadata::Ascii>> {
        MetadataValue::try_from(self.token(caller).ok()?.as_str()).ok()
    }

    /// `message` in a request that acts for `caller`.
    pub fn request<T>(&self, caller: &Caller, message: T) -> Request<T> {
        let mut request = Request::new(message);
        self.attach(caller, &mut request);
        request
    }

    /// `message` in a request from this service itself, in the `service` role.
    pub fn service_request<T>(&self, message: T) -> Request<T> {
        self.request(&Caller::Service(self.issuer.clone()), message)
    }
}

/// What a trusted key may vouch for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vouches {
    /// Customers, drivers and analysts (the gateway's key).
    People,
    /// The `service` role (another service's key).
    Services,
}

/// Checks identity tokens against the trusted public keys.
pub struct Verifier {
    keys: Vec<(DecodingKey, Vouches)>,
    validation: Validation,
    verified: Mutex<HashMap<String, (Caller, u64)>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Trusts the keys `config` names.
    pub fn from_config(config: &TrustConfig) -> anyhow::Result<Self> {
        let gateway = read(&config.gateway_public_key_file, "the gateway's public key")?;
        let services = config
            .service_public_key_files
            .iter()
            .map(|path| read(path, "a service's public key"))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Self::from_pems(&gateway, services.iter().map(Vec::as_slice))
    }

    /// Trusts `gateway` (PEM) for people and each of `services` for the
    /// `service` role.
    pub fn from_pems<'a>(
        gateway: &[u8],
        services: impl IntoIterator<Item = &'a [u8]>,
    ) -> anyhow::Result<Self> {
        let parse = |pem: &[u8]| DecodingKey::from_ed_pem(pem).context("not an Ed25519 public key in PEM");
        let mut keys = vec![(parse(gateway)?, Vouches::People)];
        for pem in services {
            keys.push((parse(pem)?, Vouches::Services));
        }
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        Ok(Self {
            keys,
            validation,
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// The caller `token` states, if a key that may vouch for its role signed
    /// it and it has not expired; UNAUTHENTICATED otherwise.
    pub fn verify(&self, token: &str) -> Result<Caller, Status> {
        let now = jsonwebtoken::get_current_timestamp();
        if let Some((caller, exp)) = crate::sync::lock(&self.verified).get(token)
            && *exp + LEEWAY_SECONDS > now
        {
            return Ok(caller.clone());
        }
        let (claims, vouches) = self
            .keys
            .iter()
            .find_map(|(key, vouches)| {
                jsonwebtoken::decode::<Claims>(token, key, &self.validation)
                    .ok()
                    .map(|data| (data.claims, *vouches))
            })
            .ok_or_else(|| Status::unauthenticated("the identity token is invalid or expired"))?;
        let caller = match (claims.role.as_str(), vouches) {
            ("customer" | "driver" | "analyst", Vouches::People) => {
                let id = Uuid::parse_str(&claims.sub)
                    .map_err(|_| Status::unauthenticated("the identity token's subject is not a UUID"))?;
                match claims.role.as_str() {
                    "customer" => Caller::Customer(id),
                    "driver" => Caller::Driver(id),
                    _ => Caller::Analyst(id),
                }
            }
            ("service", Vouches::Services) if claims.sub.len() <= 64 => Caller::Service(claims.sub),
            (role, _) => {
                tracing::warn!(
                    issuer = claims.iss,
                    role,
                    "identity token signed by a key that may not vouch for its role"
                );
                return Err(Status::unauthenticated(format!(
                    "the identity token's signer may not vouch for the role {role:?}"
                )));
            }
        };
        let mut verified = crate::sync::lock(&self.verified);
        if verified.len() >= CACHE_LIMIT {
            verified.clear();
        }
        verified.insert(token.to_owned(), (caller.clone(), claims.exp));
        Ok(caller)
    }

    /// Makes `headers` state only a verified identity: removes any
    /// `x-taxi-subject` / `x-taxi-role` they carry and, when they carry an
    /// identity token, sets both from it. A request without a token goes on
    /// with no identity (the handler decides whether it needs one); one with a
    /// bad token is refused here.
    pub fn establish(&self, headers: &mut HeaderMap) -> Result<(), Status> {
        headers.remove(SUBJECT_HEADER);
        headers.remove(ROLE_HEADER);
        let Some(token) = headers.remove(IDENTITY_HEADER) else {
            return Ok(());
        };
        let token = token
            .to_str()
            .map_err(|_| Status::unauthenticated("the identity token is not text"))?;
        let caller = self.verify(token)?;
        // A UUID or a name of at most 64 checked characters, so both parse.
        if let Ok(subject) = caller.to_string().parse() {
            headers.insert(SUBJECT_HEADER, subject);
        }
        headers.insert(
            ROLE_HEADER,
            tonic::codegen::http::HeaderValue::from_static(caller.role()),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GATEWAY_KEY: &[u8] = include_bytes!("../../test-keys/gateway.key.pem");
    const GATEWAY_PUB: &[u8] = include_bytes!("../../test-keys/gateway.pub.pem");
    const SERVICE_KEY: &[u8] = include_bytes!("../../test-keys/call-svc.key.pem");
    const SERVICE_PUB: &[u8] = include_bytes!("../../test-keys/call-svc.pub.pem");

    fn verifier() -> Verifier {
        Verifier::from_pems(GATEWAY_PUB, [SERVICE_PUB]).expect("test keys")
    }

    fn headers_with(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(IDENTITY_HEADER, token.parse().expect("ascii"));
        headers
    }

    #[test]
    fn a_token_the_gateway_signed_states_its_customer() {
        let gateway = Signer::from_pem("gateway", GATEWAY_KEY).expect("key");
        let customer = Caller::Customer(Uuid::new_v4());
        let token = gateway.token(&customer).expect("signed");
        assert_eq!(verifier().verify(&token).expect("valid"), customer);
        assert_eq!(gateway.token(&customer).expect("cached"), token);
    }

    #[test]
    fn the_gateways_key_cannot_claim_the_service_role_nor_a_services_key_a_customer() {
        let gateway = Signer::from_pem("gateway", GATEWAY_KEY).expect("key");
        let service = Signer::from_pem("call-svc", SERVICE_KEY).expect("key");
        let forged_service = gateway
            .token(&Caller::Service("call-svc".into()))
            .expect("signed");
        let forged_customer = service.token(&Caller::Customer(Uuid::new_v4())).expect("signed");
        for token in [forged_service, forged_customer] {
            let err = verifier().verify(&token).expect_err("may not vouch");
            assert_eq!(err.code(), tonic::Code::Unauthenticated);
        }
    }

    #[test]
    fn a_key_nobody_trusts_is_refused() {
        let stranger = Signer::from_pem("stranger", SERVICE_KEY).expect("key");
        let only_gateway = Verifier::from_pems(GATEWAY_PUB, []).expect("key");
        let token = stranger
            .token(&Caller::Service("call-svc".into()))
            .expect("signed");
        assert!(only_gateway.verify(&token).is_err());
    }

    #[test]
    fn stated_identity_headers_are_dropped_and_the_verified_one_set() {
        let service = Signer::from_pem("call-svc", SERVICE_KEY).expect("key");
        let mut headers = headers_with(
            &service
                .token(&Caller::Service("call-svc".into()))
                .expect("signed"),
        );
        headers.insert(SUBJECT_HEADER, "someone-else".parse().expect("ascii"));
        verifier().establish(&mut headers).expect("valid");
        assert_eq!(headers[SUBJECT_HEADER], "call-svc");
        assert_eq!(headers[ROLE_HEADER], "service");

        let mut unsigned = HeaderMap::new();
        unsigned.insert(ROLE_HEADER, "service".parse().expect("ascii"));
        unsigned.insert(SUBJECT_HEADER, "call-svc".parse().expect("ascii"));
        verifier()
            .establish(&mut unsigned)
            .expect("no token: no identity");
        assert!(unsigned.get(ROLE_HEADER).is_none() && unsigned.get(SUBJECT_HEADER).is_none());

        let mut garbage = headers_with("not.a.token");
        assert!(verifier().establish(&mut garbage).is_err());
    }
}
