//! The embedded MQTT broker (rumqttd, MQTT v5 listener) for the one-machine setup.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::ServerError;
use crate::credentials::{PASSWD_FILE, PasswordFile, SERVER_USER, sensor_client_id};
use crate::metrics::Metrics;

/// Who may connect to the embedded broker: the users of the password file in `dir` (read again
/// at each connection, so `central-server broker-config` takes effect at once), the server with
/// its own client id only, each sensor (`{facility}.{sensor}`) with `centinela-{facility}-{sensor}`
/// only (no one takes another's session). No anonymous client.
#[derive(Debug, Clone)]
pub struct Access {
    /// The broker directory (password file).
    pub dir: PathBuf,
    /// The server's client id.
    pub server_client_id: String,
    /// Refusals are counted here.
    pub metrics: Metrics,
}

impl Access {
    /// Whether `user` with `password` may connect as `client_id`; the refusal's reason if not.
    ///
    /// # Errors
    /// The reason, one of [`crate::metrics::BROKER_REFUSALS`].
    pub fn check(&self, client_id: &str, user: &str, password: &str) -> Result<(), &'static str> {
        if user.is_empty() {
            return Err("no_credentials");
        }
        let file = PasswordFile::load(&self.dir.join(PASSWD_FILE)).unwrap_or_else(|e| {
            tracing::error!("embedded broker: {e}; refusing every client");
            PasswordFile::default()
        });
        if !file.users.contains_key(user) {
            return Err("unknown_user");
        }
        if !file.check(user, password) {
            return Err("bad_password");
        }
        let own = if user == SERVER_USER {
            self.server_client_id.clone()
        } else {
            match user.split_once('.') {
                Some((f, s)) => sensor_client_id(f, s),
                None => return Err("client_id"),
            }
        };
        if client_id != own {
            return Err("client_id");
        }
        Ok(())
    }
}

/// Starts rumqttd on `addr` (port 0 picks a free port) in its own threads and waits until it
/// accepts connections. Returns the address it listens on.
///
/// rumqttd only logs a failed bind, so the port is tried here first and a taken port is a clear
/// error.
///
/// # Errors
/// [`ServerError::PortTaken`], or [`ServerError::Broker`] when it does not come up.
pub fn start_embedded(addr: SocketAddr, access: Access) -> Result<SocketAddr, ServerError> {
    // SO_REUSEADDR, as the broker itself binds: a server restarted at once after a crash finds
    // its port in TIME_WAIT, which is not "taken".
    let taken = |e: std::io::Error| ServerError::PortTaken {
        what: "embedded MQTT broker",
        addr,
        detail: e.to_string(),
    };
    let probe = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .map_err(taken)?;
    probe.set_reuse_address(true).map_err(taken)?;
    probe.bind(&addr.into()).map_err(taken)?;
    probe.listen(1).map_err(taken)?;
    let probe: TcpListener = probe.into();
    let addr = probe
        .local_addr()
        .map_err(|e| ServerError::Broker(e.to_string()))?;
    drop(probe);
    let text = format!(
        r#"
id = 0
[router]
max_connections = 10010
max_outgoing_packet_count = 1000
max_segment_size = 104857600
max_segment_count = 10

[v5.1]
name = "centinela-v5"
listen = "{addr}"
next_connection_delay_ms = 0
[v5.1.connections]
connection_timeout_ms = 60000
max_payload_size = 131072
max_inflight_count = 500
dynamic_filters = true
"#
    );
    let mut config: rumqttd::Config =
        toml::from_str(&text).map_err(|e| ServerError::Broker(format!("broker config: {e}")))?;
    let log = std::sync::Arc::new(crate::ingest::LogLimiter::new(Duration::from_secs(10), 10));
    for server in config.v5.iter_mut().flat_map(|m| m.values_mut()) {
        let access = access.clone();
        let log = log.clone();
        server.set_auth_handler(move |client_id, user, password| {
            let access = access.clone();
            let log = log.clone();
            async move {
                // PBKDF2 is slow on purpose: off the broker's async threads.
                let (c, u, a) = (client_id.clone(), user.clone(), access.clone());
                let r = tokio::task::spawn_blocking(move || a.check(&c, &u, &password))
                    .await
                    .unwrap_or(Err("bad_password"));
                match r {
                    Ok(()) => true,
                    Err(reason) => {
                        access.metrics.broker_refused(reason);
                        if log.allow().is_some() {
                            tracing::warn!(
                                "embedded broker refused client `{}` (user `{}`): {reason}",
                                client_id.escape_default(),
                                user.escape_default()
                            );
                        }
                        false
                    }
                }
            }
        });
    }
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!("embedded MQTT broker stopped: {e}");
            }
        })
        .map_err(|e| ServerError::Broker(e.to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(addr);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(ServerError::Broker(format!(
        "the embedded broker did not start listening on {addr} within 10 s"
    )))
}
