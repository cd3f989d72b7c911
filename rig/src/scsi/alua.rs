//! ALUA (asymmetric logical unit access, SPC-4 5.16) for one LUN of pathrig's array: its target
//! port groups and their access states, which commands a port in each state admits, the
//! pending UNIT ATTENTION 2A/06 per port after a change, REPORT / SET TARGET PORT GROUPS, and
//! the ownership model (who is active/optimized, and whether IO on a standby port moves it).
//!
//! Pure: the handler threads of the LUN's paths share one [`AluaLun`] behind a mutex and pass
//! the clock in. Formats checked against the initiator side (the kernel's `scsi_dh_alua`,
//! multipath-tools' `alua_rtpg`) and the kernel's own target (`target_core_alua`).

use std::time::{Duration, Instant};

use serde::Serialize;

use super::commands::{key, Action, Sense};

/// An asymmetric access state, with its SPC-4 code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AluaState {
    ActiveOptimized,
    ActiveNonOptimized,
    Standby,
    Unavailable,
    Transitioning,
}

impl AluaState {
    pub fn code(self) -> u8 {
        match self {
            AluaState::ActiveOptimized => 0x0,
            AluaState::ActiveNonOptimized => 0x1,
            AluaState::Standby => 0x2,
            AluaState::Unavailable => 0x3,
            AluaState::Transitioning => 0xf,
        }
    }

    pub fn from_code(code: u8) -> Option<AluaState> {
        Some(match code {
            0x0 => AluaState::ActiveOptimized,
            0x1 => AluaState::ActiveNonOptimized,
            0x2 => AluaState::Standby,
            0x3 => AluaState::Unavailable,
            0xf => AluaState::Transitioning,
            _ => return None,
        })
    }

    /// The NOT READY sense a port in this state gives the commands it does not admit.
    pub fn refusal(self) -> Option<Sense> {
        match self {
            AluaState::ActiveOptimized | AluaState::ActiveNonOptimized => None,
            AluaState::Standby => Some(Sense::ALUA_STANDBY),
            AluaState::Unavailable => Some(Sense::ALUA_UNAVAILABLE),
            AluaState::Transitioning => Some(Sense::ALUA_TRANSITIONING),
        }
    }

    /// Whether a port in this state serves the command `cdb` (after any unit attention).
    /// Like LIO: standby still answers inquiry, capacity, mode and log pages and the port
    /// group commands; unavailable the identity, capacity and port group commands;
    /// transitioning only the identity and REPORT TARGET PORT GROUPS. READ CAPACITY is
    /// admitted in standby and unavailable so that the initiator's `sdX` gets its size.
    pub fn admits(self, cdb: &[u8]) -> bool {
        let opcode = cdb[0];
        let always = matches!(opcode, 0x12 | 0xa0 | 0x03); // INQUIRY, REPORT LUNS, REQUEST SENSE
        let rtpg = opcode == 0xa3 && cdb.get(1).is_some_and(|b| b & 0x1f == 0x0a);
        let stpg = opcode == 0xa4 && cdb.get(1).is_some_and(|b| b & 0x1f == 0x0a);
        let capacity =
            opcode == 0x25 || (opcode == 0x9e && cdb.get(1).is_some_and(|b| b & 0x1f == 0x10));
        match self {
            AluaState::ActiveOptimized | AluaState::ActiveNonOptimized => true,
            AluaState::Standby => {
                always
                    || rtpg
                    || stpg
                    || capacity
                    || matches!(opcode, 0x1a | 0x5a | 0x4d | 0x1c | 0x15 | 0x55)
            }
            AluaState::Unavailable => always || rtpg || stpg || capacity,
            AluaState::Transitioning => always || rtpg,
        }
    }
}

