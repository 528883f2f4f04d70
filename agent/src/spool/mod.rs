//! The durable, bounded on-disk queue between the collectors and the shipper.
//!
//! Append-only segment files `<first seq>.seg` in `<state_dir>/spool/`. A record is
//! `u32 BE payload length, u32 BE CRC-32 of the payload, payload`, the payload a
//! [`SpoolRecord`] encoded by `nines_common::proto::codec`. Every append is fsynced before it
//! returns (docs/design.md). On open, a torn or corrupt record at the tail of a segment is
//! truncated away, never fatal. The highest acknowledged sequence number is kept in `acked`;
//! segments wholly at or below it are deleted. When the size or age bound is exceeded the oldest
//! segment goes, and the loss is counted.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nines_common::Sample;
use nines_common::proto::codec;
use serde::{Deserialize, Serialize};

const HEADER: u64 = 8;
/// A record larger than this is corrupt: no tick produces 64 MiB.
const MAX_RECORD: u32 = 64 * 1024 * 1024;
/// The ack mark is written at most this often (and when the spool is dropped): losing it
/// costs only a resend of what was acked since, which the aggregator drops as duplicates.
pub const ACK_MARK_EVERY: Duration = Duration::from_secs(5);
/// Highest sequence number a record read back may carry. Numbering starts at the clock's
/// milliseconds (an `i64`) and grows by one per tick, so no spool gets near it; a record above
/// it is damage, and refusing it leaves appends 2^63 numbers before `u64` overflows.
const MAX_SEQ: u64 = i64::MAX as u64;
/// Bytes of the ack mark: 20 digits (any `u64`) and a newline.
const ACK_MARK_LEN: u64 = 21;

/// What one tick appended to the spool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpoolRecord {
    /// Sequence number, +1 per record, never reused by this spool.
    pub seq: u64,
    /// Timestamp of the tick, ms UTC.
    pub ts_ms: i64,
    /// The tick's samples.
    pub samples: Vec<Sample>,
}

/// A spool operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// File system error, with the file.
    #[error("spool {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A record could not be encoded.
    #[error("spool record: {0}")]
    Encode(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Size and age bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Total bytes of all segments.
    pub max_bytes: u64,
    /// Oldest record kept, by its tick timestamp.
    pub max_age: Duration,
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    first_seq: u64,
    /// Sequence number of the last record; `first_seq - 1` when empty.
    last_seq: u64,
    last_ts_ms: i64,
    /// Bytes of records.
    len: u64,
    /// Bytes the file occupies: segments are preallocated with zeros, so that appending does
    /// not change the file size and `fdatasync` has no inode to write.
    alloc: u64,
}

impl Segment {
    fn records(&self) -> u64 {
        self.last_seq + 1 - self.first_seq
    }
}

/// The spool. Not internally synchronised: share it behind a mutex.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    limits: Limits,
    segments: VecDeque<Segment>,
    writer: Option<File>,
    next_seq: u64,
    acked: u64,
    /// Handle on `acked`, rewritten in place at most every [`ACK_MARK_EVERY`].
    acked_file: Option<File>,
    /// The value last written to `acked`, and when.
    acked_written: (u64, Option<std::time::Instant>),
    /// The newest record, kept after its append so that the shipper can take it without
    /// reading it back from disk. It is only handed out once it is fsynced.
    tail: Option<SpoolRecord>,
    dropped: u64,
}

/// A position in the spool for the shipper: the next sequence number it wants.
#[derive(Debug)]
pub struct Cursor {
    next: u64,
    /// Segment (by first seq), its open file, and the byte offset where `next` was last
    /// found, to avoid reopening and rescanning.
    hint: Option<(u64, File, u64)>,
}

