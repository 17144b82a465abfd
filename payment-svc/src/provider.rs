//! The payment provider behind the ledger: a trait so a real card processor
//! can be plugged in, and a simulated one that runs by default and in tests.
//!
//! The ledger sends every charge and refund with the entry's idempotency key,
//! so a provider must treat a repeated key as the same operation (real
//! processors do). That is what makes resuming a PENDING entry safe.

use std::{future::Future, pin::Pin};

use uuid::Uuid;

/// What the provider decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The money moved; `reference` is the provider's id for the operation.
    Approved { reference: String },
    /// The provider refused, for example because the card was declined.
    Declined { reason: String },
}

/// The provider could not be reached or did not answer; the outcome is
/// unknown and the operation may be retried with the same idempotency key.
#[derive(Debug, Clone, thiserror::Error)]
#[error("payment provider unavailable: {0}")]
pub struct ProviderError(pub String);

/// The future every provider operation returns.
pub type ProviderFuture<'a> = Pin<Box<dyn Future<Output = Result<Outcome, ProviderError>> + Send + 'a>>;

/// A card payment processor. Object safe, so the service holds an
/// `Arc<dyn PaymentProvider>`.
pub trait PaymentProvider: Send + Sync + 'static {
    /// Charges `amount_krw` to the card `token`.
    fn charge<'a>(&'a self, token: &'a str, amount_krw: i64, idempotency_key: &'a str) -> ProviderFuture<'a>;

    /// Refunds `amount_krw` of what was charged for `call_id`. (A real adapter
    /// maps the call to the references of its charges.)
    fn refund<'a>(&'a self, call_id: Uuid, amount_krw: i64, idempotency_key: &'a str) -> ProviderFuture<'a>;
}

/// Card token the simulated provider declines ("card declined").
pub const DECLINED_TOKEN: &str = "tok_decline";
/// Card token for which the simulated provider is unreachable (callers get
/// UNAVAILABLE and the entry stays PENDING).
pub const UNAVAILABLE_TOKEN: &str = "tok_unavailable";
/// Prefix of card tokens with a limit per charge: `tok_limit_20000` declines
/// any single charge above 20,000 KRW ("over the card's limit"), so a trip
/// whose final charge is far above its advance can be declined at settlement.
pub const LIMIT_TOKEN_PREFIX: &str = "tok_limit_";

/// A provider that needs no network. The rule, so tests and demos can drive
/// every path:
///
/// - a charge to `tok_decline` is declined with reason "card declined";
/// - a charge to `tok_unavailable` fails with [`ProviderError`];
/// - a charge to `tok_limit_<KRW>` above that many KRW is declined with
///   reason "over the card's limit";
/// - every other charge, and every refund, is approved.
///
/// References are derived from the idempotency key, so repeating a key gives
/// the same reference, as with a real provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimulatedProvider;

impl PaymentProvider for SimulatedProvider {
    fn charge<'a>(&'a self, token: &'a str, amount_krw: i64, idempotency_key: &'a str) -> ProviderFuture<'a> {
        Box::pin(async move {
            let limit = token
                .strip_prefix(LIMIT_TOKEN_PREFIX)
                .and_then(|limit| limit.parse::<i64>().ok());
            match token {
                DECLINED_TOKEN => Ok(Outcome::Declined {
                    reason: "card declined".into(),
                }),
                UNAVAILABLE_TOKEN => Err(ProviderError("simulated outage".into())),
                _ if limit.is_some_and(|limit| amount_krw > limit) => Ok(Outcome::Declined {
                    reason: "over the card's limit".into(),
                }),
                _ => Ok(Outcome::Approved {
                    reference: format!("sim_ch_{idempotency_key}"),
                }),
            }
        })
    }

    fn refund<'a>(
        &'a self,
        _call_id: Uuid,
        _amount_krw: i64,
        idempotency_key: &'a str,
    ) -> ProviderFuture<'a> {
        Box::pin(async move {
            Ok(Outcome::Approved {
                reference: format!("sim_rf_{idempotency_key}"),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn simulated_provider_follows_its_documented_rule() {
        let provider: &dyn PaymentProvider = &SimulatedProvider;
        assert_eq!(
            provider.charge("tok_visa", 1_000, "k1").await.expect("reachable"),
            Outcome::Approved {
                reference: "sim_ch_k1".into()
            }
        );
        assert_eq!(
            provider
                .charge(DECLINED_TOKEN, 1_000, "k2")
                .await
                .expect("reachable"),
            Outcome::Declined {
                reason: "card declined".into()
            }
        );
        assert!(provider.charge(UNAVAILABLE_TOKEN, 1_000, "k3").await.is_err());
        assert!(matches!(
            provider.charge("tok_limit_5000", 5_000, "k5").await,
            Ok(Outcome::Approved { .. })
        ));
        assert_eq!(
            provider
                .charge("tok_limit_5000", 5_001, "k6")
                .await
                .expect("reachable"),
            Outcome::Declined {
                reason: "over the card's limit".into()
            }
        );
        assert!(matches!(
            provider.refund(Uuid::new_v4(), 1_000, "k4").await,
            Ok(Outcome::Approved { .. })
        ));
    }
}