impl Sense {
    /// NOT READY, LOGICAL UNIT NOT ACCESSIBLE, ASYMMETRIC ACCESS STATE TRANSITION.
    pub const ALUA_TRANSITIONING: Sense = Sense::new(key::NOT_READY, 0x04, 0x0a);
    /// NOT READY, LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN STANDBY STATE.
    pub const ALUA_STANDBY: Sense = Sense::new(key::NOT_READY, 0x04, 0x0b);
    /// NOT READY, LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN UNAVAILABLE STATE.
    pub const ALUA_UNAVAILABLE: Sense = Sense::new(key::NOT_READY, 0x04, 0x0c);
    /// UNIT ATTENTION, ASYMMETRIC ACCESS STATE CHANGED.
    pub const ALUA_STATE_CHANGED: Sense = Sense::new(key::UNIT_ATTENTION, 0x2a, 0x06);
    /// ILLEGAL REQUEST, INVALID FIELD IN PARAMETER LIST.
    pub const INVALID_FIELD_IN_PARAMETER_LIST: Sense = Sense::new(key::ILLEGAL_REQUEST, 0x26, 0x00);
}

/// How ownership (the active/optimized group) of a LUN moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trespass {
    /// Only [`AluaLun::move_ownership`] / `ArrayControl` moves it; INQUIRY says implicit ALUA.
    None,
    /// The initiator may move it with SET TARGET PORT GROUPS; INQUIRY says implicit and explicit.
    Explicit,
    /// Reads and writes arriving on a standby port move ownership to that port's group once
    /// `after_commands` of them have arrived there, or once the first of them is `after` old
    /// (whichever comes first); until then they get NOT READY 04/0B. TEST UNIT READY and the
    /// other non-IO commands never trespass (a path checker must not move the LUN).
    OnIo {
        after_commands: u32,
        after: Duration,
    },
}

/// One target port group as built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortGroupSpec {
    /// Target port group identifier (non-zero, unique within the LUN).
    pub id: u16,
    pub state: AluaState,
}

/// The ALUA configuration of one LUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AluaSpec {
    pub groups: Vec<PortGroupSpec>,
    pub trespass: Trespass,
}

/// Something that happened to the LUN's port groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AluaEventKind {
    /// One group's state changed (explicitly, or as part of a trespass).
    StateChanged {
        group: u16,
        from: AluaState,
        to: AluaState,
    },
    /// Ownership moved to `to` (from the groups that were active/optimized).
    Trespass { from: Vec<u16>, to: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AluaEvent {
    #[serde(skip)]
    pub at: Instant,
    #[serde(flatten)]
    pub kind: AluaEventKind,
    /// Why: `"control"` (the rig's API), `"stpg on port N"`, `"io on port N"`.
    pub cause: String,
}

/// Counts since the LUN was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AluaCounts {
    /// Ownership changes (each a [`AluaEventKind::Trespass`] event).
    pub trespasses: u64,
    /// Commands refused with NOT READY 04/0A, 04/0B or 04/0C.
    pub refused: u64,
    /// UNIT ATTENTION 2A/06 answers given.
    pub unit_attentions: u64,
}

/// What the ALUA gate says about a command before the array decodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit {
    /// Go on: decode and serve it.
    Proceed,
    /// Answer this instead.
    Answer(Action),
}

