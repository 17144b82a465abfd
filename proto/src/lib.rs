//! Rust types and gRPC stubs generated from `proto/taxi/**` at build time.
//!
//! One module per protobuf package (`taxi.call.v1` is [`call::v1`]), plus the
//! encoded descriptor set that the services hand to gRPC reflection.
#![allow(missing_docs, unreachable_pub, clippy::all)]

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
    }
}

pub mod dispatch {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/taxi.dispatch.v1.rs"));
    }
}

pub mod payment {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/taxi.payment.v1.rs"));
    }
}

pub mod events {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/taxi.events.v1.rs"));
    }
}

pub mod query {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/taxi.query.v1.rs"));
    }
}
