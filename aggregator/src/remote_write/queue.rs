//! The durable, bounded remote-write queue: append-only segment files of records, and a cursor
//! file saying how far the receiver has acknowledged.
//!
//! A record is `[len u32 LE][crc32 u32 LE][samples u32 LE][payload]`, the payload a
//! snappy-compressed `WriteRequest`. Appends are fsynced before the appender takes more work.
//! The cursor (`segment offset`) is rewritten (write and rename) after each acknowledged send;
//! it is not fsynced, so after a crash a few requests may be sent again, which a receiver
//! takes as duplicates. Each run appends to a fresh segment, so a record torn by a crash is
//! only ever at the end of an older segment, where the reader skips it. Past `max_bytes` the
//! oldest segment is deleted, read or not, and its unread samples are counted as dropped.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A segment is closed and a new one started past this size.
const SEGMENT_BYTES: u64 = 8 << 20;
const HEADER: usize = 12;
/// Largest payload accepted when reading (a record over this is corrupt).
const MAX_RECORD: usize = 64 << 20;

/// A payload and the samples in it.
pub type Record = (Vec<u8>, u32);
/// Segment id and byte offset in it.
pub type Position = (u64, u64);

#[derive(Debug)]
struct Segment {
    id: u64,
    bytes: u64,
    /// Samples in records not yet acknowledged.
    unread: u64,
}

/// The queue. Not shared: wrap it in a mutex.
#[derive(Debug)]
pub struct Queue {
    dir: PathBuf,
    max_bytes: u64,
    segments: VecDeque<Segment>,
    writer: File,
    /// Segment and offset of the next record to send.
    cursor: (u64, u64),
    /// Samples dropped because the queue was full, since start.
    pub dropped: u64,
}

fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016}.seg"))
}

fn read_record(f: &mut File) -> io::Result<Option<(Vec<u8>, u32)>> {
    let mut h = [0u8; HEADER];
    let mut got = 0;
    while got < HEADER {
        let n = f.read(&mut h[got..])?;
        if n == 0 {
            return Ok(None);
        }
        got += n;
    }
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
    let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    let samples = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if len > MAX_RECORD {
        return Ok(None);
    }
    let mut payload = vec![0u8; len];
    if f.read_exact(&mut payload).is_err() || crc32fast::hash(&payload) != crc {
        return Ok(None);
    }
    Ok(Some((payload, samples)))
}

