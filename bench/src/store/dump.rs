//! Reading a whole store back: every series with its raw points, and the count of samples.

#[allow(unused_imports)]
use super::*;

/// Every series of a store: host, name, labels and all its raw points (closed chunks and
/// heads).
pub(crate) type SeriesDump = (String, String, Vec<(String, String)>, Vec<(i64, f64)>);

pub(crate) fn all_series(store: &Store) -> Result<Vec<SeriesDump>, StoreBenchError> {
    let mut out = Vec::new();
    for host in store.hosts() {
        for s in store.series(&host.host)? {
            let matchers: Vec<(String, String)> = s
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect();
            let (_, answer) = store
                .query(
                    &host.host,
                    &s.name,
                    &matchers,
                    (i64::MIN / 2, i64::MAX / 2),
                    None,
                    u64::MAX,
                )
                .map_err(|e| StoreBenchError::Other(e.to_string()))?;
            // Matchers select series whose labels include these: keep only the exact one.
            if let Some(exact) = answer.into_iter().find(|a| a.labels == s.labels) {
                out.push((host.host.clone(), s.name, matchers, exact.points));
            }
        }
    }
    Ok(out)
}

/// Samples in a store: every raw point in chunks and heads.
pub(crate) fn count_samples(store: &Store) -> Result<u64, StoreBenchError> {
    Ok(all_series(store)?.iter().map(|s| s.3.len() as u64).sum())
}
