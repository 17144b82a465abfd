//! Rust types and gRPC stubs generated from `proto/taxi/**` at build time.
//!
//! One module per protobuf package (`taxi.call.v1` is [`call::v1`]), plus the
//! encoded descriptor set that the services hand to gRPC reflection, and the
//! [`codec`] the generated servers decode requests with.
#![allow(missing_docs, unreachable_pub, clippy::all)]

pub mod codec;

/// Encoded `FileDescriptorSet` of every taxi proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/taxi_descriptor.bin"));

pub mod common {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/taxi.common.v1.rs"));
    }
}

pub mod call {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/taxi.call.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/server/taxi.call.v1.rs"));
    }
}

pub mod dispatch {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/taxi.dispatch.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/server/taxi.dispatch.v1.rs"));
    }
}

pub mod payment {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/taxi.payment.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/server/taxi.payment.v1.rs"));
    }
}

pub mod events {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/taxi.events.v1.rs"));

        impl event_envelope::Payload {
            /// The event's type, `<aggregate>.<event>` (such as
            /// `call.requested`): the middle of its NATS subject, which
            /// consumers filter on. Decided here, once, for every event.
            pub fn event_type(&self) -> &'static str {
                use event_envelope::Payload as P;
                match self {
                    P::CallRequested(_) => "call.requested",
                    P::CallRejected(_) => "call.rejected",
                    P::CallAccepted(_) => "call.accepted",
                    P::TripStarted(_) => "call.trip_started",
                    P::TripCompleted(_) => "call.trip_completed",
                    P::CallCanceled(_) => "call.canceled",
                    P::CallReoffered(_) => "call.reoffered",
                    P::CallSettled(_) => "call.settled",
                    P::DriverRegistered(_) => "driver.registered",
                    P::DriverOnline(_) => "driver.online",
                    P::DriverOffline(_) => "driver.offline",
                    P::DriverAssigned(_) => "driver.assigned",
                    P::DriverReleased(_) => "driver.released",
                    P::AdvancePaid(_) => "payment.advance_paid",
                    P::PaymentDeclined(_) => "payment.declined",
                    P::FinalSettled(_) => "payment.final_settled",
                    P::PaymentRefunded(_) => "payment.refunded",
                }
            }

            /// The kind of aggregate the event is about: `call`, `driver` or
            /// `payment`.
            pub fn aggregate_type(&self) -> &'static str {
                let event_type = self.event_type();
                event_type
                    .split_once('.')
                    .map_or(event_type, |(aggregate, _)| aggregate)
            }
        }
    }
}

pub mod query {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/taxi.query.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/server/taxi.query.v1.rs"));
    }
}
