//! Who is calling, as the domain sees it: a user with a role, confined to one organizer's
//! data unless an admin. Tokens are verified at the HTTP edge; which data a caller may touch
//! is decided by the tenancy gate ([`crate::access`]).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Organizer,
    Admin,
    Scanner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Organizer => "organizer",
            Role::Admin => "admin",
            Role::Scanner => "scanner",
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub role: Role,
    /// For a scanner: the organizer whose events it may scan.
    pub organizer_id: Option<String>,
}

impl Caller {
    /// Organizers and admins manage events; scanners only scan.
    pub fn is_manager(&self) -> bool {
        matches!(self.role, Role::Organizer | Role::Admin)
    }

    /// The organizer whose data this caller is confined to; `None` for an admin (sees all).
    pub fn tenant(&self) -> Option<&str> {
        match self.role {
            Role::Admin => None,
            Role::Organizer => Some(&self.user_id),
            Role::Scanner => self.organizer_id.as_deref(),
        }
    }
}
