//! Who may read what: users and roles, Argon2id passwords, server-side sessions, API tokens,
//! facility scope, login throttling and lockout, and the security log.
//!
//! Deny by default: every route but `/api/health`, the login page and its style sheet needs a
//! dashboard session or an API token (a [`Principal`]). Every facility route takes a
//! [`Scoped`], which answers 404 — the answer for a facility that does not exist — when the
//! principal may not see that facility, so a route cannot forget the check and a user cannot
//! tell another facility's existence from the answer.
//!
//! Roles ([`Role`]): `admin` (every facility, every route, users through the command line),
//! `supervisor` (its facilities: maps, gaps, history, jammers, sensors, spectrum),
//! `technician` (its facilities, without the history export), `auditor` (every facility,
//! read-only, the security log and the rejects). Tokens ([`Scope`]) narrow their user's rights:
//! `read` is everything the user may read, `metrics` only `/metrics` (for Prometheus).
//!
//! Secrets: only the Argon2id hash of a password and the SHA-256 of a token or a session id
//! are stored; none of them is ever logged or printed by `Debug`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use protocol::Secret;
use serde::Serialize;
use sqlx::{AnyPool, Row as _};
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

use crate::config::ServerConfig;
use crate::metrics::Metrics;
use crate::store::{Store, ts};

/// Shared state of the HTTP handlers, which every request is authenticated against (it lives
/// here so that the extractors below need nothing of the routes; `http` re-exports it).
#[derive(Debug, Clone)]
pub struct AppState {
    /// Configuration (facilities).
    pub config: Arc<ServerConfig>,
    /// Store.
    pub store: Store,
    /// Metrics.
    pub metrics: Metrics,
    /// Login throttle and cookie policy.
    pub auth: SharedAuth,
}

/// Reasons a request or a login is refused (the label of `centinela_http_refused_total`).
pub const REFUSALS: [&str; 12] = [
    "bad_host",
    "no_credentials",
    "bad_token",
    "revoked_token",
    "disabled_user",
    "forbidden",
    "out_of_scope",
    "login_failed",
    "login_locked",
    "login_throttled",
    "bad_origin",
    "unavailable",
];

/// Consecutive failed logins to one account, from any addresses, that lock it (a guess spread
/// over many addresses). One address alone cannot get there: [`PAIR_THROTTLE_AFTER`] stops it
/// first, so an attacker cannot lock another user out from where that user works.
pub const LOCK_AFTER: i64 = 20;
/// How long a locked account stays locked.
pub const LOCK_FOR: Duration = Duration::from_secs(15 * 60);
/// Failed logins to one account from one address within [`THROTTLE_WINDOW`] after which that
/// address may not try that account (the others' logins from there go on).
pub const PAIR_THROTTLE_AFTER: u32 = 5;
/// Failed logins from one address, to any accounts, within [`THROTTLE_WINDOW`] after which the
/// address is refused: high, so that a site behind one NAT is not shut out by one of its users,
/// yet it bounds a guesser who tries many accounts.
pub const ADDRESS_THROTTLE_AFTER: u32 = 100;
/// The throttle's window.
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// A dashboard session ends after this long without a request.
pub const SESSION_IDLE: Duration = Duration::from_secs(8 * 3600);
/// The shortest password `user add` and `user passwd` accept.
pub const MIN_PASSWORD: usize = 12;
/// The session cookie's name.
pub const COOKIE: &str = "centinela_session";

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything: every facility, every route.
    Admin,
    /// Its facilities: maps, gaps, history, jammers, sensors, spectrum.
    Supervisor,
    /// Its facilities: maps, gaps, jammers, sensors, spectrum; no history export.
    Technician,
    /// Every facility, read-only; the security log and the rejects.
    Auditor,
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    /// A facility's current state: map, zones, gaps, jammers, sensors, spectrum.
    Facility,
    /// A facility's gap history and GeoJSON (exports).
    Export,
    /// The rejected messages of every facility.
    Rejects,
    /// The Prometheus metrics.
    Metrics,
    /// The security log.
    SecurityLog,
}

impl Role {
    /// Every role.
    pub const ALL: [Self; 4] = [
        Self::Admin,
        Self::Supervisor,
        Self::Technician,
        Self::Auditor,
    ];

    /// The role's name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Supervisor => "supervisor",
            Self::Technician => "technician",
            Self::Auditor => "auditor",
        }
    }

    /// Reads a role's name.
    ///
    /// # Errors
    /// Not a role.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a role (admin, supervisor, technician, auditor)"))
    }

    /// Whether the role sees every facility (not only those assigned to the user).
    #[must_use]
    pub fn every_facility(self) -> bool {
        matches!(self, Self::Admin | Self::Auditor)
    }

    /// Whether the role has `right`.
    #[must_use]
    pub fn may(self, right: Right) -> bool {
        match right {
            Right::Facility => true,
            Right::Export => self != Self::Technician,
            Right::Rejects | Right::Metrics | Right::SecurityLog => {
                matches!(self, Self::Admin | Self::Auditor)
            }
        }
    }
}

/// What an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Whatever its user may read.
    Read,
    /// `/metrics` only.
    Metrics,
}

