//! Fetching a report: the token file, the HTTPS client, and `GET /api/v1/availability`, read
//! into the API's own answer type ([`crate::http::dto::AvailabilityReport`]) and turned into
//! the report's [`Availability`].

use std::fmt::Write as _;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{StatusCode, Url};

use super::{Availability, Incident, Period, ServiceAvailability, Total};
use crate::http::dto;

/// Why no report could be fetched. Every variant ends in exit status 2.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The token file cannot be read.
    #[error("token file {path}: {source}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Others may read or write the token file.
    #[error(
        "token file {path}: mode {mode:04o} lets others read or change it; \
         run `chmod 600 {path}` (owner read/write only)"
    )]
    TokenMode {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The token file holds no token.
    #[error("token file {0}: empty; put the token from `nines-aggregator token new` in it")]
    TokenEmpty(PathBuf),
    /// The `--ca` file is unusable.
    #[error("--ca {path}: {why}")]
    Ca {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// `--url` is not an http(s) URL.
    #[error("--url {url:?}: {why}; use e.g. http://127.0.0.1:7480 or https://nines.example.org")]
    Url {
        /// As given.
        url: String,
        /// Why.
        why: String,
    },
    /// No answer from the aggregator.
    #[error("cannot reach the aggregator at {url}: {why}")]
    Unreachable {
        /// The request URL.
        url: String,
        /// The error chain.
        why: String,
    },
    /// The token was refused (401) or lacks a role (403).
    #[error("the aggregator refused the token ({status}): {message}; check --token-file")]
    Refused {
        /// 401 or 403.
        status: StatusCode,
        /// The API's reason.
        message: String,
    },
    /// Any other error status.
    #[error("the aggregator answered {status}: {message}")]
    Api {
        /// The status.
        status: StatusCode,
        /// The API's reason.
        message: String,
    },
    /// A 200 whose body is not an availability report.
    #[error("the aggregator's answer is not an availability report: {0}")]
    Body(String),
    /// The aggregator has no services to report on.
    #[error("the aggregator has no [[services]] configured, so there is nothing to report")]
    NoServices,
}

/// What to fetch, from where.
#[derive(Debug, Clone)]
pub struct Fetch {
    /// Base URL of the aggregator's API, e.g. `http://127.0.0.1:7480`; a path prefix (behind a
    /// reverse proxy) is kept.
    pub url: String,
    /// The bearer token.
    pub token: String,
    /// Trust only the CA certificates in this PEM file instead of the system's roots.
    pub ca: Option<PathBuf>,
    /// The period.
    pub period: Period,
    /// One service instead of all.
    pub service: Option<String>,
    /// Limit for the whole request.
    pub timeout: Duration,
}

/// Reads a bearer token from `path`, trimmed. The file must be private to its owner (no bits
/// beyond 0600), as a token in a world-readable file is everyone's token.
pub fn read_token(path: &Path) -> Result<String, FetchError> {
    let io = |source| FetchError::TokenFile {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    // Checked on the open file, so the mode is that of the bytes read.
    let mode = file.metadata().map_err(io)?.permissions().mode() & 0o7777;
    if mode & !0o600 != 0 {
        return Err(FetchError::TokenMode {
            path: path.to_owned(),
            mode,
        });
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(io)?;
    let token = text.trim();
    if token.is_empty() {
        return Err(FetchError::TokenEmpty(path.to_owned()));
    }
    Ok(token.to_owned())
}

/// The request URL for `f`.
pub fn request_url(f: &Fetch) -> Result<Url, FetchError> {
    let mut query = vec![
        ("from", f.period.from.as_millisecond().to_string()),
        ("to", f.period.to.as_millisecond().to_string()),
    ];
    if let Some(s) = &f.service {
        query.push(("service", s.clone()));
    }
    api_url(&f.url, "/api/v1/availability", &query)
}

fn client(f: &Fetch) -> Result<reqwest::Client, FetchError> {
    http_client(&f.url, f.ca.as_deref(), f.timeout)
}

/// The HTTP client reports use: `timeout` for the whole request, and only the CA
/// certificates in `ca` trusted when given.
pub(crate) fn http_client(
    url: &str,
    ca: Option<&Path>,
    timeout: Duration,
) -> Result<reqwest::Client, FetchError> {
    struct F<'a> {
        url: &'a str,
        ca: Option<&'a Path>,
        timeout: Duration,
    }
    let f = F { url, ca, timeout };
    // reqwest is built without a crypto provider; rustls then needs a process default. An
    // error means one is already installed, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder()
        .timeout(f.timeout)
        .connect_timeout(f.timeout.min(Duration::from_secs(10)))
        .user_agent(concat!(
            "nines-aggregator/",
            env!("CARGO_PKG_VERSION"),
            " report"
        ));
    if let Some(path) = f.ca {
        let ca = |why: String| FetchError::Ca {
            path: path.to_owned(),
            why,
        };
        let pem = std::fs::read(path).map_err(|e| ca(e.to_string()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca(chain(&e)))?;
        if certs.is_empty() {
            return Err(ca("no PEM certificate in the file".into()));
        }
        b = b.tls_certs_only(certs);
    }
    b.build().map_err(|e| FetchError::Unreachable {
        url: f.url.to_owned(),
        why: chain(&e),
    })
}

/// The base URL `base` with `path` appended and `query` set, checked as `request_url` checks.
pub(crate) fn api_url(base: &str, path: &str, query: &[(&str, String)]) -> Result<Url, FetchError> {
    let bad = |why: String| FetchError::Url {
        url: base.to_owned(),
        why,
    };
    let mut url = Url::parse(base).map_err(|e| bad(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!(
            "scheme {:?} is not http or https",
            url.scheme()
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("give the base URL without ?query or #fragment".into()));
    }
    let full = format!("{}{path}", url.path().trim_end_matches('/'));
    url.set_path(&full);
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in query {
        q.append_pair(k, v);
    }
    url.set_query(Some(&q.finish()));
    Ok(url)
}

/// GETs `url` with the bearer token; the body of a 2xx, else the API's reason.
pub(crate) async fn get_body(
    client: &reqwest::Client,
    url: Url,
    token: &str,
) -> Result<String, FetchError> {
    let unreachable = |e: reqwest::Error| FetchError::Unreachable {
        url: url.to_string(),
        why: chain(&e),
    };
    let resp = client
        .get(url.clone())
        .bearer_auth(token)
        .send()
        .await
        .map_err(unreachable)?;
    let status = resp.status();
    let body = resp.text().await.map_err(unreachable)?;
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(FetchError::Refused {
            status,
            message: api_message(&body),
        });
    }
    if !status.is_success() {
        return Err(FetchError::Api {
            status,
            message: api_message(&body),
        });
    }
    Ok(body)
}

/// An error and its sources on one line: reqwest's own message alone rarely says why.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            let _ = write!(s, ": {m}");
        }
        cur = c.source();
    }
    s
}

