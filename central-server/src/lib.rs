//! The Centinela central server: ingests the agents' events from MQTT, stores them in SQLite,
//! draws each facility's gap map, serves the HTTP API and dashboard, and raises alerts.
//!
//! [`Server::start`] wires it together: the embedded broker (or an external one), the ingest
//! session, the HTTP listener and the offline watchdog.

pub mod alerts;
pub mod audit;
pub mod auth;
pub mod broker;
pub mod config;
pub mod credentials;
pub mod db;
pub mod http;
pub mod ingest;
pub mod map;
pub mod metrics;
pub mod store;
pub mod tls;
pub mod trust;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::alerts::Alerter;
use crate::config::ServerConfig;
use crate::metrics::Metrics;
use crate::store::Store;
use protocol::parse_broker_url;

/// How often the database's writes are probed.
const PROBE_EVERY: Duration = Duration::from_secs(5);
/// A probe that takes longer than this has failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Writes that fail for this long are said as an alert.
const PROBE_ALERT_AFTER: Duration = Duration::from_secs(10);

/// Errors of the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A listening port is taken.
    #[error(
        "cannot listen for the {what} on {addr}: {detail} (is another server or broker running? choose another address)"
    )]
    PortTaken {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        detail: String,
    },
    /// The embedded broker failed.
    #[error("embedded MQTT broker: {0}")]
    Broker(String),
    /// The configuration is wrong.
    #[error("configuration:\n  {}", .0.join("\n  "))]
    Config(Vec<String>),
    /// The database could not be opened.
    #[error("database {path}: {source}")]
    Database {
        /// File.
        path: String,
        /// Cause.
        #[source]
        source: sqlx::Error,
    },
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    /// HTTP address.
    pub http_addr: SocketAddr,
    /// Whether the API speaks HTTPS.
    pub https: bool,
    /// Broker host and port the server ingests from.
    pub broker: (String, u16),
    /// Whether the broker is the embedded one.
    pub embedded_broker: bool,
    /// Store.
    pub store: Store,
    /// Metrics.
    pub metrics: Metrics,
    /// The public half of the key that signs this server's receipts.
    pub receipt_key: protocol::signed::PublicKey,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Server {
    /// Starts everything the configuration asks for.
    ///
    /// # Errors
    /// A taken port, a bad configuration, or a database that cannot be opened.
    pub async fn start(cfg: ServerConfig) -> Result<Self, ServerError> {
        let mut problems = cfg.problems("configuration");
        problems.extend(cfg.file_problems("configuration"));
        if !problems.is_empty() {
            return Err(ServerError::Config(problems));
        }
        let http = tokio::net::TcpListener::bind(cfg.server.http)
            .await
            .map_err(|e| ServerError::PortTaken {
                what: "HTTP API",
                addr: cfg.server.http,
                detail: e.to_string(),
            })?;
        let http_addr = http.local_addr().map_err(|e| ServerError::PortTaken {
            what: "HTTP API",
            addr: cfg.server.http,
            detail: e.to_string(),
        })?;
        let metrics = Metrics::new();
        let broker_dir = cfg.server.broker_dir();
        let (broker, embedded_broker) = match &cfg.server.broker {
            Some(url) => (
                parse_broker_url(url).map_err(|e| ServerError::Config(vec![e]))?,
                false,
            ),
            None => {
                let addr = cfg.server.embedded_broker;
                let access = broker::Access {
                    dir: broker_dir.clone(),
                    server_client_id: cfg.server.client_id.clone(),
                    metrics: metrics.clone(),
                };
                let a = tokio::task::spawn_blocking(move || broker::start_embedded(addr, access))
                    .await
                    .map_err(|e| ServerError::Broker(e.to_string()))??;
                tracing::info!(
                    "embedded MQTT broker (MQTT v5) listening on mqtt://{a}; clients are the users of {}",
                    broker_dir.join(credentials::PASSWD_FILE).display()
                );
                ((a.ip().to_string(), a.port()), true)
            }
        };
        // The server's broker credentials: configured, or its own (made on first start).
        let credentials = match (&cfg.server.broker_username, &cfg.server.broker_password) {
            (Some(u), Some(p)) => Some((u.clone(), p.clone())),
            _ if embedded_broker || broker_dir.join(credentials::SERVER_SECRET_FILE).exists() => {
                // A member of a group logs in as a user of its own (Mosquitto gives each user
                // its name as client id, so members sharing one would take each other over).
                let instance = cfg.server.instance_name();
                let user = credentials::server_user(
                    cfg.server.shared_group.as_ref().map(|_| instance.as_str()),
                );
                let pw = credentials::server_password(&broker_dir, &user)
                    .map_err(|e| ServerError::Config(vec![format!("broker credentials: {e}")]))?;
                Some((user, pw))
            }
            _ => None,
        };
        let tls = match (&cfg.server.broker, &cfg.server.broker_tls_ca) {
            (Some(_), Some(ca)) => {
                let client = cfg
                    .server
                    .broker_tls_cert
                    .as_deref()
                    .zip(cfg.server.broker_tls_key.as_deref());
                Some(tls::broker_tls(ca, client).map_err(|e| ServerError::Config(vec![e]))?)
            }
            _ => None,
        };
        let store = Store::open(&cfg.server.db)
            .await
            .map_err(|e| ServerError::Database {
                path: cfg.server.db.to_string(),
                source: e,
            })?;
        let instance = cfg.server.instance_name();
        let store = store
            .claiming_as(&instance)
            .retaining(&cfg.server.retention);
        tracing::info!("storing in {}", cfg.server.db);
        if let Some(g) = &cfg.server.shared_group {
            tracing::info!(
                "member `{instance}` of the shared ingest group `{g}` (client id `{}`)",
                cfg.server.ingest_client_id()
            );
        }
        let receipt_key = Arc::new(
            credentials::receipt_key(&cfg.server.receipt_key_path())
                .map_err(|e| ServerError::Config(vec![format!("server.receipt_key: {e}")]))?,
        );
        tracing::info!(
            "receipts are signed with {} (each agent's [mqtt] server_key)",
            receipt_key.public()
        );
        let registry = trust::Registry::from_config(&cfg);
        let (registered, live) = registry.counts();
        if live == 0 {
            tracing::warn!(
                "no sensor is registered with a public key: every message will be refused (register each sensor's key in the configuration: [[facility.sensor]] public_key = \"ed25519:…\")"
            );
        } else {
            tracing::info!(
                "{live} of {registered} registered sensor(s) enrolled (key, not revoked)"
            );
        }
        let alerter = Alerter::new(
            cfg.server.webhook.clone(),
            metrics.clone(),
            Arc::new(store.clone()),
        );
        let (tx, rx) = watch::channel(false);
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(ingest::run(
            ingest::IngestOptions {
                host: broker.0.clone(),
                port: broker.1,
                client_id: cfg.server.ingest_client_id(),
                credentials,
                tls,
                max_clock_skew: Duration::from_secs_f64(cfg.server.max_clock_skew_s),
                max_event_age: Duration::from_secs_f64(cfg.server.max_event_age_days * 86_400.0),
                max_status_age: Duration::from_secs_f64(
                    cfg.server.retention.statuses_days * 86_400.0,
                ),
                registry: Arc::new(registry),
                tamper_interval: Duration::from_secs_f64(cfg.server.tamper_alert_interval_s),
                shared_group: cfg.server.shared_group.clone(),
                receipt_key: receipt_key.clone(),
            },
            store.clone(),
            metrics.clone(),
            alerter.clone(),
            rx.clone(),
        )));
        {
            let store = store.clone();
            let alerter = alerter.clone();
            let factor = cfg.server.offline_after_heartbeats;
            let mut rx = rx.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(2)) => {}
                        _ = rx.changed() => break,
                    }
                    match store
                        .expire_sensors(time::OffsetDateTime::now_utc(), factor)
                        .await
                    {
                        Ok(a) => alerter.raise(a),
                        Err(e) => tracing::error!("offline watchdog: {e}"),
                    }
                }
            }));
        }
        {
            // Retention, partitions and aggregates: every server looks, one does the round.
            let store = store.clone();
            let retention = cfg.server.retention.clone();
            let mut rx = rx.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    match store
                        .maintain(time::OffsetDateTime::now_utc(), &retention)
                        .await
                    {
                        Ok(Some(p)) => tracing::info!(
                            "maintenance: pruned {} events, {} statuses, {} sequence numbers, {} partitions; rolled up {} hours",
                            p.events,
                            p.statuses,
                            p.sequences,
                            p.partitions_dropped.len(),
                            p.hours_rolled_up
                        ),
                        Ok(None) => {}
                        Err(e) => tracing::error!("maintenance: {e}"),
                    }
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs_f64(retention.every_s.clamp(1.0, 3600.0))) => {}
                        _ = rx.changed() => break,
                    }
                }
            }));
        }
        {
            // Whether the database takes writes, probed every few seconds; a database that has
            // not for PROBE_ALERT_AFTER is said as an alert, and its recovery too.
            let store = store.clone();
            let alerter = alerter.clone();
            let metrics = metrics.clone();
            let instance = instance.clone();
            let mut rx = rx.clone();
            tasks.push(tokio::spawn(async move {
                // Since when writes have failed, once said.
                let mut said: Option<std::time::Instant> = None;
                loop {
                    let r = tokio::time::timeout(PROBE_TIMEOUT, store.probe_write()).await;
                    let outcome = match r {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err(format!(
                            "a write took more than {} s",
                            PROBE_TIMEOUT.as_secs()
                        )),
                    };
                    if let Err(e) = &outcome {
                        tracing::warn!("database write probe: {e}");
                    }
                    metrics.database_write(metrics::Writer::Probe, outcome);
                    let db = metrics.database();
                    match (db.failing_s, said) {
                        (Some(s), None) if s >= PROBE_ALERT_AFTER.as_secs_f64() => {
                            said =
                                std::time::Instant::now().checked_sub(Duration::from_secs_f64(s));
                            alerter.say_server(alerts::ServerAlert::DatabaseUnwritable {
                                server: instance.clone(),
                                error: db.error.unwrap_or_default(),
                                failing_s: s,
                            });
                        }
                        (None, Some(since)) if db.writable => {
                            said = None;
                            alerter.say_server(alerts::ServerAlert::DatabaseWritable {
                                server: instance.clone(),
                                after_s: since.elapsed().as_secs_f64(),
                            });
                        }
                        _ => {}
                    }
                    tokio::select! {
                        () = tokio::time::sleep(PROBE_EVERY) => {}
                        _ = rx.changed() => break,
                    }
                }
            }));
        }
        {
            // Alerts no server has said: a server died before settling its claim, or a webhook
            // failed and its wait is over. Whichever server claims one says it.
            let store = store.clone();
            let alerter = alerter.clone();
            let mut rx = rx.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(5)) => {}
                        _ = rx.changed() => break,
                    }
                    match store
                        .claim_alerts(time::OffsetDateTime::now_utc(), 100)
                        .await
                    {
                        Ok(a) => alerter.raise(a),
                        Err(e) => tracing::error!("claiming unsent alerts: {e}"),
                    }
                }
            }));
        }
        let tls = match (&cfg.server.tls_cert, &cfg.server.tls_key) {
            (Some(c), Some(k)) => {
                Some(tls::acceptor(c, k).map_err(|e| ServerError::Config(vec![e]))?)
            }
            _ => None,
        };
        let https = tls.is_some();
        let auth = auth::AuthState::new(https).map_err(|e| ServerError::Config(vec![e]))?;
        match auth::Users::new(&store).any().await {
            Ok(false) => tracing::warn!(
                "no dashboard user yet: every request will be refused (add one: central-server user add NAME --role admin --db {})",
                serde_json::to_value(&cfg.server.db)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            ),
            Ok(true) => {}
            Err(e) => tracing::error!("users: {e}"),
        }
        let app = http::router(http::AppState {
            config: Arc::new(cfg),
            store: store.clone(),
            metrics: metrics.clone(),
            auth: Arc::new(auth),
        })
        .into_make_service_with_connect_info::<SocketAddr>();
        let mut rx_http = rx.clone();
        let shutdown = async move {
            let _ = rx_http.changed().await;
        };
        match tls {
            Some(acceptor) => {
                let listener =
                    tls::TlsListener::new(http, acceptor, metrics.clone()).map_err(|e| {
                        ServerError::PortTaken {
                            what: "HTTPS API",
                            addr: http_addr,
                            detail: e.to_string(),
                        }
                    })?;
                use axum::serve::ListenerExt as _;
                let listener = listener.tap_io(|_| {});
                tasks.push(tokio::spawn(async move {
                    if let Err(e) = axum::serve(listener, app)
                        .with_graceful_shutdown(shutdown)
                        .await
                    {
                        tracing::error!("HTTPS server: {e}");
                    }
                }));
            }
            None => {
                tasks.push(tokio::spawn(async move {
                    if let Err(e) = axum::serve(http, app)
                        .with_graceful_shutdown(shutdown)
                        .await
                    {
                        tracing::error!("HTTP server: {e}");
                    }
                }));
            }
        }
        let scheme = if https { "https" } else { "http" };
        tracing::info!("HTTP API and dashboard on {scheme}://{http_addr}/");
        Ok(Self {
            http_addr,
            https,
            broker,
            embedded_broker,
            store,
            metrics,
            receipt_key: receipt_key.public(),
            shutdown: tx,
            tasks,
        })
    }

    /// The dashboard's address (`http://…/` or `https://…/`).
    #[must_use]
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}/", self.http_addr)
    }

    /// Stops the ingest session, the watchdog and the HTTP server, and waits for them.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        self.store.pool().close().await;
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default: info, the brokers' and the database's
/// chatter quietened).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rumqttd=off,rumqttc=warn,sqlx=warn".into()),
        )
        .init();
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
