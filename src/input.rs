//! Reading files a user hands kbuild (recipes, checksum files, manifests, artifacts):
//! regular files only, and never more than a stated number of bytes. `/dev/zero` as a
//! recipe or a 400 MB manifest.json is refused up front instead of being read whole, and a
//! FIFO is refused instead of blocking the run.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Whether the last component of the path may be a symbolic link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Follow it (a recipe symlinked into place is fine).
    Follow,
    /// Refuse it (an artifact must be the file itself, not a pointer elsewhere).
    Refuse,
}

/// Why a file could not be read.
#[derive(Debug)]
pub enum InputError {
    NotFound,
    /// A symbolic link where `Links::Refuse` was asked.
    Symlink,
    /// A directory, FIFO, socket or device: names what it is.
    NotRegular(&'static str),
    TooLarge {
        size: u64,
        limit: u64,
    },
    Io(io::Error),
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::NotFound => f.write_str("does not exist"),
            InputError::Symlink => f.write_str("is a symbolic link, not a regular file"),
            InputError::NotRegular(what) => write!(f, "is a {what}, not a regular file"),
            InputError::TooLarge { size, limit } => write!(
                f,
                "is {} bytes, more than the {} bytes such a file can need",
                size, limit
            ),
            InputError::Io(e) => write!(f, "cannot be read: {e}"),
        }
    }
}

impl From<io::Error> for InputError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::NotFound => InputError::NotFound,
            _ => InputError::Io(e),
        }
    }
}

/// What a non-regular file is, in words.
fn kind_of(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "directory"
    } else if file_type.is_fifo() {
        "FIFO"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_char_device() {
        "character device"
    } else if file_type.is_block_device() {
        "block device"
    } else if file_type.is_symlink() {
        "symbolic link"
    } else {
        "special file"
    }
}

/// Opens `path` for reading if it is a regular file. Opened non-blocking so that a FIFO
/// cannot stall the open, then checked on the open descriptor (no race with a rename).
pub fn open_regular(path: &Path, links: Links) -> Result<(File, u64), InputError> {
    let mut flags = rustix::fs::OFlags::NONBLOCK;
    if links == Links::Refuse {
        flags |= rustix::fs::OFlags::NOFOLLOW;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
        .map_err(|e| {
            // O_NOFOLLOW on a link fails with ELOOP.
            if links == Links::Refuse
                && e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
            {
                InputError::Symlink
            } else {
                InputError::from(e)
            }
        })?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(InputError::NotRegular(kind_of(meta.file_type())));
    }
    Ok((file, meta.len()))
}

/// ` (to <target>)` for a symbolic link, to name where it points in a message.
pub fn link_target(path: &Path) -> String {
    std::fs::read_link(path)
        .map(|t| format!(" (to {})", t.display()))
        .unwrap_or_default()
}

/// The bytes of the regular file at `path`, refusing files larger than `limit`.
pub fn read_capped(path: &Path, limit: u64, links: Links) -> Result<Vec<u8>, InputError> {
    let (file, size) = open_regular(path, links)?;
    if size > limit {
        return Err(InputError::TooLarge { size, limit });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // One byte past the limit tells a file that grew while being read.
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(InputError::TooLarge {
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// `read_capped` as UTF-8 text.
pub fn read_text_capped(path: &Path, limit: u64, links: Links) -> Result<String, InputError> {
    let bytes = read_capped(path, limit, links)?;
    String::from_utf8(bytes)
        .map_err(|_| InputError::Io(io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_small_file_and_refuses_a_large_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello").unwrap();
        assert_eq!(read_capped(&path, 5, Links::Refuse).unwrap(), b"hello");
        let e = read_capped(&path, 4, Links::Refuse).unwrap_err();
        assert!(
            matches!(e, InputError::TooLarge { size: 5, limit: 4 }),
            "{e}"
        );
    }

    #[test]
    fn devices_fifos_directories_and_links_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_capped(Path::new("/dev/zero"), 1 << 20, Links::Follow).unwrap_err();
        assert_eq!(e.to_string(), "is a character device, not a regular file");
        let e = read_capped(dir.path(), 10, Links::Follow).unwrap_err();
        assert_eq!(e.to_string(), "is a directory, not a regular file");
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let e = read_capped(&fifo, 10, Links::Follow).unwrap_err();
        assert_eq!(e.to_string(), "is a FIFO, not a regular file");
        let target = dir.path().join("target");
        std::fs::write(&target, b"x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(
            read_capped(&link, 10, Links::Refuse),
            Err(InputError::Symlink)
        ));
        assert_eq!(read_capped(&link, 10, Links::Follow).unwrap(), b"x");
        assert!(matches!(
            read_capped(&dir.path().join("none"), 10, Links::Follow),
            Err(InputError::NotFound)
        ));
    }
}
