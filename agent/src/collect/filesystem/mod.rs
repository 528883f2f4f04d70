//! Filesystem collector: space and inodes per mounted filesystem, from the mount table and
//! `statvfs(3)`.

use std::borrow::Cow;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rustix::fs::{StatVfs, StatVfsMountFlags};
use serde::Deserialize;

use super::select::glob_match;
use super::{CollectConfig, CollectError, Collector, Out, Tick};

fn default_exclude_fstypes() -> Vec<String> {
    [
        // Kernel and virtual filesystems: no space to run out of.
        "proc",
        "sysfs",
        "devtmpfs",
        "devpts",
        "cgroup",
        "cgroup2",
        "nsfs",
        "tracefs",
        "debugfs",
        "securityfs",
        "pstore",
        "bpf",
        "autofs",
        "mqueue",
        "hugetlbfs",
        "configfs",
        "fusectl",
        "binfmt_misc",
        "rpc_pipefs",
        "efivarfs",
        "selinuxfs",
        "fuse.lxcfs",
        "fuse.gvfsd-fuse",
        "fuse.portal",
        "nfsd",
        // Memory-backed: their use is memory use.
        "tmpfs",
        "ramfs",
        // Read-only images (snaps): always 100 % full by design.
        "squashfs",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

fn default_exclude_mounts() -> Vec<String> {
    // Container runtimes mount one filesystem per container; they come and go with the
    // containers and duplicate the filesystem underneath.
    [
        "/var/lib/docker/*",
        "/var/lib/containers/*",
        "/run/containerd/*",
        "/var/lib/kubelet/*",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

/// `[collect.filesystem]`: which mounted filesystems are reported.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FilesystemConfig {
    /// Globs (`*`, `?`) on the filesystem type (third field of `/proc/mounts`) that are not
    /// reported. Default: kernel, virtual and memory-backed types (`proc`, `sysfs`, `tmpfs`,
    /// `cgroup2`, `squashfs`, ...; see docs/metrics.md). `overlay` is reported.
    #[serde(default = "default_exclude_fstypes")]
    pub exclude_fstypes: Vec<String>,
    /// Globs on the mount point that are not reported; `*` also matches `/`. Default
    /// `["/var/lib/docker/*", "/var/lib/containers/*", "/run/containerd/*",
    /// "/var/lib/kubelet/*"]`.
    #[serde(default = "default_exclude_mounts")]
    pub exclude_mounts: Vec<String>,
}

impl Default for FilesystemConfig {
    fn default() -> Self {
        Self {
            exclude_fstypes: default_exclude_fstypes(),
            exclude_mounts: default_exclude_mounts(),
        }
    }
}

/// One line of the mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount<'a> {
    /// What is mounted: `/dev/sda1`, `server:/export`, `tmpfs`, ...
    pub device: Cow<'a, str>,
    /// Where, with `\040`-style escapes decoded.
    pub mount_point: Cow<'a, str>,
    /// Filesystem type, e.g. `ext4`.
    pub fstype: &'a str,
    /// Mounted read-only, from the mount options (`ro`); `None` when the table has none.
    pub readonly: Option<bool>,
}

/// Parses a mount table (`/proc/mounts` format: device, mount point, type, options, dump,
/// pass).
pub fn parse(text: &str) -> Result<Vec<Mount<'_>>, String> {
    let mut mounts = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut f = line.split_ascii_whitespace();
        let (Some(device), Some(mount_point), Some(fstype), options) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(format!("line {}: fewer than 3 fields", i + 1));
        };
        mounts.push(Mount {
            device: unescape(device),
            mount_point: unescape(mount_point),
            fstype,
            readonly: options.map(|o| o.split(',').any(|o| o == "ro")),
        });
    }
    Ok(mounts)
}

/// Decodes the octal escapes (`\040` space, `\011` tab, `\012` newline, `\134` backslash)
/// the kernel writes in mount table fields. Borrows when there are none.
fn unescape(field: &str) -> Cow<'_, str> {
    if !field.contains('\\') {
        return Cow::Borrowed(field);
    }
    let b = field.as_bytes();
    let mut out = String::with_capacity(field.len());
    let mut i = 0;
    let mut literal = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && let Some(c) = b
                .get(i + 1..i + 4)
                .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)))
                .map(|d| d.iter().fold(0u32, |n, c| n * 8 + u32::from(c - b'0')))
                .and_then(|n| u8::try_from(n).ok())
                // The kernel escapes only ASCII; anything else is left as written.
                .filter(u8::is_ascii)
        {
            out.push_str(&field[literal..i]);
            out.push(char::from(c));
            i += 4;
            literal = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&field[literal..]);
    Cow::Owned(out)
}

