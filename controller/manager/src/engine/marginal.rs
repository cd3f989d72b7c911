//! The marginal-path logic (`marginal_path_*`, `marginal_pathgroups`, and pathrig's sampling
//! extensions): the per-map settings, Wald's sequential test, and the rules that start a
//! hold a path, start its sample at a check that finds it up, send its bursts, count its
//! answers, reach a verdict, recheck a marginal path, reinstate a held path early when the map
//! has no usable path, and keep the marginal path group in the table. The checker and map-level rules stay in the parent module; see the crate
//! documentation ("Marginal paths") for the semantics.

use super::*;

/// `marginal_path_*` of one map, with pathrig's sampling settings.
#[derive(Debug, Clone, Copy)]
pub(super) struct MarginalCfg {
    pub(super) double_failed_time: Duration,
    pub(super) sample_time: Duration,
    pub(super) threshold: u32,
    pub(super) recheck_gap: Duration,
    pub(super) burst: u32,
    pub(super) burst_gap: Duration,
    pub(super) io_timeout: Duration,
    pub(super) detector: MarginalDetector,
    pub(super) sprt: Sprt,
    pub(super) pathgroups: bool,
}

/// Wald's sequential probability ratio test between an acceptable error rate p0 and a
/// marginal one p1, per read: an error adds `ln(p1/p0)` to the log-likelihood ratio, a good
/// read `ln((1-p1)/(1-p0))`; at or above `ln((1-β)/α)` the path is marginal, at or below
/// `ln(β/(1-α))` good.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sprt {
    pub(super) good: Ppm,
    pub(super) bad: Ppm,
    pub(super) per_error: f64,
    pub(super) per_ok: f64,
    pub(super) lower: f64,
    pub(super) upper: f64,
}

impl Sprt {
    /// Rates and probabilities come validated from `faults`; settings made by hand are clamped
    /// so that the test stays defined (p0 < p1 < 1, 0 < α, β < 0.5).
    pub(super) fn new(good: Ppm, bad: Ppm, alpha: Ppm, beta: Ppm) -> Sprt {
        let p1 = bad.fraction().clamp(1e-6, 1.0 - 1e-6);
        let p0 = good.fraction();
        let p0 = if p0 >= p1 { p1 / 2.0 } else { p0 };
        let alpha = alpha.fraction().clamp(1e-6, 0.5);
        let beta = beta.fraction().clamp(1e-6, 0.5);
        Sprt {
            good,
            bad,
            per_error: (p1 / p0).ln(),
            per_ok: ((1.0 - p1) / (1.0 - p0)).ln(),
            lower: (beta / (1.0 - alpha)).ln(),
            upper: ((1.0 - beta) / alpha).ln(),
        }
    }

    /// The log-likelihood ratio after `errors` errors in `answered` reads (an error with an
    /// acceptable rate of 0 makes it +infinity).
    pub(super) fn llr(&self, errors: u32, answered: u32) -> f64 {
        let oks = f64::from(answered - errors) * self.per_ok;
        if errors == 0 {
            oks
        } else {
            oks + f64::from(errors) * self.per_error
        }
    }

    pub(super) fn evidence(&self, e: &SampleEvidence) -> SprtEvidence {
        SprtEvidence {
            llr_milli: milli(self.llr(e.errors, e.answered)),
            lower_milli: milli(self.lower),
            upper_milli: milli(self.upper),
            good: self.good,
            bad: self.bad,
        }
    }
}

/// Thousandths, saturating (infinities become i64::MAX / MIN).
pub(super) fn milli(x: f64) -> i64 {
    (x * 1000.0).round() as i64
}

