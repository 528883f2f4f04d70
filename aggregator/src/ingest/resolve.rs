//! From a batch as the agent sent it to a store write: the point checks' refusals counted,
//! the connection's series dictionary applied, the host's liveness series added.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use nines_common::proto::{Batch, ErrorCode, ErrorMsg};
use nines_common::{HostId, SeriesKey};

use crate::ingest::Connections;
use crate::ingest::check::{self, PointBounds};
use crate::store::{BatchWrite, Store};
use nines_common::model::now_ms;

/// A series id standing for "dropped": the host was at its series limit when it was defined.
const DROPPED: u32 = u32::MAX;

pub use nines_common::metrics::HOST_SAMPLES;

/// `points` plus one [`HOST_SAMPLES`] point (series `id`) per distinct timestamp among them.
pub fn with_host_samples(id: u32, mut points: Vec<(u32, i64, f64)>) -> Vec<(u32, i64, f64)> {
    let mut per_ts: std::collections::BTreeMap<i64, u32> = std::collections::BTreeMap::new();
    for &(series, ts, _) in &points {
        if series != id {
            *per_ts.entry(ts).or_default() += 1;
        }
    }
    points.extend(per_ts.into_iter().map(|(ts, n)| (id, ts, f64::from(n))));
    points
}

/// One connection's series: the dictionary its agent defined (connection id → store series
/// id), and whether the host's series limit was reported yet.
#[derive(Debug, Default)]
pub(crate) struct Series {
    dict: HashMap<u32, u32>,
    warned_series_limit: bool,
    host_samples_id: Option<u32>,
}

impl Series {
    /// `batch` as the store write to submit, or the error that closes the connection.
    /// Refused points and points dropped by the series limit are counted in `connections`.
    pub(crate) fn prepare(
        &mut self,
        store: &Store,
        host: &HostId,
        batch: Batch,
        connections: &Connections,
        points_bounds: &PointBounds,
        max_series_per_host: usize,
    ) -> Result<BatchWrite, ErrorMsg> {
        let batch_points = match check::check_batch(
            batch.seq,
            batch.points,
            now_ms(),
            points_bounds,
        ) {
            Ok((points, refused)) => {
                count_refused_points(connections, host, batch.seq, &refused);
                points
            }
            Err(bad) => {
                connections
                    .refused
                    .bad_sequence
                    .fetch_add(1, Ordering::Relaxed);
                if let Some(left_out) = connections.log_limit.allow(std::time::Instant::now()) {
                    tracing::warn!(%host, seq = batch.seq, left_out, "{bad}; closing the connection");
                }
                return Err(ErrorMsg {
                    code: ErrorCode::BadSequence,
                    message: bad.to_string(),
                });
            }
        };
        let resolved = resolve(
            store,
            host,
            &mut self.dict,
            batch.series_defs,
            batch_points,
            max_series_per_host,
        );
        let (points, dropped) = resolved.map_err(|message| ErrorMsg {
            code: ErrorCode::BadSeries,
            message,
        })?;
        if dropped > 0 {
            connections
                .refused
                .series_points
                .fetch_add(dropped, Ordering::Relaxed);
            if !self.warned_series_limit {
                self.warned_series_limit = true;
                tracing::warn!(
                    %host,
                    limit = max_series_per_host,
                    "host is at its series limit: points of new series are dropped \
                     ([ingest] max_series_per_host; a runaway label?)"
                );
            }
        }
        let id = match self.host_samples_id {
            Some(id) => id,
            None => {
                let id = store
                    .series_id(host, SeriesKey::new(HOST_SAMPLES, &[]))
                    .map_err(|e| ErrorMsg {
                        code: ErrorCode::StorageUnavailable,
                        message: e.to_string(),
                    })?;
                self.host_samples_id = Some(id);
                id
            }
        };
        Ok(BatchWrite {
            host: host.clone(),
            seq: batch.seq,
            points: with_host_samples(id, points),
        })
    }
}

/// A batch's points as store writes, and how many were dropped by the series limit.
type Resolved = (Vec<(u32, i64, f64)>, u64);

/// Counts the points a batch had refused, and says so in the log (rate-limited).
fn count_refused_points(
    connections: &Connections,
    host: &HostId,
    seq: u64,
    r: &crate::ingest::check::Refused,
) {
    if r.total() == 0 {
        return;
    }
    let c = &connections.refused;
    c.points_too_old.fetch_add(r.too_old, Ordering::Relaxed);
    c.points_too_far_in_future
        .fetch_add(r.too_far_in_future, Ordering::Relaxed);
    c.points_not_finite
        .fetch_add(r.not_finite, Ordering::Relaxed);
    if r.too_old + r.too_far_in_future == 0 {
        // Non-finite values are routine (a collector's 0/0) and not worth a line.
        return;
    }
    if let Some(left_out) = connections.log_limit.allow(std::time::Instant::now()) {
        tracing::warn!(
            %host,
            seq,
            too_old = r.too_old,
            too_far_in_future = r.too_far_in_future,
            first_ts_ms = r.first_ts_ms.unwrap_or_default(),
            aggregator_ms = now_ms(),
            left_out,
            "points refused: outside [ingest] max_point_age / max_future of the aggregator's \
             clock (a wrong clock on the host?); the rest of the batch is stored"
        );
    }
}

/// Applies a batch's series definitions to the connection dictionary (connection id → store
/// series id) and resolves its points, which [`crate::ingest::check::check_batch`] passed.
fn resolve(
    store: &Store,
    host: &HostId,
    dict: &mut HashMap<u32, u32>,
    defs: Vec<nines_common::proto::SeriesDef>,
    points: Vec<nines_common::proto::Point>,
    max_series_per_host: usize,
) -> Result<Resolved, String> {
    for def in defs {
        let key = SeriesKey::from_parts(def.name, def.labels);
        key.validate().map_err(|e| e.to_string())?;
        if dict.len() >= 1_000_000 {
            return Err("more than 1000000 series on one connection".into());
        }
        let id = store
            .series_id_within(host, key, max_series_per_host)
            .map_err(|e| e.to_string())?
            .unwrap_or(DROPPED);
        dict.insert(def.id, id);
    }
    let mut out = Vec::with_capacity(points.len());
    let mut dropped = 0;
    for p in points {
        match dict.get(&p.series) {
            Some(&DROPPED) => dropped += 1,
            Some(id) => out.push((*id, p.ts_ms, p.value)),
            None => return Err(format!("point refers to undefined series id {}", p.series)),
        }
    }
    Ok((out, dropped))
}
