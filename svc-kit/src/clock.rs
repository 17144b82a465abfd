//! Time: the current instant in UTC at PostgreSQL's microsecond precision (so a
//! value a command returns is exactly the value a later read returns), and its
//! conversion to and from the protobuf `Timestamp` that travels on the wire.

use chrono::{DateTime, SubsecRound as _, Utc};

/// Now, truncated to whole microseconds.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A UTC instant as a protobuf timestamp.
pub fn to_proto(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        // Below 10^9 by chrono's own invariant, so it always fits.
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// A protobuf timestamp as a UTC instant; `None` when it names no instant
/// chrono can hold (negative nanos, or years beyond ±262,000).
pub fn from_proto(at: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(at.seconds, u32::try_from(at.nanos).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_has_no_sub_microsecond_part() {
        assert_eq!(now().timestamp_subsec_nanos() % 1_000, 0);
    }

    #[test]
    fn instants_round_trip_through_the_wire_type() {
        let at = now();
        assert_eq!(from_proto(&to_proto(at)), Some(at));
    }

    #[test]
    fn a_timestamp_with_negative_nanos_is_no_instant() {
        let bad = prost_types::Timestamp {
            seconds: 0,
            nanos: -1,
        };
        assert_eq!(from_proto(&bad), None);
    }
}
