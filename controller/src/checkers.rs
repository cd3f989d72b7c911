//! The path checkers the embedded manager runs: one [`PathChecker`] implementation per
//! `path_checker` value, and [`checker_for`], the one place that maps a value to its
//! implementation — adding a checker (`tur`) is one implementation and one line there.
//!
//! A checker starts one check of one path. It either puts IO on the driver's ring (the driver
//! collects the completion, and a timeout, with everything else on that ring) or answers at once.

use std::path::Path;
use std::time::Duration;

use path_manager::settings::PathChecker as CheckerKind;
use rig::checker::{CheckOutcome, CheckerRing};

use crate::driver::IoKey;

/// How a check was started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// IO is on the ring; the outcome comes with its completion (or its timeout).
    OnRing,
    /// The checker answered without IO.
    Answered(CheckOutcome),
}

pub trait PathChecker {
    /// The `path_checker` value it implements.
    fn name(&self) -> &'static str;

    /// Starts one check of the path opened through `node`, bounded by `timeout`.
    fn start(
        &self,
        ring: &mut CheckerRing<IoKey>,
        key: IoKey,
        node: &Path,
        timeout: Duration,
    ) -> Started;
}

/// The registration: the implementation of each `path_checker` value.
pub fn checker_for(kind: CheckerKind) -> Box<dyn PathChecker> {
    match kind {
        CheckerKind::Directio => Box::new(Directio),
        CheckerKind::Tur => Box::new(Tur),
        CheckerKind::None => Box::new(NoChecker),
    }
}

/// `directio`: an `O_DIRECT` read of the path's first block (multipath-tools'
/// `libmultipath/checkers/directio.c` reads one block the same way).
pub struct Directio;

impl PathChecker for Directio {
    fn name(&self) -> &'static str {
        "directio"
    }

    fn start(
        &self,
        ring: &mut CheckerRing<IoKey>,
        key: IoKey,
        node: &Path,
        timeout: Duration,
    ) -> Started {
        ring.start(key, node, timeout);
        Started::OnRing
    }
}

/// `tur`: a SCSI TEST UNIT READY through `SG_IO` on the path's node, on a worker thread of the
/// ring (multipath-tools' `libmultipath/checkers/tur.c`; see [`rig::checker::tur`]).
pub struct Tur;

impl PathChecker for Tur {
    fn name(&self) -> &'static str {
        "tur"
    }

    fn start(
        &self,
        ring: &mut CheckerRing<IoKey>,
        key: IoKey,
        node: &Path,
        timeout: Duration,
    ) -> Started {
        ring.start_tur(key, node, timeout);
        Started::OnRing
    }
}

/// `none`: every path counts as up. The core answers for it and never asks for a check; should
/// it ask, the answer is the same.
pub struct NoChecker;

impl PathChecker for NoChecker {
    fn name(&self) -> &'static str {
        "none"
    }

    fn start(&self, _: &mut CheckerRing<IoKey>, _: IoKey, _: &Path, _: Duration) -> Started {
        Started::Answered(CheckOutcome::Up)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_value_is_registered_with_its_own_implementation() {
        assert_eq!(checker_for(CheckerKind::Directio).name(), "directio");
        assert_eq!(checker_for(CheckerKind::Tur).name(), "tur");
        assert_eq!(checker_for(CheckerKind::None).name(), "none");
    }

    #[test]
    fn none_answers_up_without_io() {
        let Ok(mut ring) = CheckerRing::<IoKey>::new(8) else {
            eprintln!("no io_uring here; skipping");
            return;
        };
        let key = IoKey::Sample(path_manager::PathRef { map: 0, path: 0 });
        let started = NoChecker.start(&mut ring, key, Path::new("/nonexistent"), Duration::ZERO);
        assert_eq!(started, Started::Answered(CheckOutcome::Up));
        assert_eq!(ring.in_flight(), 0);
    }

    #[test]
    fn tur_runs_on_the_ring() {
        let Ok(mut ring) = CheckerRing::<IoKey>::new(8) else {
            eprintln!("no io_uring here; skipping");
            return;
        };
        let key = IoKey::Sample(path_manager::PathRef { map: 0, path: 0 });
        let node = Path::new("/nonexistent-scsi-device");
        let started = Tur.start(&mut ring, key, node, Duration::from_secs(1));
        assert_eq!(started, Started::OnRing);
        let done = ring.collect(std::time::Instant::now());
        assert_eq!(
            done[0].outcome,
            CheckOutcome::Down {
                errno: libc::ENOENT
            }
        );
    }

    #[test]
    fn directio_reads_on_the_ring() {
        let Ok(mut ring) = CheckerRing::<IoKey>::new(8) else {
            eprintln!("no io_uring here; skipping");
            return;
        };
        let key = IoKey::Sample(path_manager::PathRef { map: 0, path: 0 });
        let started = Directio.start(
            &mut ring,
            key,
            Path::new("/nonexistent-device"),
            Duration::from_secs(1),
        );
        assert_eq!(started, Started::OnRing);
        // A device that cannot be opened is a finished check: down, with the open's errno.
        let done = ring.collect(std::time::Instant::now());
        assert_eq!(done.len(), 1);
        assert_eq!(
            done[0].outcome,
            CheckOutcome::Down {
                errno: libc::ENOENT
            }
        );
    }
}