impl Scope {
    /// The scope's name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Metrics => "metrics",
        }
    }

    /// Reads a scope's name.
    ///
    /// # Errors
    /// Not a scope.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(Self::Read),
            "metrics" => Ok(Self::Metrics),
            _ => Err(format!("`{s}` is not a token scope (read, metrics)")),
        }
    }

    fn allows(self, right: Right) -> bool {
        match self {
            Self::Read => true,
            Self::Metrics => right == Right::Metrics,
        }
    }
}

/// Who is asking: a user, through a dashboard session or an API token.
#[derive(Debug, Clone, Serialize)]
pub struct Principal {
    /// The user's id.
    #[serde(skip)]
    pub user_id: i64,
    /// The user's name.
    pub name: String,
    /// The user's role.
    pub role: Role,
    /// The facilities assigned to the user (every facility for admins and auditors).
    pub facilities: Vec<String>,
    /// The token's id and scope, when the request came with a token.
    #[serde(skip)]
    pub token: Option<(i64, Scope)>,
}

impl Principal {
    /// Whether the principal may see `facility`.
    #[must_use]
    pub fn may_see(&self, facility: &str) -> bool {
        self.role.every_facility() || self.facilities.iter().any(|f| f == facility)
    }

    /// Whether the principal has `right` (its role's, narrowed by its token's scope).
    #[must_use]
    pub fn may(&self, right: Right) -> bool {
        self.role.may(right) && self.token.is_none_or(|(_, s)| s.allows(right))
    }

    /// Who, for the security log.
    #[must_use]
    pub fn actor(&self) -> String {
        match self.token {
            Some((id, _)) => format!("{} (token {id})", self.name),
            None => self.name.clone(),
        }
    }
}

/// A refused request: its status, its countable reason and a sentence.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    reason: &'static str,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            reason,
            message: message.into(),
        }
    }

    /// The countable reason.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// Counts the refusal and turns it into an answer.
    #[must_use]
    pub fn counted(self, metrics: &Metrics) -> Response {
        metrics.http_refused(self.reason);
        self.into_response()
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            axum::Json(serde_json::json!({"error": self.message})),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"centinela\""),
            );
        }
        r
    }
}

/// The message of a facility that does not exist or may not be seen: the same for both.
#[must_use]
pub fn no_facility(id: &str) -> String {
    format!("facility `{id}` is not in the server's configuration")
}

/// The address a request came from ([`ClientAddr`], else the peer's).
#[derive(Debug, Clone, Copy)]
pub struct Remote(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Remote {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::of(parts))
    }
}

impl Remote {
    fn of(parts: &Parts) -> Self {
        if let Some(ClientAddr(c)) = parts.extensions.get::<ClientAddr>() {
            return Self(*c);
        }
        Self(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        )
    }

    fn text(self) -> String {
        self.0.map(|a| a.to_string()).unwrap_or_default()
    }
}

/// State of the login throttle and the cookie policy.
#[derive(Debug)]
pub struct AuthState {
    /// The session cookie is `Secure` (the server speaks HTTPS).
    pub secure: bool,
    failures: Mutex<Failures>,
    /// A hash to verify unknown users' passwords against, so that a login for a user who does
    /// not exist costs what one for a user who does.
    decoy: String,
}

/// Failed logins within the throttle's window: per address and account, and per address.
#[derive(Debug, Default)]
struct Failures {
    pairs: HashMap<(IpAddr, String), (u32, Instant)>,
    addresses: HashMap<IpAddr, (u32, Instant)>,
}

