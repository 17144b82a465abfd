//! The Call aggregate and its state machine.
//!
//! ```text
//! REQUESTED ──accept──> ACCEPTED ──start──> IN_TRIP ──complete──> COMPLETED
//!     │                    │
//!     └──cancel/expire/────┴──cancel──> CANCELED (with a reason)
//!        payment declined
//! ```
//!
//! While REQUESTED, the call is offered to drivers in *rounds*: each round
//! lasts [`SearchPolicy::round`], and one that ends unaccepted starts the
//! next ([`Call::next_round`], which dispatch answers with new offers), until
//! someone accepts or the call expires.
//!
//! Accepting takes two remote steps (assign the driver, charge the advance), so
//! a driver first *claims* the call; the claim is bookkeeping, not a state the
//! customer sees, and it does not bump the version. A transition that owes work
//! to other services (settle the payment, release the driver) records it as
//! [`Effects`] in the same commit, so a crash cannot lose it.

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use svc_kit::geo::GeoPoint;
use taxi_proto::{call::v1 as pb, common::v1::TaxiType};
use uuid::Uuid;

use super::fare::{FareRule, Quote};

/// Where a call is in its life; `taxi.call.v1.CallStatus` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStatus {
    Requested,
    Accepted,
    InTrip,
    Completed,
    Canceled,
}

/// The one mapping to the wire's status, for the API and the events alike.
impl From<CallStatus> for pb::CallStatus {
    fn from(status: CallStatus) -> Self {
        match status {
            CallStatus::Requested => Self::Requested,
            CallStatus::Accepted => Self::Accepted,
            CallStatus::InTrip => Self::InTrip,
            CallStatus::Completed => Self::Completed,
            CallStatus::Canceled => Self::Canceled,
        }
    }
}

/// The wire's name without its `CALL_STATUS_` prefix (`ACCEPTED`), as error
/// messages show it.
impl fmt::Display for CallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = pb::CallStatus::from(*self).as_str_name();
        f.write_str(name.strip_prefix("CALL_STATUS_").unwrap_or(name))
    }
}

/// Why a call was canceled; `taxi.call.v1.CancelReason` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    Customer,
    Expired,
    PaymentDeclined,
}

/// The one mapping to the wire's reason; a call that is not canceled has
/// none, which the wire spells UNSPECIFIED.
impl From<CancelReason> for pb::CancelReason {
    fn from(reason: CancelReason) -> Self {
        match reason {
            CancelReason::Customer => Self::Customer,
            CancelReason::Expired => Self::Expired,
            CancelReason::PaymentDeclined => Self::PaymentDeclined,
        }
    }
}

/// A driver's accept in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub driver_id: Uuid,
    pub since: DateTime<Utc>,
}

/// Work a committed transition owes to other services, done after the commit
/// and retried until it succeeds (every step is idempotent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Effects {
    /// Bring what the customer paid for the call to this amount.
    pub settle_krw: Option<i64>,
    /// Free this driver from the call.
    pub release_driver: Option<Uuid>,
}

impl Effects {
    pub fn is_empty(&self) -> bool {
        self.settle_krw.is_none() && self.release_driver.is_none()
    }
}

/// Why a command does not apply to the call as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("cannot {action} a call that is {status}")]
    WrongState {
        action: &'static str,
        status: CallStatus,
    },
    #[error("the call is being accepted by another driver")]
    ClaimedByAnother,
    #[error("only the assigned driver may {action} this call")]
    NotAssignedDriver { action: &'static str },
    #[error("only the customer who requested the call may {action} it")]
    NotOwner { action: &'static str },
    #[error("the call is at version {actual}, not {expected}")]
    VersionMismatch { expected: i64, actual: i64 },
    #[error("nothing is owed on this call")]
    NothingOwed,
}

/// Whether a command changed the call or found it already done (a retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Changed,
    AlreadyDone,
}

/// How long the search for a driver lasts: each round of offers, and the
/// whole search before the call expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchPolicy {
    pub round: TimeDelta,
    pub expire_after: TimeDelta,
}

