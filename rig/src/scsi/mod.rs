//! pathrig's SCSI array: a TCMU userspace SCSI target served to the guest through LIO's
//! tcm_loop, so that every path of a multipath map is a real `sdX` with the SCSI midlayer, its
//! timeouts and its error handler in the way.
//!
//! Topology: an **HBA** is one tcm_loop WWN, i.e. one SCSI host (paths on one HBA share the
//! host, and the error handler freezes the whole host). A **path** is a TCMU backstore of its
//! own, exported through its own TPG of the HBA's WWN (tcm_loop maps TPG `tpgt_T` to SCSI target
//! id `T`), LUN 0, with a nexus: faults and port offline are per path. A **LUN** is a backing
//! file with a WWID; all its paths answer INQUIRY with the same identity, and read and write the
//! same file.
//!
//! [`commands`] answers CDBs, [`rules`] decides faults, [`ring`] speaks the TCMU ring,
//! [`handler`] runs one poll loop per path, [`lio`] builds and removes the configfs objects,
//! [`alua`] keeps a LUN's target port groups.
//!
//! **ALUA.** A LUN with [`LunSpec::alua`] has target port groups (controllers), each with an
//! access state ([`AluaState`]); each of its paths names its group ([`PathSpec::port_group`]).
//! INQUIRY then shows TPGS (implicit; implicit and explicit with [`Trespass::Explicit`]), VPD
//! 0x83 the path's relative target port and port group, and REPORT TARGET PORT GROUPS (and,
//! explicit only, SET TARGET PORT GROUPS) work. A port refuses IO (and TEST UNIT READY) in
//! standby with NOT READY 04/0B, unavailable 04/0C, transitioning 04/0A; after a state
//! change each port of a changed group answers its next command (INQUIRY, REPORT LUNS and
//! REQUEST SENSE excepted) with UNIT ATTENTION 2A/06, once. At run time:
//!
//! - [`ArrayControl::set_port_group_state`]`(lun, group, state)`: one group's state, no trespass;
//! - [`ArrayControl::move_ownership`]`(lun, group)`: the group becomes active/optimized, the
//!   other active/optimized groups standby; counted as a trespass;
//! - [`ArrayControl::alua_log`]`(lun)` / [`ArrayControl::alua_counts`]`(lun)`: every change with
//!   its cause (`control`, `stpg on port N`, `io on port N`), and `trespasses`, `refused`,
//!   `unit_attentions`.
//!
//! With [`Trespass::OnIo`] reads and writes on a standby port move ownership to its group
//! after `after_commands` of them or once the first is `after` old; reads and writes still
//! held or delayed on the old owner are then answered 04/0B.

pub mod alua;
pub mod commands;
pub mod handler;
pub mod lio;
pub mod ring;
pub mod rules;

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use alua::{
    AluaCounts, AluaEvent, AluaEventKind, AluaSpec, AluaState, PortGroupSpec, Trespass,
};
pub use handler::{ArrayEvent, EventKind, PathCounts};
pub use rules::{AbortPolicy, LatencyDist, ScsiAction, ScsiOp, ScsiRule, ScsiStatus};

use crate::dm::DevNum;
use crate::naming::NAME_PREFIX;
use crate::RigError;
use handler::PathShared;

/// Kernel modules the array needs, in load order (measured in the UML guest).
pub const SCSI_MODULES: &[&str] = &[
    "configfs",
    "scsi_common",
    "scsi_mod",
    "crc64",
    "crc64_rocksoft_generic",
    "crc64-rocksoft",
    "t10-pi",
    "sd_mod",
    "uio",
    "target_core_mod",
    "target_core_user",
    "tcm_loop",
];

/// TCMU's own command timeout when a path does not set one, in seconds: above the SCSI
/// midlayer's default of 30 s, so the initiator's timeout and error handler act first. (With
/// `cmd_time_out` below the SCSI timeout TCMU fails the command with 02/08/00 itself and the
/// error handler never runs; with 0 an ignored abort blocks until the handler answers.)
pub const DEFAULT_CMD_TIME_OUT: u32 = 60;

