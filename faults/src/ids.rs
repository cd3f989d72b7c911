//! Typed indices into a validated [`Scenario`](crate::Scenario): [`MapId`] into its maps,
//! [`LegId`] into its legs, [`FaultId`] into its faults.
//!
//! Only the resolver makes them (each from the position of the thing it names), so an id in a
//! scenario always indexes that scenario's vectors; they serialise as plain numbers.

use serde::{Deserialize, Serialize};

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(u32);

        impl $name {
            /// Made by the resolver only.
            pub(crate) fn new(index: usize) -> Self {
                $name(u32::try_from(index).expect("fewer than 2^32 entries"))
            }

            /// The position in the scenario's vector.
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }
    };
}

id!(
    /// A map of the scenario: an index into [`Scenario::maps`](crate::Scenario::maps).
    MapId
);
id!(
    /// A leg of the scenario: an index into [`Scenario::legs`](crate::Scenario::legs).
    LegId
);
id!(
    /// A fault of the scenario: an index into [`Scenario::faults`](crate::Scenario::faults).
    FaultId
);
id!(
    /// A host adapter of the scenario: an index into [`Scenario::hbas`](crate::Scenario::hbas).
    HbaId
);