/// What a customer asks for.
#[derive(Debug, Clone)]
pub struct CallRequest {
    pub customer_id: Uuid,
    pub taxi_type: TaxiType,
    pub pickup: GeoPoint,
    pub dropoff: GeoPoint,
    pub payment_method: String,
    pub idempotency_key: String,
}

impl CallRequest {
    /// Whether `call` was created from this same request (an idempotent retry).
    pub fn matches(&self, call: &Call) -> bool {
        call.customer_id == self.customer_id
            && call.taxi_type == self.taxi_type
            && call.pickup == self.pickup
            && call.dropoff == self.dropoff
            && call.payment_method == self.payment_method
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub driver_id: Option<Uuid>,
    pub taxi_type: TaxiType,
    pub status: CallStatus,
    pub cancel_reason: Option<CancelReason>,
    pub pickup: GeoPoint,
    pub dropoff: GeoPoint,
    pub payment_method: String,
    pub idempotency_key: String,
    pub quote: Quote,
    pub advance_krw: i64,
    pub distance_m: Option<i64>,
    pub final_fare_krw: Option<i64>,
    pub cancel_fee_krw: i64,
    pub availability_unchecked: bool,
    pub version: i64,
    pub requested_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub canceled_at: Option<DateTime<Utc>>,
    pub claim: Option<Claim>,
    pub effects: Effects,
    /// The round of offers the search is in (1 for the first).
    pub offer_round: i32,
    /// When the current round ends; `None` for calls older than rounds.
    pub round_expires_at: Option<DateTime<Utc>>,
    /// When the call expires if nobody accepts it.
    pub expires_at: Option<DateTime<Utc>>,
    /// The customer's money, as the ledger last answered: approved charges,
    /// approved refunds, and what is still owed until it is charged.
    pub paid_krw: i64,
    pub refunded_krw: i64,
    pub owed_krw: i64,
    /// How many times the customer has given another card for what is owed;
    /// each such settlement gets an idempotency key of its own.
    pub settle_attempt: i32,
}

impl Call {
    /// A new REQUESTED call at version 1, in its first round of offers.
    pub fn request(
        id: Uuid,
        request: CallRequest,
        quote: Quote,
        availability_unchecked: bool,
        search: SearchPolicy,
        at: DateTime<Utc>,
    ) -> Self {
        let expires_at = at + search.expire_after;
        Self {
            id,
            customer_id: request.customer_id,
            driver_id: None,
            taxi_type: request.taxi_type,
            status: CallStatus::Requested,
            cancel_reason: None,
            pickup: request.pickup,
            dropoff: request.dropoff,
            payment_method: request.payment_method,
            idempotency_key: request.idempotency_key,
            quote,
            advance_krw: 0,
            distance_m: None,
            final_fare_krw: None,
            cancel_fee_krw: 0,
            availability_unchecked,
            version: 1,
            requested_at: at,
            accepted_at: None,
            started_at: None,
            completed_at: None,
            canceled_at: None,
            claim: None,
            effects: Effects::default(),
            offer_round: 1,
            round_expires_at: Some((at + search.round).min(expires_at)),
            expires_at: Some(expires_at),
            paid_krw: 0,
            refunded_krw: 0,
            owed_krw: 0,
            settle_attempt: 0,
        }
    }

    /// What the customer has paid net of refunds.
    pub fn net_paid_krw(&self) -> i64 {
        self.paid_krw - self.refunded_krw
    }

    /// A settlement to `target_krw` answered: the ledger's net paid is now
    /// `net_paid_krw`, and `refunded_krw` was refunded by it (when it was a
    /// refund). What is owed is the target less the net until a charge goes
    /// through. Only a finished call's money is recorded; an answer that
    /// changes nothing (a retry, a repeated decline) leaves the call alone.
    pub fn record_settlement(
        &mut self,
        target_krw: i64,
        net_paid_krw: i64,
        refunded_krw: Option<i64>,
    ) -> Applied {
        if !self.is_terminal() {
            return Applied::AlreadyDone;
        }
        let refunded = refunded_krw.unwrap_or(self.refunded_krw);
        let money = (
            net_paid_krw + refunded,
            refunded,
            (target_krw - net_paid_krw).max(0),
        );
        if money == (self.paid_krw, self.refunded_krw, self.owed_krw) {
            return Applied::AlreadyDone;
        }
        (self.paid_krw, self.refunded_krw, self.owed_krw) = money;
        self.version += 1;
        Applied::Changed
    }