/// How long [`Array::build`] waits for each path's `sdX`.
pub const DEVICE_WAIT: Duration = Duration::from_secs(15);

/// What to build; paths name their LUN and HBA by index into `luns` and `hbas`.
#[derive(Debug, Clone)]
pub struct ArraySpec {
    pub luns: Vec<LunSpec>,
    pub hbas: Vec<HbaSpec>,
    pub paths: Vec<PathSpec>,
    pub seed: u64,
}

#[derive(Debug, Clone)]
pub struct LunSpec {
    pub name: String,
    /// The LUN's identity on every path: `naa.` + 32 (or 16) hex digits starting with 6 (5)
    /// goes out as an NAA designator (and `/sys/block/sdX/device/wwid` shows it); any other text
    /// as a T10 vendor-id designator (`t10.PATHRIG <wwid>`). It is also the unit serial.
    pub wwid: String,
    /// The shared backing file (it must exist and hold `size_bytes`).
    pub backing: PathBuf,
    pub size_bytes: u64,
    /// Target port groups and ownership; `None`: no ALUA (TPGS 0, every path active).
    pub alua: Option<AluaSpec>,
}

#[derive(Debug, Clone)]
pub struct HbaSpec {
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct PathSpec {
    pub name: String,
    pub lun: usize,
    pub hba: usize,
    /// TCMU `attrib/cmd_time_out` in seconds; `None` is [`DEFAULT_CMD_TIME_OUT`].
    pub cmd_time_out: Option<u32>,
    /// The id of the LUN's port group this path's target port is in (required exactly when
    /// the LUN has ALUA).
    pub port_group: Option<u16>,
}

/// One path as the initiator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScsiPath {
    pub name: String,
    /// `sdX`.
    pub disk: String,
    pub dev_node: PathBuf,
    #[serde(serialize_with = "ser_devnum")]
    pub devnum: DevNum,
    pub host: u32,
    pub channel: u32,
    pub target: u32,
    pub lun: u32,
    /// `/sys/class/scsi_device/H:C:T:L/device`.
    pub sysfs_dir: PathBuf,
}

fn ser_devnum<S: serde::Serializer>(d: &DevNum, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&d.to_string())
}

impl ScsiPath {
    /// `H:C:T:L`.
    pub fn hctl(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.host, self.channel, self.target, self.lun
        )
    }
}

/// Per-path fault control, shareable with other threads.
#[derive(Clone)]
pub struct ArrayControl {
    paths: Arc<Vec<Arc<PathShared>>>,
    /// Each path's `tpgt_T` directory.
    tpgs: Arc<Vec<PathBuf>>,
    /// Each LUN's port groups, when it has ALUA.
    alua: Arc<Vec<Option<Arc<Mutex<alua::AluaLun>>>>>,
}

