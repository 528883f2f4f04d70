//! Puts the aggregator together: store, ingest listener and HTTP API, started and stopped as
//! one.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::api::{self, AppState};
use crate::config::Config;
use crate::ingest::{self, Connections};
use crate::store::{Store, StoreError, WriterHandle};

/// Why the aggregator could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A certificate or key file could not be read.
    #[error("reading {path}: {source}")]
    ReadFile {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The TLS material is unusable.
    #[error("ingest TLS: {0}")]
    Tls(#[from] nines_common::tls::TlsError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, ServeError> {
    std::fs::read(path).map_err(|source| ServeError::ReadFile {
        path: path.to_owned(),
        source,
    })
}

/// Builds the ingest TLS configuration from the configured files.
pub fn ingest_tls(config: &Config) -> Result<rustls::ServerConfig, ServeError> {
    let i = &config.ingest;
    Ok(nines_common::tls::server_config(
        &read(&i.ca)?,
        &read(&i.cert)?,
        &read(&i.key)?,
    )?)
}

/// A running aggregator.
#[derive(Debug)]
pub struct Server {
    /// Where the ingest port listens.
    pub ingest_addr: SocketAddr,
    /// Where the HTTP API listens.
    pub api_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    writer: WriterHandle,
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

impl Server {
    /// Opens the store, binds both ports and starts serving.
    pub async fn start(config: &Config) -> Result<Self, ServeError> {
        let acceptor = TlsAcceptor::from(Arc::new(ingest_tls(config)?));
        let (store, writer) = Store::open_with(&config.store.path, config.store.options())?;
        let ingest_listener = bind(config.ingest.listen).await?;
        let api_listener = bind(config.api.listen).await?;
        let ingest_addr = ingest_listener
            .local_addr()
            .map_err(|source| ServeError::Bind {
                addr: config.ingest.listen,
                source,
            })?;
        let api_addr = api_listener
            .local_addr()
            .map_err(|source| ServeError::Bind {
                addr: config.api.listen,
                source,
            })?;
        let (shutdown, rx) = watch::channel(false);
        let connections = Arc::new(Connections::default());
        let ingest_task = tokio::spawn(ingest::serve(
            ingest_listener,
            acceptor,
            store.clone(),
            connections.clone(),
            config.ingest.max_frame_bytes,
            rx.clone(),
        ));
        let app = api::router(
            AppState::new(store, &config.api.tokens, connections)
                .with_services(config.services.clone()),
        );
        let mut api_rx = rx;
        let api_task = tokio::spawn(async move {
            let served = axum::serve(api_listener, app)
                .with_graceful_shutdown(async move {
                    let _ = api_rx.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!("HTTP API stopped: {e}");
            }
        });
        tracing::info!(%ingest_addr, %api_addr, store = %config.store.path.display(), "nines-aggregator serving");
        Ok(Self {
            ingest_addr,
            api_addr,
            shutdown,
            tasks: vec![ingest_task, api_task],
            writer,
        })
    }

    /// Stops accepting, closes connections, and waits for the last commit.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        // Connection tasks notice the shutdown and drop their store handles; then the writer
        // thread finishes its queue and exits.
        let writer = self.writer;
        let _ = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::task::spawn_blocking(move || writer.join()),
        )
        .await;
        tracing::info!("nines-aggregator stopped");
    }
}

/// Runs the aggregator until `shutdown` turns true.
pub async fn run(config: Config, mut shutdown: watch::Receiver<bool>) -> Result<(), ServeError> {
    let server = Server::start(&config).await?;
    let _ = shutdown.wait_for(|s| *s).await;
    server.stop().await;
    Ok(())
}
