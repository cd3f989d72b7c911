//! The TCMU command ring (include/uapi/linux/target_core_user.h): reading the mailbox,
//! taking command and TMR entries off the ring, and writing completions back, out of order.
//!
//! Layout (byte offsets; verified against the uapi header and measured in the guest):
//! mailbox: `version` u16 @0, `flags` u16 @2, `cmdr_off` u32 @4, `cmdr_size` u32 @8,
//! `cmd_head` u32 @12, `cmd_tail` u32 @64 (own cache line). Entry header: `len_op` u32 @0
//! (low 3 bits: 0 PAD, 1 CMD, 2 TMR), `cmd_id` u16 @4, `kflags` u8 @6, `uflags` u8 @7. A CMD
//! request: `iov_cnt` u32 @8, `cdb_off` u64 @24 (the inner struct is not packed), `iov[]` @48
//! (16 bytes each: base offset into the map, length). A response: `scsi_status` u8 @8,
//! `sense_buffer` @16 (96 bytes). A TMR entry: `tmr_type` u8 @8, `cmd_cnt` u32 @12,
//! `cmd_ids` u16[] @32.
//!
//! Completions: the kernel walks entries from its last cleaned position to `cmd_tail`, skipping
//! PAD and TMR entries and taking `cmd_id` + response from each CMD slot. So a completion for
//! any command goes into the next CMD slot at our tail, which is why a command's CDB and iovs
//! must be copied out before anything completes (its slot may carry another's answer).

use std::sync::atomic::{fence, AtomicU32, Ordering};

pub const OP_PAD: u32 = 0;
pub const OP_CMD: u32 = 1;
pub const OP_TMR: u32 = 2;
const OP_MASK: u32 = 0x7;
const MB_CMD_HEAD: usize = 12;
const MB_CMD_TAIL: usize = 64;
const SENSE_BUFFER_SIZE: usize = 96;

/// TMR types (TCMU_TMR_*).
pub const TMR_ABORT_TASK: u8 = 1;
pub const TMR_LUN_RESET: u8 = 5;

/// One iovec of a command: `offset` into the shared map, `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Iov {
    pub offset: usize,
    pub len: usize,
}

/// A command copied off the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub cmd_id: u16,
    pub cdb: Vec<u8>,
    pub iovs: Vec<Iov>,
}

impl Command {
    pub fn data_len(&self) -> usize {
        self.iovs.iter().map(|i| i.len).sum()
    }
}

/// A task-management notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tmr {
    pub tmr_type: u8,
    pub cmd_ids: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Command(Command),
    Tmr(Tmr),
}

/// The shared map of one TCMU device: `base` points at `size` bytes (the mmap of uio map0).
pub struct Ring {
    base: *mut u8,
    size: usize,
    cmdr_off: usize,
    cmdr_size: usize,
    /// Our read position in the command ring (offset from `cmdr_off`).
    head: usize,
    /// Where the next completion goes (offset from `cmdr_off`), not yet published.
    tail: usize,
}

// The map is shared with the kernel only; one thread owns the Ring.
unsafe impl Send for Ring {}

/// A ring that is not laid out the way TCMU lays it out.
#[derive(Debug, thiserror::Error)]
#[error("TCMU ring: {0}")]
pub struct RingError(pub String);

impl Ring {
    /// # Safety
    /// `base` must point at `size` readable and writable bytes that stay mapped as long as the
    /// ring lives.
    pub unsafe fn new(base: *mut u8, size: usize) -> Result<Ring, RingError> {
        let mut ring = Ring {
            base,
            size,
            cmdr_off: 0,
            cmdr_size: 0,
            head: 0,
            tail: 0,
        };
        if size < 128 {
            return Err(RingError(format!("map of {size} bytes is too small")));
        }
        ring.cmdr_off = ring.read_u32(4) as usize;
        ring.cmdr_size = ring.read_u32(8) as usize;
        if ring.cmdr_size == 0 || ring.cmdr_off.saturating_add(ring.cmdr_size) > size {
            return Err(RingError(format!(
                "command ring at {} size {} does not fit a map of {size} bytes",
                ring.cmdr_off, ring.cmdr_size
            )));
        }
        ring.tail = ring.atomic(MB_CMD_TAIL).load(Ordering::Acquire) as usize;
        ring.head = ring.tail;
        Ok(ring)
    }