impl Cursor {
    /// A cursor that starts at `seq`.
    pub fn at(seq: u64) -> Self {
        Self {
            next: seq,
            hint: None,
        }
    }
}

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, repairing a torn tail. `now_ms` seeds the first
    /// sequence number of a brand-new spool, so that a spool recreated after its directory was
    /// wiped still counts upwards from anything the aggregator has seen.
    pub fn open(dir: &Path, limits: Limits, now_ms: i64) -> Result<Self, SpoolError> {
        // The spool holds every sample not yet acknowledged: the agent's user alone reads it.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
        let acked_path = dir.join("acked");
        // Read as bytes: a damaged mark need not even be UTF-8, and is no reason not to start.
        let acked = match fs::read(&acked_path) {
            Ok(bytes) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .filter(|&a: &u64| a <= MAX_SEQ)
                .unwrap_or_else(|| {
                    // Only a torn in-place rewrite can do this. Sending everything again is
                    // safe: the aggregator drops what it already has.
                    tracing::warn!(path = %acked_path.display(), "unreadable ack mark; resending the whole spool");
                    0
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io(&acked_path)(e)),
        };
        let mut names: Vec<(u64, PathBuf)> = Vec::new();
        for entry in fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            let name = entry.file_name();
            let Some(first) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| n.parse::<u64>().ok())
                // Sequence numbers start at 1: no segment of this spool is called `0.seg`.
                .filter(|&first| first > 0)
            else {
                continue;
            };
            names.push((first, entry.path()));
        }
        names.sort();
        let mut segments = VecDeque::new();
        for (first_seq, path) in names {
            let seg = scan_segment(&path, first_seq)?;
            if seg.records() == 0 || seg.last_seq <= acked {
                fs::remove_file(&path).map_err(io(&path))?;
                continue;
            }
            segments.push_back(seg);
        }
        let next_seq = match segments.back() {
            Some(s) => s.last_seq + 1,
            None if acked > 0 => acked + 1,
            None => u64::try_from(now_ms).unwrap_or(1).max(1),
        };
        Ok(Self {
            dir: dir.to_owned(),
            limits,
            segments,
            writer: None,
            next_seq,
            acked,
            acked_file: None,
            acked_written: (acked, None),
            tail: None,
            dropped: 0,
        })
    }

    /// Appends one tick's samples and fsyncs them. Returns the record's sequence number. On
    /// error nothing was appended (a partial write is cut off again).
    pub fn append(&mut self, ts_ms: i64, samples: Vec<Sample>) -> Result<u64, SpoolError> {
        let seq = self.next_seq;
        let record = SpoolRecord {
            seq,
            ts_ms,
            samples,
        };
        let payload = codec::encode(&record, u64::from(MAX_RECORD))
            .map_err(|e| SpoolError::Encode(e.to_string()))?;
        let size = HEADER + payload.len() as u64;
        self.enforce_limits(ts_ms, size)?;
        let rotate = match self.segments.back() {
            None => true,
            Some(s) => self.writer.is_none() || s.len + size > self.limits.segment_bytes,
        };
        if rotate {
            self.start_segment(seq)?;
        }
        let (Some(file), Some(seg)) = (self.writer.as_mut(), self.segments.back_mut()) else {
            return Err(io(&self.dir)(std::io::Error::other("no open segment")));
        };
        let mut buf = Vec::with_capacity(size as usize);
        buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        buf.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
        buf.extend_from_slice(&payload);
        let written = file
            .write_all_at(&buf, seg.len)
            .and_then(|()| file.sync_data());
        if let Err(e) = written {
            // Leave the segment as it was, so the next append does not follow garbage.
            let _ = file.set_len(seg.len);
            self.writer = None;
            return Err(io(&seg.path)(e));
        }
        seg.len += size;
        seg.alloc = seg.alloc.max(seg.len);
        seg.last_seq = seq;
        seg.last_ts_ms = ts_ms;
        self.next_seq += 1;
        self.tail = Some(record);
        Ok(seq)
    }

    fn start_segment(&mut self, first_seq: u64) -> Result<(), SpoolError> {
        let path = self.dir.join(segment_name(first_seq));
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io(&path))?;
        // Write the zeros for real (not fallocate): unwritten extents would need converting,
        // a metadata write, on every later fdatasync.
        let zeros = vec![0u8; 16 * 1024];
        let mut alloc = 0u64;
        while alloc < self.limits.segment_bytes {
            let n = (self.limits.segment_bytes - alloc).min(zeros.len() as u64) as usize;
            file.write_all_at(&zeros[..n], alloc).map_err(io(&path))?;
            alloc += n as u64;
        }
        file.sync_all().map_err(io(&path))?;
        // Make the new directory entry durable, or a crash could lose the whole segment.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        self.writer = Some(file);
        self.segments.push_back(Segment {
            path,
            first_seq,
            last_seq: first_seq - 1,
            last_ts_ms: i64::MIN,
            len: 0,
            alloc,
        });
        Ok(())
    }

    fn enforce_limits(&mut self, now_ms: i64, incoming: u64) -> Result<(), SpoolError> {
        let max_age_ms = i64::try_from(self.limits.max_age.as_millis()).unwrap_or(i64::MAX);
        loop {
            let total: u64 = self.segments.iter().map(|s| s.alloc).sum::<u64>() + incoming;
            let Some(oldest) = self.segments.front() else {
                return Ok(());
            };
            let too_big = total > self.limits.max_bytes;
            let too_old =
                oldest.records() > 0 && now_ms.saturating_sub(oldest.last_ts_ms) > max_age_ms;
            if !too_big && !too_old {
                return Ok(());
            }
            let Some(seg) = self.segments.pop_front() else {
                return Ok(());
            };
            if self.segments.is_empty() {
                self.writer = None;
            }
            let lost = seg
                .last_seq
                .saturating_sub(self.acked.max(seg.first_seq - 1));
            self.dropped += lost;
            tracing::warn!(
                segment = %seg.path.display(),
                lost_batches = lost,
                reason = if too_big { "size" } else { "age" },
                "spool full: dropped the oldest unacknowledged data"
            );
            fs::remove_file(&seg.path).map_err(io(&seg.path))?;
        }
    }

    /// Records that the aggregator durably stored everything through `seq`, and deletes
    /// segments that hold nothing newer.
    pub fn ack(&mut self, seq: u64) -> Result<(), SpoolError> {
        if seq <= self.acked {
            return Ok(());
        }
        self.acked = seq.min(self.next_seq.saturating_sub(1)).max(self.acked);
        let due = self
            .acked_written
            .1
            .is_none_or(|at| at.elapsed() >= ACK_MARK_EVERY);
        if due {
            self.write_ack_mark()?;
        }
        // Fully acknowledged segments go, except the one being appended to: deleting and
        // recreating it on every tick would cost two fsyncs.
        while self.segments.len() > 1 {
            let Some(seg) = self.segments.front() else {
                break;
            };
            if seg.last_seq > self.acked {
                break;
            }
            let path = seg.path.clone();
            self.segments.pop_front();
            fs::remove_file(&path).map_err(io(&path))?;
        }
        Ok(())
    }

    /// Writes the ack mark now. Rewritten in place (fixed width, one small write) and not
    /// fsynced: if it is lost or torn, batches are sent again and the aggregator drops the
    /// duplicates by sequence number.
    pub fn write_ack_mark(&mut self) -> Result<(), SpoolError> {
        if self.acked_written.0 == self.acked && self.acked_written.1.is_some() {
            return Ok(());
        }
        let path = self.dir.join("acked");
        if self.acked_file.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .open(&path)
                .map_err(io(&path))?;
            // Rewrites in place cover only the mark's fixed width: a longer file left by
            // anything else would keep its tail through every rewrite, stay unreadable, and
            // have every start resend the whole spool. Cut it to the width once per handle.
            f.set_len(ACK_MARK_LEN).map_err(io(&path))?;
            self.acked_file = Some(f);
        }
        if let Some(f) = &self.acked_file {
            f.write_all_at(format!("{:020}\n", self.acked).as_bytes(), 0)
                .map_err(io(&path))?;
        }
        self.acked_written = (self.acked, Some(std::time::Instant::now()));
        Ok(())
    }

    /// Reads the next record at or after the cursor, if one has been appended.
    pub fn read(&mut self, cursor: &mut Cursor) -> Result<Option<SpoolRecord>, SpoolError> {
        cursor.next = cursor.next.max(self.acked + 1);
        match &self.tail {
            Some(t) if t.seq == cursor.next => {
                cursor.next += 1;
                return Ok(self.tail.take());
            }
            Some(t) if t.seq < cursor.next => self.tail = None,
            _ => {}
        }
        let Some(seg) = self
            .segments
            .iter()
            .find(|s| s.records() > 0 && s.last_seq >= cursor.next)
        else {
            return Ok(None);
        };
        // Data lost to overflow leaves a gap: jump over it.
        cursor.next = cursor.next.max(seg.first_seq);
        let (file, mut offset) = match cursor.hint.take() {
            Some((first, file, off)) if first == seg.first_seq => (file, off),
            _ => (File::open(&seg.path).map_err(io(&seg.path))?, 0),
        };
        while offset + HEADER <= seg.len {
            let mut header = [0u8; HEADER as usize];
            file.read_exact_at(&mut header, offset)
                .map_err(io(&seg.path))?;
            let len = u64::from(u32::from_be_bytes([
                header[0], header[1], header[2], header[3],
            ]));
            let mut payload = vec![0u8; len as usize];
            file.read_exact_at(&mut payload, offset + HEADER)
                .map_err(io(&seg.path))?;
            offset += HEADER + len;
            let record: SpoolRecord = codec::decode(&payload).map_err(|e| SpoolError::Io {
                path: seg.path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
            })?;
            if record.seq >= cursor.next {
                cursor.next = record.seq + 1;
                cursor.hint = Some((seg.first_seq, file, offset));
                return Ok(Some(record));
            }
        }
        cursor.hint = Some((seg.first_seq, file, offset));
        Ok(None)
    }

    /// The highest acknowledged sequence number (0 if none).
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// The sequence number the next append will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Batches appended but not yet acknowledged.
    pub fn pending(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| s.last_seq.saturating_sub(self.acked.max(s.first_seq - 1)))
            .sum()
    }

    /// Bytes of records on disk (preallocated space not counted).
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    /// Bytes the spool's files occupy, preallocation included; bounded by `max_bytes`.
    pub fn allocated(&self) -> u64 {
        self.segments.iter().map(|s| s.alloc).sum()
    }

    /// Unacknowledged batches deleted because a bound was exceeded, since open.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if let Err(e) = self.write_ack_mark() {
            tracing::warn!("{e}");
        }
    }
}