impl AuthState {
    /// New state.
    ///
    /// # Errors
    /// No system randomness.
    pub fn new(secure: bool) -> Result<Self, String> {
        let pw = crate::credentials::random_password()?;
        Ok(Self {
            secure,
            failures: Mutex::new(Failures::default()),
            decoy: hash_password(pw.expose())?,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Failures> {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether logins to `user` from `ip` are refused for now: that address failed too often
    /// at that account, or at accounts at all.
    fn throttled(&self, ip: Option<IpAddr>, user: &str) -> bool {
        let Some(ip) = ip else { return false };
        let mut m = self.lock();
        m.pairs.retain(|_, (_, t)| t.elapsed() < THROTTLE_WINDOW);
        m.addresses
            .retain(|_, (_, t)| t.elapsed() < THROTTLE_WINDOW);
        m.pairs
            .get(&(ip, user.to_lowercase()))
            .is_some_and(|(n, _)| *n >= PAIR_THROTTLE_AFTER)
            || m.addresses
                .get(&ip)
                .is_some_and(|(n, _)| *n >= ADDRESS_THROTTLE_AFTER)
    }

    fn failed(&self, ip: Option<IpAddr>, user: &str) {
        let Some(ip) = ip else { return };
        let mut m = self.lock();
        // Bounded: a flood of made-up names from many addresses cannot grow this without end.
        if m.pairs.len() > 100_000 {
            m.pairs.retain(|_, (_, t)| t.elapsed() < THROTTLE_WINDOW);
        }
        if m.pairs.len() <= 100_000 {
            m.pairs
                .entry((ip, user.to_lowercase()))
                .or_insert((0, Instant::now()))
                .0 += 1;
        }
        m.addresses.entry(ip).or_insert((0, Instant::now())).0 += 1;
    }
}

/// The address a request came from: the peer's, or, when the peer is one of the configured
/// `server.trusted_proxies`, the last address of `X-Forwarded-For` that is not a proxy's.
#[must_use]
pub fn client_address(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &[ipnet::IpNet],
) -> Option<IpAddr> {
    let peer = peer?;
    let is_proxy = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_proxy(&peer) {
        return Some(peer);
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for v in headers.get_all("x-forwarded-for") {
        let Ok(v) = v.to_str() else { return Some(peer) };
        for part in v.split(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => hops.push(ip),
                // A hop we cannot read: believe nothing left of it.
                Err(_) => hops.clear(),
            }
        }
    }
    Some(
        hops.into_iter()
            .rev()
            .find(|ip| !is_proxy(ip))
            .unwrap_or(peer),
    )
}

/// The client's address, worked out once per request by [`gate`].
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

/// What every request passes before its route: its address is worked out (trusted proxies), its
/// `Host` must name this server (`server.hostnames`; `/api/health` is exempt, for load
/// balancers that probe by address), and a request that changes state (any method but GET,
/// HEAD and OPTIONS) must come from this site (its `Origin`, when sent, is the host it was
/// sent to). Refusals are counted and logged.
pub async fn gate(
    axum::extract::State(s): axum::extract::State<AppState>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let client = client_address(peer, req.headers(), &s.config.server.trusted_proxies);
    req.extensions_mut().insert(ClientAddr(client));
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_string()));
    let host_name = host.as_deref().map(host_without_port);
    if req.uri().path() != "/api/health"
        && !host_name.is_some_and(|h| s.config.server.serves_host(h))
    {
        s.metrics.http_refused("bad_host");
        return (
            StatusCode::MISDIRECTED_REQUEST,
            axum::Json(serde_json::json!({
                "error": format!(
                    "este servidor no responde al nombre `{0}` / this server does not answer to `{0}` (server.hostnames)",
                    host_name.unwrap_or("").chars().take(100).collect::<String>().escape_default()
                )
            })),
        )
            .into_response();
    }
    let safe = matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if !safe && !same_origin(req.headers()) {
        s.metrics.http_refused("bad_origin");
        let remote = client.map(|i| i.to_string()).unwrap_or_default();
        let path = req.uri().path().chars().take(100).collect::<String>();
        security_log(&s.store, "", "denied", &path, "cross-site request", &remote).await;
        return (
            StatusCode::FORBIDDEN,
            axum::Json(serde_json::json!({
                "error": "petición de otro sitio rechazada / cross-site request refused"
            })),
        )
            .into_response();
    }
    next.run(req).await
}

/// `host` of `host:port`, `[v6]:port` or `host`.
fn host_without_port(h: &str) -> &str {
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match h.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => h,
    }
}

/// The Argon2id (version 19, default parameters: 19 MiB, 2 passes) PHC string of `password`.
///
/// # Errors
/// No system randomness, or the hasher failed.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no system randomness: {e}"))?;
    Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h: PasswordHash| h.to_string())
        .map_err(|e| format!("argon2: {e}"))
}

/// Whether `password` matches the PHC string `hash`.
#[must_use]
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

fn unix(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn digest(secret: &str) -> String {
    protocol::payload_sha256(secret.as_bytes())
}

/// A user as the command line lists it.
#[derive(Debug, Clone, Serialize)]
pub struct UserRow {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Role.
    pub role: String,
    /// Assigned facilities.
    pub facilities: Vec<String>,
    /// Disabled.
    pub disabled: bool,
    /// Locked until (RFC 3339), when locked.
    pub locked_until: Option<String>,
    /// Tokens: id, label, scope, revoked.
    pub tokens: Vec<serde_json::Value>,
}

/// Checks a user name: 1–64 letters, digits, `.`, `_`, `-`, `@`.
///
/// # Errors
/// Another name.
pub fn check_user_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_@".contains(c))
    {
        return Err(format!(
            "user name `{}` must be 1–64 letters, digits, `.`, `_`, `-` or `@`",
            name.escape_default()
        ));
    }
    Ok(())
}

fn check_new_password(pw: &Secret) -> Result<(), String> {
    if pw.expose().chars().count() < MIN_PASSWORD {
        return Err(format!(
            "the password must be at least {MIN_PASSWORD} characters"
        ));
    }
    Ok(())
}

/// The users and tokens in a store.
#[derive(Debug, Clone)]
pub struct Users {
    pool: AnyPool,
}

impl Users {
    /// The users of `store`.
    #[must_use]
    pub fn new(store: &Store) -> Self {
        Self {
            pool: store.pool().clone(),
        }
    }

