//! Reading whole procfs and sysfs files cheaply: into buffers kept from one tick to the next,
//! without the `statx` and `lseek` that `std::fs::read` spends on a size hint, through
//! descriptors kept open where the kernel regenerates the content on every read, and, through
//! [`FileCache`], at most once per tick whichever collectors need the file.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use rustix::buffer::spare_capacity;
use rustix::fs::FsWord;

/// `SYSFS_MAGIC` from `linux/magic.h`.
const SYSFS_MAGIC: FsWord = 0x6265_6572;

/// Smallest read offered to the kernel; most procfs files fit in one.
const MIN_READ: usize = 4096;

/// Appends the rest of `file`, from `buf.len()` on, to `buf`, growing it as needed. Reads
/// with `pread` at the offset so a kept descriptor needs no `lseek` before the next read.
///
/// With `single_record`, a read shorter than offered is taken as the end of the file, which
/// saves the final empty read. Only for files the kernel generates in one piece
/// (`single_open` seq files such as `/proc/[pid]/stat`, and regular files): multi-record seq
/// files (`/proc/diskstats`, `/proc/net/dev`, mount tables) return short reads whenever the
/// kernel's page-sized buffer fills.
pub(crate) fn read_rest(file: &File, buf: &mut Vec<u8>, single_record: bool) -> io::Result<()> {
    loop {
        if buf.capacity() - buf.len() < MIN_READ / 4 {
            buf.reserve(buf.capacity().max(MIN_READ));
        }
        let offered = buf.capacity() - buf.len();
        let offset = buf.len() as u64;
        match rustix::io::pread(file, spare_capacity(buf), offset) {
            Ok(0) => return Ok(()),
            Ok(n) if single_record && n < offered => return Ok(()),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Whether a descriptor can be kept and read again from offset 0 for fresh content: true on
/// procfs and sysfs, where every read at 0 regenerates the file. Anything else (fixtures in
/// tests, a procfs bind-mounted somewhere odd) is reopened on every read, because a file
/// replaced by rename would leave a kept descriptor on the old content.
pub(crate) fn regenerated_on_read(file: &File) -> bool {
    rustix::fs::fstatfs(file).is_ok_and(|s| {
        let kind = s.f_type;
        kind == rustix::fs::PROC_SUPER_MAGIC || kind == SYSFS_MAGIC
    })
}

/// A file read whole on every tick, through a descriptor kept open when that is safe.
#[derive(Debug, Default)]
pub(crate) struct KeptFile {
    file: Option<File>,
    /// The content of the last successful read.
    pub(crate) buf: Vec<u8>,
}

impl KeptFile {
    /// Reads `path` whole into `self.buf`. A kept descriptor that fails (the device or
    /// interface behind a sysfs file went away) is dropped and the path opened afresh once.
    pub(crate) fn read(&mut self, path: &Path, single_record: bool) -> io::Result<()> {
        self.buf.clear();
        if let Some(file) = &self.file {
            if read_rest(file, &mut self.buf, single_record).is_ok() {
                return Ok(());
            }
            self.file = None;
            self.buf.clear();
        }
        let file = File::open(path)?;
        read_rest(&file, &mut self.buf, single_record)?;
        if regenerated_on_read(&file) {
            self.file = Some(file);
        }
        Ok(())
    }

    /// Whether a descriptor is being kept.
    #[cfg(test)]
    pub(crate) fn is_kept(&self) -> bool {
        self.file.is_some()
    }
}

/// How the last read of a slot went, as something that can be handed to every reader of the
/// tick (`io::Error` is not `Clone`).
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Read,
    Failed(io::ErrorKind, Option<i32>),
}

impl Outcome {
    fn error(kind: io::ErrorKind, raw: Option<i32>) -> io::Error {
        raw.map_or_else(|| kind.into(), io::Error::from_raw_os_error)
    }
}

#[derive(Debug)]
struct Slot {
    file: KeptFile,
    /// Tick on which the slot was last read, and how that went.
    read_on: u64,
    outcome: Outcome,
}

/// The whole files read on one tick, shared by the collectors that need the same file
/// (`/proc/meminfo` by memory and swap, `/proc/stat` by cpu and host). Owned by the runner:
/// buffers and descriptors live from one tick to the next, contents for one tick only.
#[derive(Debug)]
pub(crate) struct FileCache {
    tick: u64,
    slots: HashMap<PathBuf, Slot>,
}

impl FileCache {
    /// An empty cache, on its first tick.
    pub(crate) fn new() -> Self {
        Self {
            tick: 1,
            slots: HashMap::new(),
        }
    }

    /// Starts a new tick: every file is read again when next asked for. Files nobody asked for
    /// on the last tick (an interface or device that went away) are forgotten, closing their
    /// descriptors.
    pub(crate) fn begin_tick(&mut self) {
        self.tick += 1;
        let tick = self.tick;
        self.slots.retain(|_, slot| slot.read_on + 2 >= tick);
    }

    /// The content of `path` on this tick, read now if nobody has asked for it yet (see
    /// [`read_rest`] for `single_record`). The buffer is lent: give it back with
    /// [`FileCache::put_back`].
    pub(crate) fn take(&mut self, path: &Path, single_record: bool) -> io::Result<Vec<u8>> {
        let tick = self.tick;
        let slot = match self.slots.get_mut(path) {
            Some(slot) => slot,
            None => self.slots.entry(path.to_owned()).or_insert(Slot {
                file: KeptFile::default(),
                read_on: 0,
                outcome: Outcome::Read,
            }),
        };
        if slot.read_on != tick {
            slot.read_on = tick;
            slot.outcome = match slot.file.read(path, single_record) {
                Ok(()) => Outcome::Read,
                Err(e) => Outcome::Failed(e.kind(), e.raw_os_error()),
            };
        }
        match slot.outcome {
            Outcome::Read => Ok(std::mem::take(&mut slot.file.buf)),
            Outcome::Failed(kind, raw) => Err(Outcome::error(kind, raw)),
        }
    }

    /// Returns a buffer lent by [`FileCache::take`], so the next reader of the tick and the
    /// next tick reuse it.
    pub(crate) fn put_back(&mut self, path: &Path, buf: Vec<u8>) {
        if let Some(slot) = self.slots.get_mut(path) {
            slot.file.buf = buf;
        }
    }

    #[cfg(test)]
    fn slot(&self, path: &Path) -> Option<&Slot> {
        self.slots.get(path)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_file_once_per_tick_and_again_on_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meminfo");
        std::fs::write(&path, "MemTotal: 1 kB\n").unwrap();
        let mut cache = FileCache::new();
        cache.begin_tick();
        let buf = cache.take(&path, false).unwrap();
        assert_eq!(buf, b"MemTotal: 1 kB\n");
        cache.put_back(&path, buf);
        // Changed behind the cache's back within the tick: the second reader of the tick sees
        // what the first one saw.
        std::fs::write(&path, "MemTotal: 2 kB\n").unwrap();
        let buf = cache.take(&path, false).unwrap();
        assert_eq!(buf, b"MemTotal: 1 kB\n");
        cache.put_back(&path, buf);
        cache.begin_tick();
        let buf = cache.take(&path, false).unwrap();
        assert_eq!(buf, b"MemTotal: 2 kB\n");
        cache.put_back(&path, buf);
        // A fixture file is not kept open: it may be replaced by rename.
        assert!(!cache.slot(&path).unwrap().file.is_kept());
    }

    #[test]
    fn a_failed_read_fails_for_every_reader_of_the_tick() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vmstat");
        let mut cache = FileCache::new();
        cache.begin_tick();
        assert_eq!(
            cache.take(&path, false).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        std::fs::write(&path, "oom_kill 1\n").unwrap();
        let err = cache.take(&path, false).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(2), "{err}");
        cache.begin_tick();
        assert_eq!(cache.take(&path, false).unwrap(), b"oom_kill 1\n");
    }

    #[test]
    fn forgets_files_nobody_reads_any_more() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "a").unwrap();
        std::fs::write(&b, "b").unwrap();
        let mut cache = FileCache::new();
        cache.begin_tick();
        let _ = cache.take(&a, false);
        let _ = cache.take(&b, false);
        for _ in 0..3 {
            cache.begin_tick();
            let _ = cache.take(&a, false);
        }
        assert!(cache.slot(&a).is_some());
        assert!(cache.slot(&b).is_none());
    }

    /// The real procfs: the descriptor is kept, and a read at offset 0 sees fresh content.
    #[test]
    fn keeps_procfs_files_open_and_sees_new_content() {
        let path = Path::new("/proc/self/stat");
        if !path.exists() {
            return;
        }
        let mut file = KeptFile::default();
        file.read(path, true).unwrap();
        assert!(file.is_kept());
        let first = file.buf.clone();
        // Burn some CPU so utime or minflt move; the content is regenerated.
        let mut v: Vec<u64> = Vec::new();
        for i in 0..200_000u64 {
            v.push(i.wrapping_mul(i));
        }
        assert!(v.len() > 1);
        file.read(path, true).unwrap();
        assert!(file.is_kept());
        assert_ne!(first, file.buf);
        assert!(file.buf.ends_with(b"\n"));

        // Multi-record seq files larger than a page come whole too.
        let mut mounts = KeptFile::default();
        mounts
            .read(Path::new("/proc/self/mountinfo"), false)
            .unwrap();
        let std = std::fs::read("/proc/self/mountinfo").unwrap();
        assert_eq!(mounts.buf, std);
    }

    #[test]
    fn grows_past_the_first_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &big).unwrap();
        let mut file = KeptFile::default();
        for single_record in [false, true] {
            file.read(&path, single_record).unwrap();
            assert_eq!(file.buf, big);
        }
    }
}
