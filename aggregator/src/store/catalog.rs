//! The series catalog in memory: every series id, its host and key, in a few dozen bytes per
//! series (a key is one packed byte string; hosts are numbered; the lookup table holds ids
//! only and hashes the packed keys).

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;
use nines_common::{HostId, SeriesKey};

/// A series as the catalog keeps it.
#[derive(Debug)]
struct Entry {
    host: u32,
    /// Name, then each label: `[len u8] name`, then per label `[len u8] k [len u16 LE] v`.
    key: Box<[u8]>,
}

/// Every series id, its host and key. Ids are dense from 0.
#[derive(Debug, Default)]
pub(super) struct Catalog {
    hosts: Vec<HostId>,
    host_index: std::collections::HashMap<HostId, u32>,
    entries: Vec<Entry>,
    table: HashTable<u32>,
    hasher: RandomState,
    /// Series per host number.
    per_host: Vec<u32>,
}

/// Packs a key (names are at most 200 bytes and label values 1024, see
/// [`SeriesKey::validate`]; longer ones are cut, which validation has refused before).
fn pack(key: &SeriesKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        1 + key.name.len()
            + key
                .labels
                .iter()
                .map(|(k, v)| 3 + k.len() + v.len())
                .sum::<usize>(),
    );
    let name = &key.name.as_bytes()[..key.name.len().min(255)];
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    for (k, v) in &key.labels {
        let k = &k.as_bytes()[..k.len().min(255)];
        let v = &v.as_bytes()[..v.len().min(65_535)];
        out.push(k.len() as u8);
        out.extend_from_slice(k);
        out.extend_from_slice(&(v.len() as u16).to_le_bytes());
        out.extend_from_slice(v);
    }
    out
}

/// The name and label pairs of a packed key, borrowed.
fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or_default()
}

fn unpack(packed: &[u8]) -> (&str, Vec<(&str, &str)>) {
    let n = usize::from(packed.first().copied().unwrap_or(0));
    let name = text(packed.get(1..1 + n).unwrap_or_default());
    let mut labels = Vec::new();
    let mut pos = 1 + n;
    while pos < packed.len() {
        let kl = usize::from(packed[pos]);
        let k = text(packed.get(pos + 1..pos + 1 + kl).unwrap_or_default());
        pos += 1 + kl;
        let Some(len) = packed.get(pos..pos + 2) else {
            break;
        };
        let vl = usize::from(u16::from_le_bytes([len[0], len[1]]));
        let v = text(packed.get(pos + 2..pos + 2 + vl).unwrap_or_default());
        pos += 2 + vl;
        labels.push((k, v));
    }
    (name, labels)
}

impl Catalog {
    fn hash(&self, host: u32, packed: &[u8]) -> u64 {
        self.hasher.hash_one((host, packed))
    }

    /// The number of ids handed out.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Series of `host`.
    pub(super) fn count_for(&self, host: &HostId) -> usize {
        self.host_number(host)
            .and_then(|h| self.per_host.get(h as usize))
            .map_or(0, |n| *n as usize)
    }

    /// The number of a known host.
    pub(super) fn host_number(&self, host: &HostId) -> Option<u32> {
        self.host_index.get(host).copied()
    }

    fn number_host(&mut self, host: &HostId) -> u32 {
        if let Some(n) = self.host_index.get(host) {
            return *n;
        }
        let n = self.hosts.len() as u32;
        self.hosts.push(host.clone());
        self.host_index.insert(host.clone(), n);
        n
    }

    /// The id of a series, if known.
    pub(super) fn get(&self, host: &HostId, key: &SeriesKey) -> Option<u32> {
        let h = self.host_number(host)?;
        let packed = pack(key);
        let hash = self.hash(h, &packed);
        self.table
            .find(hash, |&id| {
                let e = &self.entries[id as usize];
                e.host == h && *e.key == *packed
            })
            .copied()
    }