    /// The customer gives `payment_method` for what the call still owes: the
    /// owed settlement is tried again with it, under a key of its own. Not a
    /// transition (the outcome is, through [`Self::record_settlement`]).
    pub fn pay_with(&mut self, payment_method: String) -> Result<(), TransitionError> {
        if !self.is_terminal() || self.owed_krw <= 0 || self.effects.settle_krw.is_none() {
            return Err(TransitionError::NothingOwed);
        }
        self.payment_method = payment_method;
        self.settle_attempt += 1;
        Ok(())
    }

    /// The current round of offers ended unaccepted by `now`: the next one
    /// starts, open until `now + round` (never past the call's expiry).
    /// Nothing changes while a driver is accepting, before the round ends,
    /// or once the call is no longer waiting or has expired.
    pub fn next_round(&mut self, policy: SearchPolicy, now: DateTime<Utc>) -> Applied {
        let expires_at = self.expires_at.unwrap_or(self.requested_at + policy.expire_after);
        let waiting = self.status == CallStatus::Requested && self.claim.is_none() && now < expires_at;
        if !waiting || self.round_expires_at.is_some_and(|end| end > now) {
            return Applied::AlreadyDone;
        }
        self.offer_round += 1;
        self.round_expires_at = Some((now + policy.round).min(expires_at));
        self.version += 1;
        Applied::Changed
    }

    fn wrong_state(&self, action: &'static str) -> TransitionError {
        TransitionError::WrongState {
            action,
            status: self.status,
        }
    }

    fn require_driver(&self, driver: Uuid, action: &'static str) -> Result<(), TransitionError> {
        if self.driver_id == Some(driver) {
            Ok(())
        } else {
            Err(TransitionError::NotAssignedDriver { action })
        }
    }

    /// Checks that `customer` owns the call.
    pub fn require_owner(&self, customer: Uuid, action: &'static str) -> Result<(), TransitionError> {
        if self.customer_id == customer {
            Ok(())
        } else {
            Err(TransitionError::NotOwner { action })
        }
    }

    /// A driver starts accepting. Claiming again by the same driver resumes
    /// their accept (a retry); another driver is refused.
    pub fn claim(&mut self, driver: Uuid, at: DateTime<Utc>) -> Result<Applied, TransitionError> {
        if self.status == CallStatus::Accepted && self.driver_id == Some(driver) {
            return Ok(Applied::AlreadyDone);
        }
        if self.status != CallStatus::Requested {
            return Err(self.wrong_state("accept"));
        }
        match self.claim {
            Some(claim) if claim.driver_id != driver => Err(TransitionError::ClaimedByAnother),
            _ => {
                self.claim = Some(Claim {
                    driver_id: driver,
                    since: at,
                });
                Ok(Applied::Changed)
            }
        }
    }

    fn require_claim(&self, driver: Uuid) -> Result<(), TransitionError> {
        if self.status != CallStatus::Requested {
            return Err(self.wrong_state("accept"));
        }
        match self.claim {
            Some(claim) if claim.driver_id == driver => Ok(()),
            _ => Err(TransitionError::ClaimedByAnother),
        }
    }

    /// The claiming driver is assigned and the advance is paid: ACCEPTED.
    pub fn accept(
        &mut self,
        driver: Uuid,
        advance_krw: i64,
        at: DateTime<Utc>,
    ) -> Result<(), TransitionError> {
        self.require_claim(driver)?;
        self.claim = None;
        self.driver_id = Some(driver);
        self.advance_krw = advance_krw;
        self.paid_krw = advance_krw;
        self.status = CallStatus::Accepted;
        self.accepted_at = Some(at);
        self.version += 1;
        Ok(())
    }

