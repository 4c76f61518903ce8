//! Typed ids. All are UUID v7: globally unique without coordination between nodes, and sortable by creation
//! time, which keeps B-tree inserts append-only in both databases.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// A tenant. Every stored row carries one; single-business installs only ever see the default.
    WorkspaceId
);
id_type!(
    /// One person, however many identifiers they came in with.
    ContactId
);
id_type!(
    /// One accepted event.
    EventId
);
id_type!(
    /// One lead (an enquiry from a form, the API or a call).
    LeadId
);
id_type!(
    /// One run of a flow for one key (a checkout, a cart, a contact).
    RunId
);
id_type!(
    /// One outbox message.
    MessageId
);
id_type!(
    /// One task for a rep (a cadence's call step).
    TaskId
);
