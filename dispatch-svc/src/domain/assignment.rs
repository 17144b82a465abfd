//! A call's assignment to a driver: at most one per call, ever. Repeating the
//! winning assignment is harmless; anything else is refused.

use taxi_proto::common::v1::TaxiType;
use uuid::Uuid;

use super::Refusal;

/// Assign `driver_id` to `call_id`, whose customer asked for `taxi_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssignCommand {
    pub call_id: Uuid,
    pub driver_id: Uuid,
    pub taxi_type: TaxiType,
}

/// Free `driver_id` from `call_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleaseCommand {
    pub call_id: Uuid,
    pub driver_id: Uuid,
}

/// The recorded assignment of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assignment {
    pub call_id: Uuid,
    pub driver_id: Uuid,
    pub released: bool,
}

impl Assignment {
    /// Judges an AssignDriver for a call that already has this assignment:
    /// a retry by the winner succeeds, everyone else is refused.
    pub fn confirm_repeat(&self, driver_id: Uuid) -> Result<(), Refusal> {
        if self.released {
            Err(Refusal::AssignmentReleased)
        } else if self.driver_id != driver_id {
            Err(Refusal::CallAlreadyAssigned)
        } else {
            Ok(())
        }
    }

    /// Whether a ReleaseDriver by `driver_id` frees anything.
    pub fn is_releasable_by(&self, driver_id: Uuid) -> bool {
        !self.released && self.driver_id == driver_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(released: bool) -> Assignment {
        Assignment {
            call_id: Uuid::new_v4(),
            driver_id: Uuid::new_v4(),
            released,
        }
    }

    #[test]
    fn the_winner_may_repeat_an_assignment() {
        let a = assignment(false);
        assert_eq!(a.confirm_repeat(a.driver_id), Ok(()));
    }

    #[test]
    fn another_driver_is_refused_a_taken_call() {
        let a = assignment(false);
        assert_eq!(
            a.confirm_repeat(Uuid::new_v4()),
            Err(Refusal::CallAlreadyAssigned)
        );
    }

    #[test]
    fn nobody_is_assigned_a_released_call() {
        let a = assignment(true);
        assert_eq!(a.confirm_repeat(a.driver_id), Err(Refusal::AssignmentReleased));
        assert_eq!(a.confirm_repeat(Uuid::new_v4()), Err(Refusal::AssignmentReleased));
    }

    #[test]
    fn only_the_assigned_driver_releases_once() {
        let a = assignment(false);
        assert!(a.is_releasable_by(a.driver_id));
        assert!(!a.is_releasable_by(Uuid::new_v4()));
        assert!(!assignment(true).is_releasable_by(a.driver_id));
    }
}