impl Map {
    /// Path `p` failed twice within `double_failed_time` (io_err_stat_handle_pathfail): it is
    /// held, failed in dm, and sampled from the first check that finds it up.
    pub(super) fn trigger(
        &mut self,
        now: Duration,
        m: usize,
        p: usize,
        apart: Duration,
        out: &mut Vec<Action>,
    ) {
        let Some(cfg) = self.marginal else { return };
        let others_usable = self
            .paths
            .iter()
            .enumerate()
            .any(|(q, path)| q != p && path.usable());
        let path = &mut self.paths[p];
        let was_usable = path.usable();
        path.last_kernel_failure = None;
        let down = match &path.state {
            PathState::Down { detail, .. } => Some(detail.clone()),
            _ => None,
        };
        path.state = PathState::Triggered {
            since: now,
            checker: HeldCheck {
                after_down: down.is_some(),
                down,
            },
        };
        path.interval = self.polling;
        let reason = Reason::MarginalTriggered {
            apart,
            double_failed_time: cfg.double_failed_time,
            sample_time: cfg.sample_time,
            detector: cfg.detector,
        };
        // The failure was the kernel's: it has the path failed already, unless it was
        // reinstated since (then keep it out, if the map can do without it).
        if path.kernel.active && others_usable {
            path.kernel.active = false;
            out.push(Action::FailPath {
                path: PathRef { map: m, path: p },
                reason,
            });
            if was_usable {
                self.scratch.failed.get_or_insert((p, FailedBy::Marginal));
            }
        } else {
            out.push(Action::Note {
                map: m,
                path: Some(p),
                reason,
            });
        }
        self.scratch.dirty = true;
    }

    /// The checker finds a held path down: it stays held (upstream keeps
    /// io_err_disable_reinstate across a checker down), and a sample goes on; fail it in dm if
    /// it is active (in the marginal group, or after a reload).
    pub(super) fn marginal_checker_down(
        &mut self,
        m: usize,
        p: usize,
        detail: String,
        fail_reason: Reason,
        out: &mut Vec<Action>,
    ) {
        let checker = self.checker;
        let path = &mut self.paths[p];
        let was_usable = path.usable();
        let was_down = path.state.held_check().is_some_and(|c| c.down.is_some());
        if let PathState::Triggered { checker: c, .. }
        | PathState::Sampling { checker: c, .. }
        | PathState::Marginal { checker: c, .. } = &mut path.state
        {
            c.down = Some(detail.clone());
            c.after_down = true;
        }
        if path.kernel.active {
            path.kernel.active = false;
            out.push(Action::FailPath {
                path: PathRef { map: m, path: p },
                reason: fail_reason,
            });
            if was_usable {
                self.scratch.failed.get_or_insert((p, FailedBy::Checker));
            }
            self.scratch.dirty = true;
        } else if !was_down {
            out.push(Action::Note {
                map: m,
                path: Some(p),
                reason: Reason::CheckerDownAlreadyFailed { checker, detail },
            });
        }
    }

    /// The checker finds a held path up (need_io_err_check): with no usable path in the map it
    /// is reinstated early and no longer marginal; otherwise a triggered path starts its first
    /// sample, and a marginal one whose recheck gap is over its next; with
    /// `marginal_pathgroups on` a path in the marginal group the kernel failed is reinstated
    /// there.
    pub(super) fn marginal_checker_up(
        &mut self,
        now: Duration,
        m: usize,
        p: usize,
        timers: &mut Timers,
        out: &mut Vec<Action>,
    ) {
        let Some(cfg) = self.marginal else { return };
        let here = PathRef { map: m, path: p };
        let path = &mut self.paths[p];
        let held = match &mut path.state {
            PathState::Triggered { checker, .. }
            | PathState::Sampling { checker, .. }
            | PathState::Marginal { checker, .. } => {
                checker.down = None;
                checker.clone()
            }
            _ => return,
        };
        if !self.paths.iter().any(Path::usable) {
            self.stop_sampling(now, m, p, timers);
            let path = &mut self.paths[p];
            path.state = PathState::Up { since: now };
            path.interval = self.polling;
            path.last_kernel_failure = None;
            self.sync_table(m, p, timers, out);
            let path = &mut self.paths[p];
            path.kernel.active = true;
            out.push(Action::ReinstatePath {
                path: here,
                reason: Reason::MarginalLastPath,
            });
            if held.after_down {
                self.scratch.returned.push(p);
            }
            self.scratch.dirty = true;
            return;
        }
        match self.paths[p].state {
            PathState::Triggered { .. } => {
                let reason = Reason::MarginalSampleStart {
                    checker: self.checker,
                    sample_time: cfg.sample_time,
                    detector: cfg.detector,
                };
                self.start_sampling(now, m, p, 1, reason, held, timers, out);
            }
            PathState::Marginal {
                next_sample_at,
                round,
                ..
            } if now >= next_sample_at => {
                let reason = Reason::MarginalRecheck {
                    gap: cfg.recheck_gap,
                    sample_time: cfg.sample_time,
                    round: round + 1,
                };
                self.start_sampling(now, m, p, round + 1, reason, held, timers, out);
            }
            _ => self.reinstate_in_marginal_group(m, p, out),
        }
    }

