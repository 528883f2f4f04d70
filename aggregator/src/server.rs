//! Puts the aggregator together: store, ingest listener and HTTP API, started and stopped as
//! one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::alerts::Alerting;
use crate::config::Config;
use crate::http::serve::ApiConnections;
use crate::http::tls::{ApiTls, ApiTlsError};
use crate::http::{self, AppState};
use crate::ingest::tls::IngestTls;
use crate::ingest::{self, Connections};
use crate::pki::enroll::Enroller;
use crate::remote_write::{RemoteWrite, RemoteWriteError};
use crate::store::{Store, StoreError, WriterHandle};

/// Why the aggregator could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The API's TLS files are unusable.
    #[error(transparent)]
    ApiTls(#[from] crate::http::tls::ApiTlsError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The alert rules file is unusable.
    #[error(transparent)]
    Rules(#[from] crate::alerts::RulesError),
    /// The persisted alert state is unreadable.
    #[error(transparent)]
    Alerts(#[from] crate::alerts::PersistError),
    /// Remote write could not start.
    #[error(transparent)]
    RemoteWrite(#[from] RemoteWriteError),
    /// The ingest certificate, key or CA bundle is unreadable or unusable.
    #[error(transparent)]
    TlsFiles(#[from] crate::ingest::tls::IngestTlsError),
    /// The revocation list is unreadable or malformed.
    #[error("revocation list {0}")]
    Revoked(#[from] crate::pki::revoke::RevokeError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// Builds the ingest TLS configuration from the configured files (what `check-config`
/// checks; the running server keeps it in [`IngestTls`] to reload it).
pub fn ingest_tls(config: &Config) -> Result<rustls::ServerConfig, ServeError> {
    let i = &config.ingest;
    crate::ingest::tls::build(&i.ca, &i.cert, &i.key).map_err(ServeError::TlsFiles)
}

/// Loads the API's TLS files, if `[api]` names them.
pub fn api_tls(config: &Config) -> Result<Option<ApiTls>, ApiTlsError> {
    config.api.tls().map(ApiTls::load).transpose()
}

/// Raises the descriptor limit and fits both ports' connection limits into it (lowered, and
/// said, if they do not fit).
fn descriptor_budget(config: &Config) -> (crate::ingest::Limits, crate::http::serve::Limits) {
    let (mut ingest, mut api) = (config.ingest.limits(), config.api.limits());
    let budget = crate::util::descriptors::Budget::plan(
        crate::util::descriptors::raise(),
        ingest.max_connections,
        api.max_connections,
    );
    if budget.configured.is_some() {
        tracing::warn!("{}", budget.describe());
    } else {
        tracing::info!("{}", budget.describe());
    }
    ingest.max_connections = budget.ingest;
    api.max_connections = budget.api;
    (ingest, api)
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
    alerts: Arc<Alerting>,
    tls: Arc<IngestTls>,
    remote_write: Option<Arc<RemoteWrite>>,
    api_tls: Option<Arc<ApiTls>>,
}

/// Connections the kernel may hold for a port before the aggregator accepts them (capped by
/// `net.core.somaxconn`). Tokio's default is 1,024: under a flood of connections that fills,
/// and a new client's SYN is dropped and sent again only after a second.
const LISTEN_BACKLOG: u32 = 4096;

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    let err = |source| ServeError::Bind { addr, source };
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(err)?;
    // As TcpListener::bind: a restart can bind again while old connections are in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    socket.listen(LISTEN_BACKLOG).map_err(err)
}

impl Server {
    /// Opens the store, binds both ports and starts serving.
    pub async fn start(config: &Config) -> Result<Self, ServeError> {
        let i = &config.ingest;
        let tls = Arc::new(
            IngestTls::load(i.ca.clone(), i.cert.clone(), i.key.clone())
                .map_err(ServeError::TlsFiles)?,
        );
        let enroller = Arc::new(Enroller::new(config.enroll()));
        if let Err(e) = enroller.check() {
            tracing::warn!("agents cannot enroll or renew their certificates: {e}");
        }
        let api_tls = api_tls(config)?.map(Arc::new);
        let rules = config.load_rules()?;
        let (store, writer) = Store::open_with(&config.store.path, config.store.options())?;
        let alerts = Alerting::open(
            store.clone(),
            config.services.clone(),
            rules,
            config.alerts.rules.clone(),
            config.alerts.external_url.trim_end_matches('/').to_owned(),
        )?;
        let started_ms = nines_common::model::now_ms();
        let grace_ms = i64::try_from(config.alerts.startup_grace.as_millis()).unwrap_or(i64::MAX);
        alerts.with_engine(|e| e.set_startup_grace(started_ms, grace_ms))?;
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
        let (ingest_limits, api_limits) = descriptor_budget(config);
        let (shutdown, rx) = watch::channel(false);
        let connections = Arc::new(Connections::default());
        let revocations = Arc::new(
            crate::pki::revoke::Revocations::open(&config.ingest.revoked_path())
                .map_err(ServeError::Revoked)?,
        );
        connections.set_revocations(revocations.clone());
        let revocation_task = tokio::spawn(watch_files(
            revocations,
            tls.clone(),
            connections.clone(),
            rx.clone(),
        ));
        let mut remote_write = None;
        let mut tasks = Vec::new();
        if let Some(c) = &config.remote_write {
            let (rw, task) = RemoteWrite::start(c, &store, rx.clone())?;
            remote_write = Some(rw);
            tasks.push(task);
        }
        let ingest_task = tokio::spawn(ingest::serve(
            ingest_listener,
            tls.clone(),
            enroller,
            store.clone(),
            connections.clone(),
            ingest_limits,
            rx.clone(),
        ));
        let store_for_tracker = store.clone();
        let mut state = AppState::new(store, &config.api.tokens, connections)
            .with_services(config.services.clone())
            .with_alerts(alerts.clone())
            .with_anonymous_status(config.status.anonymous)
            .with_query_limits(config.api.query_limits());
        if let Some(rw) = &remote_write {
            state = state.with_remote_write(rw.clone());
        }
        let api_connections = Arc::new(ApiConnections::default());
        let app = http::router(state).layer(axum::Extension(api_connections.clone()));
        let alerts_task = alerts.clone().spawn(rx.clone());
        let tracker_task = tokio::spawn(track_incidents(
            store_for_tracker,
            config.services.clone(),
            config.alerts.startup_grace,
            rx.clone(),
        ));
        let api_task = tokio::spawn(crate::http::serve::serve(
            api_listener,
            api_tls.clone(),
            app,
            api_limits,
            api_connections,
            rx,
        ));
        let api_scheme = match (&api_tls, &config.api.client_ca) {
            (None, _) => "http",
            (Some(_), None) => "https",
            (Some(_), Some(_)) => "https with client certificates",
        };
        tracing::info!(%ingest_addr, %api_addr, api = api_scheme, store = %config.store.path.display(), "nines-aggregator serving");
        Ok(Self {
            ingest_addr,
            api_addr,
            shutdown,
            tasks: {
                tasks.extend([
                    ingest_task,
                    api_task,
                    alerts_task,
                    tracker_task,
                    revocation_task,
                ]);
                tasks
            },
            writer,
            alerts,
            tls,
            remote_write,
            api_tls,
        })
    }

    /// Re-reads the alert rules file; a bad file keeps the rules in force (and says why).
    pub fn reload_rules(&self) -> Result<usize, String> {
        self.alerts.reload()
    }

    /// Re-reads the ingest certificate, key and CA bundle; a bad file keeps the ones in force
    /// (and says why). Open connections are not touched.
    pub fn reload_tls(&self) -> Result<(), crate::ingest::tls::IngestTlsError> {
        self.tls.reload()
    }

    /// Re-reads the API's certificate, key and client CA: new connections get them, open
    /// ones go on with what they began with. A bad file keeps the files in force (and says
    /// why). `Ok(false)` if the API serves plain HTTP.
    pub fn reload_api_tls(&self) -> Result<bool, ApiTlsError> {
        match &self.api_tls {
            None => Ok(false),
            Some(tls) => tls.reload().map(|()| true),
        }
    }

    /// What SIGHUP does: re-reads the alert rules, the ingest TLS files and the API's.
    pub fn hangup(&self) {
        let _ = self.reload_rules();
        if let Err(e) = self.reload_tls() {
            tracing::error!("{e}; the ingest certificate in force stays");
        }
        match self.reload_api_tls() {
            Ok(true) => tracing::info!("HTTP API certificate reloaded"),
            Ok(false) => {}
            Err(e) => tracing::error!("{e}; the API keeps the certificate in force"),
        }
    }

    /// Stops accepting, closes connections, and waits for the last commit.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        // Connection tasks notice the shutdown and drop their store handles, as does the alert
        // engine here; then the writer thread finishes its queue and exits.
        drop(self.alerts);
        let writer = self.writer;
        let remote_write = self.remote_write;
        let _ = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::task::spawn_blocking(move || {
                writer.join();
                // The store and its commit hook are gone: the appender drains and exits.
                if let Some(rw) = remote_write {
                    rw.finish();
                }
            }),
        )
        .await;
        tracing::info!("nines-aggregator stopped");
    }
}

/// Every 2 s, re-reads the revocation list and the ingest TLS files if they changed; a
/// revoked agent is disconnected at once. A bad file keeps what is in force and says why.
async fn watch_files(
    r: Arc<crate::pki::revoke::Revocations>,
    tls: Arc<IngestTls>,
    connections: Arc<Connections>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last_tls_error = String::new();
    let mut every = tokio::time::interval(Duration::from_secs(2));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_error = String::new();
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        match r.reload() {
            Ok(Some(list)) => {
                tracing::info!(
                    file = %r.path().display(),
                    hosts = list.hosts.len(),
                    serials = list.serials.len(),
                    "revocation list changed"
                );
                connections.revocations_changed();
                last_error.clear();
            }
            Ok(None) => {}
            Err(e) if e.to_string() != last_error => {
                tracing::error!("revocation list: {e}; the list in force stays");
                last_error = e.to_string();
            }
            Err(_) => {}
        }
        match tls.reload_if_changed() {
            Ok(_) => last_tls_error.clear(),
            Err(e) if e.to_string() != last_tls_error => {
                tracing::error!("{e}; the ingest certificate in force stays");
                last_tls_error = e.to_string();
            }
            Err(_) => {}
        }
    }
}

/// Records automatic incidents as they open and close, once a minute (docs/api.md,
/// "Incidents"), the first time once `grace` has passed: by then the agents have reconnected
/// and sent what they spooled while the aggregator was down, so its own outage is not
/// recorded as theirs.
async fn track_incidents(
    store: Store,
    services: Vec<crate::availability::config::ServiceConfig>,
    grace: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut every =
        tokio::time::interval_at(tokio::time::Instant::now() + grace, Duration::from_secs(60));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let (store, services) = (store.clone(), services.clone());
        let _ = tokio::task::spawn_blocking(move || {
            let now = nines_common::model::now_ms();
            use crate::availability::{config::ServiceConfig, service};
            // Every service's outages over the last day, and every host's own (`host:H`)
            // over the last two hours.
            let hosts = store
                .hosts()
                .into_iter()
                .map(|h| ServiceConfig::for_host(&h.host, 99.9));
            let all: Vec<(ServiceConfig, i64)> = services
                .iter()
                .cloned()
                .map(|s| (s, 24 * 3_600_000))
                .chain(hosts.map(|h| (h, 2 * 3_600_000)))
                .collect();
            match service::track_many(&store, &crate::alerts::persist::History, &all, now) {
                Ok(results) => {
                    for ((svc, _), r) in all.iter().zip(results) {
                        if let Err(e) = r {
                            tracing::warn!(service = %svc.name, "tracking incidents: {e}");
                        }
                    }
                }
                Err(e) => tracing::warn!("tracking incidents: {e}"),
            }
        })
        .await;
    }
}

/// Runs the aggregator until `shutdown` turns true; SIGHUP reloads the alert rules and the
/// ingest and API certificates, keys and CA bundles.
pub async fn run(config: Config, mut shutdown: watch::Receiver<bool>) -> Result<(), ServeError> {
    let server = Server::start(&config).await?;
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hup) => loop {
                tokio::select! {
                    _ = shutdown.wait_for(|s| *s) => break,
                    Some(()) = hup.recv() => server.hangup(),
                }
            },
            Err(e) => {
                tracing::warn!(
                    "cannot watch SIGHUP ({e}); alert rules and the API certificate reload only at restart"
                );
                let _ = shutdown.wait_for(|s| *s).await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = shutdown.wait_for(|s| *s).await;
    server.stop().await;
    Ok(())
}
