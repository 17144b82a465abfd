//! The handler of the `dispatch-offers` consumer: reads each call event and
//! hands it to the offer use cases in `service::offers`, then tells the
//! consumer whether a failure is worth a retry.

use eventbus::consumer::Failure;
use taxi_proto::events::v1::EventEnvelope;

use super::convert;
use crate::{domain::CallEvent, error::DispatchError, service::Dispatch};

/// Durable name of the consumer of call events.
pub const OFFERS_DURABLE: &str = "dispatch-offers";

/// Handles call events for offers.
#[derive(Debug, Clone)]
pub struct OfferDispatcher {
    dispatch: Dispatch,
}

/// A failure of the store or of NATS: retried if transient, dead-lettered at
/// once otherwise.
fn failure(error: DispatchError) -> Failure {
    Failure::of_kind(error.kind(), anyhow::Error::new(error))
}

impl OfferDispatcher {
    /// Applies call events through `dispatch`.
    pub fn new(dispatch: Dispatch) -> Self {
        Self { dispatch }
    }

    /// Applies one call event. Malformed events are poison; failures of the
    /// database or NATS are worth a retry.
    pub async fn handle(&self, envelope: EventEnvelope) -> Result<(), Failure> {
        match convert::call_event(&envelope).map_err(Failure::Poison)? {
            CallEvent::Requested(call) => {
                let requested_at = convert::occurred_at(&envelope);
                self.dispatch
                    .offer_call(&call, requested_at)
                    .await
                    .map_err(failure)
            }
            CallEvent::Closed { call_id, taken_by } => {
                self.dispatch.close_call(call_id, taken_by).await.map_err(failure)
            }
            CallEvent::Ignored => Ok(()),
        }
    }
}