#[derive(Debug, Clone)]
struct Group {
    id: u16,
    state: AluaState,
    /// STATUS CODE of the RTPG descriptor: 0 none, 1 altered by STPG, 2 altered implicitly.
    status_code: u8,
    /// Reads and writes refused on this (standby) group since the last ownership change.
    standby_io: u32,
    standby_io_since: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Port {
    /// Index into `groups`.
    group: usize,
    ua_pending: bool,
}

/// How many events a LUN keeps (the oldest go first).
pub const ALUA_LOG_CAPACITY: usize = 512;

/// The port groups of one LUN. Port `i` is the LUN's `i`-th path, relative target port `i + 1`.
#[derive(Debug, Clone)]
pub struct AluaLun {
    trespass: Trespass,
    groups: Vec<Group>,
    ports: Vec<Port>,
    log: Vec<AluaEvent>,
    counts: AluaCounts,
}

/// Service action of REPORT / SET TARGET PORT GROUPS in MAINTENANCE IN / OUT.
const TPG_SERVICE_ACTION: u8 = 0x0a;

impl AluaLun {
    /// `port_groups[i]` is the group id of the LUN's `i`-th path.
    pub fn new(spec: &AluaSpec, port_groups: &[u16]) -> Result<AluaLun, String> {
        if spec.groups.is_empty() {
            return Err("ALUA with no port groups".into());
        }
        let mut ids: Vec<u16> = spec.groups.iter().map(|g| g.id).collect();
        ids.sort_unstable();
        if ids[0] == 0 || ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(format!(
                "port group ids must be non-zero and distinct, got {ids:?}"
            ));
        }
        if let Trespass::OnIo { after_commands, .. } = spec.trespass {
            if after_commands == 0 {
                return Err("trespass on_io needs after_commands >= 1".into());
            }
        }
        let groups: Vec<Group> = spec
            .groups
            .iter()
            .map(|g| Group {
                id: g.id,
                state: g.state,
                status_code: 0,
                standby_io: 0,
                standby_io_since: None,
            })
            .collect();
        let ports = port_groups
            .iter()
            .map(|id| {
                groups
                    .iter()
                    .position(|g| g.id == *id)
                    .map(|group| Port {
                        group,
                        ua_pending: false,
                    })
                    .ok_or_else(|| format!("a path names port group {id}, which the LUN lacks"))
            })
            .collect::<Result<Vec<Port>, String>>()?;
        Ok(AluaLun {
            trespass: spec.trespass,
            groups,
            ports,
            log: Vec::new(),
            counts: AluaCounts::default(),
        })
    }

    /// The TPGS field of standard INQUIRY byte 5 (bits 5:4): implicit always (the array moves
    /// states itself), explicit as well with [`Trespass::Explicit`].
    pub fn tpgs(&self) -> u8 {
        match self.trespass {
            Trespass::Explicit => 0b11,
            _ => 0b01,
        }
    }

    pub fn group_of(&self, port: usize) -> u16 {
        self.groups[self.ports[port].group].id
    }

    pub fn state_of_port(&self, port: usize) -> AluaState {
        self.groups[self.ports[port].group].state
    }

    pub fn state_of_group(&self, id: u16) -> Option<AluaState> {
        self.groups.iter().find(|g| g.id == id).map(|g| g.state)
    }

    pub fn counts(&self) -> AluaCounts {
        self.counts
    }

    pub fn log(&self) -> &[AluaEvent] {
        &self.log
    }

    fn record(&mut self, at: Instant, kind: AluaEventKind, cause: &str) {
        if self.log.len() == ALUA_LOG_CAPACITY {
            self.log.remove(0);
        }
        self.log.push(AluaEvent {
            at,
            kind,
            cause: cause.to_string(),
        });
    }

    fn group_index(&self, id: u16) -> Result<usize, String> {
        self.groups
            .iter()
            .position(|g| g.id == id)
            .ok_or_else(|| format!("no port group {id} (the LUN has {:?})", self.group_ids()))
    }

    fn group_ids(&self) -> Vec<u16> {
        self.groups.iter().map(|g| g.id).collect()
    }

    /// Sets group `index` to `state`; when it changes, queues the unit attention on each of
    /// its ports except `origin` (the port whose command caused the change, which learns
    /// of it from its own command's answer).
    fn change(
        &mut self,
        index: usize,
        state: AluaState,
        status_code: u8,
        cause: &str,
        origin: Option<usize>,
        now: Instant,
    ) {
        let from = self.groups[index].state;
        if from == state {
            return;
        }
        let g = &mut self.groups[index];
        g.state = state;
        g.status_code = status_code;
        g.standby_io = 0;
        g.standby_io_since = None;
        for (i, p) in self.ports.iter_mut().enumerate() {
            if p.group == index && Some(i) != origin {
                p.ua_pending = true;
            }
        }
        let group = self.groups[index].id;
        self.record(
            now,
            AluaEventKind::StateChanged {
                group,
                from,
                to: state,
            },
            cause,
        );
    }