    /// Adds a user.
    ///
    /// # Errors
    /// A bad name or password, a user of that name, a facility for a role that sees them all
    /// (or none for one that does not), or the database.
    pub async fn add(
        &self,
        name: &str,
        role: Role,
        facilities: &[String],
        password: &Secret,
        actor: &str,
    ) -> Result<i64, String> {
        check_user_name(name)?;
        check_new_password(password)?;
        for f in facilities {
            protocol::check_id("facility", f).map_err(|e| e.to_string())?;
        }
        if role.every_facility() && !facilities.is_empty() {
            return Err(format!(
                "an {} sees every facility: give no --facility",
                role.as_str()
            ));
        }
        if !role.every_facility() && facilities.is_empty() {
            return Err(format!(
                "a {} sees only its facilities: give at least one --facility",
                role.as_str()
            ));
        }
        let hash = hash_password(password.expose())?;
        let mut tx = crate::db::begin(&self.pool).await.map_err(db)?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (name, role, password, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT(name) DO NOTHING RETURNING id",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(&hash)
        .bind(ts(now()))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?
        .ok_or_else(|| format!("user `{name}` already exists"))?;
        for f in facilities {
            sqlx::query(
                "INSERT INTO user_facilities (user_id, facility_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(f)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        log_in(
            &mut tx,
            actor,
            "user_add",
            name,
            &format!(
                "role {}; facilities {}",
                role.as_str(),
                facilities.join(",")
            ),
            "",
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(id)
    }

    /// Whether a user of that name exists.
    ///
    /// # Errors
    /// The database.
    pub async fn exists(&self, name: &str) -> Result<bool, String> {
        sqlx::query_scalar::<_, i64>("SELECT id FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map(|r| r.is_some())
            .map_err(db)
    }

    async fn id_of(&self, name: &str) -> Result<i64, String> {
        sqlx::query_scalar("SELECT id FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .ok_or_else(|| format!("no user `{name}`"))
    }

    /// Sets a user's password, unlocks it and ends its sessions.
    ///
    /// # Errors
    /// No such user, a short password, or the database.
    pub async fn set_password(
        &self,
        name: &str,
        password: &Secret,
        actor: &str,
    ) -> Result<(), String> {
        check_new_password(password)?;
        let id = self.id_of(name).await?;
        let hash = hash_password(password.expose())?;
        let mut tx = crate::db::begin(&self.pool).await.map_err(db)?;
        sqlx::query("UPDATE users SET password = $1, failures = 0, locked_until = 0 WHERE id = $2")
            .bind(&hash)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        end_sessions(&mut tx, id).await?;
        log_in(&mut tx, actor, "user_passwd", name, "", "")
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    /// Disables (or enables again) a user: a disabled user's sessions end and its tokens stop
    /// working.
    ///
    /// # Errors
    /// No such user, or the database.
    pub async fn set_disabled(
        &self,
        name: &str,
        disabled: bool,
        actor: &str,
    ) -> Result<(), String> {
        let id = self.id_of(name).await?;
        let mut tx = crate::db::begin(&self.pool).await.map_err(db)?;
        sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
            .bind(i64::from(disabled))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if disabled {
            end_sessions(&mut tx, id).await?;
        }
        let action = if disabled {
            "user_disable"
        } else {
            "user_enable"
        };
        log_in(&mut tx, actor, action, name, "", "")
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    /// Makes an API token for a user; returns its id and the secret (shown once, kept nowhere:
    /// only its SHA-256 is stored).
    ///
    /// # Errors
    /// No such user, no system randomness, or the database.
    pub async fn add_token(
        &self,
        name: &str,
        label: &str,
        scope: Scope,
        actor: &str,
    ) -> Result<(i64, Secret), String> {
        let user = self.id_of(name).await?;
        let secret = Secret::new(format!(
            "cnt_{}",
            crate::credentials::random_password()?.expose()
        ));
        let mut tx = crate::db::begin(&self.pool).await.map_err(db)?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO tokens (user_id, label, scope, digest, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(user)
        .bind(label)
        .bind(scope.as_str())
        .bind(digest(secret.expose()))
        .bind(ts(now()))
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        log_in(
            &mut tx,
            actor,
            "token_add",
            name,
            &format!("token {id} `{label}` scope {}", scope.as_str()),
            "",
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok((id, secret))
    }

    /// Revokes a token of a user.
    ///
    /// # Errors
    /// No such token of that user, or the database.
    pub async fn revoke_token(&self, name: &str, token: i64, actor: &str) -> Result<(), String> {
        let user = self.id_of(name).await?;
        let mut tx = crate::db::begin(&self.pool).await.map_err(db)?;
        let n = sqlx::query(
            "UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
        )
        .bind(ts(now()))
        .bind(token)
        .bind(user)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        if n == 0 {
            return Err(format!("user `{name}` has no live token {token}"));
        }
        log_in(
            &mut tx,
            actor,
            "token_revoke",
            name,
            &format!("token {token}"),
            "",
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    /// Revokes every live token of a user that carries `label`.
    ///
    /// # Errors
    /// No such user, or the database.
    pub async fn revoke_labelled(
        &self,
        name: &str,
        label: &str,
        actor: &str,
    ) -> Result<(), String> {
        let user = self.id_of(name).await?;
        let mut tx = crate::db::begin(&self.pool).await.map_err(db)?;
        let ids: Vec<i64> = sqlx::query_scalar(
            "UPDATE tokens SET revoked_at = $1 WHERE user_id = $2 AND label = $3 AND revoked_at IS NULL RETURNING id",
        )
        .bind(ts(now()))
        .bind(user)
        .bind(label)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        for id in ids {
            log_in(
                &mut tx,
                actor,
                "token_revoke",
                name,
                &format!("token {id}"),
                "",
            )
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    /// Every user, with its facilities and tokens.
    ///
    /// # Errors
    /// The database.
    pub async fn list(&self) -> Result<Vec<UserRow>, String> {
        let rows =
            sqlx::query("SELECT id, name, role, disabled, locked_until FROM users ORDER BY name")
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        let mut out = Vec::new();
        let t = unix(now());
        for r in rows {
            let id: i64 = r.get("id");
            let locked: i64 = r.get("locked_until");
            let tokens = sqlx::query(
                "SELECT id, label, scope, revoked_at, last_used_at FROM tokens WHERE user_id = $1 ORDER BY id",
            )
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .into_iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.get::<i64, _>("id"),
                    "label": r.get::<String, _>("label"),
                    "scope": r.get::<String, _>("scope"),
                    "revoked_at": r.get::<Option<String>, _>("revoked_at"),
                    "last_used_at": r.get::<Option<String>, _>("last_used_at"),
                })
            })
            .collect();
            out.push(UserRow {
                id,
                name: r.get("name"),
                role: r.get("role"),
                facilities: facilities_of(&self.pool, id).await.map_err(db)?,
                disabled: r.get::<i64, _>("disabled") != 0,
                locked_until: (locked > t).then(|| {
                    OffsetDateTime::from_unix_timestamp(locked)
                        .map_or_else(|_| locked.to_string(), ts)
                }),
                tokens,
            });
        }
        Ok(out)
    }

    /// Whether any user exists.
    ///
    /// # Errors
    /// The database.
    pub async fn any(&self) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await
            .map(|n| n > 0)
    }
}

fn db(e: sqlx::Error) -> String {
    format!("database: {e}")
}

/// Ends every session of a user.
async fn end_sessions(tx: &mut sqlx::AnyConnection, user: i64) -> Result<(), String> {
    sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(user)
        .execute(tx)
        .await
        .map(|_| ())
        .map_err(db)
}

async fn facilities_of(pool: &AnyPool, user: i64) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT facility_id FROM user_facilities WHERE user_id = $1 ORDER BY facility_id",
    )
    .bind(user)
    .fetch_all(pool)
    .await
}

async fn log_in(
    tx: &mut sqlx::AnyConnection,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
    remote: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO security_log (at, actor, action, target, detail, remote) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(ts(now()))
    .bind(actor)
    .bind(action)
    .bind(target)
    .bind(detail)
    .bind(remote)
    .execute(tx)
    .await
    .map(|_| ())
}

/// Writes one line of the security log (a failure is logged, never fatal to the request).
pub async fn security_log(
    store: &Store,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
    remote: &str,
) {
    let r = async {
        let mut c = store.pool().acquire().await?;
        log_in(&mut c, actor, action, target, detail, remote).await
    }
    .await;
    if let Err(e) = r {
        tracing::error!("security log: {e}");
    }
}

/// The newest `limit` lines of the security log.
///
/// # Errors
/// The database.
pub async fn security_log_lines(
    store: &Store,
    limit: u32,
) -> Result<Vec<serde_json::Value>, sqlx::Error> {
    Ok(sqlx::query(
        "SELECT id, at, actor, action, target, detail, remote FROM security_log ORDER BY id DESC LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?
    .into_iter()
    .map(|r| {
        serde_json::json!({
            "id": r.get::<i64, _>("id"),
            "at": r.get::<String, _>("at"),
            "actor": r.get::<String, _>("actor"),
            "action": r.get::<String, _>("action"),
            "target": r.get::<String, _>("target"),
            "detail": r.get::<String, _>("detail"),
            "remote": r.get::<String, _>("remote"),
        })
    })
    .collect())
}

async fn principal_of_user(
    pool: &AnyPool,
    user: i64,
    token: Option<(i64, Scope)>,
) -> Result<Option<Principal>, sqlx::Error> {
    let Some(r) = sqlx::query("SELECT name, role, disabled FROM users WHERE id = $1")
        .bind(user)
        .fetch_optional(pool)
        .await?
    else {
        return Ok(None);
    };
    if r.get::<i64, _>("disabled") != 0 {
        return Ok(None);
    }
    let Ok(role) = Role::parse(&r.get::<String, _>("role")) else {
        return Ok(None);
    };
    Ok(Some(Principal {
        user_id: user,
        name: r.get("name"),
        role,
        facilities: facilities_of(pool, user).await?,
        token,
    }))
}

fn unauthorized(reason: &'static str, message: &str) -> Refusal {
    Refusal::new(StatusCode::UNAUTHORIZED, reason, message)
}

fn unavailable(e: &sqlx::Error) -> Refusal {
    tracing::error!("database: {e}");
    Refusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "database unavailable",
    )
}

/// Who sent the request: its bearer token, or its session cookie.
///
/// # Errors
/// No credentials, a token that is unknown or revoked, a session that has ended, a disabled
/// user: 401.
pub async fn authenticate(s: &AppState, parts: &mut Parts) -> Result<Principal, Refusal> {
    let pool = s.store.pool();
    if let Some(v) = parts.headers.get(header::AUTHORIZATION) {
        let token = v
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| unauthorized("bad_token", "Authorization must be `Bearer TOKEN`"))?;
        let row = sqlx::query(
            "SELECT id, user_id, scope, CASE WHEN revoked_at IS NULL THEN 0 ELSE 1 END AS revoked, last_used_at FROM tokens WHERE digest = $1",
        )
        .bind(digest(token.trim()))
        .fetch_optional(pool)
        .await
        .map_err(|e| unavailable(&e))?
        .ok_or_else(|| unauthorized("bad_token", "unknown API token"))?;
        if row.get::<i64, _>("revoked") != 0 {
            return Err(unauthorized("revoked_token", "this API token was revoked"));
        }
        let id: i64 = row.get("id");
        let scope = Scope::parse(&row.get::<String, _>("scope"))
            .map_err(|_| unauthorized("bad_token", "unknown API token"))?;
        let who = principal_of_user(pool, row.get("user_id"), Some((id, scope)))
            .await
            .map_err(|e| unavailable(&e))?
            .ok_or_else(|| unauthorized("disabled_user", "this token's user is disabled"))?;
        // When it was last used, at most once a minute (a scrape every few seconds must not
        // write every time).
        let t = now();
        let stale = row
            .get::<Option<String>, _>("last_used_at")
            .and_then(|l| crate::store::parse_ts(&l).ok())
            .is_none_or(|l| t - l > time::Duration::minutes(1));
        if stale {
            let _ = sqlx::query("UPDATE tokens SET last_used_at = $1 WHERE id = $2")
                .bind(ts(t))
                .bind(id)
                .execute(pool)
                .await;
        }
        return Ok(who);
    }
    let session = tower_sessions::Session::from_request_parts(parts, s)
        .await
        .map_err(|_| unauthorized("no_credentials", "sign in first"))?;
    let uid: Option<i64> = session.get("uid").await.ok().flatten();
    let Some(uid) = uid else {
        return Err(unauthorized(
            "no_credentials",
            "sign in (POST /login) or send `Authorization: Bearer TOKEN`",
        ));
    };
    principal_of_user(pool, uid, None)
        .await
        .map_err(|e| unavailable(&e))?
        .ok_or_else(|| unauthorized("disabled_user", "this user is disabled"))
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Response> {
        authenticate(s, parts)
            .await
            .map_err(|r| r.counted(&s.metrics))
    }
}

/// Checks that `who` has `right`; a refusal is counted and logged.
///
/// # Errors
/// 403 without the right.
pub async fn require(
    s: &AppState,
    who: &Principal,
    right: Right,
    what: &str,
) -> Result<(), Response> {
    if who.may(right) {
        return Ok(());
    }
    security_log(&s.store, &who.actor(), "denied", what, "", "").await;
    Err(Refusal::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("a {} may not read {what}", who.role.as_str()),
    )
    .counted(&s.metrics))
}

/// A request for one facility by a principal who may see it.
#[derive(Debug, Clone)]
pub struct Scoped {
    /// Who asks.
    pub who: Principal,
    /// The facility's id (well-formed, and visible to `who`).
    pub facility: String,
}

impl FromRequestParts<AppState> for Scoped {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Response> {
        let who = Principal::from_request_parts(parts, s).await?;
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, s)
            .await
            .map_err(IntoResponse::into_response)?;
        let id = params.get("id").cloned().unwrap_or_default();
        if protocol::check_id("facility_id", &id).is_err() {
            s.metrics.bad_request();
            return Err((
                StatusCode::BAD_REQUEST,
                axum::Json(serde_json::json!({"error": format!("`{}` is not a facility id", id.escape_default())})),
            )
                .into_response());
        }
        require(s, &who, Right::Facility, "facilities").await?;
        if !who.may_see(&id) {
            let remote = Remote::of(parts).text();
            security_log(
                &s.store,
                &who.actor(),
                "denied",
                &id,
                parts.uri.path(),
                &remote,
            )
            .await;
            return Err(
                Refusal::new(StatusCode::NOT_FOUND, "out_of_scope", no_facility(&id))
                    .counted(&s.metrics),
            );
        }
        Ok(Self { who, facility: id })
    }
}

/// Whether a state-changing request comes from this site: its `Origin` (when sent) names the
/// host it was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin = origin.to_str().ok().and_then(|o| {
        o.strip_prefix("https://")
            .or_else(|| o.strip_prefix("http://"))
    });
    matches!((origin, host), (Some(o), Some(h)) if o == h)
}

