//! `central-server`: see `central-server --help`.

use std::path::PathBuf;
use std::process::ExitCode;

use central_server::config::ServerConfig;
use central_server::{Server, ServerError, wait_for_signal};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(version, about = "Centinela central server: ingest, store, map, alert")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: embedded broker unless --broker, SQLite, HTTP API and dashboard.
    Serve(ServeArgs),
    /// Check a server configuration file and print every problem.
    CheckConfig {
        /// The file.
        config: PathBuf,
    },
    /// Write the broker's files from the registry: a password file (Mosquitto's format, read by
    /// the embedded broker too), an ACL file and a Mosquitto configuration fragment; a password
    /// for each newly registered sensor, once, in credentials/ (mode 0600); no user for revoked
    /// or unregistered sensors.
    BrokerConfig {
        /// Configuration file (TOML) holding the registry.
        #[arg(long)]
        config: PathBuf,
        /// Directory of the files (default: the broker directory of the server's data directory,
        /// where the embedded broker reads them).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also write the files of this facility's own broker, bridged to the central one
        /// (DIR/facility-FACILITY: its sensors' users and rights, and the bridge).
        #[arg(long, requires = "central")]
        facility_broker: Option<String>,
        /// The central broker the facility's bridge connects to, HOST:PORT.
        #[arg(long)]
        central: Option<String>,
        /// The CA (PEM) of the central broker's certificate: the bridge speaks TLS.
        #[arg(long)]
        central_ca: Option<PathBuf>,
        /// A member of a server group (its --instance name): it gets a broker user of its own,
        /// `centinela-server@NAME`, now, so that Mosquitto knows it before it starts. Repeat
        /// for each member.
        #[arg(long = "instance", value_name = "NAME")]
        instances: Vec<String>,
        /// The group the broker runs as: the password file, ACL and fragment are made readable
        /// by it (0640, directory 0750). Default: `mosquitto` when the machine has that group
        /// (Debian's package: Mosquitto started as root drops to that user before reading them).
        #[arg(long, value_name = "GROUP")]
        broker_group: Option<String>,
    },
    /// Print the public key that signs this server's commit receipts (made on first use): each
    /// agent's `[mqtt] server_key`.
    ReceiptKey {
        /// Configuration file (TOML): its `server.receipt_key`, or the data directory's
        /// `keys/receipt.key`.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Re-verify, offline and read-only, every stored event of a database (best on a copy):
    /// signatures, rows, digests and each sensor's sequence. Exits 1 naming each event that
    /// does not verify.
    Audit(AuditArgs),
    /// Manage the users of the dashboard and the API, and their API tokens (in the server's
    /// database; the running server sees changes at once).
    User(UserArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Configuration file (TOML).
    #[arg(long)]
    config: Option<PathBuf>,
    /// External broker, mqtt://HOST:PORT (default: run the embedded one).
    #[arg(long)]
    broker: Option<String>,
    /// Listen address of the embedded broker.
    #[arg(long)]
    mqtt: Option<std::net::SocketAddr>,
    /// The database: a SQLite file, or postgres://user@host:port/dbname (the password in
    /// PGPASSWORD or ~/.pgpass, never in the URL).
    #[arg(long)]
    db: Option<central_server::db::Database>,
    /// The server's own files: the broker's password and ACL files, its secrets (default: the
    /// SQLite file's directory; with PostgreSQL, the working directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// This server's name in a shared ingest group (server.instance; default: host name and
    /// process id).
    #[arg(long)]
    instance: Option<String>,
    /// Share ingest with the other servers of this group (server.shared_group; needs
    /// PostgreSQL and an external broker).
    #[arg(long)]
    shared_group: Option<String>,
    /// HTTP listen address.
    #[arg(long)]
    http: Option<std::net::SocketAddr>,
}

#[derive(Debug, clap::Args)]
struct UserArgs {
    /// The database (default: the configuration's server.db, else centinela.db).
    #[arg(long, global = true)]
    db: Option<central_server::db::Database>,
    /// The server's configuration: facilities given to a user must be in it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    action: UserAction,
}

#[derive(Debug, Subcommand)]
enum UserAction {
    /// Add a user. Without --password-stdin a random password is made and printed once.
    Add {
        /// User name.
        name: String,
        /// admin (everything), supervisor (its facilities), technician (its facilities, no
        /// history export), auditor (every facility, read-only, the security log).
        #[arg(long)]
        role: String,
        /// A facility the user may see (supervisor, technician; repeat for several).
        #[arg(long = "facility")]
        facilities: Vec<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password (unlocks it and ends its sessions). Without --password-stdin a
    /// random one is made and printed once.
    Passwd {
        /// User name.
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable a user: its sessions end and its tokens stop working.
    Disable {
        /// User name.
        name: String,
    },
    /// Enable a disabled user again.
    Enable {
        /// User name.
        name: String,
    },
    /// Make an API token for a user (printed once; only its hash is kept), or revoke one.
    Token {
        /// User name.
        name: String,
        /// read (whatever the user may read) or metrics (/metrics only, for Prometheus).
        #[arg(long, default_value = "read")]
        scope: String,
        /// What the token is for.
        #[arg(long, default_value = "")]
        label: String,
        /// Revoke this token (its id, from `user list`) instead of making one.
        #[arg(long)]
        revoke: Option<i64>,
    },
    /// List users, their facilities and tokens.
    List {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
}

fn read_password(from_stdin: bool) -> Result<(protocol::Secret, bool), ServerError> {
    if !from_stdin {
        return central_server::credentials::random_password()
            .map(|p| (p, true))
            .map_err(|e| ServerError::Config(vec![e]));
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| ServerError::Config(vec![format!("standard input: {e}")]))?;
    Ok((
        protocol::Secret::new(line.trim_end_matches(['\r', '\n'])),
        false,
    ))
}

async fn user(a: UserArgs) -> Result<(), ServerError> {
    use central_server::auth::{Role, Scope, Users};
    let cfg = a.config.as_deref().map(load).transpose()?;
    let db =
        a.db.or_else(|| cfg.as_ref().map(|c| c.server.db.clone()))
            .unwrap_or_else(|| central_server::db::Database::Sqlite(PathBuf::from("centinela.db")));
    let store =
        central_server::store::Store::open(&db)
            .await
            .map_err(|e| ServerError::Database {
                path: db.to_string(),
                source: e,
            })?;
    let users = Users::new(&store);
    let actor = format!(
        "command line ({})",
        std::env::var("USER").unwrap_or_else(|_| "?".into())
    );
    let fail = |e: String| ServerError::Config(vec![e]);
    let r = match a.action {
        UserAction::Add {
            name,
            role,
            facilities,
            password_stdin,
        } => {
            let role = Role::parse(&role).map_err(fail)?;
            if let Some(c) = &cfg {
                for f in &facilities {
                    if c.facility(f).is_none() {
                        return Err(fail(format!(
                            "facility `{f}` is not in {}",
                            a.config
                                .as_deref()
                                .map_or_else(|| db.to_string(), |p| p.display().to_string())
                        )));
                    }
                }
            }
            let (pw, made) = read_password(password_stdin)?;
            users
                .add(&name, role, &facilities, &pw, &actor)
                .await
                .map_err(fail)?;
            println!("user {name} added ({})", role.as_str());
            if made {
                println!("password for {name} (shown once): {}", pw.expose());
            }
            Ok(())
        }
        UserAction::Passwd {
            name,
            password_stdin,
        } => {
            let (pw, made) = read_password(password_stdin)?;
            users.set_password(&name, &pw, &actor).await.map_err(fail)?;
            println!("password of {name} changed; its sessions ended");
            if made {
                println!("password for {name} (shown once): {}", pw.expose());
            }
            Ok(())
        }
        UserAction::Disable { name } => {
            users
                .set_disabled(&name, true, &actor)
                .await
                .map_err(fail)?;
            println!("user {name} disabled; its sessions ended and its tokens stop working");
            Ok(())
        }
        UserAction::Enable { name } => {
            users
                .set_disabled(&name, false, &actor)
                .await
                .map_err(fail)?;
            println!("user {name} enabled");
            Ok(())
        }
        UserAction::Token {
            name,
            scope,
            label,
            revoke: Some(id),
        } => {
            let _ = (scope, label);
            users.revoke_token(&name, id, &actor).await.map_err(fail)?;
            println!("token {id} of {name} revoked");
            Ok(())
        }
        UserAction::Token {
            name,
            scope,
            label,
            revoke: None,
        } => {
            let scope = Scope::parse(&scope).map_err(fail)?;
            let (id, secret) = users
                .add_token(&name, &label, scope, &actor)
                .await
                .map_err(fail)?;
            println!(
                "token {id} for {name} ({} scope; shown once, send it as `Authorization: Bearer TOKEN`): {}",
                scope.as_str(),
                secret.expose()
            );
            Ok(())
        }
        UserAction::List { json } => {
            let list = users.list().await.map_err(fail)?;
            if json {
                for u in &list {
                    println!("{}", serde_json::to_string(u).unwrap_or_default());
                }
            } else {
                for u in &list {
                    println!(
                        "{}\t{}\t{}\t{}{}\t{} token(s)",
                        u.name,
                        u.role,
                        if u.facilities.is_empty() {
                            "*".to_string()
                        } else {
                            u.facilities.join(",")
                        },
                        if u.disabled { "disabled" } else { "enabled" },
                        u.locked_until
                            .as_deref()
                            .map(|t| format!(", locked until {t}"))
                            .unwrap_or_default(),
                        u.tokens
                            .iter()
                            .filter(|t| t["revoked_at"].is_null())
                            .count()
                    );
                }
            }
            Ok(())
        }
    };
    store.pool().close().await;
    r
}

#[derive(Debug, clap::Args)]
struct AuditArgs {
    /// The database: a copy of the SQLite file, or postgres://user@host:port/dbname (read in
    /// one read-only snapshot while servers write).
    #[arg(long)]
    db: central_server::db::Database,
    /// Only this facility.
    #[arg(long)]
    facility: Option<String>,
    /// Only messages received at or after this time (RFC 3339, e.g. 2026-12-01T00:00:00Z).
    #[arg(long)]
    since: Option<String>,
    /// The server's configuration: each key must also be the one registered for its sensor.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The report as JSON instead of text.
    #[arg(long)]
    json: bool,
}

async fn audit(a: AuditArgs) -> Result<bool, ServerError> {
    let since = a
        .since
        .as_deref()
        .map(central_server::audit::parse_since)
        .transpose()
        .map_err(|e| ServerError::Config(vec![e]))?;
    let registry = match &a.config {
        Some(p) => Some(central_server::trust::Registry::from_config(&load(p)?)),
        None => None,
    };
    let report = central_server::audit::audit(&central_server::audit::AuditOptions {
        db: a.db,
        facility: a.facility,
        since,
        registry,
    })
    .await?;
    if a.json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        print!("{}", report.text());
    }
    Ok(report.passed())
}

fn broker_config(
    config: &std::path::Path,
    out: Option<PathBuf>,
    facility_broker: Option<(String, String, Option<PathBuf>)>,
    opts: &central_server::credentials::BrokerOptions,
) -> Result<(), ServerError> {
    let cfg = load(config)?;
    let dir = out.unwrap_or_else(|| cfg.server.broker_dir());
    let w = central_server::credentials::broker_config_with(&cfg, &dir, opts)
        .map_err(|e| ServerError::Config(vec![e]))?;
    if w.broker_group.is_none() {
        println!(
            "note: no `mosquitto` group here, so the files stay readable by their owner only (0600): a Mosquitto that runs as another user cannot read them; give them to its group with --broker-group GROUP"
        );
    }
    for (user, path) in &w.new_sensors {
        println!(
            "new sensor user {user}: its credentials are in {} (mode 0600; give them to its technician)",
            path.display()
        );
    }
    for user in &w.removed {
        println!("removed user {user} (revoked or no longer registered)");
    }
    println!(
        "{}: {} sensor user(s) kept, {} new, {} removed; Mosquitto: include {}",
        dir.display(),
        w.kept,
        w.new_sensors.len(),
        w.removed.len(),
        dir.join(central_server::credentials::CONF_FILE).display()
    );
    if let Some((facility, central, ca)) = facility_broker {
        let f = central_server::credentials::facility_broker_config(
            &cfg,
            &dir,
            &facility,
            &central,
            ca.as_deref(),
        )
        .map_err(|e| ServerError::Config(vec![e]))?;
        println!(
            "facility {facility}: its broker's files are in {} (include centinela-auth.conf, then {} last); the central broker now knows the bridge's user {}: include {} there again",
            f.display(),
            central_server::credentials::BRIDGE_FILE,
            central_server::credentials::bridge_user(&facility),
            dir.join(central_server::credentials::CONF_FILE).display()
        );
    }
    Ok(())
}

fn load(path: &std::path::Path) -> Result<ServerConfig, ServerError> {
    let bad = |e: String| ServerError::Config(vec![format!("{}: {e}", path.display())]);
    let m = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if !m.is_file() || m.len() > 16 << 20 {
        return Err(bad(
            "not a regular file of at most 16 MiB (a FIFO or a device is no configuration)".into(),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    ServerConfig::from_toml(&text, &path.display().to_string()).map_err(ServerError::Config)
}

async fn serve(a: ServeArgs) -> Result<(), ServerError> {
    let mut cfg = match &a.config {
        Some(p) => load(p)?,
        None => ServerConfig {
            server: Default::default(),
            facilities: Vec::new(),
        },
    };
    if let Some(b) = a.broker {
        cfg.server.broker = Some(b);
    }
    if let Some(m) = a.mqtt {
        cfg.server.embedded_broker = m;
    }
    if let Some(d) = a.db {
        cfg.server.db = d;
    }
    if let Some(d) = a.data_dir {
        cfg.server.data_dir = Some(d);
    }
    if let Some(i) = a.instance {
        cfg.server.instance = Some(i);
    }
    if let Some(g) = a.shared_group {
        cfg.server.shared_group = Some(g);
    }
    if let Some(h) = a.http {
        cfg.server.http = h;
    }
    let server = Server::start(cfg).await?;
    println!("dashboard: {}", server.url());
    if server.embedded_broker {
        println!(
            "embedded MQTT broker: mqtt://{}:{}",
            server.broker.0, server.broker.1
        );
    }
    wait_for_signal().await;
    tracing::info!("shutting down");
    server.stop().await;
    Ok(())
}

fn main() -> ExitCode {
    central_server::init_logging();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Command::Audit(a) = cli.command {
        return match rt.block_on(audit(a)) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }
    let r = rt.block_on(async move {
        match cli.command {
            Command::Audit(_) => Ok(()),
            Command::User(a) => user(a).await,
            Command::BrokerConfig {
                config,
                out,
                facility_broker,
                central,
                central_ca,
                instances,
                broker_group,
            } => broker_config(
                &config,
                out,
                facility_broker
                    .zip(central)
                    .map(|(f, c)| (f, c, central_ca)),
                &central_server::credentials::BrokerOptions {
                    instances,
                    group: broker_group,
                },
            ),
            Command::ReceiptKey { config } => {
                let section = match config {
                    Some(c) => load(&c)?.server,
                    None => central_server::config::ServerSection::default(),
                };
                let path = section.receipt_key_path();
                central_server::credentials::receipt_key(&path)
                    .map(|k| {
                        println!("{}", k.public());
                        eprintln!(
                            "(the key is {}; put the line above in each agent's [mqtt] server_key)",
                            path.display()
                        );
                    })
                    .map_err(|e| ServerError::Config(vec![e]))
            }
            Command::Serve(a) => serve(a).await,
            Command::CheckConfig { config } => load(&config).and_then(|c| {
                let files = c.file_problems(&config.display().to_string());
                if !files.is_empty() {
                    return Err(ServerError::Config(files));
                }
                println!(
                    "{}: ok ({} facilities)",
                    config.display(),
                    c.facilities.len()
                );
                Ok(())
            }),
        }
    });
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            match e {
                ServerError::Config(_) | ServerError::PortTaken { .. } => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