/// The mounts to report. Only the last mount on each mount point counts: it hides the ones
/// below, and it is what `statvfs` sees. If that mount is excluded, the mount point is not
/// reported at all.
pub fn select<'m, 'a>(mounts: &'m [Mount<'a>], config: &FilesystemConfig) -> Vec<&'m Mount<'a>> {
    let mut seen = HashSet::with_capacity(mounts.len());
    let mut selected: Vec<&Mount<'a>> = mounts
        .iter()
        .rev()
        .filter(|m| seen.insert(m.mount_point.as_ref()))
        .filter(|m| {
            !config
                .exclude_fstypes
                .iter()
                .any(|g| glob_match(g, m.fstype))
                && !config
                    .exclude_mounts
                    .iter()
                    .any(|g| glob_match(g, &m.mount_point))
        })
        .collect();
    selected.reverse();
    selected
}

/// Space and inodes of one filesystem, from `statvfs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Total size in bytes.
    pub size: u64,
    /// Bytes available to unprivileged users (`f_bavail`), as `df` "Avail".
    pub available: u64,
    /// Bytes in use: size minus the bytes free for root (`f_bfree`), so the root-reserved
    /// blocks count neither as used nor as free.
    pub used: u64,
    /// Inodes in total; 0 on filesystems without a fixed inode table (btrfs, vfat).
    pub files: u64,
    /// Free inodes.
    pub files_free: u64,
    /// Mounted read-only (also after the kernel remounted it so on errors).
    pub readonly: bool,
}

impl Usage {
    /// Converts `statvfs` block counts to bytes.
    pub fn from_statvfs(s: &StatVfs) -> Self {
        // Block counts are in fragment units; a few FUSE filesystems leave f_frsize 0.
        let unit = if s.f_frsize > 0 {
            s.f_frsize
        } else {
            s.f_bsize
        };
        Self {
            size: s.f_blocks.saturating_mul(unit),
            available: s.f_bavail.saturating_mul(unit),
            used: s.f_blocks.saturating_sub(s.f_bfree).saturating_mul(unit),
            files: s.f_files,
            files_free: s.f_ffree,
            readonly: s.f_flag.contains(StatVfsMountFlags::RDONLY),
        }
    }

    /// Share of the space usable by unprivileged users that is used, as `df` computes "Use%":
    /// `used / (used + available)`. 0 for an empty filesystem.
    pub fn used_ratio(&self) -> f64 {
        let usable = self.used.saturating_add(self.available);
        if usable == 0 {
            0.0
        } else {
            self.used as f64 / usable as f64
        }
    }

    /// Share of the inodes in use, as `df -i` "IUse%". 0 on filesystems without a fixed inode
    /// table (btrfs, vfat report 0 inodes), which cannot run out of them.
    pub fn inodes_used_ratio(&self) -> f64 {
        if self.files == 0 {
            0.0
        } else {
            self.files.saturating_sub(self.files_free) as f64 / self.files as f64
        }
    }
}

/// A mount point to report, as selected from the mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Selected {
    mount: String,
    device: String,
    fstype: String,
    readonly: Option<bool>,
    /// `f_fsid` at the first `statvfs` after the table was read: another filesystem there
    /// means the table changed.
    fsid: Option<u64>,
}

/// The mount table is read again at least this often, to see new mounts. A mount that goes
/// away is noticed at once: `statvfs` on its mount point fails or finds another filesystem.
/// Generating the table costs the kernel tens of microseconds, and hundreds on container
/// hosts with many mounts.
pub const MOUNTS_EVERY: Duration = Duration::from_secs(10);

/// Space and inodes per mounted filesystem.
#[derive(Debug)]
pub struct Filesystem {
    mounts: PathBuf,
    config: FilesystemConfig,
    /// The mount table as last parsed, when it was read, and what was selected from it.
    table: Vec<u8>,
    read_at: Option<Instant>,
    selected: Vec<Selected>,
    /// `statvfs` of each selected mount on this tick.
    usage: Vec<Result<Usage, rustix::io::Errno>>,
}

