//! The SCSI commands pathrig's array answers, as pure functions from a CDB to what the handler
//! must do: move blocks between the backing file and the command's buffers, flush, or return a
//! ready-made answer (data and/or status with fixed-format sense).
//!
//! Formats follow SPC-4 (INQUIRY, VPD pages 0x00/0x80/0x83, MODE SENSE, sense data) and SBC-3
//! (READ CAPACITY, READ/WRITE, SYNCHRONIZE CACHE). Anything else is CHECK CONDITION ILLEGAL
//! REQUEST / INVALID COMMAND OPERATION CODE (05/20/00). No IO and no clock here.

/// The logical block size every LUN reports.
pub const BLOCK_SIZE: u32 = 512;

/// SCSI status codes (SAM-5).
pub mod status {
    pub const GOOD: u8 = 0x00;
    pub const CHECK_CONDITION: u8 = 0x02;
    pub const BUSY: u8 = 0x08;
    pub const RESERVATION_CONFLICT: u8 = 0x18;
    pub const TASK_SET_FULL: u8 = 0x28;
    pub const TASK_ABORTED: u8 = 0x40;
}

/// Sense keys used here.
pub mod key {
    pub const NOT_READY: u8 = 0x02;
    pub const MEDIUM_ERROR: u8 = 0x03;
    pub const HARDWARE_ERROR: u8 = 0x04;
    pub const ILLEGAL_REQUEST: u8 = 0x05;
    pub const UNIT_ATTENTION: u8 = 0x06;
    pub const ABORTED_COMMAND: u8 = 0x0b;
}

/// What every path of one LUN says about it, plus the one thing that differs per path (its
/// relative target port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The LUN's name as given (`naa.` + 16 or 32 hex digits is sent as an NAA designator as
    /// well; any text is sent as a T10 vendor-id designator and as the unit serial number).
    pub wwid: String,
    pub blocks: u64,
    /// Relative target port identifier of this path (1-based), VPD 0x83 designator type 4.
    pub relative_port: u16,
    /// Standard INQUIRY's TPGS field (0 no ALUA, 1 implicit, 2 explicit, 3 both).
    pub tpgs: u8,
    /// The path's target port group (VPD 0x83 designator type 5), when the LUN has ALUA.
    pub port_group: Option<u16>,
}

impl Identity {
    /// The unit serial number (VPD 0x80): the wwid without an `naa.` prefix, at most 64 bytes.
    pub fn serial(&self) -> String {
        let bare = self.wwid.strip_prefix("naa.").unwrap_or(&self.wwid);
        bare.chars()
            .filter(|c| c.is_ascii_graphic())
            .take(64)
            .collect()
    }

    /// The NAA designator bytes when the wwid is `naa.` + 16 or 32 hex digits starting 5 or 6.
    fn naa(&self) -> Option<Vec<u8>> {
        let hex = self.wwid.strip_prefix("naa.")?;
        if !(hex.len() == 16 || hex.len() == 32) || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let bytes: Vec<u8> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0))
            .collect();
        let naa = bytes[0] >> 4;
        match (naa, bytes.len()) {
            (5, 8) | (6, 16) => Some(bytes),
            _ => None,
        }
    }
}

/// A fixed-format sense triple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sense {
    pub key: u8,
    pub asc: u8,
    pub ascq: u8,
}

impl Sense {
    pub const fn new(key: u8, asc: u8, ascq: u8) -> Sense {
        Sense { key, asc, ascq }
    }
    pub const INVALID_OPCODE: Sense = Sense::new(key::ILLEGAL_REQUEST, 0x20, 0x00);
    pub const LBA_OUT_OF_RANGE: Sense = Sense::new(key::ILLEGAL_REQUEST, 0x21, 0x00);
    pub const INVALID_FIELD_IN_CDB: Sense = Sense::new(key::ILLEGAL_REQUEST, 0x24, 0x00);
    pub const UNRECOVERED_READ_ERROR: Sense = Sense::new(key::MEDIUM_ERROR, 0x11, 0x00);
    pub const WRITE_ERROR: Sense = Sense::new(key::MEDIUM_ERROR, 0x0c, 0x00);

