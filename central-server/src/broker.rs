//! The embedded MQTT broker (rumqttd, MQTT v5 listener) for the one-machine setup.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::ServerError;

/// Starts rumqttd on `addr` (port 0 picks a free port) in its own threads and waits until it
/// accepts connections. Returns the address it listens on.
///
/// rumqttd only logs a failed bind, so the port is tried here first and a taken port is a clear
/// error.
///
/// # Errors
/// [`ServerError::PortTaken`], or [`ServerError::Broker`] when it does not come up.
pub fn start_embedded(addr: SocketAddr) -> Result<SocketAddr, ServerError> {
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
    let config: rumqttd::Config =
        toml::from_str(&text).map_err(|e| ServerError::Broker(format!("broker config: {e}")))?;
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
