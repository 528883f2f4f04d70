//! Spool records as wire batches, series dictionary-encoded per connection.

use std::collections::HashMap;

use nines_common::SeriesKey;
use nines_common::proto::{Batch, Point, SeriesDef};

use crate::spool::SpoolRecord;

/// Turns a spool record into a wire batch, defining series not yet defined on this connection.
pub fn encode_batch(record: SpoolRecord, dict: &mut HashMap<SeriesKey, u32>) -> Batch {
    let mut series_defs = Vec::new();
    let mut points = Vec::with_capacity(record.samples.len());
    for sample in record.samples {
        let id = match dict.get(&sample.key) {
            Some(id) => *id,
            None => {
                let id = dict.len() as u32;
                series_defs.push(SeriesDef {
                    id,
                    name: sample.key.name.clone(),
                    labels: sample.key.labels.clone(),
                });
                dict.insert(sample.key, id);
                id
            }
        };
        points.push(Point {
            series: id,
            ts_ms: sample.ts_ms,
            value: sample.value,
        });
    }
    Batch {
        seq: record.seq,
        series_defs,
        points,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use nines_common::Sample;

    #[test]
    fn series_are_defined_once_per_connection() {
        let rec = |seq| SpoolRecord {
            seq,
            ts_ms: 1000 * seq as i64,
            samples: vec![
                Sample {
                    key: SeriesKey::new("a", &[]),
                    ts_ms: 1000 * seq as i64,
                    value: 1.0,
                },
                Sample {
                    key: SeriesKey::new("b", &[("x", "y")]),
                    ts_ms: 1000 * seq as i64,
                    value: 2.0,
                },
            ],
        };
        let mut dict = HashMap::new();
        let first = encode_batch(rec(1), &mut dict);
        assert_eq!(first.series_defs.len(), 2);
        let second = encode_batch(rec(2), &mut dict);
        assert!(second.series_defs.is_empty());
        assert_eq!(second.points[1].series, first.series_defs[1].id);
        assert_eq!(second.points[1].value, 2.0);
    }
}