    /// The 18 bytes of fixed-format sense data (response code 0x70, current error).
    pub fn fixed_format(&self) -> [u8; 18] {
        let mut s = [0u8; 18];
        s[0] = 0x70;
        s[2] = self.key & 0x0f;
        s[7] = 10; // additional sense length: bytes 8..18
        s[12] = self.asc;
        s[13] = self.ascq;
        s
    }
}

/// What a CDB asks the handler to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Read `blocks` blocks from `lba` into the command's buffers.
    Read { lba: u64, blocks: u32 },
    /// Write `blocks` blocks at `lba` from the command's buffers.
    Write { lba: u64, blocks: u32 },
    /// Make written data durable (fdatasync), then GOOD.
    Sync,
    /// Answer with this data (truncated to the command's buffers) and GOOD.
    Data(Vec<u8>),
    /// GOOD, no data.
    Good,
    /// CHECK CONDITION with this sense.
    Check(Sense),
}

/// The class of a command for fault rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpClass {
    Read,
    Write,
    Other,
}

impl Action {
    pub fn class(&self) -> OpClass {
        match self {
            Action::Read { .. } => OpClass::Read,
            Action::Write { .. } => OpClass::Write,
            _ => OpClass::Other,
        }
    }

    /// The LBA extent `(first, count)` of a read or write.
    pub fn extent(&self) -> Option<(u64, u64)> {
        match *self {
            Action::Read { lba, blocks } | Action::Write { lba, blocks } => {
                Some((lba, u64::from(blocks)))
            }
            _ => None,
        }
    }
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}
fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().unwrap_or([0; 8]))
}

/// The CDB length the opcode's group implies (SPC-4 4.2.5.1), or `None` for reserved groups.
fn cdb_len(opcode: u8) -> Option<usize> {
    match opcode >> 5 {
        0 => Some(6),
        1 | 2 => Some(10),
        4 => Some(16),
        5 => Some(12),
        _ => None,
    }
}

/// Decodes `cdb` for the LUN `id`.
pub fn decode(cdb: &[u8], id: &Identity) -> Action {
    let Some(&opcode) = cdb.first() else {
        return Action::Check(Sense::INVALID_OPCODE);
    };
    if cdb_len(opcode).is_some_and(|n| cdb.len() < n) {
        return Action::Check(Sense::INVALID_FIELD_IN_CDB);
    }
    match opcode {
        0x00 => Action::Good, // TEST UNIT READY
        0x12 => inquiry(cdb, id),
        0x1b => Action::Good, // START STOP UNIT: nothing spins here
        0x25 => read_capacity_10(id),
        0x9e if cdb[1] & 0x1f == 0x10 => {
            truncate(read_capacity_16(id), be32(&cdb[10..14]) as usize)
        }
        0x1a => mode_sense(cdb, false),
        0x5a => mode_sense(cdb, true),
        0x08 | 0x0a => {
            let lba = u64::from(be32(&[0, cdb[1] & 0x1f, cdb[2], cdb[3]]));
            let blocks = if cdb[4] == 0 { 256 } else { u32::from(cdb[4]) };
            rw(opcode == 0x0a, lba, blocks, id)
        }
        0x28 | 0x2a => rw(
            opcode == 0x2a,
            u64::from(be32(&cdb[2..6])),
            u32::from(be16(&cdb[7..9])),
            id,
        ),
        0x88 | 0x8a => rw(opcode == 0x8a, be64(&cdb[2..10]), be32(&cdb[10..14]), id),
        0x35 | 0x91 => Action::Sync,
        _ => Action::Check(Sense::INVALID_OPCODE),
    }
}

fn rw(write: bool, lba: u64, blocks: u32, id: &Identity) -> Action {
    if lba
        .checked_add(u64::from(blocks))
        .is_none_or(|end| end > id.blocks)
    {
        return Action::Check(Sense::LBA_OUT_OF_RANGE);
    }
    if blocks == 0 {
        return Action::Good;
    }
    if write {
        Action::Write { lba, blocks }
    } else {
        Action::Read { lba, blocks }
    }
}

fn truncate(mut data: Vec<u8>, allocation: usize) -> Action {
    data.truncate(allocation);
    Action::Data(data)
}

fn ascii_field(text: &str, len: usize) -> Vec<u8> {
    let mut field: Vec<u8> = text.bytes().take(len).collect();
    field.resize(len, b' ');
    field
}

pub const VENDOR: &str = "PATHRIG";
pub const PRODUCT: &str = "pathrig array";
pub const REVISION: &str = "0001";

