//! The current time, in UTC, at PostgreSQL's microsecond precision, so that a
//! value a command returns is exactly the value a later read returns.

use chrono::{DateTime, SubsecRound as _, Utc};

/// Now, truncated to whole microseconds.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

#[cfg(test)]
mod tests {
    #[test]
    fn now_has_no_sub_microsecond_part() {
        assert_eq!(super::now().timestamp_subsec_nanos() % 1_000, 0);
    }
}