    fn read_u32(&self, at: usize) -> u32 {
        debug_assert!(at + 4 <= self.size);
        unsafe { std::ptr::read_volatile(self.base.add(at) as *const u32) }
    }
    fn read_u16(&self, at: usize) -> u16 {
        unsafe { std::ptr::read_volatile(self.base.add(at) as *const u16) }
    }
    fn read_u64(&self, at: usize) -> u64 {
        unsafe { std::ptr::read_unaligned(self.base.add(at) as *const u64) }
    }
    fn write_bytes(&self, at: usize, bytes: &[u8]) {
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.base.add(at), bytes.len()) }
    }
    fn atomic(&self, at: usize) -> &AtomicU32 {
        unsafe { &*(self.base.add(at) as *const AtomicU32) }
    }

    /// The shared map's bytes `[offset, offset + len)`, if inside the map.
    pub fn data_ptr(&self, iov: Iov) -> Option<*mut u8> {
        (iov.offset.checked_add(iov.len)? <= self.size)
            .then(|| unsafe { self.base.add(iov.offset) })
    }

    pub fn base(&self) -> *mut u8 {
        self.base
    }

    /// Whether the kernel has queued entries we have not taken yet.
    pub fn has_new(&self) -> bool {
        self.atomic(MB_CMD_HEAD).load(Ordering::Acquire) as usize != self.head
    }

    /// Takes every new entry off the ring (copies; PAD entries are skipped).
    pub fn take_new(&mut self, out: &mut Vec<Entry>) -> Result<(), RingError> {
        let cmd_head = self.atomic(MB_CMD_HEAD).load(Ordering::Acquire) as usize;
        while self.head != cmd_head {
            let at = self.cmdr_off + self.head;
            let len_op = self.read_u32(at);
            let len = (len_op & !OP_MASK) as usize;
            if len == 0 || len > self.cmdr_size {
                return Err(RingError(format!(
                    "entry at {} has length {len}",
                    self.head
                )));
            }
            match len_op & OP_MASK {
                OP_CMD => out.push(Entry::Command(self.read_command(at)?)),
                OP_TMR => {
                    let count = self.read_u32(at + 12) as usize;
                    let cmd_ids = (0..count.min((len.saturating_sub(32)) / 2))
                        .map(|i| self.read_u16(at + 32 + 2 * i))
                        .collect();
                    out.push(Entry::Tmr(Tmr {
                        tmr_type: unsafe { std::ptr::read_volatile(self.base.add(at + 8)) },
                        cmd_ids,
                    }));
                }
                _ => {}
            }
            self.head = (self.head + len) % self.cmdr_size;
        }
        Ok(())
    }

    fn read_command(&self, at: usize) -> Result<Command, RingError> {
        let cmd_id = self.read_u16(at + 4);
        let iov_cnt = self.read_u32(at + 8) as usize;
        let cdb_off = self.read_u64(at + 24) as usize;
        if cdb_off + 16 > self.size || iov_cnt > 4096 {
            return Err(RingError(format!(
                "command {cmd_id}: cdb at {cdb_off}, {iov_cnt} iovs"
            )));
        }
        // The CDB's length comes from its opcode group; 16 covers everything we decode, and
        // reading 16 bytes never leaves the map (checked above).
        let mut cdb = vec![0u8; 16];
        unsafe { std::ptr::copy_nonoverlapping(self.base.add(cdb_off), cdb.as_mut_ptr(), 16) };
        let iovs = (0..iov_cnt)
            .map(|i| Iov {
                offset: self.read_u64(at + 48 + 16 * i) as usize,
                len: self.read_u64(at + 56 + 16 * i) as usize,
            })
            .collect();
        Ok(Command { cmd_id, cdb, iovs })
    }

    /// Writes the completion of `cmd_id` into the next CMD slot at our tail. Not visible to the
    /// kernel until [`Ring::publish`].
    pub fn complete(&mut self, cmd_id: u16, scsi_status: u8, sense: Option<&[u8]>) {
        loop {
            let at = self.cmdr_off + self.tail;
            let len_op = self.read_u32(at);
            let len = (len_op & !OP_MASK) as usize;
            if len_op & OP_MASK == OP_CMD || len == 0 {
                break;
            }
            self.tail = (self.tail + len) % self.cmdr_size;
        }
        let at = self.cmdr_off + self.tail;
        let len = (self.read_u32(at) & !OP_MASK) as usize;
        self.write_bytes(at + 4, &cmd_id.to_ne_bytes());
        self.write_bytes(at + 7, &[0]); // uflags
        let mut rsp = [0u8; 8 + SENSE_BUFFER_SIZE];
        rsp[0] = scsi_status;
        if let Some(sense) = sense {
            let n = sense.len().min(SENSE_BUFFER_SIZE);
            rsp[8..8 + n].copy_from_slice(&sense[..n]);
        }
        // Entries are at least sizeof(struct tcmu_cmd_entry) = 112 bytes; never write past one.
        let room = len.saturating_sub(8).min(rsp.len());
        self.write_bytes(at + 8, &rsp[..room]);
        self.tail = (self.tail + len) % self.cmdr_size;
    }

    /// Makes the completions written so far visible (stores `cmd_tail`). The caller then
    /// writes to the uio fd to have the kernel look.
    pub fn publish(&mut self) {
        // Skip PAD/TMR entries right at the tail too, so the kernel can clean them.
        while self.tail != self.head {
            let at = self.cmdr_off + self.tail;
            let len_op = self.read_u32(at);
            let len = (len_op & !OP_MASK) as usize;
            if len_op & OP_MASK == OP_CMD || len == 0 {
                break;
            }
            self.tail = (self.tail + len) % self.cmdr_size;
        }
        fence(Ordering::Release);
        self.atomic(MB_CMD_TAIL)
            .store(self.tail as u32, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CMDR_OFF: usize = 128;
    const CMDR_SIZE: usize = 1024;

    /// A fake map: mailbox, a 1 KiB ring, data after it.
    struct Fake {
        mem: Vec<u64>,
    }

    impl Fake {
        fn new() -> Fake {
            let mut f = Fake {
                mem: vec![0u64; 4096 / 8],
            };
            f.put(4, &(CMDR_OFF as u32).to_ne_bytes());
            f.put(8, &(CMDR_SIZE as u32).to_ne_bytes());
            f
        }
        fn bytes(&mut self) -> &mut [u8] {
            unsafe { std::slice::from_raw_parts_mut(self.mem.as_mut_ptr() as *mut u8, 4096) }
        }
        fn put(&mut self, at: usize, b: &[u8]) {
            self.bytes()[at..at + b.len()].copy_from_slice(b);
        }
        fn get32(&mut self, at: usize) -> u32 {
            u32::from_ne_bytes(self.bytes()[at..at + 4].try_into().unwrap())
        }
        fn get16(&mut self, at: usize) -> u16 {
            u16::from_ne_bytes(self.bytes()[at..at + 2].try_into().unwrap())
        }
        /// Queues a CMD entry at ring offset `pos` (128 bytes: one iov, room for a response)
        /// and returns the next pos.
        fn cmd(&mut self, pos: usize, id: u16, cdb0: u8) -> usize {
            let at = CMDR_OFF + pos;
            let cdb_off = 3000 + 16 * usize::from(id);
            self.put(at, &(128u32 | OP_CMD).to_ne_bytes());
            self.put(at + 4, &id.to_ne_bytes());
            self.put(at + 8, &1u32.to_ne_bytes());
            self.put(at + 24, &(cdb_off as u64).to_ne_bytes());
            self.put(at + 48, &2048u64.to_ne_bytes());
            self.put(at + 56, &512u64.to_ne_bytes());
            self.put(cdb_off, &[cdb0, 1, 2, 3]);
            pos + 128
        }
        fn head(&mut self, pos: usize) {
            self.put(MB_CMD_HEAD, &(pos as u32).to_ne_bytes());
        }
    }

    #[test]
    fn takes_commands_and_tmrs_and_completes_out_of_order() {
        let mut f = Fake::new();
        let mut pos = f.cmd(0, 7, 0x28);
        pos = f.cmd(pos, 8, 0x2a);
        // a TMR entry (40 bytes): abort task of command 7
        let at = CMDR_OFF + pos;
        f.put(at, &(40u32 | OP_TMR).to_ne_bytes());
        f.put(at + 8, &[TMR_ABORT_TASK]);
        f.put(at + 12, &1u32.to_ne_bytes());
        f.put(at + 32, &7u16.to_ne_bytes());
        pos += 40;
        pos = f.cmd(pos, 9, 0x00);
        f.head(pos);
        let mut ring = unsafe { Ring::new(f.bytes().as_mut_ptr(), 4096) }.unwrap();
        assert!(ring.has_new());
        let mut got = Vec::new();
        ring.take_new(&mut got).unwrap();
        assert!(!ring.has_new());
        assert_eq!(got.len(), 4);
        let Entry::Command(c) = &got[0] else { panic!() };
        assert_eq!((c.cmd_id, c.cdb[0], c.cdb[3]), (7, 0x28, 3));
        assert_eq!(
            c.iovs,
            vec![Iov {
                offset: 2048,
                len: 512
            }]
        );
        assert_eq!(
            got[2],
            Entry::Tmr(Tmr {
                tmr_type: TMR_ABORT_TASK,
                cmd_ids: vec![7]
            })
        );
        // 9 completes first, then 8: they go into the first two CMD slots in ring order.
        ring.complete(9, 0, None);
        ring.complete(8, 2, Some(&[0x70, 0, 3]));
        ring.publish();
        // published past the TMR entry that follows them
        assert_eq!(f.get32(MB_CMD_TAIL), 296);
        assert_eq!(f.get16(CMDR_OFF + 4), 9);
        assert_eq!(f.get16(CMDR_OFF + 128 + 4), 8);
        assert_eq!(f.bytes()[CMDR_OFF + 128 + 8], 2);
        assert_eq!(f.bytes()[CMDR_OFF + 128 + 18], 3);
        assert_eq!(f.get32(CMDR_OFF + 128) & OP_MASK, OP_CMD, "headers stay");
        // the third completion lands in slot 4, after the TMR entry
        ring.complete(7, 0x40, None);
        ring.publish();
        assert_eq!(f.get32(MB_CMD_TAIL) as usize, pos);
        assert_eq!(f.get16(CMDR_OFF + 296 + 4), 7);
    }

    #[test]
    fn pad_entries_wrap_the_ring() {
        let mut f = Fake::new();
        // start near the end: our tail and head begin at 960, a PAD fills to the end.
        f.put(MB_CMD_TAIL, &960u32.to_ne_bytes());
        f.put(CMDR_OFF + 960, &(64u32 | OP_PAD).to_ne_bytes());
        // (the fake ring is 1 KiB; the PAD is 64 bytes)
        let pos = f.cmd(0, 3, 0x12);
        f.head(pos);
        let mut ring = unsafe { Ring::new(f.bytes().as_mut_ptr(), 4096) }.unwrap();
        let mut got = Vec::new();
        ring.take_new(&mut got).unwrap();
        assert_eq!(got.len(), 1);
        ring.complete(3, 0, None);
        ring.publish();
        assert_eq!(f.get32(MB_CMD_TAIL), 128);
    }

    #[test]
    fn a_ring_that_does_not_fit_is_refused() {
        let mut f = Fake::new();
        f.put(8, &(1u32 << 20).to_ne_bytes());
        assert!(unsafe { Ring::new(f.bytes().as_mut_ptr(), 4096) }.is_err());
    }
}