fn inquiry(cdb: &[u8], id: &Identity) -> Action {
    let evpd = cdb[1] & 0x01 != 0;
    let page = cdb[2];
    let allocation = usize::from(be16(&cdb[3..5]));
    if !evpd {
        if page != 0 {
            return Action::Check(Sense::INVALID_FIELD_IN_CDB);
        }
        return truncate(standard_inquiry(id.tpgs), allocation);
    }
    let body = match page {
        0x00 => vec![0x00, 0x80, 0x83],
        0x80 => id.serial().into_bytes(),
        0x83 => device_identification(id),
        _ => return Action::Check(Sense::INVALID_FIELD_IN_CDB),
    };
    let mut data = vec![0x00, page];
    data.extend_from_slice(&(body.len() as u16).to_be_bytes());
    data.extend(body);
    truncate(data, allocation)
}

fn standard_inquiry(tpgs: u8) -> Vec<u8> {
    let mut d = vec![0u8; 36];
    d[0] = 0x00; // connected, direct-access block device
    d[2] = 0x06; // SPC-4
    d[3] = 0x02; // response data format 2
    d[4] = 36 - 5;
    d[5] = (tpgs & 0x03) << 4; // TPGS: how ALUA states change
    d[7] = 0x02; // CMDQUE: the device queues commands
    d[8..16].copy_from_slice(&ascii_field(VENDOR, 8));
    d[16..32].copy_from_slice(&ascii_field(PRODUCT, 16));
    d[32..36].copy_from_slice(&ascii_field(REVISION, 4));
    d
}

/// The designators of VPD page 0x83: NAA (when the wwid is one), T10 vendor id (always), both
/// associated with the LU, then this path's relative target port and (with ALUA) its target
/// port group, both associated with the target port.
fn device_identification(id: &Identity) -> Vec<u8> {
    let mut out = Vec::new();
    let mut designator = |code_set: u8, assoc_type: u8, value: &[u8]| {
        out.extend_from_slice(&[code_set, assoc_type, 0, value.len() as u8]);
        out.extend_from_slice(value);
    };
    if let Some(naa) = id.naa() {
        designator(0x01, 0x03, &naa); // binary, LU, NAA
    }
    let mut t10 = ascii_field(VENDOR, 8);
    t10.extend(id.serial().bytes());
    designator(0x02, 0x01, &t10); // ASCII, LU, T10 vendor id
    let port = id.relative_port.to_be_bytes();
    designator(0x01, 0x14, &[0, 0, port[0], port[1]]); // binary, target port, relative port
    if let Some(group) = id.port_group {
        let g = group.to_be_bytes();
        designator(0x01, 0x15, &[0, 0, g[0], g[1]]); // binary, target port, port group
    }
    out
}

fn read_capacity_10(id: &Identity) -> Action {
    let last = id.blocks.saturating_sub(1).min(u64::from(u32::MAX)) as u32;
    let mut d = last.to_be_bytes().to_vec();
    d.extend_from_slice(&BLOCK_SIZE.to_be_bytes());
    Action::Data(d)
}

fn read_capacity_16(id: &Identity) -> Vec<u8> {
    let mut d = vec![0u8; 32];
    d[0..8].copy_from_slice(&id.blocks.saturating_sub(1).to_be_bytes());
    d[8..12].copy_from_slice(&BLOCK_SIZE.to_be_bytes());
    d
}