    /// `marginal_pathgroups on`: a held path in the marginal group that the checker finds up
    /// is active there (update_path_state reinstates it like any path).
    fn reinstate_in_marginal_group(&mut self, m: usize, p: usize, out: &mut Vec<Action>) {
        let path = &mut self.paths[p];
        let up = path.state.held_check().is_some_and(|c| c.down.is_none());
        if up && self.marginal_group == Some(path.group) && !path.kernel.active {
            path.kernel.active = true;
            out.push(Action::ReinstatePath {
                path: PathRef { map: m, path: p },
                reason: Reason::MarginalGroupReinstate { group: path.group },
            });
            self.scratch.dirty = true;
        }
    }

    /// Starts sampling path `p` (round 1 after a trigger, 2.. for a recheck), at a check that
    /// found it up: the first burst now (or once the previous sample's reads can no longer be
    /// answered), the window verdict at the end of the sample time. Out of use while another
    /// path is usable; with `marginal_pathgroups on` in the marginal group, active.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_sampling(
        &mut self,
        now: Duration,
        m: usize,
        p: usize,
        round: u32,
        reason: Reason,
        checker: HeldCheck,
        timers: &mut Timers,
        out: &mut Vec<Action>,
    ) {
        let Some(cfg) = self.marginal else { return };
        let others_usable = self
            .paths
            .iter()
            .enumerate()
            .any(|(q, path)| q != p && path.usable());
        let path = &mut self.paths[p];
        let was_usable = path.usable();
        let first = now.max(path.quiet_at);
        let until = first + cfg.sample_time;
        path.state = PathState::Sampling {
            since: first,
            until,
            round,
            evidence: SampleEvidence::default(),
            outstanding: 0,
            next_burst: Some(first),
            checker,
        };
        path.interval = self.polling;
        timers.set(Timer::SampleEnd(slot(m, p)), until);
        if cfg.pathgroups {
            out.push(Action::Note {
                map: m,
                path: Some(p),
                reason,
            });
            self.sync_table(m, p, timers, out);
            self.reinstate_in_marginal_group(m, p, out);
        } else if path.kernel.active && others_usable {
            path.kernel.active = false;
            out.push(Action::FailPath {
                path: PathRef { map: m, path: p },
                reason,
            });
            if was_usable {
                self.scratch.failed.get_or_insert((p, FailedBy::Marginal));
            }
        } else {
            out.push(Action::Note {
                map: m,
                path: Some(p),
                reason,
            });
        }
        if first <= now {
            self.send_burst(now, m, p, timers, out);
        } else {
            timers.set(Timer::Burst(slot(m, p)), first);
        }
        self.scratch.dirty = true;
    }

    /// The next burst of a sampled path is due: send it, unless it could not be answered
    /// before the sample ends.
    pub(super) fn send_burst(
        &mut self,
        now: Duration,
        m: usize,
        p: usize,
        timers: &mut Timers,
        out: &mut Vec<Action>,
    ) {
        let Some(cfg) = &self.marginal else { return };
        let PathState::Sampling {
            until,
            evidence,
            outstanding,
            next_burst,
            ..
        } = &mut self.paths[p].state
        else {
            return;
        };
        if evidence.sent > 0 && now + cfg.io_timeout > *until {
            *next_burst = None;
            return;
        }
        evidence.sent += cfg.burst;
        *outstanding += cfg.burst;
        // If the answers do not all come (they should, within the timeout), the next burst
        // goes anyway.
        let fallback = now + cfg.io_timeout + cfg.burst_gap;
        *next_burst = Some(fallback);
        timers.set(Timer::Burst(slot(m, p)), fallback);
        out.push(Action::SampleIo {
            path: PathRef { map: m, path: p },
            count: cfg.burst,
            timeout: cfg.io_timeout,
        });
    }

    /// One sample read answered.
    pub(super) fn on_sample_result(
        &mut self,
        now: Duration,
        m: usize,
        p: usize,
        outcome: &SampleOutcome,
        timers: &mut Timers,
        out: &mut Vec<Action>,
    ) {
        let Some(cfg) = &self.marginal else { return };
        let PathState::Sampling {
            evidence,
            outstanding,
            next_burst,
            ..
        } = &mut self.paths[p].state
        else {
            // Not sampled (anymore): a late answer.
            return;
        };
        if *outstanding == 0 {
            // No read of this sample is waiting for it.
            return;
        }
        *outstanding -= 1;
        evidence.answered += 1;
        match outcome {
            SampleOutcome::Ok => {}
            SampleOutcome::Error { .. } => evidence.errors += 1,
            SampleOutcome::TimedOut => {
                evidence.errors += 1;
                evidence.timed_out += 1;
            }
        }
        if *outstanding == 0 {
            // The burst is complete: the next one after the gap.
            if let Some(at) = *next_burst {
                let soon = now + cfg.burst_gap;
                if soon < at {
                    timers.cancel(Timer::Burst(slot(m, p)));
                    timers.set(Timer::Burst(slot(m, p)), soon);
                    *next_burst = Some(soon);
                }
            }
        }
        if cfg.detector == MarginalDetector::Sequential {
            let llr = cfg.sprt.llr(evidence.errors, evidence.answered);
            let decided = if llr >= cfg.sprt.upper {
                Some(false)
            } else if llr <= cfg.sprt.lower {
                Some(true)
            } else {
                None
            };
            if let Some(good) = decided {
                let decision = Decision::Sequential(cfg.sprt.evidence(evidence));
                self.verdict(now, m, p, good, decision, timers, out);
            }
        }
    }

    /// The sample time is over: the window rule decides (also for an undecided sequential
    /// test). No answered read is no evidence against the path (as in multipath-tools).
    pub(super) fn on_sample_end(
        &mut self,
        now: Duration,
        m: usize,
        p: usize,
        timers: &mut Timers,
        out: &mut Vec<Action>,
    ) {
        let Some(cfg) = &self.marginal else { return };
        let PathState::Sampling { evidence: e, .. } = &self.paths[p].state else {
            return;
        };
        let good = u64::from(e.errors) * 1000 <= u64::from(cfg.threshold) * u64::from(e.answered);
        let decision = match cfg.detector {
            MarginalDetector::Window => Decision::Window,
            MarginalDetector::Sequential => Decision::SequentialUndecided(cfg.sprt.evidence(e)),
        };
        self.verdict(now, m, p, good, decision, timers, out);
    }

    /// A sample's verdict: good reinstates the path, bad keeps it out until the recheck.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn verdict(
        &mut self,
        now: Duration,
        m: usize,
        p: usize,
        good: bool,
        decision: Decision,
        timers: &mut Timers,
        out: &mut Vec<Action>,
    ) {
        let Some(cfg) = self.marginal else { return };
        let here = PathRef { map: m, path: p };
        let path = &mut self.paths[p];
        let PathState::Sampling {
            since,
            until: _,
            round,
            evidence,
            outstanding,
            next_burst,
            ref checker,
        } = path.state
        else {
            return;
        };
        let checker = checker.clone();
        if next_burst.is_some() {
            timers.cancel(Timer::Burst(slot(m, p)));
        }
        timers.cancel(Timer::SampleEnd(slot(m, p)));
        if outstanding > 0 {
            path.quiet_at = now + cfg.io_timeout;
        }
        let elapsed = now.saturating_sub(since);
        self.scratch.dirty = true;
        if good {
            path.interval = self.polling;
            path.last_kernel_failure = None;
            let reason = Reason::MarginalGood {
                evidence,
                elapsed,
                threshold: cfg.threshold,
                decision,
            };
            if let Some(detail) = checker.down {
                // Good, but the checker finds it down: down like any path, reinstated when the
                // checker finds it up (end_io_err_stat leaves reinstating to the checker).
                path.state = PathState::Down { since: now, detail };
                out.push(Action::Note {
                    map: m,
                    path: Some(p),
                    reason,
                });
                self.sync_table(m, p, timers, out);
                return;
            }
            path.state = PathState::Up { since: now };
            if checker.after_down {
                self.scratch.returned.push(p);
            }
            self.sync_table(m, p, timers, out);
            let path = &mut self.paths[p];
            if path.kernel.active {
                out.push(Action::Note {
                    map: m,
                    path: Some(p),
                    reason,
                });
            } else {
                path.kernel.active = true;
                out.push(Action::ReinstatePath { path: here, reason });
            }
        } else {
            let next = now + cfg.recheck_gap;
            path.state = PathState::Marginal {
                since: now,
                next_sample_at: next,
                round,
                evidence,
                checker,
            };
            timers.set(Timer::Recheck(slot(m, p)), next);
            out.push(Action::Note {
                map: m,
                path: Some(p),
                reason: Reason::MarginalBad {
                    evidence,
                    elapsed,
                    threshold: cfg.threshold,
                    decision,
                    recheck: cfg.recheck_gap,
                },
            });
            self.sync_table(m, p, timers, out);
            self.reinstate_in_marginal_group(m, p, out);
        }
    }

    /// A marginal path's recheck gap is over: its next check is due now, and samples it again
    /// if it finds it up (need_io_err_check runs for a path the checker finds up; multipathd
    /// checks a held marginal path every second).
    pub(super) fn on_recheck(&mut self, now: Duration, m: usize, p: usize, timers: &mut Timers) {
        let path = &mut self.paths[p];
        if !matches!(path.state, PathState::Marginal { .. }) {
            return;
        }
        if let CheckState::Due { at } = path.check {
            if at > now {
                timers.cancel(Timer::Check(slot(m, p)));
                timers.set(Timer::Check(slot(m, p)), now);
                path.check = CheckState::Due { at: now };
            }
        }
    }

    /// A held path is reinstated early: cancel its sampling timers. Returns whether it was
    /// sampled or marginal (the caller changes its state).
    pub(super) fn stop_sampling(
        &mut self,
        now: Duration,
        m: usize,
        p: usize,
        timers: &mut Timers,
    ) -> bool {
        let io_timeout = self.marginal.map_or(Duration::ZERO, |c| c.io_timeout);
        let path = &mut self.paths[p];
        match path.state {
            PathState::Sampling {
                outstanding,
                next_burst,
                ..
            } => {
                if next_burst.is_some() {
                    timers.cancel(Timer::Burst(slot(m, p)));
                }
                timers.cancel(Timer::SampleEnd(slot(m, p)));
                if outstanding > 0 {
                    path.quiet_at = now + io_timeout;
                }
                true
            }
            PathState::Marginal { .. } => {
                timers.cancel(Timer::Recheck(slot(m, p)));
                true
            }
            _ => false,
        }
    }

    /// `marginal_pathgroups on`: the table's groups follow the paths' states: sampled and
    /// marginal paths in an extra last group, every other path in its own
    /// group (empty groups left out). Emits [`Action::Regroup`] when that changes, because of
    /// path `cause`.
    pub(super) fn sync_table(
        &mut self,
        m: usize,
        cause: usize,
        timers: &mut Timers,
        out: &mut Vec<Action>,
    ) {
        if !self.marginal.is_some_and(|c| c.pathgroups) {
            return;
        }
        // Every sampled or marginal path: update_path_state marks a path marginal whenever
        // the io_err_stat code holds it and the checker finds it up, from the first sample on.
        let marginal: Vec<usize> = (0..self.paths.len())
            .filter(|&q| {
                matches!(
                    self.paths[q].state,
                    PathState::Marginal { .. } | PathState::Sampling { .. }
                )
            })
            .collect();
        let mut groups: Vec<Vec<usize>> = self
            .own_groups
            .iter()
            .map(|g| {
                g.iter()
                    .copied()
                    .filter(|q| !marginal.contains(q))
                    .collect()
            })
            .filter(|g: &Vec<usize>| !g.is_empty())
            .collect();
        let marginal_group = (!marginal.is_empty()).then(|| {
            groups.push(marginal.clone());
            groups.len() - 1
        });
        if groups == self.groups {
            return;
        }
        let old_group: Vec<usize> = self.paths.iter().map(|path| path.group).collect();
        for (g, members) in groups.iter().enumerate() {
            for &q in members {
                self.paths[q].group = g;
            }
        }
        self.groups = groups;
        self.marginal_group = marginal_group;
        // The kernel reports the active group of the new table after the reload.
        self.active_group = None;
        if let FailbackState::Armed { since, due, group } = self.failback {
            let moved = (0..self.paths.len())
                .find(|&q| old_group[q] == group && Some(self.paths[q].group) != marginal_group)
                .map(|q| self.paths[q].group);
            self.failback = match moved {
                Some(group) => FailbackState::Armed { since, due, group },
                None => {
                    timers.cancel(Timer::failback(m));
                    FailbackState::Idle
                }
            };
        }
        out.push(Action::Regroup {
            map: m,
            groups: self.groups.clone(),
            reason: Reason::MarginalRegroup {
                leg: self.paths[cause].leg.clone(),
                into_marginal: marginal.contains(&cause),
                group: self.paths[cause].group,
            },
        });
    }
}
