#![allow(clippy::unwrap_used)]

use std::time::Instant;

use nines_common::Sample;

use super::super::testing;
use super::*;

const SERVER: &str = include_str!("../../../tests/fixtures/server/proc/mounts");
const VM: &str = include_str!("../../../tests/fixtures/vm/proc/mounts");

fn get(samples: &[Sample], name: &str, mount: &str) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.key.name == name && s.key.label("mount") == Some(mount))
        .map(|s| s.value)
}

#[test]
fn decodes_escapes() {
    assert_eq!(unescape("/srv/media\\040library"), "/srv/media library");
    assert_eq!(unescape("/a\\011b\\012c\\134d"), "/a\tb\nc\\d");
    assert!(matches!(unescape("/plain"), Cow::Borrowed("/plain")));
    // Not an escape: left as written.
    assert_eq!(unescape("/x\\9y\\"), "/x\\9y\\");
    assert_eq!(unescape("/x\\400"), "/x\\400");
}

#[test]
fn takes_read_only_from_the_mount_options() {
    let mounts = parse(
        "/dev/sda1 / ext4 rw,relatime 0 0\n\
         /dev/sdb1 /srv xfs ro,noatime 0 0\n\
         /dev/sdc1 /mnt/x ext4 rw,errors=remount-ro 0 0\n\
         /dev/sdd1 /old ext4\n",
    )
    .unwrap();
    let ro: Vec<_> = mounts.iter().map(|m| m.readonly).collect();
    assert_eq!(ro, [Some(false), Some(true), Some(false), None]);
}

#[test]
fn parses_this_machines_mounts() {
    let mounts = parse(VM).unwrap();
    assert_eq!(mounts.len(), 19);
    let selected: Vec<_> = select(&mounts, &FilesystemConfig::default())
        .iter()
        .map(|m| (m.mount_point.as_ref(), m.device.as_ref(), m.fstype))
        .collect();
    assert_eq!(selected, [("/", "/dev/vda", "ext4")]);
}

#[test]
fn selects_real_filesystems_on_a_server() {
    let mounts = parse(SERVER).unwrap();
    let selected: Vec<_> = select(&mounts, &FilesystemConfig::default())
        .iter()
        .map(|m| (m.mount_point.as_ref(), m.fstype))
        .collect();
    assert_eq!(
        selected,
        [
            ("/", "ext4"),
            ("/boot/efi", "vfat"),
            ("/srv/media library", "ext4"),
            // The xfs mounted over the ext4 one is what is visible there.
            ("/mnt/backup", "xfs"),
            ("/home", "nfs4"),
            // Devices and mount points with spaces, escaped as \040 by the kernel.
            ("/mnt/team share", "cifs"),
            ("/home/me/My Files", "fuse.sshfs"),
        ]
    );
    // /tmp is hidden by a tmpfs mounted over it, so it is not reported at all.
}

#[test]
fn exclusions_are_configurable() {
    let mounts = parse(SERVER).unwrap();
    let config = FilesystemConfig {
        exclude_fstypes: vec!["nfs*".into(), "tmpfs".into()],
        exclude_mounts: vec!["/boot/*".into(), "/mnt/*".into()],
    };
    let selected: Vec<_> = select(&mounts, &config)
        .iter()
        .map(|m| m.mount_point.as_ref())
        .collect();
    assert!(selected.contains(&"/var/lib/docker/overlay2/9f3c0d1e7a2b/merged"));
    assert!(selected.contains(&"/sys"));
    assert!(!selected.contains(&"/home"));
    assert!(!selected.contains(&"/boot/efi"));
    assert!(!selected.contains(&"/mnt/backup"));
}

#[test]
fn rejects_short_lines() {
    assert_eq!(
        parse("/dev/sda1 /\n").unwrap_err(),
        "line 1: fewer than 3 fields"
    );
}

#[test]
fn computes_usage_like_df() {
    // 1000 blocks of 4 KiB: 300 free for root, 250 of those for everyone else.
    let vfs = StatVfs {
        f_bsize: 4096,
        f_frsize: 4096,
        f_blocks: 1000,
        f_bfree: 300,
        f_bavail: 250,
        f_files: 640,
        f_ffree: 600,
        f_favail: 600,
        f_fsid: 0,
        f_flag: StatVfsMountFlags::RDONLY | StatVfsMountFlags::NOATIME,
        f_namemax: 255,
    };
    let u = Usage::from_statvfs(&vfs);
    assert_eq!(
        u,
        Usage {
            size: 4_096_000,
            available: 1_024_000,
            used: 2_867_200,
            files: 640,
            files_free: 600,
            readonly: true,
        }
    );
    // 700 used of the 950 usable blocks.
    assert_eq!(u.used_ratio(), 700.0 / 950.0);
    let empty = Usage::from_statvfs(&StatVfs {
        f_blocks: 0,
        f_bfree: 0,
        f_bavail: 0,
        f_frsize: 0,
        f_flag: StatVfsMountFlags::empty(),
        ..vfs
    });
    assert_eq!(empty.used_ratio(), 0.0);
    assert!(!empty.readonly);
}