impl ArrayControl {
    fn alua_lun(&self, lun: usize) -> Result<std::sync::MutexGuard<'_, alua::AluaLun>, RigError> {
        let shared = self
            .alua
            .get(lun)
            .ok_or_else(|| {
                RigError::Guest(format!("no LUN {lun} (the array has {})", self.alua.len()))
            })?
            .as_ref()
            .ok_or_else(|| RigError::Guest(format!("LUN {lun} has no ALUA port groups")))?;
        Ok(shared.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Sets one port group's state (logged with cause `control`; the group's ports get the
    /// unit attention on their next command). Not a trespass.
    pub fn set_port_group_state(
        &self,
        lun: usize,
        group: u16,
        state: AluaState,
    ) -> Result<(), RigError> {
        self.alua_lun(lun)?
            .set_state(group, state, "control", Instant::now())
            .map_err(|e| RigError::Guest(format!("LUN {lun}: {e}")))
    }

    /// Makes `group` the LUN's owner (active/optimized; the previous owners standby): one
    /// trespass, cause `control`.
    pub fn move_ownership(&self, lun: usize, group: u16) -> Result<(), RigError> {
        self.alua_lun(lun)?
            .move_ownership(group, "control", None, Instant::now())
            .map_err(|e| RigError::Guest(format!("LUN {lun}: {e}")))
    }

    /// A port group's current state.
    pub fn port_group_state(&self, lun: usize, group: u16) -> Result<AluaState, RigError> {
        self.alua_lun(lun)?
            .state_of_group(group)
            .ok_or_else(|| RigError::Guest(format!("LUN {lun} has no port group {group}")))
    }

    /// The LUN's port group events, oldest first (at most [`alua::ALUA_LOG_CAPACITY`]).
    pub fn alua_log(&self, lun: usize) -> Result<Vec<AluaEvent>, RigError> {
        Ok(self.alua_lun(lun)?.log().to_vec())
    }

    pub fn alua_counts(&self, lun: usize) -> Result<AluaCounts, RigError> {
        Ok(self.alua_lun(lun)?.counts())
    }

    fn shared(&self, path: usize) -> &PathShared {
        &self.paths[path]
    }

    /// Replaces path `path`'s rules; held commands no rule holds any more are answered.
    pub fn set_rules(&self, path: usize, rules: Vec<ScsiRule>) {
        self.shared(path).set_rules(rules);
    }

    pub fn clear(&self, path: usize) {
        self.shared(path).set_rules(Vec::new());
    }

    /// Takes the path's target port offline (tcm_loop then fails new commands with
    /// DID_TRANSPORT_DISRUPTED) or back online.
    pub fn set_port_online(&self, path: usize, online: bool) -> Result<(), RigError> {
        lio::write_attr(
            &self.tpgs[path].join("transport_status"),
            if online { "online" } else { "offline" },
        )
    }

    pub fn counts(&self, path: usize) -> PathCounts {
        self.shared(path).counts()
    }

    /// The path's notable events, oldest first (at most [`handler::LOG_CAPACITY`]).
    pub fn log(&self, path: usize) -> Vec<ArrayEvent> {
        self.shared(path).log()
    }

    pub fn path_count(&self) -> usize {
        self.paths.len()
    }
}

/// What LIO objects exist, in creation order, so that any exit path removes exactly them.
#[derive(Default)]
struct Built {
    user_hba_created: bool,
    backstores: Vec<PathBuf>,
    wwns: Vec<PathBuf>,
    /// `(tpgt dir, nexus set)`.
    tpgs: Vec<(PathBuf, bool)>,
    lun_dirs: Vec<PathBuf>,
    lun_links: Vec<PathBuf>,
    handlers: Vec<RunningHandler>,
}

/// A path's handler thread, what it shares, and the ring mapping it uses.
type RunningHandler = (Arc<PathShared>, JoinHandle<Result<(), String>>, Mapping);

/// A shared mmap of a uio map0 and its fd, unmapped on drop.
struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}
unsafe impl Send for Mapping {}
impl Drop for Mapping {
    fn drop(&mut self) {
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

impl Built {
    /// Removes everything in the order LIO needs; the handlers keep answering until their
    /// LUNs are gone (removing a device sends it commands).
    fn teardown(&mut self) -> Vec<String> {
        let mut failures = Vec::new();
        for (shared, _, _) in &self.handlers {
            shared.set_rules(Vec::new());
        }
        for link in self.lun_links.drain(..).rev() {
            if let Err(e) = fs::remove_file(&link) {
                failures.push(format!("unlink {}: {e}", link.display()));
            }
        }
        for dir in self.lun_dirs.drain(..).rev() {
            if let Err(e) = lio::rmdir(&dir) {
                failures.push(e.to_string());
            }
        }
        for (tpg, nexus) in self.tpgs.drain(..).rev() {
            if nexus {
                if let Err(e) = lio::write_attr(&tpg.join("nexus"), "NULL") {
                    failures.push(e.to_string());
                }
            }
            if let Err(e) = lio::rmdir(&tpg) {
                failures.push(e.to_string());
            }
        }
        for wwn in self.wwns.drain(..).rev() {
            if let Err(e) = lio::rmdir(&wwn) {
                failures.push(e.to_string());
            }
        }
        for (shared, thread, mapping) in self.handlers.drain(..) {
            shared.stop();
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failures.push(format!("handler of {}: {e}", shared.name)),
                Err(_) => failures.push(format!("handler of {} panicked", shared.name)),
            }
            drop(mapping);
        }
        for b in self.backstores.drain(..).rev() {
            if let Err(e) = lio::rmdir(&b) {
                failures.push(e.to_string());
            }
        }
        if self.user_hba_created {
            lio::remove_user_hba_if_empty();
            self.user_hba_created = false;
        }
        failures
    }
}

/// A running array: its paths' devices exist while it lives.
pub struct Array {
    paths: Vec<ScsiPath>,
    hba_hosts: Vec<u32>,
    control: ArrayControl,
    built: Built,
}

impl Array {
    /// Builds the array: backstores named `pathrig-<run_tag>-<path>`, their handlers, one WWN
    /// per HBA with one TPG per path, and waits (at most [`DEVICE_WAIT`] per path) for every
    /// path's `sdX`. On any failure everything built so far is removed.
    pub fn build(spec: &ArraySpec, run_tag: &str) -> Result<Array, RigError> {
        validate(spec)?;
        lio::ensure_configfs()?;
        let mut built = Built::default();
        match build_into(spec, run_tag, &mut built) {
            Ok((paths, hba_hosts, control)) => Ok(Array {
                paths,
                hba_hosts,
                control,
                built,
            }),
            Err(err) => {
                let failures = built.teardown();
                if failures.is_empty() {
                    Err(err)
                } else {
                    Err(RigError::Guest(format!(
                        "{err}; and removing what was built failed: {}",
                        failures.join("; ")
                    )))
                }
            }
        }
    }

