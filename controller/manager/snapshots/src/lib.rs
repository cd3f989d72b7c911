//! Snapshot tests of the path manager core's action logs: the core's test scenarios (from
//! `path_manager::sim`) run on the virtual clock, and the sequence of actions with their
//! reasons, as the event log words them, compared with `tests/snapshots/`. A change of
//! behaviour or wording shows here without a guest.
//!
//! A crate of its own because insta's dependencies include `libc`, which `path-manager`'s
//! dependency tree must not have. The tests are in `tests/actions.rs`; this library is empty.