    /// Adds a series under the next id and returns it. The caller checked that it is new.
    pub(super) fn push(&mut self, host: &HostId, key: &SeriesKey) -> u32 {
        let h = self.number_host(host);
        if self.per_host.len() <= h as usize {
            self.per_host.resize(h as usize + 1, 0);
        }
        self.per_host[h as usize] += 1;
        let id = self.entries.len() as u32;
        let packed = pack(key).into_boxed_slice();
        let hash = self.hash(h, &packed);
        self.entries.push(Entry {
            host: h,
            key: packed,
        });
        let Self {
            table,
            entries,
            hasher,
            ..
        } = self;
        table.insert_unique(hash, id, |&other| {
            let e = &entries[other as usize];
            hasher.hash_one((e.host, &*e.key))
        });
        id
    }

    /// Fills ids up to `id` (exclusive) with placeholders nobody can name: ids are dense, but
    /// a store may have lost a row.
    pub(super) fn pad_to(&mut self, id: usize) {
        while self.entries.len() < id {
            self.entries.push(Entry {
                host: u32::MAX,
                key: Box::new([]),
            });
        }
    }

    /// The host number of series `id`.
    pub(super) fn host_of(&self, id: u32) -> Option<u32> {
        self.entries.get(id as usize).map(|e| e.host)
    }

    /// Host and key of series `id`.
    pub(super) fn series(&self, id: u32) -> Option<(&HostId, SeriesKey)> {
        let e = self.entries.get(id as usize)?;
        let host = self.hosts.get(e.host as usize)?;
        let (name, labels) = unpack(&e.key);
        let labels = labels
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Some((host, SeriesKey::from_parts(name.to_owned(), labels)))
    }

    /// Ids and keys of `host`'s series named `name` (any if `None`) whose labels include every
    /// `(k, v)` of `matchers`.
    pub(super) fn matching(
        &self,
        host: &str,
        name: Option<&str>,
        matchers: &[(String, String)],
    ) -> Vec<(u32, SeriesKey)> {
        let Some(h) = HostId::new(host).ok().and_then(|h| self.host_number(&h)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (id, e) in self.entries.iter().enumerate() {
            if e.host != h || e.key.is_empty() {
                continue;
            }
            let (n, labels) = unpack(&e.key);
            if name.is_some_and(|want| want != n) {
                continue;
            }
            let all = matchers.iter().all(|(k, v)| {
                labels
                    .iter()
                    .any(|(lk, lv)| *lk == k.as_str() && *lv == v.as_str())
            });
            if all {
                let labels = labels
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                out.push((id as u32, SeriesKey::from_parts(n.to_owned(), labels)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn keys_round_trip_and_are_found_by_host_and_key() {
        let mut c = Catalog::default();
        let web = HostId::new("web-1").unwrap();
        let db = HostId::new("db-1").unwrap();
        let k1 = SeriesKey::new("cpu_usage_ratio", &[("cpu", "total")]);
        let k2 = SeriesKey::new(
            "disk_read_bytes_per_second",
            &[("device", "dm 0\0x"), ("z", "")],
        );
        let a = c.push(&web, &k1);
        let b = c.push(&db, &k1);
        let d = c.push(&web, &k2);
        assert_eq!((a, b, d), (0, 1, 2));
        assert_eq!(c.get(&web, &k1), Some(0));
        assert_eq!(c.get(&db, &k1), Some(1));
        assert_eq!(c.get(&db, &k2), None);
        assert_eq!(c.series(2).unwrap(), (&web, k2.clone()));
        assert_eq!(c.host_of(1), c.host_number(&db));
        let found = c.matching("web-1", None, &[("cpu".into(), "total".into())]);
        assert_eq!(found, vec![(0, k1)]);
        assert_eq!(
            c.matching("web-1", Some("disk_read_bytes_per_second"), &[])
                .len(),
            1
        );
        assert!(c.matching("nobody", None, &[]).is_empty());
        c.pad_to(5);
        assert_eq!(c.len(), 5);
        assert!(c.matching("web-1", None, &[]).len() == 2);
        // Many series: each still found under its own id.
        for i in 0..5000 {
            let k = SeriesKey::new("m", &[("i", &i.to_string())]);
            let id = c.push(&web, &k);
            assert_eq!(c.get(&web, &k), Some(id));
        }
    }
}