    pub fn path(&self, i: usize) -> &ScsiPath {
        &self.paths[i]
    }

    pub fn paths(&self) -> &[ScsiPath] {
        &self.paths
    }

    /// The SCSI host number of HBA `hba`.
    pub fn hba_host(&self, hba: usize) -> u32 {
        self.hba_hosts[hba]
    }

    pub fn control(&self) -> ArrayControl {
        self.control.clone()
    }

    /// Removes every object of the array (held commands are answered first).
    pub fn teardown(mut self) -> Result<(), RigError> {
        let failures = self.built.teardown();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(RigError::Guest(format!(
                "SCSI array teardown: {}",
                failures.join("; ")
            )))
        }
    }
}

impl Drop for Array {
    fn drop(&mut self) {
        let failures = self.built.teardown();
        if !failures.is_empty() {
            tracing::warn!("SCSI array teardown on drop: {}", failures.join("; "));
        }
    }
}

fn validate(spec: &ArraySpec) -> Result<(), RigError> {
    let bad = |what: String| Err(RigError::Guest(format!("SCSI array spec: {what}")));
    if spec.paths.is_empty() {
        return bad("no paths".into());
    }
    for lun in &spec.luns {
        if lun.size_bytes == 0 || lun.size_bytes % u64::from(commands::BLOCK_SIZE) != 0 {
            return bad(format!(
                "LUN {}: size {} is not a positive multiple of {}",
                lun.name,
                lun.size_bytes,
                commands::BLOCK_SIZE
            ));
        }
        if lun.wwid.is_empty() {
            return bad(format!("LUN {} has an empty wwid", lun.name));
        }
    }
    let mut per_hba = vec![0usize; spec.hbas.len()];
    for p in &spec.paths {
        if p.lun >= spec.luns.len() {
            return bad(format!(
                "path {} names LUN {} of {}",
                p.name,
                p.lun,
                spec.luns.len()
            ));
        }
        if p.hba >= spec.hbas.len() {
            return bad(format!(
                "path {} names HBA {} of {}",
                p.name,
                p.hba,
                spec.hbas.len()
            ));
        }
        per_hba[p.hba] += 1;
        match (&spec.luns[p.lun].alua, p.port_group) {
            (Some(_), None) => {
                return bad(format!(
                    "path {} has no port group, and its LUN {} has ALUA",
                    p.name, spec.luns[p.lun].name
                ))
            }
            (None, Some(g)) => {
                return bad(format!(
                    "path {} names port group {g}, and its LUN {} has no ALUA",
                    p.name, spec.luns[p.lun].name
                ))
            }
            _ => {}
        }
    }
    for (i, lun) in spec.luns.iter().enumerate() {
        if let Some(a) = &lun.alua {
            let groups: Vec<u16> = spec
                .paths
                .iter()
                .filter(|p| p.lun == i)
                .filter_map(|p| p.port_group)
                .collect();
            alua::AluaLun::new(a, &groups)
                .map_err(|e| RigError::Guest(format!("SCSI array spec: LUN {}: {e}", lun.name)))?;
        }
    }
    // The host number is read from a path's TPG, and a WWN without one serves nothing.
    if let Some(i) = per_hba.iter().position(|&n| n == 0) {
        return bad(format!("HBA {} has no path", spec.hbas[i].name));
    }
    // tcm_loop has 32 TPGs per WWN.
    if let Some(n) = per_hba.iter().find(|&&n| n > 31) {
        return bad(format!("{n} paths on one HBA; tcm_loop takes at most 31"));
    }
    let mut names: Vec<&str> = spec.paths.iter().map(|p| p.name.as_str()).collect();
    names.sort();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return bad("two paths share a name".into());
    }
    Ok(())
}