/// The login form.
#[derive(Debug, serde::Deserialize)]
pub struct LoginForm {
    /// User name.
    pub user: String,
    /// Password.
    pub password: Secret,
}

/// Outcome of a login attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginOutcome {
    /// Signed in.
    Ok,
    /// Wrong name or password, disabled, or locked (the page says the same for all).
    Refused(&'static str),
}

/// Why a login was refused.
struct Failure {
    /// The countable reason.
    reason: &'static str,
    /// What the security log says (nothing when the database itself failed).
    detail: Option<&'static str>,
    /// Whether it counts towards the address's throttle.
    throttle: bool,
    /// Whether this failure locked the account.
    locked_now: bool,
}

impl Failure {
    fn new(reason: &'static str, detail: &'static str, throttle: bool) -> Self {
        Self {
            reason,
            detail: Some(detail),
            throttle,
            locked_now: false,
        }
    }

    fn unlogged() -> Self {
        Self {
            reason: "login_failed",
            detail: None,
            throttle: false,
            locked_now: false,
        }
    }
}

/// Tries a login; on success the session gets a new id and the user. Counted and logged
/// either way.
pub async fn login(
    s: &AppState,
    session: &tower_sessions::Session,
    headers: &HeaderMap,
    remote: Option<IpAddr>,
    form: LoginForm,
) -> LoginOutcome {
    let ip = remote;
    let remote_text = ip.map(|i| i.to_string()).unwrap_or_default();
    let name: String = form.user.chars().take(64).collect();
    let f = match check_login(s, session, headers, ip, &name, form.password).await {
        Ok(()) => {
            security_log(&s.store, &name, "login", &name, "", &remote_text).await;
            return LoginOutcome::Ok;
        }
        Err(f) => f,
    };
    if f.throttle {
        s.auth.failed(ip, &name);
    }
    if let Some(detail) = f.detail {
        security_log(&s.store, &name, "login_failed", &name, detail, &remote_text).await;
    }
    if f.locked_now {
        tracing::warn!(
            "user {name:?} locked for {} min after {LOCK_AFTER} failed logins",
            LOCK_FOR.as_secs() / 60
        );
        security_log(
            &s.store,
            "server",
            "lockout",
            &name,
            &format!("{LOCK_AFTER} failed logins"),
            &remote_text,
        )
        .await;
    }
    s.metrics.http_refused(f.reason);
    LoginOutcome::Refused(f.reason)
}