    /// The advance was declined: the call is canceled and the claiming driver,
    /// already assigned, must be released.
    pub fn decline_payment(&mut self, driver: Uuid, at: DateTime<Utc>) -> Result<(), TransitionError> {
        self.require_claim(driver)?;
        self.claim = None;
        self.effects.release_driver = Some(driver);
        self.status = CallStatus::Canceled;
        self.cancel_reason = Some(CancelReason::PaymentDeclined);
        self.canceled_at = Some(at);
        self.version += 1;
        Ok(())
    }

    /// The claiming driver gives up (the driver could not be assigned), and the
    /// call is open to others again. Nothing the customer sees changes.
    pub fn drop_claim(&mut self, driver: Uuid) {
        if self.claim.is_some_and(|c| c.driver_id == driver) {
            self.claim = None;
        }
    }

    /// The call was canceled while the claiming driver was accepting it: undo
    /// whatever the accept did (refund everything, release the driver).
    pub fn abandon_claim(&mut self, driver: Uuid) {
        if self.claim.is_some_and(|c| c.driver_id == driver) {
            self.claim = None;
            self.effects.settle_krw = Some(self.effects.settle_krw.unwrap_or(0));
            self.effects.release_driver = Some(driver);
        }
    }

    /// Gives up an accept that could not finish in time (a backend it needs
    /// stayed unreachable): the call expires and whatever the accept may have
    /// done (assignment, advance) is undone.
    pub fn give_up_accept(&mut self, driver: Uuid, at: DateTime<Utc>) -> Result<Applied, TransitionError> {
        if self.status != CallStatus::Requested || self.claim.is_none_or(|c| c.driver_id != driver) {
            return Err(self.wrong_state("give up the accept of"));
        }
        self.abandon_claim(driver);
        self.cancel(CancelReason::Expired, 0, at)
    }

    /// The assigned driver departs with the customer.
    pub fn start(&mut self, driver: Uuid, at: DateTime<Utc>) -> Result<Applied, TransitionError> {
        self.require_driver(driver, "start")?;
        match self.status {
            CallStatus::InTrip => Ok(Applied::AlreadyDone),
            CallStatus::Accepted => {
                self.status = CallStatus::InTrip;
                self.started_at = Some(at);
                self.version += 1;
                Ok(Applied::Changed)
            }
            _ => Err(self.wrong_state("start")),
        }
    }

    /// The assigned driver arrives after `distance_m`: the fare is final, the
    /// customer's payment is settled to it and the driver is released.
    pub fn complete(
        &mut self,
        driver: Uuid,
        distance_m: i64,
        rule: &FareRule,
        at: DateTime<Utc>,
    ) -> Result<Applied, TransitionError> {
        self.require_driver(driver, "complete")?;
        match self.status {
            CallStatus::Completed if self.distance_m == Some(distance_m) => Ok(Applied::AlreadyDone),
            CallStatus::InTrip => {
                let fare = rule.fare(distance_m);
                self.status = CallStatus::Completed;
                self.distance_m = Some(distance_m);
                self.final_fare_krw = Some(fare);
                self.completed_at = Some(at);
                // Owed until the final charge goes through (or refunded after).
                self.owed_krw = (fare - self.net_paid_krw()).max(0);
                self.effects.settle_krw = Some(fare);
                self.effects.release_driver = Some(driver);
                self.version += 1;
                Ok(Applied::Changed)
            }
            _ => Err(self.wrong_state("complete")),
        }
    }