    /// Sets one group's state and nothing else (no trespass is counted); `cause` goes into
    /// the event.
    pub fn set_state(
        &mut self,
        group: u16,
        state: AluaState,
        cause: &str,
        now: Instant,
    ) -> Result<(), String> {
        let index = self.group_index(group)?;
        self.change(index, state, 2, cause, None, now);
        Ok(())
    }

    /// Makes `group` the owner: it becomes active/optimized, every other active/optimized
    /// group standby; one trespass is counted and logged (unless it already was the only owner).
    pub fn move_ownership(
        &mut self,
        group: u16,
        cause: &str,
        origin: Option<usize>,
        now: Instant,
    ) -> Result<(), String> {
        self.take_ownership(group, 2, cause, origin, now)
    }

    fn take_ownership(
        &mut self,
        group: u16,
        status_code: u8,
        cause: &str,
        origin: Option<usize>,
        now: Instant,
    ) -> Result<(), String> {
        let index = self.group_index(group)?;
        let previous: Vec<usize> = (0..self.groups.len())
            .filter(|&i| i != index && self.groups[i].state == AluaState::ActiveOptimized)
            .collect();
        if previous.is_empty() && self.groups[index].state == AluaState::ActiveOptimized {
            return Ok(());
        }
        let from: Vec<u16> = previous.iter().map(|&i| self.groups[i].id).collect();
        for i in previous {
            self.change(i, AluaState::Standby, status_code, cause, origin, now);
        }
        self.change(
            index,
            AluaState::ActiveOptimized,
            status_code,
            cause,
            origin,
            now,
        );
        for g in &mut self.groups {
            g.standby_io = 0;
            g.standby_io_since = None;
        }
        self.counts.trespasses += 1;
        self.record(now, AluaEventKind::Trespass { from, to: group }, cause);
        Ok(())
    }

    /// The gate every command of port `port` passes before it is decoded: a pending unit
    /// attention first (INQUIRY, REPORT LUNS and REQUEST SENSE do not take it, as SAM-5
    /// says), then REPORT / SET TARGET PORT GROUPS, then the port's state. `data_out` is the
    /// command's parameter data (only SET TARGET PORT GROUPS reads it).
    pub fn admit(&mut self, port: usize, cdb: &[u8], data_out: &[u8], now: Instant) -> Admit {
        let Some(&opcode) = cdb.first() else {
            return Admit::Proceed;
        };
        if self.ports[port].ua_pending && !matches!(opcode, 0x12 | 0xa0 | 0x03) {
            self.ports[port].ua_pending = false;
            self.counts.unit_attentions += 1;
            return Admit::Answer(Action::Check(Sense::ALUA_STATE_CHANGED));
        }
        let state = self.state_of_port(port);
        if !state.admits(cdb) {
            if state == AluaState::Standby && is_io(opcode) && self.io_trespasses(port, now) {
                return Admit::Proceed;
            }
            self.counts.refused += 1;
            return Admit::Answer(Action::Check(
                state.refusal().unwrap_or(Sense::ALUA_STANDBY),
            ));
        }
        if cdb.len() >= 12 && cdb[1] & 0x1f == TPG_SERVICE_ACTION {
            let allocation = be32(&cdb[6..10]) as usize;
            if opcode == 0xa3 {
                let extended = cdb[1] >> 5 == 1;
                let mut data = self.report(extended);
                data.truncate(allocation);
                return Admit::Answer(Action::Data(data));
            }
            if opcode == 0xa4 {
                let list = &data_out[..allocation.min(data_out.len())];
                return Admit::Answer(self.set_target_port_groups(port, list, now));
            }
        }
        Admit::Proceed
    }

