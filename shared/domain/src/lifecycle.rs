//! The event lifecycle: `draft → published → completed`, `draft|published → cancelled`.
//! Its own module, below both the tenancy gate ([`crate::access`]) and the events module.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    Draft,
    Published,
    Cancelled,
    Completed,
}

crate::text_enum!(EventStatus {
    Draft => "draft",
    Published => "published",
    Cancelled => "cancelled",
    Completed => "completed",
});

impl EventStatus {
    /// Cancelled and completed events cannot change any more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Cancelled | Self::Completed)
    }

    /// The lifecycle: `draft → published → completed`, `draft|published → cancelled`.
    pub fn can_become(self, next: Self) -> bool {
        use EventStatus::*;
        self == next && !self.is_final()
            || matches!(
                (self, next),
                (Draft, Published) | (Published, Completed) | (Draft | Published, Cancelled)
            )
    }
}

#[cfg(test)]
mod tests {
    use super::EventStatus::*;

    #[test]
    fn lifecycle() {
        assert!(Draft.can_become(Published));
        assert!(Published.can_become(Completed));
        assert!(Draft.can_become(Cancelled));
        assert!(Published.can_become(Cancelled));
        assert!(Draft.can_become(Draft));
        assert!(!Draft.can_become(Completed));
        assert!(!Published.can_become(Draft));
        for end in [Cancelled, Completed] {
            for next in [Draft, Published, Cancelled, Completed] {
                assert!(!end.can_become(next), "{end:?} -> {next:?}");
            }
        }
    }
}
