//! Reading a scenario file (or the multipath.conf it names) from disk, safely.
//!
//! Owns the limits on input: only regular files are read (a FIFO, a device or a
//! directory is refused without blocking: the file is opened with `O_NONBLOCK`
//! and checked with `fstat` before anything is read), at most [`MAX_INPUT`]
//! bytes, and text that is not UTF-8 is refused with the line and column of
//! the first bad byte.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The largest scenario or multipath.conf file pathrig reads (1 MiB).
pub const MAX_INPUT: u64 = 1024 * 1024;

/// Why a file could not be read as text.
#[derive(Debug)]
pub(crate) enum InputError {
    /// Opening, stat or reading failed, or the file is not one to read.
    Io(String),
    /// The text is not UTF-8: 1-based line and column (in characters) of the
    /// first bad byte, and its byte offset.
    Utf8 {
        line: usize,
        column: usize,
        offset: usize,
    },
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputError::Io(e) => f.write_str(e),
            InputError::Utf8 {
                line,
                column,
                offset,
            } => write!(
                f,
                "invalid UTF-8 at line {line}, column {column} (byte offset {offset})"
            ),
        }
    }
}

/// Reads `path` as UTF-8 text within the limits above.
pub(crate) fn read_text(path: &Path) -> Result<String, InputError> {
    // O_NONBLOCK: a FIFO without a writer must not block `open`; reading a
    // regular file is unaffected by it.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| InputError::Io(format!("cannot open: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| InputError::Io(format!("cannot stat: {e}")))?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if std::os::unix::fs::FileTypeExt::is_fifo(&kind) {
            "a FIFO"
        } else if std::os::unix::fs::FileTypeExt::is_char_device(&kind)
            || std::os::unix::fs::FileTypeExt::is_block_device(&kind)
        {
            "a device"
        } else {
            "not a regular file"
        };
        return Err(InputError::Io(format!(
            "it is {what}; pathrig reads only regular files"
        )));
    }
    let mut bytes = Vec::new();
    (&file)
        .take(MAX_INPUT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| InputError::Io(format!("cannot read: {e}")))?;
    drop(file);
    if bytes.len() as u64 > MAX_INPUT {
        return Err(InputError::Io(format!(
            "it is larger than the limit of {} ({MAX_INPUT} bytes)",
            crate::units::format_size(MAX_INPUT)
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let good = std::str::from_utf8(&e.as_bytes()[..offset]).unwrap_or_default();
        let line = good.matches('\n').count() + 1;
        let line_start = good.rfind('\n').map_or(0, |i| i + 1);
        let column = good[line_start..].chars().count() + 1;
        InputError::Utf8 {
            line,
            column,
            offset,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("faults-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[test]
    fn bad_utf8_is_located() {
        let p = scratch("bad.toml");
        std::fs::write(&p, b"name = \"x\"\n# caf\xc3\xa9 \xff\n").unwrap();
        match read_text(&p) {
            Err(InputError::Utf8 {
                line,
                column,
                offset,
            }) => assert_eq!((line, column, offset), (2, 8, 19)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn too_large_special_and_missing_files_are_refused() {
        let p = scratch("big.toml");
        std::fs::write(&p, vec![b'#'; MAX_INPUT as usize + 1]).unwrap();
        assert!(read_text(&p).unwrap_err().to_string().contains("larger"));
        std::fs::write(&p, vec![b'#'; MAX_INPUT as usize]).unwrap();
        assert!(read_text(&p).is_ok());
        assert!(read_text(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string()
            .contains("a device"));
        let fifo = scratch("fifo");
        let _ = std::fs::remove_file(&fifo);
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a plain mkfifo(3) call on a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(read_text(&fifo).unwrap_err().to_string().contains("a FIFO"));
        assert!(read_text(&scratch("missing")).is_err());
    }
}