/// The checks of a login, in order; on success the session has a new id and the user.
async fn check_login(
    s: &AppState,
    session: &tower_sessions::Session,
    headers: &HeaderMap,
    ip: Option<IpAddr>,
    name: &str,
    password: Secret,
) -> Result<(), Failure> {
    if !same_origin(headers) {
        return Err(Failure::new("bad_origin", "cross-site form", false));
    }
    if s.auth.throttled(ip, name) {
        return Err(Failure::new("login_throttled", "throttled", false));
    }
    let pool = s.store.pool();
    let row = sqlx::query(
        "SELECT id, password, disabled, failures, locked_until FROM users WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await
    .map_err(|e| {
        tracing::error!("login: database: {e}");
        Failure::unlogged()
    })?;
    let hash = row
        .as_ref()
        .map_or_else(|| s.auth.decoy.clone(), |r| r.get::<String, _>("password"));
    let ok = tokio::task::spawn_blocking(move || verify_password(&hash, password.expose()))
        .await
        .unwrap_or(false);
    let t = unix(now());
    let row = row.ok_or_else(|| Failure::new("login_failed", "unknown user", true))?;
    let id: i64 = row.get("id");
    if row.get::<i64, _>("disabled") != 0 {
        return Err(Failure::new("login_failed", "disabled", true));
    }
    if row.get::<i64, _>("locked_until") > t {
        return Err(Failure::new("login_locked", "locked", true));
    }
    if !ok {
        let failures = row.get::<i64, _>("failures") + 1;
        let lock = failures >= LOCK_AFTER;
        let r = sqlx::query("UPDATE users SET failures = $1, locked_until = $2 WHERE id = $3")
            .bind(if lock { 0 } else { failures })
            .bind(if lock {
                t + i64::try_from(LOCK_FOR.as_secs()).unwrap_or(900)
            } else {
                row.get::<i64, _>("locked_until")
            })
            .bind(id)
            .execute(pool)
            .await;
        if let Err(e) = r {
            tracing::error!("login: database: {e}");
        }
        return Err(Failure {
            locked_now: lock,
            ..Failure::new("login_failed", "wrong password", true)
        });
    }
    let _ = sqlx::query("UPDATE users SET failures = 0, locked_until = 0 WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await;
    // A new session id at every login: an id planted before (session fixation) is worthless.
    if session.cycle_id().await.is_err() || session.insert("uid", id).await.is_err() {
        return Err(Failure::unlogged());
    }
    Ok(())
}

/// Ends a session (its row is deleted) and logs it.
pub async fn logout(s: &AppState, session: &tower_sessions::Session, remote: Option<IpAddr>) {
    let uid: Option<i64> = session.get("uid").await.ok().flatten();
    let _ = session.flush().await;
    if let Some(uid) = uid {
        let name: Option<String> = sqlx::query_scalar("SELECT name FROM users WHERE id = $1")
            .bind(uid)
            .fetch_optional(s.store.pool())
            .await
            .ok()
            .flatten();
        let name = name.unwrap_or_default();
        let remote = remote.map(|a| a.to_string()).unwrap_or_default();
        security_log(&s.store, &name, "logout", &name, "", &remote).await;
    }
}

/// Dashboard sessions in the server's database. Rows are keyed by the SHA-256 of the session
/// id: a copy of the database does not hand out live sessions.
#[derive(Debug, Clone)]
pub struct SessionDb {
    pool: AnyPool,
}

impl SessionDb {
    /// Sessions of `store`.
    #[must_use]
    pub fn new(store: &Store) -> Self {
        Self {
            pool: store.pool().clone(),
        }
    }
}

fn backend(e: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

impl SessionDb {
    async fn write(&self, r: &Record, insert_only: bool) -> session_store::Result<bool> {
        let data = serde_json::to_string(&r.data)
            .map_err(|e| session_store::Error::Encode(e.to_string()))?;
        let uid = r.data.get("uid").and_then(serde_json::Value::as_i64);
        let sql = if insert_only {
            "INSERT INTO sessions (digest, user_id, data, expires) VALUES ($1, $2, $3, $4) ON CONFLICT(digest) DO NOTHING"
        } else {
            "INSERT INTO sessions (digest, user_id, data, expires) VALUES ($1, $2, $3, $4) \
             ON CONFLICT(digest) DO UPDATE SET user_id = excluded.user_id, data = excluded.data, expires = excluded.expires"
        };
        let n = sqlx::query(sql)
            .bind(digest(&r.id.to_string()))
            .bind(uid)
            .bind(data)
            .bind(unix(r.expiry_date))
            .execute(&self.pool)
            .await
            .map_err(backend)?
            .rows_affected();
        Ok(n == 1)
    }
}

#[async_trait::async_trait]
impl SessionStore for SessionDb {
    async fn create(&self, r: &mut Record) -> session_store::Result<()> {
        sqlx::query("DELETE FROM sessions WHERE expires <= $1")
            .bind(unix(now()))
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        while !self.write(r, true).await? {
            r.id = Id::default();
        }
        Ok(())
    }

    async fn save(&self, r: &Record) -> session_store::Result<()> {
        self.write(r, false).await.map(|_| ())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT data, expires FROM sessions WHERE digest = $1 AND expires > $2")
                .bind(digest(&id.to_string()))
                .bind(unix(now()))
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        row.map(|(data, expires)| {
            Ok(Record {
                id: *id,
                data: serde_json::from_str(&data)
                    .map_err(|e| session_store::Error::Decode(e.to_string()))?,
                expiry_date: OffsetDateTime::from_unix_timestamp(expires).map_err(backend)?,
            })
        })
        .transpose()
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        sqlx::query("DELETE FROM sessions WHERE digest = $1")
            .bind(digest(&id.to_string()))
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

/// The session layer: cookie `centinela_session`, HttpOnly, SameSite=Strict, Secure over
/// HTTPS, ending after [`SESSION_IDLE`] without a request.
#[must_use]
pub fn session_layer(
    store: &Store,
    secure: bool,
) -> tower_sessions::SessionManagerLayer<SessionDb> {
    tower_sessions::SessionManagerLayer::new(SessionDb::new(store))
        .with_name(COOKIE)
        .with_http_only(true)
        .with_same_site(tower_sessions::cookie::SameSite::Strict)
        .with_secure(secure)
        .with_path("/")
        .with_expiry(tower_sessions::Expiry::OnInactivity(
            time::Duration::seconds(i64::try_from(SESSION_IDLE.as_secs()).unwrap_or(28_800)),
        ))
}

/// Shared login state, made once per server.
pub type SharedAuth = Arc<AuthState>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_hashes_verify_and_differ() {
        let a = hash_password("correct horse battery").expect("hash");
        let b = hash_password("correct horse battery").expect("hash");
        assert!(a.starts_with("$argon2id$v=19$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(verify_password(&a, "correct horse battery"));
        assert!(!verify_password(&a, "correct horse batterx"));
        assert!(!verify_password("not a hash", "x"));
    }

    #[test]
    fn roles_and_scopes() {
        let p = |role, facilities: &[&str], token| Principal {
            user_id: 1,
            name: "u".into(),
            role,
            facilities: facilities.iter().map(|s| (*s).to_string()).collect(),
            token,
        };
        let sup = p(Role::Supervisor, &["x"], None);
        assert!(sup.may_see("x") && !sup.may_see("y"));
        assert!(sup.may(Right::Export) && !sup.may(Right::Metrics));
        let tech = p(Role::Technician, &["x"], None);
        assert!(tech.may(Right::Facility) && !tech.may(Right::Export));
        let aud = p(Role::Auditor, &[], None);
        assert!(aud.may_see("y") && aud.may(Right::SecurityLog));
        let prom = p(Role::Admin, &[], Some((1, Scope::Metrics)));
        assert!(prom.may(Right::Metrics) && !prom.may(Right::Facility));
        assert!(Role::parse("root").is_err());
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let f = LoginForm {
            user: "ana".into(),
            password: Secret::new("hunter2hunter2"),
        };
        assert!(!format!("{f:?}").contains("hunter2"));
    }

    #[test]
    fn origin_must_match_host() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:8080".parse().expect("h"));
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().expect("h"));
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "https://evil.example".parse().expect("h"));
        assert!(!same_origin(&h));
    }
}
