//! Connecting to an aggregator: `host:port` addresses, and a TCP connection with a TLS
//! handshake on it, each step under a timeout. Callers say what a failure means to them.

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Splits `host:port` (or `[v6]:port`) into host and port.
pub fn split_host_port(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then_some((host, port))
}

/// Which step of [`connect`] failed.
#[derive(Debug)]
pub enum ConnectError {
    /// The address is not `host:port`.
    Address,
    /// The name to verify the aggregator's certificate against is no valid server name.
    ServerName {
        /// The name.
        name: String,
        /// Why not.
        detail: String,
    },
    /// The TCP connection was not made within the timeout.
    TcpTimeout,
    /// The TCP connection failed.
    Tcp(std::io::Error),
    /// The TLS handshake did not finish within the timeout.
    TlsTimeout,
    /// The TLS handshake failed.
    Tls(std::io::Error),
}

/// A TLS connection to `addr`, whose certificate must carry `server_name` (default the
/// address's host part). Connecting and the handshake each get `limit`; `nodelay` turns off
/// Nagle's algorithm.
pub async fn connect(
    addr: &str,
    server_name: Option<&str>,
    tls: Arc<rustls::ClientConfig>,
    limit: Duration,
    nodelay: bool,
) -> Result<TlsStream<TcpStream>, ConnectError> {
    let (host, port) = split_host_port(addr).ok_or(ConnectError::Address)?;
    let name = server_name.unwrap_or(host);
    let server_name =
        ServerName::try_from(name.to_owned()).map_err(|e| ConnectError::ServerName {
            name: name.to_owned(),
            detail: e.to_string(),
        })?;
    let tcp = timeout(limit, TcpStream::connect((host, port)))
        .await
        .map_err(|_| ConnectError::TcpTimeout)?
        .map_err(ConnectError::Tcp)?;
    if nodelay {
        tcp.set_nodelay(true).map_err(ConnectError::Tcp)?;
    }
    timeout(limit, TlsConnector::from(tls).connect(server_name, tcp))
        .await
        .map_err(|_| ConnectError::TlsTimeout)?
        .map_err(ConnectError::Tls)
}
