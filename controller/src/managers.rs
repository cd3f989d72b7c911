//! The path managers a run can have, behind one trait: what the runner asks of whatever
//! manages the maps' paths. [`Embedded`] is pathrig's own manager (the sans-IO core of crate
//! `path-manager` with its [`Driver`]); [`NoManager`] is the bare kernel, where the rig
//! reinstates restored legs itself; [`Multipathd`] is the real multipathd in the guest, seen
//! through its log. [`start`] is the one registration: a further manager is one implementation
//! and one line there.

mod multipathd;

pub use multipathd::Multipathd;

use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use faults::Scenario;
use path_manager::settings::ManagerKind;
use path_manager::MapView;
use rig::dm::mpath_status::MultipathStatus;
use rig::dm::Dm;

use crate::driver::{BuiltMapInfo, Driver};
use crate::events::EventLog;

/// pathrig's embedded path manager.
pub use crate::driver::Driver as Embedded;

/// What the runner asks of a path manager.
pub trait PathManager {
    /// Whether the rig reinstates a restored leg's path itself (no manager would).
    fn rig_reinstates(&self) -> bool;

    /// The kernel's view of map `index` changed (or is read for the first time).
    fn kernel_status(&mut self, index: usize, status: &MultipathStatus, dm: &Dm, log: &EventLog);

    /// Runs what is due (timers, finished checks).
    fn poll(&mut self, dm: &Dm, log: &EventLog);

    /// When the manager next needs [`PathManager::poll`]; `None`: not before an event.
    fn next_wakeup(&self) -> Option<Instant>;

    /// A descriptor to wait on along with the dm events (readable: call [`PathManager::poll`]).
    fn wake_fd(&self) -> Option<RawFd>;

    /// Stops the manager (waiting at most `limit` for its IO in flight) and returns its final
    /// view of every map for the report; `None` for a manager without one.
    fn finish(self: Box<Self>, limit: Duration) -> Option<Vec<MapView>>;
}

/// The scenario's path manager, started for the built maps. `multipathd` is the line feed of
/// the multipathd the build started (`kind = "multipathd"` only).
pub fn start(
    scenario: &Scenario,
    maps: &[BuiltMapInfo<'_>],
    origin: Instant,
    multipathd: Option<rig::multipathd::Feed>,
) -> std::io::Result<Box<dyn PathManager>> {
    Ok(match scenario.manager.kind {
        ManagerKind::Embedded => Box::new(Embedded::new(scenario, maps, origin)?),
        ManagerKind::None => Box::new(NoManager),
        ManagerKind::Multipathd => {
            let feed = multipathd.ok_or_else(|| {
                std::io::Error::other("kind = \"multipathd\", but the build started no multipathd")
            })?;
            Box::new(Multipathd::new(feed, maps))
        }
    })
}

/// No path manager: the bare kernel.
pub struct NoManager;

impl PathManager for NoManager {
    fn rig_reinstates(&self) -> bool {
        true
    }

    fn kernel_status(&mut self, _: usize, _: &MultipathStatus, _: &Dm, _: &EventLog) {}

    fn poll(&mut self, _: &Dm, _: &EventLog) {}

    fn next_wakeup(&self) -> Option<Instant> {
        None
    }

    fn wake_fd(&self) -> Option<RawFd> {
        None
    }

    fn finish(self: Box<Self>, _: Duration) -> Option<Vec<MapView>> {
        None
    }
}

impl PathManager for Driver {
    fn rig_reinstates(&self) -> bool {
        false
    }

    fn kernel_status(&mut self, index: usize, status: &MultipathStatus, dm: &Dm, log: &EventLog) {
        Driver::kernel_status(self, index, status, dm, log);
    }

    fn poll(&mut self, dm: &Dm, log: &EventLog) {
        Driver::poll(self, dm, log);
    }

    fn next_wakeup(&self) -> Option<Instant> {
        Driver::next_wakeup(self)
    }

    fn wake_fd(&self) -> Option<RawFd> {
        Some(self.checker_fd().as_raw_fd())
    }

    fn finish(self: Box<Self>, limit: Duration) -> Option<Vec<MapView>> {
        let core = self.core();
        let views = (0..core.maps()).map(|m| core.map_view(m)).collect();
        // Checks still in flight hold leg devices open; let them finish before teardown.
        Driver::finish(*self, limit);
        Some(views)
    }
}