type BuiltParts = (Vec<ScsiPath>, Vec<u32>, ArrayControl);

fn build_into(spec: &ArraySpec, run_tag: &str, built: &mut Built) -> Result<BuiltParts, RigError> {
    let tag = lio::sanitize(run_tag);
    let user_hba = lio::user_hba_dir();
    if !user_hba.is_dir() {
        lio::mkdir(&user_hba)?;
        built.user_hba_created = true;
    }
    let mut alua_luns = Vec::new();
    for (i, lun) in spec.luns.iter().enumerate() {
        alua_luns.push(match &lun.alua {
            None => None,
            Some(a) => {
                let groups: Vec<u16> = spec
                    .paths
                    .iter()
                    .filter(|p| p.lun == i)
                    .filter_map(|p| p.port_group)
                    .collect();
                let l = alua::AluaLun::new(a, &groups)
                    .map_err(|e| RigError::Guest(format!("LUN {}: {e}", lun.name)))?;
                Some(Arc::new(Mutex::new(l)))
            }
        });
    }
    // Backstores and their handlers first: linking a LUN makes the kernel scan it at once.
    let mut shared_paths = Vec::new();
    for (i, p) in spec.paths.iter().enumerate() {
        let lun = &spec.luns[p.lun];
        let name = format!("{NAME_PREFIX}{tag}-{}", lio::sanitize(&p.name));
        let dir = user_hba.join(&name);
        lio::mkdir(&dir)?;
        built.backstores.push(dir.clone());
        lio::write_attr(
            &dir.join("control"),
            &format!(
                "dev_size={},dev_config={}/{name}",
                lun.size_bytes,
                lio::HANDLER_NAME
            ),
        )?;
        lio::write_attr(&dir.join("attrib/tmr_notification"), "1")?;
        lio::write_attr(
            &dir.join("attrib/cmd_time_out"),
            &p.cmd_time_out.unwrap_or(DEFAULT_CMD_TIME_OUT).to_string(),
        )?;
        lio::write_attr(&dir.join("enable"), "1")?;
        let (uio_name, map_size) = wait_for(Duration::from_secs(5), || lio::find_uio(&name))
            .ok_or_else(|| {
                RigError::Guest(format!(
                    "no uio device for TCMU backstore {name} after enable"
                ))
            })?;
        let uio_path = PathBuf::from("/dev").join(&uio_name);
        let uio = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&uio_path)
            .map_err(RigError::io("open", &uio_path))?;
        let len = map_size as usize;
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                uio.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(RigError::Io {
                what: "mmap map0 of".into(),
                path: uio_path,
                source: std::io::Error::last_os_error(),
            });
        }
        let mapping = Mapping { ptr, len };
        let ring = unsafe { ring::Ring::new(ptr as *mut u8, len) }
            .map_err(|e| RigError::Guest(format!("{}: {e}", uio_path.display())))?;
        let backing = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&lun.backing)
            .map_err(RigError::io("open backing file", &lun.backing))?;
        let have = backing.metadata().map(|m| m.size()).unwrap_or(0);
        if have < lun.size_bytes {
            backing
                .set_len(lun.size_bytes)
                .map_err(RigError::io("extend backing file", &lun.backing))?;
        }
        let shared = Arc::new(
            PathShared::new(&p.name).map_err(|e| RigError::Guest(format!("eventfd: {e}")))?,
        );
        let relative_port = spec.paths[..i].iter().filter(|q| q.lun == p.lun).count() as u16 + 1;
        let alua = alua_luns[p.lun]
            .as_ref()
            .map(|l| (l.clone(), usize::from(relative_port) - 1));
        let identity = commands::Identity {
            wwid: lun.wwid.clone(),
            blocks: lun.size_bytes / u64::from(commands::BLOCK_SIZE),
            relative_port,
            tpgs: alua.as_ref().map_or(0, |(l, _)| {
                l.lock().unwrap_or_else(|e| e.into_inner()).tpgs()
            }),
            port_group: p.port_group,
        };
        let seed = spec.seed ^ rules::name_hash(&p.name);
        let backing_map = handler::BackingMap::new(&backing, lun.size_bytes).ok();
        let mut h = handler::Handler::new(shared.clone(), ring, uio, backing, identity, seed);
        h.backing_map = backing_map;
        h.alua = alua;
        let thread = handler::spawn(h).map_err(RigError::io("spawn handler for", &dir))?;
        built.handlers.push((shared.clone(), thread, mapping));
        shared_paths.push(shared);
    }
    // One WWN per HBA, one TPG per path.
    let mut wwns = Vec::new();
    for hba in &spec.hbas {
        let suffix = lio::wwn_suffix(&[&tag, &hba.name]);
        let wwn = Path::new(lio::LOOPBACK).join(format!("{}{suffix}", lio::WWN_PREFIX));
        lio::mkdir(&wwn)?;
        built.wwns.push(wwn.clone());
        wwns.push((wwn, suffix));
    }
    let mut next_tpgt = vec![1u32; spec.hbas.len()];
    let mut tpg_dirs = Vec::new();
    let mut hba_hosts = vec![None; spec.hbas.len()];
    let mut pending = Vec::new();
    for (i, p) in spec.paths.iter().enumerate() {
        let (wwn, suffix) = &wwns[p.hba];
        let tpgt = next_tpgt[p.hba];
        next_tpgt[p.hba] += 1;
        let tpg = wwn.join(format!("tpgt_{tpgt}"));
        lio::mkdir(&tpg)?;
        built.tpgs.push((tpg.clone(), false));
        lio::write_attr(
            &tpg.join("nexus"),
            &format!("{}{suffix}", lio::INITIATOR_PREFIX),
        )?;
        if let Some(last) = built.tpgs.last_mut() {
            last.1 = true;
        }
        let lun_dir = tpg.join("lun/lun_0");
        lio::mkdir(&lun_dir)?;
        built.lun_dirs.push(lun_dir.clone());
        let link = lun_dir.join("pathrig-port");
        symlink(&built.backstores[i], &link).map_err(RigError::io("link backstore into", &link))?;
        built.lun_links.push(link);
        let address = lio::read_attr(&tpg.join("address"))?;
        let host = parse_address(&address).ok_or_else(|| {
            RigError::Guest(format!(
                "{}/address is {address:?}, not H:C:T",
                tpg.display()
            ))
        })?;
        hba_hosts[p.hba] = Some(host.0);
        pending.push((i, host));
        tpg_dirs.push(tpg);
    }
    let mut paths = Vec::new();
    for (i, (host, channel, target)) in pending {
        paths.push(wait_for_disk(&spec.paths[i].name, host, channel, target)?);
    }
    let hba_hosts = hba_hosts
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            h.ok_or_else(|| RigError::Guest(format!("HBA {} has no path", spec.hbas[i].name)))
        })
        .collect::<Result<Vec<u32>, RigError>>()?;
    let control = ArrayControl {
        paths: Arc::new(shared_paths),
        tpgs: Arc::new(tpg_dirs),
        alua: Arc::new(alua_luns),
    };
    Ok((paths, hba_hosts, control))
}

