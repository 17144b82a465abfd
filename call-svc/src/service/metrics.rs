//! The saga's metrics: the funnel of calls (requested, rejected, finished by
//! outcome, canceled by reason, expired), how long each step of an accept
//! takes, and the effects owed to other services with their attempts.
//!
//! Every count is made by the process that committed the change, right after
//! its commit, so the replicas' series add up to the system's figures without
//! double counting. The one gauge, `saga_effects_owed`, is a count of the
//! table read at every sweep, so every replica reports the same, true figure
//! (take `max`, not `sum`, across replicas).
//!
//! Labels are bounded: an outcome, a cancel reason, a step or an effect name
//! and a result, each from a closed list below.

use std::time::Duration;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};

use crate::domain::{Call, CallStatus, CancelReason};

/// Buckets of `saga_accept_step_seconds`: a claim or commit is a short
/// transaction (a millisecond or a few), a remote step a round trip to
/// dispatch or payment, up to its deadline of a few seconds.
const STEP_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The steps of an accept, in their order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AcceptStep {
    /// Lock the call and record the driver's claim.
    Claim,
    /// `AssignDriver` on dispatch-svc.
    Assign,
    /// `ChargeAdvance` on payment-svc.
    Charge,
    /// Commit ACCEPTED (or the decline's cancel) with its event.
    Commit,
}

impl AcceptStep {
    const ALL: [Self; 4] = [Self::Claim, Self::Assign, Self::Charge, Self::Commit];

    fn label(self) -> &'static str {
        match self {
            Self::Claim => "claim",
            Self::Assign => "assign",
            Self::Charge => "charge",
            Self::Commit => "commit",
        }
    }
}

/// An effect owed after a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// `SettleFinal` on payment-svc.
    Settle,
    /// `ReleaseDriver` on dispatch-svc.
    Release,
}

impl Effect {
    const ALL: [Self; 2] = [Self::Settle, Self::Release];

    fn label(self) -> &'static str {
        match self {
            Self::Settle => "settle",
            Self::Release => "release",
        }
    }
}

fn reason_label(reason: CancelReason) -> &'static str {
    match reason {
        CancelReason::Customer => "customer",
        CancelReason::Expired => "expired",
        CancelReason::PaymentDeclined => "payment_declined",
    }
}

/// Every cancel reason, so that each series exists (at 0) from the start.
const REASONS: [CancelReason; 3] = [
    CancelReason::Customer,
    CancelReason::Expired,
    CancelReason::PaymentDeclined,
];

const OUTCOMES: [&str; 2] = ["completed", "canceled"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    step: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    effect: &'static str,
    result: &'static str,
}

fn step_histogram() -> Histogram {
    Histogram::new(STEP_BUCKETS)
}

/// The saga's metric handles, recording from the start whether or not they
/// are registered anywhere. Clones share the same series.
#[derive(Debug, Clone)]
pub struct SagaMetrics {
    requested: Counter,
    rejected: Counter,
    finished: Family<OutcomeLabels, Counter>,
    canceled: Family<ReasonLabels, Counter>,
    accept_step_seconds: Family<StepLabels, Histogram, fn() -> Histogram>,
    effects_owed: Gauge,
    effect_attempts: Family<AttemptLabels, Counter>,
    stale_claims_recovered: Counter,
    expired: Counter,
}

impl Default for SagaMetrics {
    fn default() -> Self {
        let metrics = Self {
            requested: Counter::default(),
            rejected: Counter::default(),
            finished: Family::default(),
            canceled: Family::default(),
            accept_step_seconds: Family::new_with_constructor(step_histogram as fn() -> Histogram),
            effects_owed: Gauge::default(),
            effect_attempts: Family::default(),
            stale_claims_recovered: Counter::default(),
            expired: Counter::default(),
        };
        // Every bounded series is exported from the start, at 0, so that a
        // rate or an alert over it has a series before the first event.
        for outcome in OUTCOMES {
            drop(metrics.finished.get_or_create(&OutcomeLabels { outcome }));
        }
        for reason in REASONS {
            drop(metrics.canceled.get_or_create(&ReasonLabels {
                reason: reason_label(reason),
            }));
        }
        for step in AcceptStep::ALL {
            drop(
                metrics
                    .accept_step_seconds
                    .get_or_create(&StepLabels { step: step.label() }),
            );
        }
        for effect in Effect::ALL {
            for result in ["ok", "failed"] {
                drop(metrics.effect_attempts.get_or_create(&AttemptLabels {
                    effect: effect.label(),
                    result,
                }));
            }
        }
        metrics
    }
}

