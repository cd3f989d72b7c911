use super::*;

const D0: Hctl = Hctl {
    host: 0,
    channel: 0,
    target: 0,
    lun: 0,
};

fn snap(host: &str, dev: &str, timeouts: u64) -> Snapshot {
    Snapshot {
        hosts: HashMap::from([(0, host.to_string())]),
        devices: HashMap::from([(
            D0,
            DeviceView {
                state: dev.into(),
                counters: [Some(timeouts), Some(0), Some(10), Some(10 + timeouts)],
            },
        )]),
    }
}

fn ev(at_ms: u64, subject: Subject, kind: ScsiEventKind) -> ScsiEvent {
    ScsiEvent {
        at: Duration::from_millis(at_ms),
        subject,
        kind,
        source: Source::Sysfs,
        line: None,
    }
}

fn host_state(at_ms: u64, host: u32, from: &str, to: &str) -> ScsiEvent {
    ev(
        at_ms,
        Subject::Host(host),
        ScsiEventKind::HostState {
            from: from.into(),
            to: to.into(),
        },
    )
}

#[test]
fn diff_reports_state_changes_and_moved_counters_only() {
    assert!(diff(
        &snap("running", "running", 0),
        &snap("running", "running", 0)
    )
    .is_empty());
    let changes = diff(
        &snap("running", "running", 0),
        &snap("recovery", "running", 1),
    );
    assert_eq!(
        changes,
        [
            (
                Subject::Host(0),
                ScsiEventKind::HostState {
                    from: "running".into(),
                    to: "recovery".into()
                }
            ),
            (
                Subject::Device(D0),
                ScsiEventKind::Counter {
                    counter: Counter::Timeouts,
                    from: 0,
                    to: 1
                }
            ),
            (
                Subject::Device(D0),
                ScsiEventKind::Counter {
                    counter: Counter::Requests,
                    from: 10,
                    to: 11
                }
            ),
        ]
    );
    let changes = diff(
        &snap("recovery", "running", 1),
        &snap("running", "offline", 1),
    );
    assert_eq!(changes.len(), 2);
    assert_eq!(
        changes[1].1,
        ScsiEventKind::DeviceState {
            from: "running".into(),
            to: "offline".into()
        }
    );
}

#[test]
fn new_subjects_and_unreadable_counters_are_no_change() {
    let mut later = snap("running", "running", 3);
    later.hosts.insert(7, "recovery".into());
    later.devices.get_mut(&D0).unwrap().counters[0] = None;
    assert!(diff(&snap("running", "running", 0), &later)
        .iter()
        .all(|(_, k)| matches!(
            k,
            ScsiEventKind::Counter {
                counter: Counter::Requests,
                ..
            }
        )));
}

#[test]
fn counters_read_hex_or_decimal() {
    assert_eq!(parse_counter("0x1f\n"), Some(31));
    assert_eq!(parse_counter("12"), Some(12));
    assert_eq!(parse_counter("0xzz"), None);
}

#[test]
fn an_episode_runs_from_leaving_running_to_running_again() {
    let events = [
        host_state(1000, 0, "running", "recovery"),
        ev(1500, Subject::Device(D0), ScsiEventKind::AbortIssued),
        host_state(3250, 0, "recovery", "running"),
    ];
    let eps = eh_episodes(&events);
    assert_eq!(eps.len(), 1);
    assert_eq!(eps[0].start, Duration::from_millis(1000));
    assert_eq!(eps[0].entered, "recovery");
    assert_eq!(eps[0].ended_by, EpisodeEnd::Running);
    assert_eq!(eps[0].length(), Some(Duration::from_millis(2250)));
}

#[test]
fn an_offlined_device_ends_the_episode_first_and_hosts_are_apart() {
    let events = [
        // Out of order on purpose: the summary sorts by time.
        host_state(9000, 0, "recovery", "running"),
        host_state(1000, 0, "running", "recovery"),
        host_state(2000, 1, "running", "recovery"),
        ev(7000, Subject::Device(D0), ScsiEventKind::DeviceOfflined),
        // Already in recovery: no second start.
        host_state(2500, 1, "running", "recovery"),
    ];
    let eps = eh_episodes(&events);
    assert_eq!(eps.len(), 2, "{eps:?}");
    assert_eq!(eps[0].host, 0);
    assert_eq!(eps[0].ended_by, EpisodeEnd::DeviceOfflined(D0));
    assert_eq!(eps[0].length(), Some(Duration::from_millis(6000)));
    assert_eq!(eps[1].host, 1);
    assert_eq!(eps[1].ended_by, EpisodeEnd::Open);
    assert_eq!(eps[1].length(), None);
}

#[test]
fn a_device_state_offline_ends_it_too_and_a_second_episode_counts() {
    let events = [
        host_state(0, 0, "running", "recovery"),
        ev(
            400,
            Subject::Device(D0),
            ScsiEventKind::DeviceState {
                from: "running".into(),
                to: "offline".into(),
            },
        ),
        host_state(450, 0, "recovery", "running"),
        host_state(600, 0, "running", "recovery"),
        host_state(700, 0, "recovery", "running"),
    ];
    let eps = eh_episodes(&events);
    let lengths: Vec<_> = eps
        .iter()
        .map(|e| e.length().unwrap().as_millis())
        .collect();
    assert_eq!(lengths, [400, 100]);
}

#[test]
fn kernel_times_map_onto_the_callers_clock_exactly() {
    let clock = MonoClock {
        origin: Duration::from_micros(5_000_000),
    };
    assert_eq!(
        clock.at(Duration::from_micros(5_250_123)),
        Duration::from_micros(250_123)
    );
    assert_eq!(clock.at(Duration::from_micros(1)), Duration::ZERO);
    let origin = std::time::Instant::now();
    let (clock, error) = MonoClock::for_instant(origin);
    let seen = clock.at(MonoClock::monotonic_now());
    assert!(
        seen >= origin
            .elapsed()
            .saturating_sub(error * 2 + Duration::from_millis(5))
    );
    assert!(error < Duration::from_millis(5));
}