/// MODE SENSE(6)/(10): no block descriptors; the caching page (write cache enabled, so the
/// initiator sends SYNCHRONIZE CACHE) and the control page, alone or as "all pages".
fn mode_sense(cdb: &[u8], ten: bool) -> Action {
    let page = cdb[2] & 0x3f;
    let subpage = cdb[3];
    let changeable = cdb[2] >> 6 == 1;
    let allocation = if ten {
        usize::from(be16(&cdb[7..9]))
    } else {
        usize::from(cdb[4])
    };
    if subpage != 0 && subpage != 0xff {
        return Action::Check(Sense::INVALID_FIELD_IN_CDB);
    }
    let mut caching = vec![0u8; 20];
    caching[0] = 0x08;
    caching[1] = 0x12;
    let mut control = vec![0u8; 12];
    control[0] = 0x0a;
    control[1] = 0x0a;
    if !changeable {
        caching[2] = 0x04; // WCE
        control[3] = 0x10; // QUEUE ALGORITHM MODIFIER 1: unrestricted reordering
    }
    let pages = match page {
        0x08 => caching,
        0x0a => control,
        0x3f => [caching, control].concat(),
        _ => return Action::Check(Sense::INVALID_FIELD_IN_CDB),
    };
    let mut d = if ten {
        let mut h = vec![0u8; 8];
        h[0..2].copy_from_slice(&((6 + pages.len()) as u16).to_be_bytes());
        h
    } else {
        vec![(3 + pages.len()) as u8, 0, 0, 0]
    };
    d.extend(pages);
    truncate(d, allocation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lun() -> Identity {
        Identity {
            wwid: "naa.6001405aabbccdd00112233445566778".into(),
            blocks: 2048,
            relative_port: 2,
            tpgs: 0,
            port_group: None,
        }
    }

    fn data(action: Action) -> Vec<u8> {
        match action {
            Action::Data(d) => d,
            other => panic!("expected data, got {other:?}"),
        }
    }

    #[test]
    fn standard_inquiry_names_the_vendor_and_spc4() {
        let d = data(decode(&[0x12, 0, 0, 0, 96, 0], &lun()));
        assert_eq!(d.len(), 36);
        assert_eq!(d[0], 0);
        assert_eq!(d[2], 6);
        assert_eq!(usize::from(d[4]) + 5, d.len());
        assert_eq!(&d[8..16], b"PATHRIG ");
        assert_eq!(&d[16..29], b"pathrig array");
        // truncated to the allocation length
        assert_eq!(data(decode(&[0x12, 0, 0, 0, 5, 0], &lun())).len(), 5);
        // a page code without EVPD is an invalid field
        assert_eq!(
            decode(&[0x12, 0, 0x80, 0, 96, 0], &lun()),
            Action::Check(Sense::INVALID_FIELD_IN_CDB)
        );
    }

    #[test]
    fn vpd_pages_list_serial_and_designators() {
        let d = data(decode(&[0x12, 1, 0x00, 0, 255, 0], &lun()));
        assert_eq!(d, vec![0, 0, 0, 3, 0x00, 0x80, 0x83]);
        let d = data(decode(&[0x12, 1, 0x80, 0, 255, 0], &lun()));
        assert_eq!(&d[4..], b"6001405aabbccdd00112233445566778");
        let d = data(decode(&[0x12, 1, 0x83, 0, 255, 0], &lun()));
        assert_eq!(usize::from(be16(&d[2..4])), d.len() - 4);
        // NAA 6 first: binary, LU association, type 3, 16 bytes.
        assert_eq!(&d[4..8], &[0x01, 0x03, 0, 16]);
        assert_eq!(d[8], 0x60);
        // then T10 vendor id, then the relative target port (2).
        let t10 = &d[24..];
        assert_eq!(&t10[..4], &[0x02, 0x01, 0, 8 + 32]);
        assert_eq!(&t10[4..12], b"PATHRIG ");
        let port = &t10[4 + 40..];
        assert_eq!(port, &[0x01, 0x14, 0, 4, 0, 0, 0, 2]);
        assert_eq!(
            decode(&[0x12, 1, 0xb0, 0, 255, 0], &lun()),
            Action::Check(Sense::INVALID_FIELD_IN_CDB)
        );
    }

    #[test]
    fn a_wwid_that_is_no_naa_goes_out_as_t10_only() {
        let id = Identity {
            wwid: "lun-a".into(),
            blocks: 8,
            relative_port: 1,
            tpgs: 0,
            port_group: None,
        };
        let d = data(decode(&[0x12, 1, 0x83, 0, 255, 0], &id));
        assert_eq!(&d[4..8], &[0x02, 0x01, 0, 13]);
        assert_eq!(&d[8..21], b"PATHRIG lun-a");
    }

    #[test]
    fn alua_shows_in_tpgs_and_the_port_group_designator() {
        let mut id = lun();
        assert_eq!(data(decode(&[0x12, 0, 0, 0, 96, 0], &id))[5], 0);
        id.tpgs = 3;
        id.port_group = Some(0x0102);
        assert_eq!(data(decode(&[0x12, 0, 0, 0, 96, 0], &id))[5], 0x30);
        let d = data(decode(&[0x12, 1, 0x83, 0, 255, 0], &id));
        assert_eq!(usize::from(be16(&d[2..4])), d.len() - 4);
        assert_eq!(
            &d[d.len() - 16..],
            &[0x01, 0x14, 0, 4, 0, 0, 0, 2, 0x01, 0x15, 0, 4, 0, 0, 1, 2]
        );
    }

    #[test]
    fn read_capacity_reports_the_last_lba() {
        assert_eq!(
            data(decode(&[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], &lun())),
            vec![0, 0, 0x07, 0xff, 0, 0, 2, 0]
        );
        let mut cdb = [0u8; 16];
        cdb[0] = 0x9e;
        cdb[1] = 0x10;
        cdb[13] = 32;
        let d = data(decode(&cdb, &lun()));
        assert_eq!(d.len(), 32);
        assert_eq!(be64(&d[0..8]), 2047);
        assert_eq!(be32(&d[8..12]), 512);
    }

    #[test]
    fn reads_and_writes_decode_with_range_checks() {
        let id = lun();
        assert_eq!(
            decode(&[0x28, 0, 0, 0, 0, 10, 0, 0, 8, 0], &id),
            Action::Read { lba: 10, blocks: 8 }
        );
        assert_eq!(
            decode(&[0x2a, 0, 0, 0, 0x07, 0xf8, 0, 0, 8, 0], &id),
            Action::Write {
                lba: 2040,
                blocks: 8
            }
        );
        assert_eq!(
            decode(&[0x28, 0, 0, 0, 0x07, 0xf9, 0, 0, 8, 0], &id),
            Action::Check(Sense::LBA_OUT_OF_RANGE)
        );
        let mut r16 = [0u8; 16];
        r16[0] = 0x88;
        r16[9] = 4;
        r16[13] = 2;
        assert_eq!(decode(&r16, &id), Action::Read { lba: 4, blocks: 2 });
        r16[2] = 0xff; // far past the end, and no overflow
        assert_eq!(decode(&r16, &id), Action::Check(Sense::LBA_OUT_OF_RANGE));
        // READ(6): 0 blocks means 256
        assert_eq!(
            decode(&[0x08, 0, 0, 1, 0, 0], &id),
            Action::Read {
                lba: 1,
                blocks: 256
            }
        );
        assert_eq!(
            decode(&[0x0a, 0, 0, 1, 2, 0], &id),
            Action::Write { lba: 1, blocks: 2 }
        );
        assert_eq!(Action::Read { lba: 1, blocks: 2 }.extent(), Some((1, 2)));
    }

    #[test]
    fn mode_sense_answers_caching_and_control() {
        let d = data(decode(&[0x1a, 0, 0x3f, 0, 255, 0], &lun()));
        assert_eq!(usize::from(d[0]) + 1, d.len());
        assert_eq!(d[3], 0, "no block descriptors");
        assert_eq!(&d[4..6], &[0x08, 0x12]);
        assert_eq!(d[6] & 0x04, 0x04, "write cache enabled");
        assert_eq!(&d[24..26], &[0x0a, 0x0a]);
        let d = data(decode(&[0x5a, 0, 0x08, 0, 0, 0, 0, 0, 255, 0], &lun()));
        assert_eq!(usize::from(be16(&d[0..2])) + 2, d.len());
        assert_eq!(d[8], 0x08);
        assert_eq!(
            decode(&[0x1a, 0, 0x1c, 0, 255, 0], &lun()),
            Action::Check(Sense::INVALID_FIELD_IN_CDB)
        );
    }

    #[test]
    fn the_rest_is_illegal_request_with_fixed_sense() {
        assert_eq!(decode(&[0x00, 0, 0, 0, 0, 0], &lun()), Action::Good);
        assert_eq!(decode(&[0x35; 10], &lun()), Action::Sync);
        assert_eq!(
            decode(&[0xa3, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], &lun()),
            Action::Check(Sense::INVALID_OPCODE)
        );
        assert_eq!(
            decode(&[0x28, 0, 0], &lun()),
            Action::Check(Sense::INVALID_FIELD_IN_CDB)
        );
        let s = Sense::INVALID_OPCODE.fixed_format();
        assert_eq!((s[0], s[2], s[7], s[12], s[13]), (0x70, 5, 10, 0x20, 0));
    }
}