/// `tpgt_T/address` reads `H:C:T`.
fn parse_address(text: &str) -> Option<(u32, u32, u32)> {
    let mut it = text.trim().split(':').map(|n| n.parse::<u32>().ok());
    Some((it.next()??, it.next()??, it.next()??))
}

fn wait_for<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(handler::POLL_STEP);
    }
}

fn wait_for_disk(name: &str, host: u32, channel: u32, target: u32) -> Result<ScsiPath, RigError> {
    let hctl = format!("{host}:{channel}:{target}:0");
    let sysfs_dir = PathBuf::from("/sys/class/scsi_device")
        .join(&hctl)
        .join("device");
    let found = wait_for(DEVICE_WAIT, || {
        let disk = fs::read_dir(sysfs_dir.join("block"))
            .ok()?
            .flatten()
            .next()?
            .file_name()
            .to_string_lossy()
            .to_string();
        let dev = lio::read_attr(&Path::new("/sys/block").join(&disk).join("dev")).ok()?;
        let devnum = DevNum::parse(&dev)?;
        let node = PathBuf::from("/dev").join(&disk);
        node.exists().then_some((disk, devnum, node))
    });
    let (disk, devnum, dev_node) = found.ok_or_else(|| {
        RigError::Guest(format!(
            "path {name}: no sd disk at {hctl} after {DEVICE_WAIT:?} (see dmesg)"
        ))
    })?;
    Ok(ScsiPath {
        name: name.to_string(),
        disk,
        dev_node,
        devnum,
        host,
        channel,
        target,
        lun: 0,
        sysfs_dir,
    })
}