impl Queue {
    /// Opens (or creates) the queue in `dir`, bounded to `max_bytes`.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut ids: Vec<u64> = std::fs::read_dir(dir)?
            .filter_map(|e| {
                let name = e.ok()?.file_name();
                name.to_str()?.strip_suffix(".seg")?.parse().ok()
            })
            .collect();
        ids.sort_unstable();
        let cursor = std::fs::read_to_string(dir.join("cursor"))
            .ok()
            .and_then(|t| {
                let (a, b) = t.trim().split_once(' ')?;
                Some((a.parse().ok()?, b.parse().ok()?))
            })
            .unwrap_or((ids.first().copied().unwrap_or(1), 0));
        let mut segments = VecDeque::new();
        for id in ids {
            if id < cursor.0 {
                std::fs::remove_file(seg_path(dir, id))?;
                continue;
            }
            let mut f = File::open(seg_path(dir, id))?;
            let bytes = f.metadata()?.len();
            let mut unread = 0u64;
            let mut pos = 0u64;
            while let Some((p, n)) = read_record(&mut f)? {
                if id > cursor.0 || pos >= cursor.1 {
                    unread += u64::from(n);
                }
                pos += (HEADER + p.len()) as u64;
            }
            segments.push_back(Segment { id, bytes, unread });
        }
        let next = segments.back().map_or(cursor.0.max(1), |s| s.id + 1);
        let writer = Self::create(dir, next)?;
        segments.push_back(Segment {
            id: next,
            bytes: 0,
            unread: 0,
        });
        let cursor = if segments.front().is_some_and(|s| s.id == cursor.0) {
            cursor
        } else {
            (segments.front().map_or(next, |s| s.id), 0)
        };
        Ok(Self {
            dir: dir.to_owned(),
            max_bytes,
            segments,
            writer,
            cursor,
            dropped: 0,
        })
    }

    fn create(dir: &Path, id: u64) -> io::Result<File> {
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(seg_path(dir, id))?;
        File::open(dir)?.sync_all()?;
        Ok(f)
    }

    /// Appends records (payload, samples) and syncs them to disk.
    pub fn append(&mut self, records: &[(Vec<u8>, u32)]) -> io::Result<()> {
        for (payload, samples) in records {
            if self
                .segments
                .back()
                .is_some_and(|s| s.bytes >= SEGMENT_BYTES)
            {
                self.writer.sync_data()?;
                let id = self.segments.back().map_or(1, |s| s.id + 1);
                self.writer = Self::create(&self.dir, id)?;
                self.segments.push_back(Segment {
                    id,
                    bytes: 0,
                    unread: 0,
                });
            }
            let mut buf = Vec::with_capacity(HEADER + payload.len());
            buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            buf.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
            buf.extend_from_slice(&samples.to_le_bytes());
            buf.extend_from_slice(payload);
            self.writer.write_all(&buf)?;
            if let Some(s) = self.segments.back_mut() {
                s.bytes += buf.len() as u64;
                s.unread += u64::from(*samples);
            }
        }
        self.writer.sync_data()?;
        self.enforce_bound()
    }

    fn enforce_bound(&mut self) -> io::Result<()> {
        while self.bytes() > self.max_bytes && self.segments.len() > 1 {
            let Some(old) = self.segments.pop_front() else {
                break;
            };
            std::fs::remove_file(seg_path(&self.dir, old.id))?;
            self.dropped += old.unread;
            if self.cursor.0 <= old.id {
                self.cursor = (self.segments.front().map_or(old.id + 1, |s| s.id), 0);
                self.save_cursor()?;
            }
            tracing::warn!(
                samples = old.unread,
                "remote-write queue over its bound; dropped its oldest segment"
            );
        }
        Ok(())
    }

    /// Bytes of the segment files.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Samples not yet acknowledged.
    pub fn pending(&self) -> u64 {
        self.segments.iter().map(|s| s.unread).sum()
    }

    /// Reads records from the cursor on, up to `max_samples` samples in all (at least one
    /// record), without consuming them. Returns the payloads, their sample counts, and the
    /// cursor after them; pass that to [`Queue::ack`] once they are delivered.
    pub fn peek(&mut self, max_samples: u64) -> io::Result<(Vec<Record>, Position)> {
        let mut out = Vec::new();
        let mut total = 0u64;
        let mut at = self.cursor;
        loop {
            let last = self.segments.back().map_or(0, |s| s.id);
            let mut f = match File::open(seg_path(&self.dir, at.0)) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound && at.0 < last => {
                    at = (at.0 + 1, 0);
                    continue;
                }
                Err(e) => return Err(e),
            };
            f.seek(SeekFrom::Start(at.1))?;
            loop {
                if !out.is_empty() && total >= max_samples {
                    return Ok((out, at));
                }
                match read_record(&mut f)? {
                    Some((p, n)) => {
                        if !out.is_empty() && total + u64::from(n) > max_samples {
                            return Ok((out, at));
                        }
                        at.1 += (HEADER + p.len()) as u64;
                        total += u64::from(n);
                        out.push((p, n));
                    }
                    None => break,
                }
            }
            if at.0 >= last {
                return Ok((out, at));
            }
            // The end (or a torn tail) of an older segment: go on with the next one.
            at = (at.0 + 1, 0);
        }
    }

    /// Consumes everything before `to` (from [`Queue::peek`]); `samples` were in it.
    pub fn ack(&mut self, to: (u64, u64), samples: u64) -> io::Result<()> {
        let mut left = samples;
        for s in self.segments.iter_mut() {
            if s.id > to.0 || left == 0 {
                break;
            }
            let take = left.min(s.unread);
            s.unread -= take;
            left -= take;
        }
        self.cursor = to;
        let last = self.segments.back().map_or(0, |s| s.id);
        while let Some(front) = self.segments.front() {
            if front.id < to.0 && front.id < last {
                std::fs::remove_file(seg_path(&self.dir, front.id))?;
                self.segments.pop_front();
            } else {
                break;
            }
        }
        self.save_cursor()
    }

    fn save_cursor(&self) -> io::Result<()> {
        let tmp = self.dir.join("cursor.tmp");
        std::fs::write(&tmp, format!("{} {}\n", self.cursor.0, self.cursor.1))?;
        std::fs::rename(tmp, self.dir.join("cursor"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rec(i: u8, n: u32) -> (Vec<u8>, u32) {
        (vec![i; 100], n)
    }

    #[test]
    fn records_come_back_in_order_and_survive_reopening_until_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = Queue::open(dir.path(), 1 << 30).unwrap();
        q.append(&[rec(1, 10), rec(2, 20)]).unwrap();
        q.append(&[rec(3, 30)]).unwrap();
        assert_eq!(q.pending(), 60);
        let (got, to) = q.peek(25).unwrap();
        assert_eq!(got, vec![rec(1, 10)], "stops before going over 25 samples");
        q.ack(to, 10).unwrap();
        drop(q);

        let mut q = Queue::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(q.pending(), 50);
        let (got, to) = q.peek(1000).unwrap();
        assert_eq!(got, vec![rec(2, 20), rec(3, 30)]);
        q.append(&[rec(4, 1)]).unwrap();
        q.ack(to, 50).unwrap();
        let (got, to) = q.peek(1000).unwrap();
        assert_eq!(
            got,
            vec![rec(4, 1)],
            "a reopened queue writes a new segment, read after the old"
        );
        q.ack(to, 1).unwrap();
        assert_eq!(q.pending(), 0);
        assert_eq!(q.peek(1000).unwrap().0, vec![]);
    }

    #[test]
    fn a_torn_tail_is_skipped_and_what_follows_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = Queue::open(dir.path(), 1 << 30).unwrap();
        q.append(&[rec(1, 1), rec(2, 1)]).unwrap();
        drop(q);
        let seg = seg_path(dir.path(), 1);
        let len = std::fs::metadata(&seg).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 10)
            .unwrap();
        let mut q = Queue::open(dir.path(), 1 << 30).unwrap();
        q.append(&[rec(3, 1)]).unwrap();
        let (got, _) = q.peek(1000).unwrap();
        assert_eq!(got, vec![rec(1, 1), rec(3, 1)]);
    }

    #[test]
    fn past_its_bound_the_oldest_segment_goes_and_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = Queue::open(dir.path(), SEGMENT_BYTES + SEGMENT_BYTES / 2).unwrap();
        let big = (vec![7u8; (SEGMENT_BYTES / 4) as usize], 5);
        for _ in 0..8 {
            q.append(std::slice::from_ref(&big)).unwrap();
        }
        assert!(
            q.bytes() <= SEGMENT_BYTES + SEGMENT_BYTES / 2,
            "{}",
            q.bytes()
        );
        assert!(q.dropped >= 5 * 4, "{}", q.dropped);
        assert_eq!(q.pending() + q.dropped, 40);
        let (got, _) = q.peek(u64::MAX).unwrap();
        assert_eq!(got.len() as u64 * 5, q.pending());
    }
}