impl Filesystem {
    /// A filesystem collector reading the mount table of process 1 (`{procfs}/1/mounts`),
    /// else its own (`{procfs}/mounts`), and calling `statvfs` on each mount point as written
    /// there.
    ///
    /// Process 1's table is the host's even when the agent runs in a systemd sandbox, whose
    /// mount namespace adds private mounts (`PrivateTmp=`, the state directory) and marks every
    /// mount read-only (`ProtectSystem=strict`); read-only is therefore taken from the table's
    /// options, not from `statvfs`, which sees the sandbox's flags.
    pub fn new(config: &CollectConfig) -> Self {
        let init = config.procfs.join("1/mounts");
        Self {
            mounts: if std::fs::File::open(&init).is_ok() {
                init
            } else {
                config.procfs.join("mounts")
            },
            config: config.filesystem.clone(),
            table: Vec::new(),
            read_at: None,
            selected: Vec::new(),
            usage: Vec::new(),
        }
    }

    /// Reads the mount table, and selects again if it changed.
    fn read_table(&mut self, now: Instant, out: &mut Out<'_>) -> Result<(), CollectError> {
        let Self {
            mounts,
            config,
            table,
            selected,
            ..
        } = self;
        out.read(mounts, |text, _| {
            if text.as_bytes() != table.as_slice() {
                let parsed = parse(text)?;
                *selected = select(&parsed, config)
                    .into_iter()
                    // A mount point that is not UTF-8 cannot be a label (and its lossy
                    // spelling is not a path statvfs would find).
                    .filter(|m| !m.mount_point.contains('\u{FFFD}'))
                    .map(|m| Selected {
                        mount: m.mount_point.clone().into_owned(),
                        device: m.device.clone().into_owned(),
                        fstype: m.fstype.to_owned(),
                        readonly: m.readonly,
                        fsid: None,
                    })
                    .collect();
                table.clear();
                table.extend_from_slice(text.as_bytes());
            }
            Ok(())
        })?;
        self.read_at = Some(now);
        Ok(())
    }

    /// `statvfs` on every selected mount point; whether one of them is no longer the
    /// filesystem the table said.
    fn stat_all(&mut self) -> bool {
        self.usage.clear();
        let mut moved = false;
        for m in &mut self.selected {
            let vfs = rustix::fs::statvfs(m.mount.as_str());
            match &vfs {
                Ok(v) => moved |= *m.fsid.get_or_insert(v.f_fsid) != v.f_fsid,
                Err(rustix::io::Errno::NOENT) => moved = true,
                Err(_) => {}
            }
            self.usage
                .push(vfs.as_ref().map(Usage::from_statvfs).map_err(|e| *e));
        }
        moved
    }
}

impl Collector for Filesystem {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    fn collect(&mut self, tick: &Tick, out: &mut Out<'_>) -> Result<(), CollectError> {
        let due = self
            .read_at
            .is_none_or(|at| tick.now.saturating_duration_since(at) >= MOUNTS_EVERY);
        if due {
            self.read_table(tick.now, out)?;
        }
        if self.stat_all() && !due {
            self.read_table(tick.now, out)?;
            self.stat_all();
        }
        for (m, usage) in self.selected.iter().zip(&self.usage) {
            // One bad mount (stale NFS handle, no permission) must not hide the others.
            let u = match usage {
                Ok(u) => u,
                // Unmounted since the table was read.
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => {
                    out.fail(CollectError::Statvfs {
                        mount: m.mount.clone(),
                        source: (*e).into(),
                    });
                    continue;
                }
            };
            let labels = [
                ("mount", m.mount.as_str()),
                ("device", m.device.as_str()),
                ("fstype", m.fstype.as_str()),
            ];
            out.push("filesystem_size_bytes", &labels, u.size as f64);
            out.push("filesystem_available_bytes", &labels, u.available as f64);
            out.push("filesystem_used_bytes", &labels, u.used as f64);
            out.push("filesystem_used_ratio", &labels, u.used_ratio());
            out.push("filesystem_inodes", &labels, u.files as f64);
            out.push("filesystem_inodes_free", &labels, u.files_free as f64);
            out.push(
                "filesystem_inodes_used_ratio",
                &labels,
                u.inodes_used_ratio(),
            );
            out.push(
                "filesystem_readonly",
                &labels,
                if m.readonly.unwrap_or(u.readonly) {
                    1.0
                } else {
                    0.0
                },
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
