//! Checks that need no subprocess: a TCP connect and a plain-HTTP GET.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Status;

/// Bytes of an HTTP response read, at most, looking for the status line.
const MAX_STATUS_LINE: usize = 8 * 1024;

/// An `http://` URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// `host:port` to connect to.
    pub address: String,
    /// The `Host` header: the URL's authority.
    pub host: String,
    /// Path and query, `/` when the URL has none.
    pub path: String,
}

impl HttpTarget {
    /// Parses `http://host[:port][/path]`. HTTPS is refused with what to use instead: the
    /// agent carries no web PKI trust store.
    pub fn parse(url: &str) -> Result<Self, HttpUrlError> {
        let rest = if let Some(rest) = url.strip_prefix("http://") {
            rest
        } else if url.starts_with("https://") {
            return Err(HttpUrlError::Https(url.to_owned()));
        } else {
            return Err(HttpUrlError::NotHttp(url.to_owned()));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        if authority.is_empty() || authority.contains('@') || path.contains(char::is_whitespace) {
            return Err(HttpUrlError::Malformed(url.to_owned()));
        }
        let has_port = authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| !p.contains(']'));
        let address = if has_port {
            if crate::net::split_host_port(authority).is_none() {
                return Err(HttpUrlError::Port(url.to_owned()));
            }
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(Self {
            address,
            host: authority.to_owned(),
            path,
        })
    }
}

/// Why an `http` check's URL cannot be fetched by the built-in check; each carries the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpUrlError {
    /// `https://`: the agent carries no web PKI trust store.
    #[error(
        "http = {0:?}: the built-in check speaks plain HTTP only; for HTTPS use \
         command = [\"/usr/lib/nagios/plugins/check_http\", \"--ssl\", \"-H\", \"HOST\"]"
    )]
    Https(String),
    /// Not an `http://` URL at all.
    #[error("http = {0:?} is not an http:// URL")]
    NotHttp(String),
    /// No host, a user part, or spaces.
    #[error("http = {0:?}: write http://host[:port]/path (no user, no spaces)")]
    Malformed(String),
    /// The port is not a number.
    #[error("http = {0:?}: the port is not a number")]
    Port(String),
}

/// What a built-in check found.
#[derive(Debug)]
pub struct Probe {
    /// Its status.
    pub status: Status,
    /// One line for the log.
    pub summary: String,
    /// Time to connect (TCP) or to the status line (HTTP), when it got that far.
    pub time: Option<Duration>,
}

/// Connects to `address` (`host:port`) within `timeout`: ok if it connects, critical otherwise
/// (as `check_tcp` reports).
pub async fn tcp(address: &str, timeout: Duration) -> Probe {
    let started = Instant::now();
    match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
        Ok(Ok(_)) => {
            let time = started.elapsed();
            Probe {
                status: Status::Ok,
                summary: format!(
                    "TCP OK - {:.3} second response time on {address}",
                    time.as_secs_f64()
                ),
                time: Some(time),
            }
        }
        Ok(Err(e)) => Probe {
            status: Status::Critical,
            summary: format!("TCP CRITICAL - {address}: {e}"),
            time: None,
        },
        Err(_) => Probe {
            status: Status::Critical,
            summary: format!("TCP CRITICAL - {address}: no connection within {timeout:?}"),
            time: None,
        },
    }
}

/// GETs the URL within `timeout`: ok on a 2xx or 3xx status, critical on any other status, on
/// no answer or on an answer that is not HTTP (as `check_http` without options reports).
pub async fn http(target: &HttpTarget, timeout: Duration) -> Probe {
    let started = Instant::now();
    let result = tokio::time::timeout(timeout, status_code(target)).await;
    let time = started.elapsed();
    match result {
        Ok(Ok(code)) => {
            let status = if (200..400).contains(&code) {
                Status::Ok
            } else {
                Status::Critical
            };
            let word = if status == Status::Ok {
                "OK"
            } else {
                "CRITICAL"
            };
            Probe {
                status,
                summary: format!(
                    "HTTP {word} - status {code} from http://{}{} in {:.3} s",
                    target.host,
                    target.path,
                    time.as_secs_f64()
                ),
                time: Some(time),
            }
        }
        Ok(Err(e)) => Probe {
            status: Status::Critical,
            summary: format!("HTTP CRITICAL - http://{}{}: {e}", target.host, target.path),
            time: None,
        },
        Err(_) => Probe {
            status: Status::Critical,
            summary: format!(
                "HTTP CRITICAL - http://{}{}: no answer within {timeout:?}",
                target.host, target.path
            ),
            time: None,
        },
    }
}

/// The status code of a `GET` of the target, from its status line.
async fn status_code(target: &HttpTarget) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(&target.address).await?;
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: nines-agent/{}\r\nAccept: */*\r\n\
         Connection: close\r\n\r\n",
        target.path,
        target.host,
        env!("CARGO_PKG_VERSION")
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 1024];
    while !head.contains(&b'\n') && head.len() < MAX_STATUS_LINE {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or("");
    let mut words = line.split_whitespace();
    match (words.next(), words.next().map(str::parse::<u16>)) {
        (Some(v), Some(Ok(code))) if v.starts_with("HTTP/") && (100..600).contains(&code) => {
            Ok(code)
        }
        _ => Err(std::io::Error::other(format!(
            "not an HTTP status line: {:?}",
            line.chars().take(80).collect::<String>()
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_taken_apart_or_refused_with_a_reason() {
        let t = HttpTarget::parse("http://127.0.0.1:8080/health?deep=1").unwrap();
        assert_eq!(t.address, "127.0.0.1:8080");
        assert_eq!(t.host, "127.0.0.1:8080");
        assert_eq!(t.path, "/health?deep=1");
        let t = HttpTarget::parse("http://example.net").unwrap();
        assert_eq!(
            (t.address.as_str(), t.path.as_str()),
            ("example.net:80", "/")
        );
        let t = HttpTarget::parse("http://[::1]/x").unwrap();
        assert_eq!(t.address, "[::1]:80");
        let t = HttpTarget::parse("http://[::1]:81").unwrap();
        assert_eq!(t.address, "[::1]:81");
        let e = HttpTarget::parse("https://example.net/").unwrap_err();
        assert_eq!(e, HttpUrlError::Https("https://example.net/".into()));
        assert!(e.to_string().contains("check_http"), "{e}");
        assert!(matches!(
            HttpTarget::parse("ftp://x/"),
            Err(HttpUrlError::NotHttp(_))
        ));
        assert!(matches!(
            HttpTarget::parse("http:///x"),
            Err(HttpUrlError::Malformed(_))
        ));
        assert!(matches!(
            HttpTarget::parse("http://h:port/"),
            Err(HttpUrlError::Port(_))
        ));
    }
}
