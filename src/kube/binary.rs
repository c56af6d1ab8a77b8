//! Which OS and architecture an executable was built for, read from its header
//! (ELF, Mach-O, PE). Used to check that every binary landed where its name says.

use std::io::Read;
use std::path::Path;

/// (os, arch) in Go's names, or None for a file that is not a known executable.
pub fn detect(header: &[u8]) -> Option<(&'static str, &'static str)> {
    if header.starts_with(b"\x7fELF") && header.len() >= 20 {
        let little = header[5] == 1;
        let machine = if little {
            u16::from_le_bytes([header[18], header[19]])
        } else {
            u16::from_be_bytes([header[18], header[19]])
        };
        let arch = match machine {
            0x3e => "amd64",
            0xb7 => "arm64",
            0x03 => "386",
            0x28 => "arm",
            0x16 => "s390x",
            0x15 => "ppc64le",
            _ => return None,
        };
        return Some(("linux", arch));
    }
    if header.len() >= 8 && header[..4] == [0xcf, 0xfa, 0xed, 0xfe] {
        let cpu = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let arch = match cpu {
            0x0100_0007 => "amd64",
            0x0100_000c => "arm64",
            _ => return None,
        };
        return Some(("darwin", arch));
    }
    if header.starts_with(b"MZ") && header.len() >= 0x40 {
        let pe =
            u32::from_le_bytes([header[0x3c], header[0x3d], header[0x3e], header[0x3f]]) as usize;
        if header.len() >= pe + 6 && &header[pe..pe + 4] == b"PE\0\0" {
            let arch = match u16::from_le_bytes([header[pe + 4], header[pe + 5]]) {
                0x8664 => "amd64",
                0xaa64 => "arm64",
                0x014c => "386",
                _ => return None,
            };
            return Some(("windows", arch));
        }
    }
    None
}

/// Reads enough of `path` to detect its platform.
pub fn detect_file(path: &Path) -> std::io::Result<Option<(&'static str, &'static str)>> {
    let mut header = Vec::with_capacity(4096);
    std::fs::File::open(path)?
        .take(4096)
        .read_to_end(&mut header)?;
    Ok(detect(&header))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_amd64() {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[5] = 1;
        h[18] = 0x3e;
        assert_eq!(detect(&h), Some(("linux", "amd64")));
    }

    #[test]
    fn macho_arm64() {
        let mut h = vec![0xcf, 0xfa, 0xed, 0xfe];
        h.extend_from_slice(&0x0100_000cu32.to_le_bytes());
        assert_eq!(detect(&h), Some(("darwin", "arm64")));
    }

    #[test]
    fn pe_amd64() {
        let mut h = vec![0u8; 0x90];
        h[..2].copy_from_slice(b"MZ");
        h[0x3c] = 0x80;
        h[0x80..0x84].copy_from_slice(b"PE\0\0");
        h[0x84..0x86].copy_from_slice(&0x8664u16.to_le_bytes());
        assert_eq!(detect(&h), Some(("windows", "amd64")));
    }

    #[test]
    fn text_is_not_an_executable() {
        assert_eq!(detect(b"#!/bin/sh\necho hi\n"), None);
    }
}