fn api_message(body: &str) -> String {
    serde_json::from_str::<dto::ErrorBody>(body)
        .map(|e| e.error)
        .unwrap_or_else(|_| body.chars().take(200).collect::<String>().trim().to_owned())
}

/// The API's answer as a report shows it.
fn availability(r: dto::AvailabilityReport) -> Availability {
    Availability {
        from: r.from.unwrap_or_default(),
        to: r.to.unwrap_or_default(),
        services: r.services.into_iter().map(service).collect(),
        total: Total {
            verdict: Some(r.total.verdict),
            weighted_percent: r.total.weighted_percent,
            serial_percent: r.total.serial_percent,
            met: r.total.met,
        },
    }
}

fn service(s: dto::ServiceAvailability) -> ServiceAvailability {
    ServiceAvailability {
        service: s.service,
        verdict: Some(s.verdict),
        monitored_since: s.monitored_since,
        not_monitored_minutes: s.not_monitored_minutes,
        scheduled_minutes: s.scheduled_minutes,
        downtime_minutes: s.downtime_minutes,
        availability_percent: s.availability_percent,
        target_percent: s.target_percent,
        met: s.met,
        error_budget_minutes: s.error_budget_minutes,
        error_budget_minutes_left: s.error_budget_minutes_left,
        maintenance_minutes: s.maintenance_minutes,
        incident_count: s.incident_count as u64,
        mttr_minutes: s.mttr_minutes,
        mtbf_minutes: s.mtbf_minutes,
        incidents: s.incidents.into_iter().map(incident).collect(),
        without_root_cause: s.without_root_cause,
    }
}

fn incident(i: dto::Incident) -> Incident {
    Incident {
        id: i.id,
        service: i.service,
        automatic: i.automatic,
        title: i.title,
        start: i.start.unwrap_or_default(),
        end: i.end,
        share: i.share,
        impact: i.impact,
        acknowledged: i.acknowledged,
        root_cause: i.root_cause,
        customer_impacting: i.customer_impacting,
        lost_minutes: i.lost_minutes.unwrap_or(0.0),
    }
}

/// Fetches the report.
pub async fn fetch(f: &Fetch) -> Result<Availability, FetchError> {
    let url = request_url(f)?;
    let client = client(f)?;
    let body = get_body(&client, url, &f.token).await?;
    let report: dto::AvailabilityReport =
        serde_json::from_str(&body).map_err(|e| FetchError::Body(e.to_string()))?;
    let report = availability(report);
    if report.services.is_empty() {
        return Err(FetchError::NoServices);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fetch_to(url: &str, service: Option<&str>) -> Fetch {
        Fetch {
            url: url.into(),
            token: "t".into(),
            ca: None,
            period: super::super::period::parse("2026-11", "2026-12-05T00:00:00Z".parse().unwrap())
                .unwrap(),
            service: service.map(str::to_owned),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn the_request_url_keeps_a_proxy_prefix_and_encodes_the_service() {
        let u = request_url(&fetch_to(
            "https://ops.example.org/nines/",
            Some("web shop&co"),
        ))
        .unwrap();
        assert_eq!(
            u.as_str(),
            "https://ops.example.org/nines/api/v1/availability?from=1793491200000&to=1796083200000&service=web+shop%26co"
        );
        let u = request_url(&fetch_to("http://127.0.0.1:7480", None)).unwrap();
        assert_eq!(u.path(), "/api/v1/availability");
        for bad in ["ftp://x", "127.0.0.1:7480", "http://x/?a=b", "not a url"] {
            assert!(
                matches!(
                    request_url(&fetch_to(bad, None)),
                    Err(FetchError::Url { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_token_file_must_exist_be_private_and_hold_a_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        assert!(matches!(
            read_token(&path),
            Err(FetchError::TokenFile { .. })
        ));
        std::fs::write(&path, "  secret-token\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_token(&path).unwrap_err();
        assert!(e.to_string().contains("mode 0644"), "{e}");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_token(&path).unwrap(), "secret-token");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(read_token(&path).unwrap(), "secret-token");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n \n").unwrap();
        std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(read_token(&empty), Err(FetchError::TokenEmpty(_))));
    }

    #[test]
    fn an_unusable_ca_file_is_an_error_before_any_request() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let mut f = fetch_to("https://127.0.0.1:1", None);
        f.ca = Some(path);
        let e = client(&f).unwrap_err();
        assert!(matches!(e, FetchError::Ca { .. }), "{e}");
    }
}