/// Reads a segment, truncating it at the first torn or corrupt record.
fn scan_segment(path: &Path, first_seq: u64) -> Result<Segment, SpoolError> {
    let data = fs::read(path).map_err(io(path))?;
    let mut offset = 0usize;
    let mut last_seq = first_seq - 1;
    let mut last_ts_ms = i64::MIN;
    let mut bad = None;
    while offset < data.len() {
        let Some(header) = data.get(offset..offset + HEADER as usize) else {
            bad = Some("torn record header");
            break;
        };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        if len == 0 && crc == 0 {
            // The preallocated zeros: the clean end of the records.
            break;
        }
        let start = offset + HEADER as usize;
        let Some(payload) = (len <= MAX_RECORD)
            .then(|| data.get(start..start + len as usize))
            .flatten()
        else {
            bad = Some("torn record");
            break;
        };
        if crc32fast::hash(payload) != crc {
            bad = Some("checksum mismatch");
            break;
        }
        let Ok(record) = codec::decode::<SpoolRecord>(payload) else {
            bad = Some("undecodable record");
            break;
        };
        if record.seq > MAX_SEQ || record.seq != last_seq + 1 {
            bad = Some("sequence gap");
            break;
        }
        last_seq = record.seq;
        last_ts_ms = record.ts_ms;
        offset = start + len as usize;
    }
    let mut alloc = data.len() as u64;
    if let Some(why) = bad {
        tracing::warn!(
            segment = %path.display(),
            offset,
            "spool: {why}; truncating the segment there (data after it was never acknowledged complete)"
        );
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io(path))?;
        file.set_len(offset as u64)
            .and_then(|()| file.sync_all())
            .map_err(io(path))?;
        alloc = offset as u64;
    }
    Ok(Segment {
        path: path.to_owned(),
        first_seq,
        last_seq,
        last_ts_ms,
        len: offset as u64,
        alloc,
    })
}

#[cfg(test)]
mod tests;
