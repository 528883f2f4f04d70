//! Prometheus remote-write 1.0 messages (`prometheus/prompb/remote.proto`, `types.proto`):
//! only the fields a sender of samples fills.

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// Series and their samples.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Sorted by name, `__name__` included.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// In timestamp order.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct Label {
    /// Label name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Label value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

impl WriteRequest {
    /// Samples in the request.
    pub fn samples(&self) -> usize {
        self.timeseries.iter().map(|t| t.samples.len()).sum()
    }

    /// Appends `other`'s samples, series by series, after this request's own: samples of a
    /// series stay in the order they were added.
    pub fn merge(&mut self, other: WriteRequest) {
        let mut index: std::collections::HashMap<Vec<Label>, usize> = self
            .timeseries
            .iter()
            .enumerate()
            .map(|(i, t)| (t.labels.clone(), i))
            .collect();
        for t in other.timeseries {
            match index.get(&t.labels) {
                Some(&i) => self.timeseries[i].samples.extend(t.samples),
                None => {
                    index.insert(t.labels.clone(), self.timeseries.len());
                    self.timeseries.push(t);
                }
            }
        }
    }
}