    /// Cancels a REQUESTED or ACCEPTED call. From ACCEPTED the customer keeps
    /// paying at most `fee_krw` of the advance and the driver is released. A
    /// driver who is still accepting undoes their own steps ([`Self::abandon_claim`]).
    pub fn cancel(
        &mut self,
        reason: CancelReason,
        fee_krw: i64,
        at: DateTime<Utc>,
    ) -> Result<Applied, TransitionError> {
        match self.status {
            CallStatus::Canceled if self.cancel_reason == Some(reason) => Ok(Applied::AlreadyDone),
            CallStatus::Requested => {
                self.status = CallStatus::Canceled;
                self.cancel_reason = Some(reason);
                self.canceled_at = Some(at);
                self.version += 1;
                Ok(Applied::Changed)
            }
            CallStatus::Accepted => {
                let fee = fee_krw.clamp(0, self.advance_krw);
                self.status = CallStatus::Canceled;
                self.cancel_reason = Some(reason);
                self.canceled_at = Some(at);
                self.cancel_fee_krw = fee;
                self.effects.settle_krw = Some(fee);
                self.effects.release_driver = self.driver_id;
                self.version += 1;
                Ok(Applied::Changed)
            }
            _ => Err(self.wrong_state("cancel")),
        }
    }

    /// Refuses the command unless the call is still at `expected` (0 = any).
    pub fn require_version(&self, expected: i64) -> Result<(), TransitionError> {
        if expected == 0 || expected == self.version {
            Ok(())
        } else {
            Err(TransitionError::VersionMismatch {
                expected,
                actual: self.version,
            })
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self.status, CallStatus::Completed | CallStatus::Canceled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fare::FareTable;

    fn now() -> DateTime<Utc> {
        Utc::now()
    }

    fn requested() -> Call {
        let point = GeoPoint {
            lat: 37.5,
            lng: 127.0,
        };
        Call::request(
            Uuid::new_v4(),
            CallRequest {
                customer_id: Uuid::new_v4(),
                taxi_type: TaxiType::Normal,
                pickup: point,
                dropoff: point,
                payment_method: "tok_visa".into(),
                idempotency_key: "k".into(),
            },
            Quote {
                distance_m: 3_000,
                fare_krw: 6_000,
            },
            false,
            SEARCH,
            now(),
        )
    }

    const SEARCH: SearchPolicy = SearchPolicy {
        round: TimeDelta::seconds(30),
        expire_after: TimeDelta::seconds(300),
    };

    fn accepted(driver: Uuid) -> Call {
        let mut call = requested();
        call.claim(driver, now()).expect("claim");
        call.accept(driver, 6_000, now()).expect("accept");
        call
    }

    fn in_trip(driver: Uuid) -> Call {
        let mut call = accepted(driver);
        call.start(driver, now()).expect("start");
        call
    }

    fn completed(driver: Uuid) -> Call {
        let mut call = in_trip(driver);
        call.complete(driver, 5_000, &FareTable::default().normal, now())
            .expect("complete");
        call
    }

    fn canceled() -> Call {
        let mut call = requested();
        call.cancel(CancelReason::Customer, 0, now()).expect("cancel");
        call
    }

    /// Every status a call can be in, with the driver assigned where there is one.
    fn every_status(driver: Uuid) -> Vec<Call> {
        vec![
            requested(),
            accepted(driver),
            in_trip(driver),
            completed(driver),
            canceled(),
        ]
    }

    fn wrong_state(result: Result<impl fmt::Debug, TransitionError>) -> bool {
        matches!(result, Err(TransitionError::WrongState { .. }))
    }

    #[test]
    fn a_new_call_is_requested_at_version_one() {
        let call = requested();
        assert_eq!((call.status, call.version), (CallStatus::Requested, 1));
        assert!(call.effects.is_empty());
    }

    #[test]
    fn accept_is_allowed_only_from_requested_with_the_claim() {
        let driver = Uuid::new_v4();
        for mut call in every_status(driver) {
            let from = call.status;
            let claimed = call.claim(driver, now());
            match from {
                CallStatus::Requested => {
                    assert_eq!(claimed, Ok(Applied::Changed));
                    call.accept(driver, 6_000, now()).expect("accept from REQUESTED");
                    assert_eq!(
                        (call.status, call.version, call.claim),
                        (CallStatus::Accepted, 2, None)
                    );
                    assert_eq!(call.driver_id, Some(driver));
                }
                CallStatus::Accepted => assert_eq!(claimed, Ok(Applied::AlreadyDone), "retry by the winner"),
                _ => assert!(wrong_state(claimed), "claim from {from}"),
            }
        }
    }

    #[test]
    fn a_second_driver_cannot_claim_or_accept() {
        let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
        let mut call = requested();
        call.claim(first, now()).expect("first claim");
        assert_eq!(call.claim(second, now()), Err(TransitionError::ClaimedByAnother));
        assert_eq!(
            call.accept(second, 1, now()),
            Err(TransitionError::ClaimedByAnother)
        );
        assert_eq!(
            call.claim(first, now()),
            Ok(Applied::Changed),
            "the claimant may resume"
        );
    }

    #[test]
    fn accepting_an_accepted_call_by_another_driver_is_refused() {
        let mut call = accepted(Uuid::new_v4());
        assert!(wrong_state(call.claim(Uuid::new_v4(), now())));
    }

    #[test]
    fn start_is_allowed_only_from_accepted() {
        let driver = Uuid::new_v4();
        for mut call in every_status(driver) {
            let from = call.status;
            let result = call.start(driver, now());
            match from {
                CallStatus::Accepted => assert_eq!(result, Ok(Applied::Changed)),
                CallStatus::InTrip => assert_eq!(result, Ok(Applied::AlreadyDone)),
                CallStatus::Requested | CallStatus::Canceled => {
                    assert_eq!(
                        result,
                        Err(TransitionError::NotAssignedDriver { action: "start" })
                    )
                }
                CallStatus::Completed => assert!(wrong_state(result), "start from {from}"),
            }
        }
    }

    #[test]
    fn complete_is_allowed_only_from_in_trip_and_settles_the_final_fare() {
        let driver = Uuid::new_v4();
        let rule = FareTable::default().normal;
        for mut call in every_status(driver) {
            let from = call.status;
            let result = call.complete(driver, 5_000, &rule, now());
            match from {
                CallStatus::InTrip => {
                    assert_eq!(result, Ok(Applied::Changed));
                    assert_eq!(call.final_fare_krw, Some(rule.fare(5_000)));
                    assert_eq!(call.effects.settle_krw, Some(rule.fare(5_000)));
                    assert_eq!(call.effects.release_driver, Some(driver));
                }
                CallStatus::Completed => assert_eq!(result, Ok(Applied::AlreadyDone)),
                CallStatus::Accepted => assert!(wrong_state(result), "complete from {from}"),
                CallStatus::Requested | CallStatus::Canceled => {
                    assert_eq!(
                        result,
                        Err(TransitionError::NotAssignedDriver { action: "complete" })
                    )
                }
            }
        }
    }

    #[test]
    fn completing_again_with_another_distance_is_refused() {
        let driver = Uuid::new_v4();
        let mut call = completed(driver);
        assert!(wrong_state(call.complete(
            driver,
            9_999,
            &FareTable::default().normal,
            now()
        )));
    }

    #[test]
    fn only_the_assigned_driver_moves_the_trip() {
        let driver = Uuid::new_v4();
        let mut call = accepted(driver);
        let other = Uuid::new_v4();
        assert_eq!(
            call.start(other, now()),
            Err(TransitionError::NotAssignedDriver { action: "start" })
        );
        call.start(driver, now()).expect("start");
        let rule = FareTable::default().normal;
        assert_eq!(
            call.complete(other, 1, &rule, now()),
            Err(TransitionError::NotAssignedDriver { action: "complete" })
        );
    }

    #[test]
    fn cancel_is_allowed_from_requested_and_accepted_only() {
        let driver = Uuid::new_v4();
        for mut call in every_status(driver) {
            let from = call.status;
            let result = call.cancel(CancelReason::Customer, 0, now());
            match from {
                CallStatus::Requested | CallStatus::Accepted => {
                    assert_eq!(result, Ok(Applied::Changed));
                    assert_eq!(call.status, CallStatus::Canceled);
                }
                CallStatus::Canceled => assert_eq!(result, Ok(Applied::AlreadyDone)),
                _ => assert!(wrong_state(result), "cancel from {from}"),
            }
        }
    }

    #[test]
    fn canceling_a_requested_call_owes_nothing() {
        let mut call = requested();
        call.cancel(CancelReason::Expired, 1_000, now()).expect("cancel");
        assert_eq!(call.cancel_reason, Some(CancelReason::Expired));
        assert!(call.effects.is_empty());
        assert_eq!(call.version, 2);
    }

    #[test]
    fn canceling_an_accepted_call_refunds_all_but_the_fee_and_releases_the_driver() {
        let driver = Uuid::new_v4();
        let mut call = accepted(driver);
        call.cancel(CancelReason::Customer, 1_000, now()).expect("cancel");
        assert_eq!(call.cancel_fee_krw, 1_000);
        assert_eq!(
            call.effects,
            Effects {
                settle_krw: Some(1_000),
                release_driver: Some(driver)
            }
        );
    }

    #[test]
    fn the_cancellation_fee_never_exceeds_the_advance() {
        let mut call = accepted(Uuid::new_v4());
        call.cancel(CancelReason::Customer, 1_000_000, now())
            .expect("cancel");
        assert_eq!(call.cancel_fee_krw, call.advance_krw);
    }

    #[test]
    fn a_declined_advance_cancels_the_call_and_releases_the_driver() {
        let driver = Uuid::new_v4();
        let mut call = requested();
        call.claim(driver, now()).expect("claim");
        call.decline_payment(driver, now()).expect("decline");
        assert_eq!(call.cancel_reason, Some(CancelReason::PaymentDeclined));
        assert_eq!(call.effects.release_driver, Some(driver));
        assert_eq!(call.claim, None);
    }

    #[test]
    fn a_claim_abandoned_after_a_cancel_refunds_everything_and_releases() {
        let driver = Uuid::new_v4();
        let mut call = requested();
        call.claim(driver, now()).expect("claim");
        call.cancel(CancelReason::Customer, 0, now())
            .expect("cancel wins");
        assert!(
            wrong_state(call.accept(driver, 6_000, now())),
            "the late accept is refused"
        );
        call.abandon_claim(driver);
        assert_eq!(
            call.effects,
            Effects {
                settle_krw: Some(0),
                release_driver: Some(driver)
            }
        );
    }

    #[test]
    fn an_accept_given_up_expires_the_call_and_undoes_the_assignment_and_advance() {
        let driver = Uuid::new_v4();
        let mut call = requested();
        call.claim(driver, now()).expect("claim");

        let applied = call.give_up_accept(driver, now());

        assert_eq!(applied, Ok(Applied::Changed));
        assert_eq!(call.status, CallStatus::Canceled);
        assert_eq!(call.cancel_reason, Some(CancelReason::Expired));
        assert_eq!(call.claim, None);
        assert_eq!(
            call.effects,
            Effects {
                settle_krw: Some(0),
                release_driver: Some(driver)
            }
        );
        assert!(
            wrong_state(call.give_up_accept(driver, now())),
            "only an unfinished accept is given up"
        );
    }

    #[test]
    fn a_round_that_ends_unaccepted_starts_the_next_until_the_call_expires() {
        let mut call = requested();
        let start = call.requested_at;
        assert_eq!(call.offer_round, 1);
        assert_eq!(call.round_expires_at, Some(start + TimeDelta::seconds(30)));

        let early = call.next_round(SEARCH, start + TimeDelta::seconds(29));
        let due = call.next_round(SEARCH, start + TimeDelta::seconds(30));

        assert_eq!((early, due), (Applied::AlreadyDone, Applied::Changed));
        assert_eq!((call.offer_round, call.version), (2, 2));
        assert_eq!(call.round_expires_at, Some(start + TimeDelta::seconds(60)));
        let last = start + TimeDelta::seconds(290);
        assert_eq!(call.next_round(SEARCH, last), Applied::Changed);
        assert_eq!(
            call.round_expires_at, call.expires_at,
            "the last round ends with the call"
        );
        assert_eq!(
            call.next_round(SEARCH, start + TimeDelta::seconds(300)),
            Applied::AlreadyDone,
            "an expired call is not offered again"
        );
    }

    #[test]
    fn no_new_round_while_a_driver_accepts_or_once_the_call_is_taken() {
        let later = now() + TimeDelta::seconds(31);
        let mut claimed = requested();
        claimed.claim(Uuid::new_v4(), now()).expect("claim");
        let mut taken = accepted(Uuid::new_v4());

        assert_eq!(claimed.next_round(SEARCH, later), Applied::AlreadyDone);
        assert_eq!(taken.next_round(SEARCH, later), Applied::AlreadyDone);
        assert_eq!((claimed.offer_round, taken.offer_round), (1, 1));
    }

    #[test]
    fn a_completed_call_owes_the_final_fare_until_it_is_charged() {
        let driver = Uuid::new_v4();
        let mut call = completed(driver);
        let fare = call.final_fare_krw.expect("final fare");
        assert_eq!((call.paid_krw, call.owed_krw), (6_000, fare - 6_000));
        let version = call.version;

        let declined = call.record_settlement(fare, 6_000, None);
        let settled = call.record_settlement(fare, fare, None);

        assert_eq!(declined, Applied::AlreadyDone, "a decline leaves it owed");
        assert_eq!(settled, Applied::Changed);
        assert_eq!((call.paid_krw, call.refunded_krw, call.owed_krw), (fare, 0, 0));
        assert_eq!(call.version, version + 1);
        assert_eq!(call.record_settlement(fare, fare, None), Applied::AlreadyDone);
    }

    #[test]
    fn a_refund_shows_as_refunded_and_the_net_is_what_was_kept() {
        let mut call = accepted(Uuid::new_v4());
        call.cancel(CancelReason::Customer, 1_000, now()).expect("cancel");

        assert_eq!(
            call.record_settlement(1_000, 1_000, Some(5_000)),
            Applied::Changed
        );
        assert_eq!(
            (call.paid_krw, call.refunded_krw, call.owed_krw),
            (6_000, 5_000, 0)
        );
        assert_eq!(call.net_paid_krw(), 1_000);
    }

    #[test]
    fn only_a_call_that_owes_can_be_paid_with_another_card() {
        let driver = Uuid::new_v4();
        let mut owing = completed(driver);
        let mut paid = completed(driver);
        let fare = paid.final_fare_krw.expect("fare");
        paid.record_settlement(fare, fare, None);
        paid.effects = Effects::default();

        assert_eq!(owing.pay_with("tok_other".into()), Ok(()));
        assert_eq!(
            (owing.payment_method.as_str(), owing.settle_attempt),
            ("tok_other", 1)
        );
        assert_eq!(
            paid.pay_with("tok_other".into()),
            Err(TransitionError::NothingOwed)
        );
        assert_eq!(
            requested().pay_with("tok_other".into()),
            Err(TransitionError::NothingOwed)
        );
    }

    #[test]
    fn an_expected_version_guards_a_cancel() {
        let call = requested();
        assert!(call.require_version(0).is_ok());
        assert!(call.require_version(1).is_ok());
        assert_eq!(
            call.require_version(2),
            Err(TransitionError::VersionMismatch {
                expected: 2,
                actual: 1
            })
        );
    }

    #[test]
    fn only_the_owner_may_act_as_customer() {
        let call = requested();
        assert!(call.require_owner(call.customer_id, "cancel").is_ok());
        assert_eq!(
            call.require_owner(Uuid::new_v4(), "cancel"),
            Err(TransitionError::NotOwner { action: "cancel" })
        );
    }

    #[test]
    fn a_status_shows_as_the_wire_names_it_without_the_prefix() {
        assert_eq!(CallStatus::InTrip.to_string(), "IN_TRIP");
        assert_eq!(
            TransitionError::WrongState {
                action: "start",
                status: CallStatus::Requested
            }
            .to_string(),
            "cannot start a call that is REQUESTED"
        );
    }
}