    /// Counts a read/write refused on standby port `port`; `true` when it moves ownership.
    fn io_trespasses(&mut self, port: usize, now: Instant) -> bool {
        let Trespass::OnIo {
            after_commands,
            after,
        } = self.trespass
        else {
            return false;
        };
        let index = self.ports[port].group;
        let g = &mut self.groups[index];
        g.standby_io += 1;
        let since = *g.standby_io_since.get_or_insert(now);
        if g.standby_io < after_commands && now.duration_since(since) < after {
            return false;
        }
        let id = g.id;
        let cause = format!("io on port {}", port + 1);
        self.take_ownership(id, 2, &cause, Some(port), now).is_ok()
    }

    /// Whether a read or write that passed the gate earlier (and was held or delayed since)
    /// may still be served: the port's group may have lost ownership meanwhile.
    pub fn still_serves(&self, port: usize) -> Option<Sense> {
        self.state_of_port(port).refusal()
    }

    /// REPORT TARGET PORT GROUPS parameter data: length-only header, or the extended header
    /// (format type 1, implicit transition time 0); then one descriptor per group with its
    /// state, supported states, status code and relative target ports.
    pub fn report(&self, extended: bool) -> Vec<u8> {
        let mut body = Vec::new();
        if extended {
            body.extend_from_slice(&[0x10, 0, 0, 0]);
        }
        for (index, g) in self.groups.iter().enumerate() {
            let ports: Vec<u16> = (0..self.ports.len())
                .filter(|&i| self.ports[i].group == index)
                .map(|i| i as u16 + 1)
                .collect();
            // T_SUP, U_SUP, S_SUP, AN_SUP, AO_SUP: every state can be reported.
            let id = g.id.to_be_bytes();
            body.extend_from_slice(&[
                g.state.code(),
                0x80 | 0x0f,
                id[0],
                id[1],
                0,
                g.status_code,
                0,
            ]);
            body.push(ports.len() as u8);
            for p in ports {
                body.extend_from_slice(&[0, 0]);
                body.extend_from_slice(&p.to_be_bytes());
            }
        }
        let mut data = (body.len() as u32).to_be_bytes().to_vec();
        data.extend(body);
        data
    }

    /// SET TARGET PORT GROUPS from port `port`: a 4-byte header, then 4-byte descriptors
    /// (state, reserved, group id). Only active/optimized, active/non-optimized, standby and
    /// unavailable may be asked for. A group asked to be active/optimized takes ownership
    /// (a trespass); the others just change state. Nothing changes unless the whole list is
    /// valid.
    fn set_target_port_groups(&mut self, port: usize, list: &[u8], now: Instant) -> Action {
        if self.trespass != Trespass::Explicit {
            return Action::Check(Sense::INVALID_OPCODE);
        }
        if list.len() < 4 || (list.len() - 4) % 4 != 0 {
            return Action::Check(Sense::INVALID_FIELD_IN_PARAMETER_LIST);
        }
        let mut asks = Vec::new();
        for d in list[4..].chunks(4) {
            let state = match AluaState::from_code(d[0] & 0x0f) {
                Some(s) if s != AluaState::Transitioning => s,
                _ => return Action::Check(Sense::INVALID_FIELD_IN_PARAMETER_LIST),
            };
            let id = u16::from_be_bytes([d[2], d[3]]);
            if self.group_index(id).is_err() {
                return Action::Check(Sense::INVALID_FIELD_IN_PARAMETER_LIST);
            }
            asks.push((id, state));
        }
        let cause = format!("stpg on port {}", port + 1);
        for (id, state) in asks {
            if state == AluaState::ActiveOptimized {
                let _ = self.take_ownership(id, 1, &cause, Some(port), now);
            } else if let Ok(index) = self.group_index(id) {
                self.change(index, state, 1, &cause, Some(port), now);
            }
        }
        Action::Good
    }
}