/// The initiator's settings of one device, as the kernel reports them after a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DeviceKnobs {
    pub timeout_s: u32,
    pub eh_timeout_s: u32,
    pub queue_depth: u32,
}

/// Sets the device's command timeout, error-handler timeout and queue depth (those given) and
/// reads all three back.
pub fn set_device_knobs(
    path: &ScsiPath,
    timeout_s: Option<u32>,
    eh_timeout_s: Option<u32>,
    queue_depth: Option<u32>,
) -> Result<DeviceKnobs, RigError> {
    let dir = &path.sysfs_dir;
    for (file, value) in [
        ("timeout", timeout_s),
        ("eh_timeout", eh_timeout_s),
        ("queue_depth", queue_depth),
    ] {
        if let Some(v) = value {
            lio::write_attr(&dir.join(file), &v.to_string())?;
        }
    }
    let read = |file: &str| -> Result<u32, RigError> {
        let text = lio::read_attr(&dir.join(file))?;
        text.parse()
            .map_err(|_| RigError::Guest(format!("{}/{file} reads {text:?}", dir.display())))
    };
    Ok(DeviceKnobs {
        timeout_s: read("timeout")?,
        eh_timeout_s: read("eh_timeout")?,
        queue_depth: read("queue_depth")?,
    })
}