impl SagaMetrics {
    /// Registers every family in `registry`. Once per registry.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "saga_calls_requested",
            "Calls created by RequestCall (a retry with the same key counts once; \
             requests refused for want of a taxi are in saga_calls_rejected_total)",
            self.requested.clone(),
        );
        registry.register(
            "saga_calls_rejected",
            "Call requests refused because dispatch said no taxi was available nearby \
             (a retry with the same key counts once)",
            self.rejected.clone(),
        );
        registry.register(
            "saga_calls_finished",
            "Calls that reached an end, by outcome (completed: the trip ended; canceled: for any reason)",
            self.finished.clone(),
        );
        registry.register(
            "saga_calls_canceled",
            "Calls canceled, by reason (customer, expired, payment_declined)",
            self.canceled.clone(),
        );
        registry.register_with_unit(
            "saga_accept_step",
            "Time each step of an accept took (claim, assign, charge, commit), failed attempts \
             and the sweeper's recoveries included",
            Unit::Seconds,
            self.accept_step_seconds.clone(),
        );
        registry.register(
            "saga_effects_owed",
            "Effects (settlements, driver releases) committed calls still owe other services, \
             counted in the database at the last sweep (the same figure on every replica)",
            self.effects_owed.clone(),
        );
        registry.register(
            "saga_effect_attempts",
            "Attempts to perform an owed effect (settle, release) and their result (ok, failed), \
             the attempt right after the commit and the sweeper's retries alike",
            self.effect_attempts.clone(),
        );
        registry.register(
            "saga_stale_claims_recovered",
            "Accepts left half-way (by a crash or a backend outage) that the sweeper took over \
             to finish or undo",
            self.stale_claims_recovered.clone(),
        );
        registry.register(
            "saga_calls_expired",
            "Calls nobody accepted in time (or whose accept could not finish in time), canceled \
             as expired by the sweeper",
            self.expired.clone(),
        );
    }

    /// A new call was committed.
    pub(crate) fn requested(&self) {
        self.requested.inc();
    }

    /// A new rejection (not a retry of one) was committed.
    pub(crate) fn rejected(&self) {
        self.rejected.inc();
    }

    /// `call` was just committed by a transition that changed it: counts it
    /// when it reached an end.
    pub(crate) fn committed(&self, call: &Call) {
        match call.status {
            CallStatus::Completed => {
                self.finished
                    .get_or_create(&OutcomeLabels { outcome: "completed" })
                    .inc();
            }
            CallStatus::Canceled => {
                self.finished
                    .get_or_create(&OutcomeLabels { outcome: "canceled" })
                    .inc();
                if let Some(reason) = call.cancel_reason {
                    self.canceled
                        .get_or_create(&ReasonLabels {
                            reason: reason_label(reason),
                        })
                        .inc();
                    if reason == CancelReason::Expired {
                        self.expired.inc();
                    }
                }
            }
            CallStatus::Requested | CallStatus::Accepted | CallStatus::InTrip => {}
        }
    }

    /// One step of an accept took `elapsed`.
    pub(crate) fn accept_step(&self, step: AcceptStep, elapsed: Duration) {
        self.accept_step_seconds
            .get_or_create(&StepLabels { step: step.label() })
            .observe(elapsed.as_secs_f64());
    }

    /// One attempt at `effect` succeeded (`ok`) or failed.
    pub(crate) fn effect_attempted(&self, effect: Effect, ok: bool) {
        self.effect_attempts
            .get_or_create(&AttemptLabels {
                effect: effect.label(),
                result: if ok { "ok" } else { "failed" },
            })
            .inc();
    }

    /// The effects owed, as just counted in the database.
    pub(crate) fn effects_owed(&self, owed: i64) {
        self.effects_owed.set(owed);
    }

    /// The sweeper took over an accept left half-way.
    pub(crate) fn stale_claim_recovered(&self) {
        self.stale_claims_recovered.inc();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use svc_kit::metrics::encode;

    use super::*;

    fn exported() -> (SagaMetrics, Registry) {
        let metrics = SagaMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        (metrics, registry)
    }

    fn requested() -> Call {
        let point = svc_kit::geo::GeoPoint {
            lat: 37.5,
            lng: 127.0,
        };
        let request = crate::domain::CallRequest {
            customer_id: uuid::Uuid::new_v4(),
            taxi_type: taxi_proto::common::v1::TaxiType::Normal,
            pickup: point,
            dropoff: point,
            payment_method: "tok_visa".into(),
            idempotency_key: "k".into(),
        };
        let quote = crate::domain::Quote {
            distance_m: 3_000,
            fare_krw: 6_000,
        };
        let search = crate::config::SagaConfig::default().search();
        Call::request(
            uuid::Uuid::new_v4(),
            request,
            quote,
            false,
            search,
            chrono::Utc::now(),
        )
    }

    fn canceled(reason: CancelReason) -> Call {
        let mut call = requested();
        call.cancel(reason, 0, chrono::Utc::now())
            .expect("a requested call cancels");
        call
    }

    fn completed() -> Call {
        let (driver, now) = (uuid::Uuid::new_v4(), chrono::Utc::now());
        let mut call = requested();
        call.claim(driver, now).expect("claim");
        call.accept(driver, 6_000, now).expect("accept");
        call.start(driver, now).expect("start");
        let rule = crate::domain::FareTable::default().normal;
        call.complete(driver, 5_000, &rule, now).expect("complete");
        call
    }

    #[test]
    fn every_bounded_series_is_exported_at_zero_before_anything_happens() {
        let (_, registry) = exported();
        let text = encode(&registry);
        for line in [
            "saga_calls_requested_total 0\n",
            "saga_calls_rejected_total 0\n",
            "saga_calls_finished_total{outcome=\"completed\"} 0\n",
            "saga_calls_finished_total{outcome=\"canceled\"} 0\n",
            "saga_calls_canceled_total{reason=\"customer\"} 0\n",
            "saga_calls_canceled_total{reason=\"expired\"} 0\n",
            "saga_calls_canceled_total{reason=\"payment_declined\"} 0\n",
            "saga_accept_step_seconds_count{step=\"claim\"} 0\n",
            "saga_accept_step_seconds_count{step=\"commit\"} 0\n",
            "saga_effects_owed 0\n",
            "saga_effect_attempts_total{effect=\"settle\",result=\"failed\"} 0\n",
            "saga_effect_attempts_total{effect=\"release\",result=\"ok\"} 0\n",
            "saga_stale_claims_recovered_total 0\n",
            "saga_calls_expired_total 0\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
    }

    #[test]
    fn a_committed_end_counts_its_outcome_and_reason_and_an_expiry_counts_as_expired() {
        let (metrics, registry) = exported();
        metrics.requested();
        metrics.committed(&requested());
        metrics.committed(&completed());
        metrics.committed(&canceled(CancelReason::Customer));
        metrics.committed(&canceled(CancelReason::Expired));
        metrics.committed(&canceled(CancelReason::Expired));
        metrics.rejected();

        let text = encode(&registry);
        for line in [
            "saga_calls_requested_total 1\n",
            "saga_calls_rejected_total 1\n",
            "saga_calls_finished_total{outcome=\"completed\"} 1\n",
            "saga_calls_finished_total{outcome=\"canceled\"} 3\n",
            "saga_calls_canceled_total{reason=\"customer\"} 1\n",
            "saga_calls_canceled_total{reason=\"expired\"} 2\n",
            "saga_calls_canceled_total{reason=\"payment_declined\"} 0\n",
            "saga_calls_expired_total 2\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
    }

    #[test]
    fn steps_attempts_owed_effects_and_recoveries_are_recorded() {
        let (metrics, registry) = exported();
        metrics.accept_step(AcceptStep::Assign, Duration::from_millis(3));
        metrics.accept_step(AcceptStep::Assign, Duration::from_millis(40));
        metrics.accept_step(AcceptStep::Charge, Duration::from_millis(7));
        metrics.effect_attempted(Effect::Settle, false);
        metrics.effect_attempted(Effect::Settle, true);
        metrics.effect_attempted(Effect::Release, true);
        metrics.effects_owed(5);
        metrics.effects_owed(2);
        metrics.stale_claim_recovered();

        let text = encode(&registry);
        for line in [
            "saga_accept_step_seconds_count{step=\"assign\"} 2\n",
            "saga_accept_step_seconds_bucket{le=\"0.005\",step=\"assign\"} 1\n",
            "saga_accept_step_seconds_count{step=\"charge\"} 1\n",
            "saga_accept_step_seconds_count{step=\"claim\"} 0\n",
            "saga_effect_attempts_total{effect=\"settle\",result=\"failed\"} 1\n",
            "saga_effect_attempts_total{effect=\"settle\",result=\"ok\"} 1\n",
            "saga_effect_attempts_total{effect=\"release\",result=\"ok\"} 1\n",
            "saga_effect_attempts_total{effect=\"release\",result=\"failed\"} 0\n",
            "saga_effects_owed 2\n",
            "saga_stale_claims_recovered_total 1\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
    }
}
