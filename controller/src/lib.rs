//! pathrig's controller as a library: the path manager's driver (the manager itself is crate
//! `path-manager`), the scenario runner (timeline, kernel watch, teardown), the event log, the
//! report model and its renderers, the host side of a run and the guest's init. The `pathrig`
//! binary is a thin command line over it; benches and tests use it directly.

pub mod checkers;
pub mod commands;
pub mod driver;
pub mod events;
pub mod guest;
pub mod host;
pub mod managers;
pub mod plan;
pub mod report;
pub mod runner;
