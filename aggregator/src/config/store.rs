//! The `[store]` section: the database file, retention by resolution, chunk size, head
//! age and cache, and the store options they make.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::store::StoreOptions;

pub(super) fn default_store_path() -> PathBuf {
    PathBuf::from("/var/lib/nines-aggregator/nines.redb")
}

/// `[store]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The redb database file. Default `/var/lib/nines-aggregator/nines.redb`.
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
    /// `[store.retention]`: how long each resolution is kept.
    #[serde(default)]
    pub retention: RetentionConfig,
    /// Points per chunk: a series' open chunk is closed and compressed at this many points.
    /// Default 240.
    #[serde(default = "default_chunk_points")]
    pub chunk_points: usize,
    /// An open chunk is closed after this long even if it is not full; it bounds the
    /// write-ahead data replayed at start. Default 1h.
    #[serde(default = "default_head_max_age", with = "humantime_serde")]
    pub head_max_age: Duration,
    /// Memory for redb's page cache, MiB. Default 64.
    #[serde(default = "default_cache_mib")]
    pub cache_mib: usize,
}

/// `[store.retention]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Raw points. Default 35d.
    #[serde(default = "default_raw_retention", with = "humantime_serde")]
    pub raw: Duration,
    /// 1 min rollups. Default 90d.
    #[serde(default = "default_1m_retention", with = "humantime_serde")]
    pub rollup_1m: Duration,
    /// 1 h rollups. Default 1098d (three years).
    #[serde(default = "default_1h_retention", with = "humantime_serde")]
    pub rollup_1h: Duration,
}

pub(super) fn chunk_points_max() -> usize {
    65_536
}

fn default_chunk_points() -> usize {
    StoreOptions::default().chunk_points
}
fn default_head_max_age() -> Duration {
    StoreOptions::default().head_max_age
}
fn default_cache_mib() -> usize {
    StoreOptions::default().cache_bytes >> 20
}
fn default_raw_retention() -> Duration {
    StoreOptions::default().raw_retention
}
fn default_1m_retention() -> Duration {
    StoreOptions::default().rollup_1m_retention
}
fn default_1h_retention() -> Duration {
    StoreOptions::default().rollup_1h_retention
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            raw: default_raw_retention(),
            rollup_1m: default_1m_retention(),
            rollup_1h: default_1h_retention(),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: default_store_path(),
            retention: RetentionConfig::default(),
            chunk_points: default_chunk_points(),
            head_max_age: default_head_max_age(),
            cache_mib: default_cache_mib(),
        }
    }
}

impl StoreConfig {
    /// The store's options.
    pub fn options(&self) -> StoreOptions {
        StoreOptions {
            raw_retention: self.retention.raw,
            rollup_1m_retention: self.retention.rollup_1m,
            rollup_1h_retention: self.retention.rollup_1h,
            chunk_points: self.chunk_points,
            head_max_age: self.head_max_age,
            cache_bytes: self.cache_mib << 20,
            ..StoreOptions::default()
        }
    }
}