/// Reads and writes (the commands that trespass under [`Trespass::OnIo`]).
pub fn is_io(opcode: u8) -> bool {
    matches!(opcode, 0x08 | 0x0a | 0x28 | 0x2a | 0x88 | 0x8a)
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ: [u8; 10] = [0x28, 0, 0, 0, 0, 1, 0, 0, 1, 0];
    const TUR: [u8; 6] = [0; 6];

    fn rtpg_cdb(extended: bool, allocation: u32) -> [u8; 12] {
        let mut c = [0u8; 12];
        c[0] = 0xa3;
        c[1] = 0x0a | if extended { 0x20 } else { 0 };
        c[6..10].copy_from_slice(&allocation.to_be_bytes());
        c
    }

    fn stpg_cdb(len: u32) -> [u8; 12] {
        let mut c = [0u8; 12];
        c[0] = 0xa4;
        c[1] = 0x0a;
        c[6..10].copy_from_slice(&len.to_be_bytes());
        c
    }

    /// Two groups, 1 optimized and 2 standby; ports 0 and 1 in group 1, port 2 in group 2.
    fn lun(trespass: Trespass) -> AluaLun {
        AluaLun::new(
            &AluaSpec {
                groups: vec![
                    PortGroupSpec {
                        id: 1,
                        state: AluaState::ActiveOptimized,
                    },
                    PortGroupSpec {
                        id: 2,
                        state: AluaState::Standby,
                    },
                ],
                trespass,
            },
            &[1, 1, 2],
        )
        .unwrap()
    }

    fn check(a: Admit) -> Sense {
        match a {
            Admit::Answer(Action::Check(s)) => s,
            other => panic!("expected a check condition, got {other:?}"),
        }
    }

    #[test]
    fn standby_refuses_io_and_tur_but_answers_inquiry_and_rtpg() {
        let mut l = lun(Trespass::None);
        let now = Instant::now();
        assert_eq!(l.admit(0, &READ, &[], now), Admit::Proceed);
        assert_eq!(check(l.admit(2, &READ, &[], now)), Sense::ALUA_STANDBY);
        assert_eq!(check(l.admit(2, &TUR, &[], now)), Sense::ALUA_STANDBY);
        assert_eq!(
            l.admit(2, &[0x12, 0, 0, 0, 36, 0], &[], now),
            Admit::Proceed
        );
        assert_eq!(l.admit(2, &[0x25; 10], &[], now), Admit::Proceed);
        assert!(matches!(
            l.admit(2, &rtpg_cdb(false, 255), &[], now),
            Admit::Answer(Action::Data(_))
        ));
        assert_eq!(l.counts().refused, 2);
        l.set_state(2, AluaState::Unavailable, "control", now)
            .unwrap();
        let _ = l.admit(2, &TUR, &[], now); // the unit attention
        assert_eq!(check(l.admit(2, &READ, &[], now)), Sense::ALUA_UNAVAILABLE);
        assert_eq!(
            check(l.admit(2, &[0x1a; 6], &[], now)),
            Sense::ALUA_UNAVAILABLE
        );
        l.set_state(2, AluaState::Transitioning, "control", now)
            .unwrap();
        let _ = l.admit(2, &TUR, &[], now);
        assert_eq!(
            check(l.admit(2, &[0x25; 10], &[], now)),
            Sense::ALUA_TRANSITIONING
        );
        assert!(l.set_state(9, AluaState::Standby, "control", now).is_err());
    }

    #[test]
    fn report_lists_groups_states_and_ports() {
        let l = lun(Trespass::None);
        let d = l.report(false);
        assert_eq!(be32(&d[0..4]) as usize, d.len() - 4);
        // group 1: optimized, supports all, id 1, two ports (1 and 2)
        assert_eq!(&d[4..12], &[0x00, 0x8f, 0, 1, 0, 0, 0, 2]);
        assert_eq!(&d[12..20], &[0, 0, 0, 1, 0, 0, 0, 2]);
        // group 2: standby, id 2, one port (3)
        assert_eq!(&d[20..28], &[0x02, 0x8f, 0, 2, 0, 0, 0, 1]);
        assert_eq!(&d[28..32], &[0, 0, 0, 3]);
        assert_eq!(d.len(), 32);
        let e = l.report(true);
        assert_eq!(be32(&e[0..4]) as usize, e.len() - 4);
        assert_eq!(e[4], 0x10, "extended header, format type 1");
        assert_eq!(&e[8..], &d[4..]);
        let mut l = l;
        let short = l.admit(0, &rtpg_cdb(false, 4), &[], Instant::now());
        assert_eq!(short, Admit::Answer(Action::Data(d[..4].to_vec())));
    }

    #[test]
    fn a_change_gives_each_affected_port_one_unit_attention() {
        let mut l = lun(Trespass::None);
        let now = Instant::now();
        l.move_ownership(2, "control", None, now).unwrap();
        assert_eq!(l.counts().trespasses, 1);
        for port in 0..3 {
            // INQUIRY does not take it
            assert_eq!(
                l.admit(port, &[0x12, 0, 0, 0, 36, 0], &[], now),
                Admit::Proceed
            );
            assert_eq!(
                check(l.admit(port, &TUR, &[], now)),
                Sense::ALUA_STATE_CHANGED
            );
        }
        // then the new behaviour: group 1 standby, group 2 optimized
        assert_eq!(check(l.admit(0, &READ, &[], now)), Sense::ALUA_STANDBY);
        assert_eq!(l.admit(2, &READ, &[], now), Admit::Proceed);
        assert_eq!(l.counts().unit_attentions, 3);
        // a change of group 2 alone reaches only its port
        l.set_state(2, AluaState::ActiveNonOptimized, "control", now)
            .unwrap();
        assert_eq!(
            l.admit(0, &TUR, &[], now),
            Admit::Answer(Action::Check(Sense::ALUA_STANDBY))
        );
        assert_eq!(check(l.admit(2, &TUR, &[], now)), Sense::ALUA_STATE_CHANGED);
        assert_eq!(l.admit(2, &TUR, &[], now), Admit::Proceed);
        // moving to the owner it already is changes nothing
        l.move_ownership(1, "control", None, now).unwrap();
        l.move_ownership(1, "control", None, now).unwrap();
        assert_eq!(l.counts().trespasses, 2);
        let kinds: Vec<_> = l.log().iter().map(|e| e.kind.clone()).collect();
        assert!(kinds.contains(&AluaEventKind::Trespass {
            from: vec![1],
            to: 2
        }));
    }

    #[test]
    fn on_io_trespasses_after_n_commands_but_not_on_tur() {
        let mut l = lun(Trespass::OnIo {
            after_commands: 3,
            after: Duration::from_secs(60),
        });
        let now = Instant::now();
        for _ in 0..5 {
            assert_eq!(check(l.admit(2, &TUR, &[], now)), Sense::ALUA_STANDBY);
        }
        assert_eq!(check(l.admit(2, &READ, &[], now)), Sense::ALUA_STANDBY);
        assert_eq!(check(l.admit(2, &READ, &[], now)), Sense::ALUA_STANDBY);
        assert_eq!(l.counts().trespasses, 0);
        // the third moves it, and is itself served without a unit attention
        assert_eq!(l.admit(2, &READ, &[], now), Admit::Proceed);
        assert_eq!(l.admit(2, &READ, &[], now), Admit::Proceed);
        assert_eq!(l.counts().trespasses, 1);
        assert_eq!(l.log().last().unwrap().cause, "io on port 3");
        assert_eq!(l.still_serves(0), Some(Sense::ALUA_STANDBY));
        assert_eq!(
            check(l.admit(0, &READ, &[], now)),
            Sense::ALUA_STATE_CHANGED
        );
        assert_eq!(check(l.admit(0, &READ, &[], now)), Sense::ALUA_STANDBY);
    }

    #[test]
    fn on_io_trespasses_after_the_time_too() {
        let mut l = lun(Trespass::OnIo {
            after_commands: 1000,
            after: Duration::from_millis(100),
        });
        let t0 = Instant::now();
        assert_eq!(check(l.admit(2, &READ, &[], t0)), Sense::ALUA_STANDBY);
        let t1 = t0 + Duration::from_millis(50);
        assert_eq!(check(l.admit(2, &READ, &[], t1)), Sense::ALUA_STANDBY);
        let t2 = t0 + Duration::from_millis(100);
        assert_eq!(l.admit(2, &READ, &[], t2), Admit::Proceed);
        assert_eq!(l.counts().trespasses, 1);
    }

    #[test]
    fn stpg_is_explicit_only_and_validates_its_list() {
        let now = Instant::now();
        let list = [0, 0, 0, 0, 0x00, 0, 0, 2];
        let mut none = lun(Trespass::None);
        assert_eq!(
            check(none.admit(0, &stpg_cdb(8), &list, now)),
            Sense::INVALID_OPCODE
        );
        assert_eq!(none.tpgs(), 1);
        let mut l = lun(Trespass::Explicit);
        assert_eq!(l.tpgs(), 3);
        let bad_state = [0, 0, 0, 0, 0x0f, 0, 0, 2];
        assert_eq!(
            check(l.admit(0, &stpg_cdb(8), &bad_state, now)),
            Sense::INVALID_FIELD_IN_PARAMETER_LIST
        );
        let bad_group = [0, 0, 0, 0, 0x00, 0, 0, 7];
        assert_eq!(
            check(l.admit(0, &stpg_cdb(8), &bad_group, now)),
            Sense::INVALID_FIELD_IN_PARAMETER_LIST
        );
        assert_eq!(
            l.admit(0, &stpg_cdb(8), &list, now),
            Admit::Answer(Action::Good)
        );
        assert_eq!(l.state_of_group(2), Some(AluaState::ActiveOptimized));
        assert_eq!(l.state_of_group(1), Some(AluaState::Standby));
        assert_eq!(l.counts().trespasses, 1);
        // the port that asked gets no unit attention; its sibling and group 2's port do
        assert_eq!(check(l.admit(0, &READ, &[], now)), Sense::ALUA_STANDBY);
        assert_eq!(
            check(l.admit(1, &READ, &[], now)),
            Sense::ALUA_STATE_CHANGED
        );
        assert_eq!(
            check(l.admit(2, &READ, &[], now)),
            Sense::ALUA_STATE_CHANGED
        );
        // status code 1: altered by SET TARGET PORT GROUPS
        assert_eq!(l.report(false)[9], 1);
    }

    #[test]
    fn bad_specs_are_refused() {
        let spec = |ids: &[u16]| AluaSpec {
            groups: ids
                .iter()
                .map(|&id| PortGroupSpec {
                    id,
                    state: AluaState::Standby,
                })
                .collect(),
            trespass: Trespass::None,
        };
        assert!(AluaLun::new(&spec(&[]), &[]).is_err());
        assert!(AluaLun::new(&spec(&[0]), &[0]).is_err());
        assert!(AluaLun::new(&spec(&[1, 1]), &[1]).is_err());
        assert!(AluaLun::new(&spec(&[1]), &[2])
            .unwrap_err()
            .contains("group 2"));
        let mut s = spec(&[1]);
        s.trespass = Trespass::OnIo {
            after_commands: 0,
            after: Duration::ZERO,
        };
        assert!(AluaLun::new(&s, &[1]).is_err());
    }
}
