//! The units of `/proc/[pid]/stat`: the page size and the clock tick rate, from the agent's
//! own auxiliary vector (`{procfs}/self/auxv`), where the kernel hands them to every process
//! and where `sysconf` finds them.

use std::path::Path;

/// `AT_PAGESZ`.
const AT_PAGESZ: u64 = 6;
/// `AT_CLKTCK`.
const AT_CLKTCK: u64 = 17;

/// The page size and clock tick rate, with the values of the common case when the auxiliary
/// vector cannot be read (a fixture procfs, a kernel without it): 4096 bytes, 100 Hz.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Units {
    /// Bytes per page: the unit of resident set sizes (4096 on x86-64, 16384 or 65536 on some
    /// arm64 and ppc64 kernels).
    pub page_size: u64,
    /// Clock ticks per second: the unit of CPU times (`USER_HZ`, 100 almost everywhere).
    pub clock_ticks: u64,
}

impl Default for Units {
    fn default() -> Self {
        Self {
            page_size: 4096,
            clock_ticks: 100,
        }
    }
}

impl Units {
    /// Reads `{procfs}/self/auxv`.
    pub fn read(procfs: &Path) -> Self {
        std::fs::read(procfs.join("self/auxv"))
            .map(|auxv| {
                Self::parse(
                    &auxv,
                    std::mem::size_of::<usize>(),
                    cfg!(target_endian = "big"),
                )
            })
            .unwrap_or_default()
    }

    /// Parses an auxiliary vector: (type, value) pairs of native words, up to `AT_NULL`.
    pub fn parse(auxv: &[u8], word: usize, big_endian: bool) -> Self {
        let mut units = Self::default();
        let read = |b: &[u8]| {
            let mut bytes = [0u8; 8];
            if big_endian {
                bytes[8 - b.len()..].copy_from_slice(b);
                u64::from_be_bytes(bytes)
            } else {
                bytes[..b.len()].copy_from_slice(b);
                u64::from_le_bytes(bytes)
            }
        };
        if word == 0 || word > 8 {
            return units;
        }
        for pair in auxv.chunks_exact(2 * word) {
            let (key, value) = (read(&pair[..word]), read(&pair[word..]));
            match key {
                0 => break,
                AT_PAGESZ if value > 0 => units.page_size = value,
                AT_CLKTCK if value > 0 => units.clock_ticks = value,
                _ => {}
            }
        }
        units
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auxv(pairs: &[(u64, u64)], word: usize, big: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for &(k, v) in pairs {
            for x in [k, v] {
                let bytes = if big {
                    x.to_be_bytes()
                } else {
                    x.to_le_bytes()
                };
                if big {
                    out.extend_from_slice(&bytes[8 - word..]);
                } else {
                    out.extend_from_slice(&bytes[..word]);
                }
            }
        }
        out
    }

    #[test]
    fn finds_page_size_and_clock_ticks() {
        // An arm64 kernel with 16 KiB pages; other entries around.
        let pairs = [
            (33, 0xffff_0000),
            (AT_PAGESZ, 16384),
            (AT_CLKTCK, 100),
            (0, 0),
            (AT_PAGESZ, 1),
        ];
        for (word, big) in [(8, false), (4, false), (8, true), (4, true)] {
            assert_eq!(
                Units::parse(&auxv(&pairs, word, big), word, big),
                Units {
                    page_size: 16384,
                    clock_ticks: 100
                },
                "{word} {big}"
            );
        }
        assert_eq!(Units::parse(&[], 8, false), Units::default());
        assert_eq!(Units::parse(&[1, 2, 3], 8, false), Units::default());
    }

    #[test]
    fn reads_this_process() {
        let units = Units::read(Path::new("/proc"));
        assert!(
            units.page_size.is_power_of_two() && units.page_size >= 4096,
            "{units:?}"
        );
        assert!(units.clock_ticks >= 100, "{units:?}");
    }
}
