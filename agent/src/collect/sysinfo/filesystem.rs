//! Space per mounted filesystem through sysinfo.

use std::borrow::Cow;

use sysinfo::{DiskRefreshKind, Disks};

use super::super::filesystem::{FilesystemConfig, Mount, select};
use super::super::{CollectConfig, CollectError, Collector, Out, Tick};

use super::failed;

/// Space per mounted filesystem, selected as the procfs collector selects.
#[derive(Debug)]
pub struct Filesystem {
    disks: Result<Disks, String>,
    config: FilesystemConfig,
}

impl Filesystem {
    pub(super) fn new(config: &CollectConfig) -> Self {
        Self {
            disks: Disks::new().map_err(|e| e.to_string()),
            config: config.filesystem.clone(),
        }
    }
}

impl Collector for Filesystem {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    fn collect(&mut self, _tick: &Tick, out: &mut Out<'_>) -> Result<(), CollectError> {
        let disks = self
            .disks
            .as_mut()
            .map_err(|detail| failed("disks", detail))?;
        disks.refresh_specifics(true, DiskRefreshKind::nothing().with_storage());
        // A mount point or type that is not UTF-8 cannot be a label.
        let listed: Vec<_> = disks
            .iter()
            .filter_map(|d| Some((d, d.mount_point().to_str()?, d.file_system().to_str()?)))
            .collect();
        let mounts: Vec<Mount<'_>> = listed
            .iter()
            .map(|(d, mount_point, fstype)| Mount {
                device: d.name().to_string_lossy(),
                mount_point: Cow::Borrowed(mount_point),
                fstype,
                readonly: None,
            })
            .collect();
        let chosen = select(&mounts, &self.config);
        for (mount, (disk, ..)) in mounts.iter().zip(&listed) {
            if !chosen.iter().any(|c| std::ptr::eq(*c, mount)) {
                continue;
            }
            let labels = [
                ("mount", mount.mount_point.as_ref()),
                ("device", mount.device.as_ref()),
                ("fstype", mount.fstype),
            ];
            let size = disk.total_space();
            let available = disk.available_space().min(size);
            // sysinfo does not give the blocks free for root: the blocks reserved for root
            // count as used.
            let used = size - available;
            out.push("filesystem_size_bytes", &labels, size as f64);
            out.push("filesystem_available_bytes", &labels, available as f64);
            out.push("filesystem_used_bytes", &labels, used as f64);
            let used_ratio = if size == 0 {
                0.0
            } else {
                used as f64 / size as f64
            };
            out.push("filesystem_used_ratio", &labels, used_ratio);
            out.push(
                "filesystem_readonly",
                &labels,
                if disk.is_read_only() { 1.0 } else { 0.0 },
            );
        }
        Ok(())
    }
}