/// What became of an `eh_deadline` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EhDeadline {
    /// The host took it; the value read back (`None` = off).
    Set(Option<u32>),
    /// The host refuses eh_deadline (EINVAL: it has no host-reset handler, as tcm_loop).
    UnsupportedByHost,
}

/// Sets SCSI host `host`'s `eh_deadline` (`None` = off).
pub fn set_eh_deadline(host: u32, deadline: Option<u32>) -> Result<EhDeadline, RigError> {
    let file = PathBuf::from(format!("/sys/class/scsi_host/host{host}/eh_deadline"));
    let value = deadline.map_or_else(|| "off".to_string(), |d| d.to_string());
    match fs::write(&file, &value) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            return Ok(EhDeadline::UnsupportedByHost)
        }
        Err(e) => {
            return Err(RigError::Io {
                what: format!("write {value:?} to"),
                path: file,
                source: e,
            })
        }
    }
    let back = lio::read_attr(&file)?;
    Ok(EhDeadline::Set(back.parse().ok()))
}

/// The host's state (`running`, `recovery`, …).
pub fn host_state(host: u32) -> Result<String, RigError> {
    lio::read_attr(Path::new(&format!("/sys/class/scsi_host/host{host}/state")))
}

/// The device's state (`running`, `offline`, …).
pub fn device_state(path: &ScsiPath) -> Result<String, RigError> {
    lio::read_attr(&path.sysfs_dir.join("state"))
}

/// Opens a path's `sdX` for O_DIRECT IO.
pub fn open_direct(path: &ScsiPath) -> Result<File, RigError> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path.dev_node)
        .map_err(RigError::io("open O_DIRECT", &path.dev_node))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ArraySpec {
        ArraySpec {
            luns: vec![LunSpec {
                name: "a".into(),
                wwid: "lun-a".into(),
                backing: "/nonexistent".into(),
                size_bytes: 1 << 20,
                alua: None,
            }],
            hbas: vec![HbaSpec { name: "h0".into() }],
            paths: vec![PathSpec {
                name: "p0".into(),
                lun: 0,
                hba: 0,
                cmd_time_out: None,
                port_group: None,
            }],
            seed: 0,
        }
    }

    #[test]
    fn bad_specs_are_refused_with_a_reason() {
        assert!(validate(&spec()).is_ok());
        let mut s = spec();
        s.paths[0].lun = 1;
        assert!(validate(&s)
            .unwrap_err()
            .to_string()
            .contains("names LUN 1"));
        let mut s = spec();
        s.hbas.push(HbaSpec { name: "h1".into() });
        assert!(validate(&s)
            .unwrap_err()
            .to_string()
            .contains("h1 has no path"));
        let mut s = spec();
        s.luns[0].size_bytes = 1000;
        assert!(validate(&s).is_err());
        let mut s = spec();
        s.paths.push(s.paths[0].clone());
        assert!(validate(&s)
            .unwrap_err()
            .to_string()
            .contains("share a name"));
        let mut s = spec();
        s.paths.clear();
        assert!(validate(&s).is_err());
        let mut s = spec();
        s.paths[0].port_group = Some(1);
        assert!(validate(&s)
            .unwrap_err()
            .to_string()
            .contains("has no ALUA"));
        s.luns[0].alua = Some(AluaSpec {
            groups: vec![PortGroupSpec {
                id: 2,
                state: AluaState::ActiveOptimized,
            }],
            trespass: Trespass::None,
        });
        assert!(validate(&s).unwrap_err().to_string().contains("group 1"));
        s.paths[0].port_group = None;
        assert!(validate(&s)
            .unwrap_err()
            .to_string()
            .contains("no port group"));
        s.paths[0].port_group = Some(2);
        assert!(validate(&s).is_ok());
    }

    #[test]
    fn tpg_addresses_parse() {
        assert_eq!(parse_address("3:0:2\n"), Some((3, 0, 2)));
        assert_eq!(parse_address("x"), None);
    }
}