#[test]
fn reports_mounted_filesystems() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("my data");
    std::fs::create_dir(&data).unwrap();
    let data = data.to_str().unwrap();
    let escaped = data.replace(' ', "\\040");
    let config = CollectConfig {
        procfs: dir.path().to_owned(),
        ..Default::default()
    };
    let mut fs = Filesystem::new(&config);
    let start = Instant::now();
    let mut run = |secs: u64, mounts: &[u8]| {
        std::fs::write(dir.path().join("mounts"), mounts).unwrap();
        let (samples, result, failures) = testing::run(&mut fs, &testing::tick(start, secs));
        result.unwrap();
        (samples, failures)
    };

    let (first, failures) = run(
        0,
        b"proc /proc proc rw 0 0\n\
         /dev/vda / ext4 rw,relatime 0 0\n\
         nfs:/gone /nonexistent/stale\\040nfs nfs4 rw 0 0\n\
         /dev/sdz1 /etc/hostname/not-a-dir ext4 rw 0 0\n",
    );
    // A mount point unmounted since the table was read is skipped; one whose statvfs
    // fails otherwise is a failure; neither stops the others.
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(
        failures[0].cause(),
        "statvfs /etc/hostname/not-a-dir errno 20"
    );
    let names: HashSet<&str> = first.iter().map(|s| s.key.name.as_str()).collect();
    assert_eq!(names.len(), 8);
    assert!(first.iter().all(|s| s.key.label("mount") == Some("/")));
    let root = Usage::from_statvfs(&rustix::fs::statvfs("/").unwrap());
    assert_eq!(
        get(&first, "filesystem_size_bytes", "/"),
        Some(root.size as f64)
    );
    assert_eq!(
        get(&first, "filesystem_inodes", "/"),
        Some(root.files as f64)
    );
    // The root filesystem is live: files come and go between the two statvfs calls.
    let inodes_used = get(&first, "filesystem_inodes_used_ratio", "/").unwrap();
    assert!(
        (inodes_used - root.inodes_used_ratio()).abs() < 1e-3,
        "{inodes_used} vs {}",
        root.inodes_used_ratio()
    );
    let (used, available) = (
        get(&first, "filesystem_used_bytes", "/").unwrap(),
        get(&first, "filesystem_available_bytes", "/").unwrap(),
    );
    assert_eq!(
        get(&first, "filesystem_used_ratio", "/"),
        Some(used / (used + available))
    );
    let s = first
        .iter()
        .find(|s| s.key.name == "filesystem_readonly")
        .unwrap();
    assert_eq!(s.key.label("device"), Some("/dev/vda"));
    assert_eq!(s.key.label("fstype"), Some("ext4"));
    assert_eq!(s.key.labels.len(), 3);

    // A new mount appears, its path written with the kernel's escapes; the table is read
    // again MOUNTS_EVERY (10 s) after the last time.
    let (second, _) = run(
        10,
        format!(
            "/dev/vda / ext4 rw,relatime 0 0\n\
             /dev/sdb1 {escaped} xfs ro 0 0\n"
        )
        .as_bytes(),
    );
    let size = Usage::from_statvfs(&rustix::fs::statvfs(data).unwrap()).size;
    assert_eq!(
        get(&second, "filesystem_size_bytes", data),
        Some(size as f64)
    );
    let s = second
        .iter()
        .find(|s| s.key.label("mount") == Some(data))
        .unwrap();
    assert_eq!(s.key.label("device"), Some("/dev/sdb1"));
    assert_eq!(s.key.label("fstype"), Some("xfs"));
    // Read-only as the table says (the host's view), although statvfs of the directory,
    // on a writable filesystem, says otherwise: in a `ProtectSystem=strict` sandbox
    // statvfs says read-only for every mount.
    assert_eq!(get(&second, "filesystem_readonly", data), Some(1.0));
    assert_eq!(get(&second, "filesystem_readonly", "/"), Some(0.0));

    // The same table again: the same mounts, from the selection kept.
    let with_data = format!(
        "/dev/vda / ext4 rw,relatime 0 0\n\
         /dev/sdb1 {escaped} xfs ro 0 0\n"
    );
    let (third, failures) = run(11, with_data.as_bytes());
    assert!(failures.is_empty());
    assert_eq!(third.len(), second.len());

    // Unmounted: noticed at once, although the table is not due to be read again.
    std::fs::remove_dir(data).unwrap();
    let (fourth, failures) = run(12, b"/dev/vda / ext4 rw,relatime 0 0\n");
    assert!(failures.is_empty(), "{failures:?}");
    assert!(fourth.iter().all(|s| s.key.label("mount") == Some("/")));

    // A new mount: seen when the table is next read, within MOUNTS_EVERY.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let other = other.to_str().unwrap();
    let with_other = format!("/dev/vda / ext4 rw,relatime 0 0\n/dev/sdc1 {other} ext4 rw 0 0\n");
    let (fifth, _) = run(13, with_other.as_bytes());
    assert_eq!(get(&fifth, "filesystem_size_bytes", other), None);
    let (sixth, _) = run(22, with_other.as_bytes());
    assert!(get(&sixth, "filesystem_size_bytes", other).is_some());

    // A mount point that is not UTF-8 cannot be a label: left out, not a failure.
    let (seventh, failures) = run(
        40,
        b"/dev/vda /mnt/caf\xe9 ext4 rw 0 0\n/dev/vda / ext4 rw 0 0\n",
    );
    assert!(failures.is_empty(), "{failures:?}");
    assert!(seventh.iter().all(|s| s.key.label("mount") == Some("/")));
}

#[test]
fn inodes_used_ratio_is_zero_without_an_inode_table() {
    let vfs = StatVfs {
        f_bsize: 4096,
        f_frsize: 4096,
        f_blocks: 1000,
        f_bfree: 300,
        f_bavail: 250,
        f_files: 0,
        f_ffree: 0,
        f_favail: 0,
        f_fsid: 0,
        f_flag: StatVfsMountFlags::empty(),
        f_namemax: 255,
    };
    assert_eq!(Usage::from_statvfs(&vfs).inodes_used_ratio(), 0.0);
    let vfs = StatVfs {
        f_files: 1000,
        f_ffree: 250,
        ..vfs
    };
    assert_eq!(Usage::from_statvfs(&vfs).inodes_used_ratio(), 0.75);
}
