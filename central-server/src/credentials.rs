//! Broker credentials: one password file in Mosquitto's format (`user:$7$…`, PBKDF2-HMAC-SHA512,
//! what `mosquitto_passwd` writes) that both brokers read — Mosquitto through `password_file`,
//! the embedded broker through its authentication hook — and the ACL file Mosquitto enforces.
//!
//! Users: the server (`centinela-server`, its password generated on first start into its data
//! directory) and one per registered sensor (`{facility}.{sensor}`; ids never hold a `.`),
//! whose password `central-server broker-config` generates once and writes for the technician.
//! A revoked or unregistered sensor has no user: the broker refuses it.
//!
//! A facility can have a broker of its own, bridged to the central one, so that it keeps
//! working while its link to the centre is down ([`facility_broker_config`]): its sensors
//! connect there with the same credentials, and the bridge logs in to the central broker as
//! `bridge@{facility}`, which may write only that facility's topics and read only its receipts.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use protocol::Secret;

use crate::config::ServerConfig;

/// The server's own broker user.
pub const SERVER_USER: &str = "centinela-server";

/// PBKDF2 rounds of new hashes (Mosquitto's own default is 101; it reads any count).
pub const ROUNDS: u32 = 20_000;

/// File names inside a broker directory.
pub const PASSWD_FILE: &str = "passwd";
/// The ACL file.
pub const ACL_FILE: &str = "acl";
/// The Mosquitto configuration fragment.
pub const CONF_FILE: &str = "centinela-auth.conf";
/// The server's own password.
pub const SERVER_SECRET_FILE: &str = "server.secret";
/// Where sensors' new passwords are written for their technicians.
pub const CREDENTIALS_DIR: &str = "credentials";

/// The broker user of a server: [`SERVER_USER`] alone, `centinela-server@{instance}` for a
/// member of a group. Mosquitto runs with `use_username_as_clientid`, so a user's client id is
/// its name: members of a group need names of their own or they would take each other's
/// sessions over.
#[must_use]
pub fn server_user(instance_in_group: Option<&str>) -> String {
    match instance_in_group {
        Some(i) => format!("{SERVER_USER}@{i}"),
        None => SERVER_USER.to_string(),
    }
}

/// The broker user of a sensor.
#[must_use]
pub fn sensor_user(facility: &str, sensor: &str) -> String {
    format!("{facility}.{sensor}")
}

/// The broker user of a facility's bridge (`@` is in no id: no sensor user can be it).
#[must_use]
pub fn bridge_user(facility: &str) -> String {
    format!("bridge@{facility}")
}

/// The Mosquitto bridge fragment of a facility's broker.
pub const BRIDGE_FILE: &str = "centinela-bridge.conf";

/// The MQTT client id a sensor's agent connects with (the agent's own choice, checked by the
/// embedded broker so that no sensor can take another's session).
#[must_use]
pub fn sensor_client_id(facility: &str, sensor: &str) -> String {
    format!("centinela-{facility}-{sensor}")
}

/// A new random password (24 bytes, base64).
///
/// # Errors
/// No system randomness.
pub fn random_password() -> Result<Secret, String> {
    let mut b = zeroize::Zeroizing::new([0u8; 24]);
    getrandom::fill(b.as_mut()).map_err(|e| format!("no system randomness: {e}"))?;
    Ok(Secret::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b.as_ref()),
    ))
}

/// The Mosquitto `$7$` hash of `password`.
///
/// # Errors
/// No system randomness.
pub fn hash(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 12];
    getrandom::fill(&mut salt).map_err(|e| format!("no system randomness: {e}"))?;
    let mut dk = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<sha2_11::Sha512>(password.as_bytes(), &salt, ROUNDS, &mut dk);
    Ok(format!(
        "$7${ROUNDS}${}${}",
        B64.encode(salt),
        B64.encode(dk)
    ))
}

/// Whether `password` matches a `$7$` hash (constant-time comparison).
#[must_use]
pub fn verify(hash: &str, password: &str) -> bool {
    let mut parts = hash.split('$');
    let (Some(""), Some("7"), Some(rounds), Some(salt), Some(dk), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Ok(rounds), Ok(salt), Ok(dk)) = (rounds.parse::<u32>(), B64.decode(salt), B64.decode(dk))
    else {
        return false;
    };
    if !(1..=10_000_000).contains(&rounds) || dk.is_empty() || dk.len() > 64 {
        return false;
    }
    let mut out = vec![0u8; dk.len()];
    pbkdf2::pbkdf2_hmac::<sha2_11::Sha512>(password.as_bytes(), &salt, rounds, &mut out);
    use subtle::ConstantTimeEq as _;
    out.ct_eq(&dk).into()
}

/// A password file: user → hash.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswordFile {
    /// Users and their hashes.
    pub users: BTreeMap<String, String>,
}

impl PasswordFile {
    /// Reads a password file (a missing file is empty).
    ///
    /// # Errors
    /// An unreadable file, or a line that is not `user:hash`, naming the line.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let mut users = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((u, h)) = line.split_once(':') else {
                return Err(format!("{}:{}: not `user:hash`", path.display(), n + 1));
            };
            users.insert(u.to_string(), h.to_string());
        }
        Ok(Self { users })
    }

    /// Whether `user` with `password` is in the file.
    #[must_use]
    pub fn check(&self, user: &str, password: &str) -> bool {
        self.users.get(user).is_some_and(|h| verify(h, password))
    }

    /// Writes the file (mode 0600, replaced atomically).
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        write_file(path, passwd_text(self).as_bytes(), shared_group_of(path))
    }
}

/// Writes `bytes` to `path` with mode 0600 (through a temporary file and a rename).
///
/// # Errors
/// The file cannot be written.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    write_file(path, bytes, None)
}

/// Writes `bytes` to `path` through a temporary file and a rename: mode 0600, or 0640 with
/// group `gid` (a file the broker, running as its own user, must read).
fn write_file(path: &Path, bytes: &[u8], gid: Option<u32>) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(fail)?;
    #[cfg(unix)]
    if let Some(g) = gid {
        use std::os::unix::fs::PermissionsExt as _;
        std::os::unix::fs::fchown(&f, None, Some(g)).map_err(fail)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o640))
            .map_err(fail)?;
    }
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

/// The group a broker file is shared with now: the file's group when its mode is 0640 (as
/// [`broker_config`] leaves it for the broker's own user), else none.
fn shared_group_of(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let m = std::fs::metadata(path).ok()?;
        (m.mode() & 0o777 == 0o640).then_some(m.gid())
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// The id of group `name`, from `/etc/group`.
#[must_use]
pub fn group_id(name: &str) -> Option<u32> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}

/// Creates `dir` with mode 0700, or closes an existing one to others (a broker directory
/// that [`broker_config`] opened to the broker's group, 0750, stays so).
///
/// # Errors
/// It cannot be created, or its mode cannot be set.
pub fn private_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let m = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mode = m.permissions().mode() & 0o777;
        // 0750 is what `share_dir` leaves for the broker's group; anything else open is closed.
        if mode & 0o077 != 0 && mode != 0o750 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("{}: {e}", dir.display()))?;
        }
    }
    Ok(())
}

/// The password of the server's broker user `user` ([`server_user`]) in `dir`, made on first
/// use (and the user added to the password file there): `server.secret` for [`SERVER_USER`],
/// `server@{instance}.secret` for a member of a group.
///
/// # Errors
/// The files cannot be read or written.
pub fn server_password(dir: &Path, user: &str) -> Result<Secret, String> {
    private_dir(dir)?;
    let secret_path = dir.join(match user.strip_prefix(SERVER_USER) {
        Some(rest) if rest.starts_with('@') => format!("server{rest}.secret"),
        _ => SERVER_SECRET_FILE.to_string(),
    });
    let passwd_path = dir.join(PASSWD_FILE);
    let mut file = PasswordFile::load(&passwd_path)?;
    if let Ok(text) = std::fs::read_to_string(&secret_path) {
        let pw = Secret::new(text.trim());
        if !file.check(user, pw.expose()) {
            file.users.insert(user.into(), hash(pw.expose())?);
            file.save(&passwd_path)?;
        }
        return Ok(pw);
    }
    let pw = random_password()?;
    write_private(&secret_path, format!("{}\n", pw.expose()).as_bytes())?;
    file.users.insert(user.into(), hash(pw.expose())?);
    file.save(&passwd_path)?;
    Ok(pw)
}

/// The server's receipt key inside its data directory (unless `server.receipt_key` says
/// otherwise).
pub const RECEIPT_KEY_FILE: &str = "keys/receipt.key";

/// The server's receipt-signing key (Ed25519, PKCS#8 PEM) at `path`, made when missing (mode
/// 0600 in a directory of mode 0700). Every commit receipt is signed with it, and agents
/// delete an event only on a receipt whose signature verifies with its public half. A key file
/// others may read or write is refused: whoever holds the key can make agents forget events.
///
/// # Errors
/// A file that cannot be read, written or parsed, or one open to others.
pub fn receipt_key(path: &Path) -> Result<protocol::signed::SensorKey, String> {
    use protocol::signed::SensorKey;
    let at = path.display();
    match std::fs::metadata(path) {
        Ok(m) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                let mode = m.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(format!(
                        "{at}: the receipt key is open to others (mode {mode:04o}); whoever reads it can make agents delete events they still hold: chmod 600 {at}"
                    ));
                }
            }
            let _ = m;
            let text = std::fs::read_to_string(path).map_err(|e| format!("{at}: {e}"))?;
            SensorKey::from_pkcs8_pem(&text).map_err(|e| format!("{at}: {e}"))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                private_dir(dir)?;
            }
            let key = SensorKey::generate().map_err(|e| e.to_string())?;
            let pem = key.to_pkcs8_pem().map_err(|e| e.to_string())?;
            write_private(path, pem.as_bytes())?;
            tracing::info!(
                "made the server's receipt key {at}; its public key, for every agent's [mqtt] server_key: {}",
                key.public()
            );
            Ok(key)
        }
        Err(e) => Err(format!("{at}: {e}")),
    }
}

/// Reads a credentials file written by [`broker_config`]: its user and password.
#[must_use]
pub fn read_credentials(path: &Path) -> Option<(String, Secret)> {
    let text = std::fs::read_to_string(path).ok()?;
    let t: toml::Table = toml::from_str(&text).ok()?;
    Some((
        t.get("username")?.as_str()?.to_string(),
        Secret::new(t.get("password")?.as_str()?),
    ))
}

/// What `broker-config` did.
#[derive(Debug, Clone, Default)]
pub struct Written {
    /// Sensors given a new password (its file under `credentials/`).
    pub new_sensors: Vec<(String, PathBuf)>,
    /// Users removed (revoked or no longer registered).
    pub removed: Vec<String>,
    /// Users kept.
    pub kept: usize,
    /// The group the broker's files were given to (`None`: they stay 0600, readable by their
    /// owner only).
    pub broker_group: Option<u32>,
}

/// What [`broker_config_with`] is told beyond the configuration.
#[derive(Debug, Clone, Default)]
pub struct BrokerOptions {
    /// Members of a server group to make broker users for (`centinela-server@{instance}`), so
    /// that Mosquitto knows them before they start. Members already in the file are kept.
    pub instances: Vec<String>,
    /// The group the broker runs as (`mosquitto` for Debian's package): the password file, the
    /// ACL and the fragment are made readable by it (0640), the directory 0750. `None`: the
    /// `mosquitto` group when this machine has one, else the files stay 0600.
    pub group: Option<String>,
}

/// Writes, in `dir`, the password file, the ACL and the Mosquitto fragment for the registry of
/// `cfg`: a password for each enrolled sensor that has none yet (written once to
/// `credentials/{user}`, mode 0600, for its technician), none for revoked or unregistered ones,
/// and the server's own.
///
/// # Errors
/// The files cannot be read or written.
pub fn broker_config(cfg: &ServerConfig, dir: &Path) -> Result<Written, String> {
    broker_config_with(cfg, dir, &BrokerOptions::default())
}

/// [`broker_config`], with server-group members and the broker's group.
///
/// # Errors
/// The files cannot be read or written, or the group does not exist or cannot be given.
pub fn broker_config_with(
    cfg: &ServerConfig,
    dir: &Path,
    opts: &BrokerOptions,
) -> Result<Written, String> {
    let gid = match &opts.group {
        Some(g) => Some(group_id(g).ok_or_else(|| {
            format!("group `{g}` does not exist on this machine (the group the broker runs as: `mosquitto` for Debian's package)")
        })?),
        None => group_id("mosquitto"),
    };
    private_dir(dir)?;
    server_password(dir, SERVER_USER)?;
    // Agents pin it: each new sensor's credentials carry it.
    let server_key = receipt_key(&cfg.server.receipt_key_path())?.public();
    let mut members: std::collections::BTreeSet<String> = opts.instances.iter().cloned().collect();
    if cfg.server.shared_group.is_some()
        && let Some(i) = &cfg.server.instance
    {
        members.insert(i.clone());
    }
    for i in &members {
        if i.is_empty()
            || !i
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!("instance `{i}` must be letters, digits, -, _ or ."));
        }
        server_password(dir, &server_user(Some(i)))?;
    }
    let passwd_path = dir.join(PASSWD_FILE);
    let mut file = PasswordFile::load(&passwd_path)?;
    let mut wanted = std::collections::BTreeSet::new();
    let servers: Vec<String> = file
        .users
        .keys()
        .filter(|u| *u == SERVER_USER || u.starts_with(&format!("{SERVER_USER}@")))
        .cloned()
        .collect();
    let mut out = Written::default();
    let mut acl = String::from(
        "# Centinela broker rights (written by `central-server broker-config`; do not edit: it is\n\
         # written again from the registry). Each sensor writes only its own topics and reads only\n\
         # its own receipts; the server reads every sensor's topics and writes the receipts.\n",
    );
    for u in servers {
        acl.push_str(&format!(
            "user {u}\ntopic read centinela/v1/#\ntopic write centinela/receipt/v1/#\n\n"
        ));
        wanted.insert(u);
    }
    for f in &cfg.facilities {
        if f.sensors
            .iter()
            .any(|s| !s.revoked && s.public_key.is_some())
        {
            // The facility's bridge, for a facility broker (made only when asked for).
            let user = bridge_user(&f.id);
            acl.push_str(&format!(
                "\nuser {user}\ntopic write centinela/v1/{0}/#\ntopic read centinela/receipt/v1/{0}/#\n",
                f.id
            ));
            if file.users.contains_key(&user) {
                wanted.insert(user);
            }
        }
        for s in &f.sensors {
            if s.revoked || s.public_key.is_none() {
                continue;
            }
            let user = sensor_user(&f.id, &s.id);
            wanted.insert(user.clone());
            acl.push_str(&format!(
                "\nuser {user}\ntopic write centinela/v1/{}/{}/#\ntopic read centinela/receipt/v1/{}/{}\n",
                f.id, s.id, f.id, s.id
            ));
            if file.users.contains_key(&user) {
                out.kept += 1;
                continue;
            }
            let pw = random_password()?;
            file.users.insert(user.clone(), hash(pw.expose())?);
            let cred_dir = dir.join(CREDENTIALS_DIR);
            private_dir(&cred_dir)?;
            let path = cred_dir.join(&user);
            write_private(
                &path,
                format!(
                    "# MQTT credentials of sensor {}/{} (agent.toml [mqtt]); give them to its technician, then delete this file\nusername = \"{user}\"\npassword = \"{}\"\n# the key the server signs its receipts with (not a secret)\nserver_key = \"{server_key}\"\n",
                    f.id,
                    s.id,
                    pw.expose()
                )
                .as_bytes(),
            )?;
            out.new_sensors.push((user, path));
        }
    }
    let stale: Vec<String> = file
        .users
        .keys()
        .filter(|u| !wanted.contains(*u))
        .cloned()
        .collect();
    for u in stale {
        file.users.remove(&u);
        out.removed.push(u);
    }
    let conf = format!(
        "# Centinela: include from mosquitto.conf (`include_dir` or copy). No anonymous client;\n\
         # every client a user of the password file, with the rights of the ACL file, and its\n\
         # client id its user name (no client takes over another's session, the server's included).\n\
         per_listener_settings false\n\
         allow_anonymous false\n\
         use_username_as_clientid true\n\
         password_file {}\n\
         acl_file {}\n",
        passwd_path.display(),
        dir.join(ACL_FILE).display()
    );
    write_file(&passwd_path, passwd_text(&file).as_bytes(), gid)?;
    write_file(&dir.join(ACL_FILE), acl.as_bytes(), gid)?;
    write_file(&dir.join(CONF_FILE), conf.as_bytes(), gid)?;
    if let Some(g) = gid {
        share_dir(dir, g)?;
    }
    out.broker_group = gid;
    Ok(out)
}

/// The text of a password file.
fn passwd_text(file: &PasswordFile) -> String {
    let mut text = String::new();
    for (u, h) in &file.users {
        text.push_str(u);
        text.push(':');
        text.push_str(h);
        text.push('\n');
    }
    text
}

/// Opens `dir` to group `gid` for reading (0750): the broker, running as its own user, reads
/// the password file and the ACL in it; the secrets and credentials in it stay 0600 or in
/// directories of mode 0700.
fn share_dir(dir: &Path, gid: u32) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::os::unix::fs::chown(dir, None, Some(gid))
            .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750)))
            .map_err(|e| format!("{}: giving it to the broker's group: {e}", dir.display()))?;
    }
    #[cfg(not(unix))]
    let _ = (dir, gid);
    Ok(())
}

/// Writes the files of the broker of `facility`, bridged to the central broker at `central`
/// (`HOST:PORT`; with `central_ca`, over TLS), into `dir`/facility-`facility`: a password file
/// with the facility's sensors (the central file's hashes: one password per sensor), their ACL,
/// `centinela-auth.conf`, and `centinela-bridge.conf` (include it last: a bridge's settings
/// follow its `connection` line). Makes the bridge's central user `bridge@{facility}` if it has
/// none (its password goes only into the bridge file, mode 0600). Run [`broker_config`] first.
///
/// While the link is down the facility broker queues the sensors' messages for the bridge (its
/// session persists, without a count limit) and the central broker queues the receipts; agents
/// keep every event until its receipt comes, and the server drops what arrives twice.
///
/// # Errors
/// An unknown facility, a bad address, or files that cannot be written.
pub fn facility_broker_config(
    cfg: &ServerConfig,
    dir: &Path,
    facility: &str,
    central: &str,
    central_ca: Option<&Path>,
) -> Result<PathBuf, String> {
    let f = cfg
        .facility(facility)
        .ok_or_else(|| format!("facility `{facility}` is not in the configuration"))?;
    let (host, port) = central
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .filter(|(h, _)| !h.is_empty() && !h.contains(char::is_whitespace))
        .ok_or_else(|| format!("--central `{central}`: give the central broker as HOST:PORT"))?;
    let central_path = dir.join(PASSWD_FILE);
    let mut central_file = PasswordFile::load(&central_path)?;
    let user = bridge_user(facility);
    let password = match read_credentials(&dir.join(CREDENTIALS_DIR).join(&user)) {
        Some((_, p)) if central_file.users.contains_key(&user) => p,
        _ => {
            let pw = random_password()?;
            central_file.users.insert(user.clone(), hash(pw.expose())?);
            central_file.save(&central_path)?;
            let cred_dir = dir.join(CREDENTIALS_DIR);
            private_dir(&cred_dir)?;
            write_private(
                &cred_dir.join(&user),
                format!(
                    "# MQTT credentials of the bridge of facility {facility}\nusername = \"{user}\"\npassword = \"{}\"\n",
                    pw.expose()
                )
                .as_bytes(),
            )?;
            pw
        }
    };
    let out = dir.join(format!("facility-{facility}"));
    private_dir(&out)?;
    let mut local = PasswordFile::default();
    let mut acl = format!(
        "# Centinela broker rights of facility {facility} (written by `central-server broker-config`).\n"
    );
    for s in &f.sensors {
        if s.revoked || s.public_key.is_none() {
            continue;
        }
        let u = sensor_user(facility, &s.id);
        if let Some(h) = central_file.users.get(&u) {
            local.users.insert(u.clone(), h.clone());
        }
        acl.push_str(&format!(
            "\nuser {u}\ntopic write centinela/v1/{facility}/{0}/#\ntopic read centinela/receipt/v1/{facility}/{0}\n",
            s.id
        ));
    }
    local.save(&out.join(PASSWD_FILE))?;
    write_private(&out.join(ACL_FILE), acl.as_bytes())?;
    write_private(
        &out.join(CONF_FILE),
        format!(
            "# Centinela, the broker of facility {facility}: its sensors only, each with its own rights.\n\
             per_listener_settings false\n\
             allow_anonymous false\n\
             use_username_as_clientid true\n\
             password_file {}\n\
             acl_file {}\n",
            out.join(PASSWD_FILE).display(),
            out.join(ACL_FILE).display()
        )
        .as_bytes(),
    )?;
    let tls = central_ca.map_or_else(
        || {
            "# bridge_cafile /etc/centinela/central-ca.pem   (TLS to the centre: give its CA)\n"
                .to_string()
        },
        |ca| format!("bridge_cafile {}\n", ca.display()),
    );
    write_private(
        &out.join(BRIDGE_FILE),
        format!(
            "# The bridge of facility {facility} to the central broker (written by `central-server\n\
             # broker-config`; include it last). The sensors' messages go out, their receipts come\n\
             # in; while the link is down both brokers keep them for the bridge's session.\n\
             connection centinela-central\n\
             address {host}:{port}\n\
             {tls}\
             bridge_protocol_version mqttv311\n\
             remote_clientid centinela-bridge-{facility}\n\
             remote_username {user}\n\
             remote_password {}\n\
             cleansession false\n\
             notifications false\n\
             try_private false\n\
             keepalive_interval 20\n\
             restart_timeout 2 30\n\
             topic centinela/v1/{facility}/# out 1\n\
             topic centinela/receipt/v1/{facility}/# in 1\n",
            password.expose()
        )
        .as_bytes(),
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_a_mosquitto_passwd_line_reads() {
        let h = hash("s3cret").expect("hash");
        assert!(h.starts_with("$7$20000$"), "{h}");
        assert!(verify(&h, "s3cret"));
        assert!(!verify(&h, "s3creT"));
        // Written by mosquitto_passwd 2.0.11 (`mosquitto_passwd -b pw user1 secret1`).
        let theirs = "$7$101$yH0vW3+YG3kmTiyy$1R3Ap9Vv7Lm4vcNDbAorB4yCZXIH+MPtV6wE4WLEuURpMx7NAxqKLRQ3yzYauJNWsk4pHZje6IfavSxS75SXJg==";
        assert!(verify(theirs, "secret1"));
        assert!(!verify(theirs, "secret2"));
        for bad in ["", "$6$x$y", "$7$abc$x$y", "$7$101$!!$y", "$7$0$AAAA$AAAA"] {
            assert!(!verify(bad, "secret1"), "{bad}");
        }
    }

    #[test]
    fn the_server_password_is_made_once_and_kept_private() {
        let dir = tempfile::tempdir().expect("tmp");
        let b = dir.path().join("broker");
        let a = server_password(&b, SERVER_USER).expect("first");
        let again = server_password(&b, SERVER_USER).expect("again");
        assert_eq!(a.expose(), again.expose());
        let f = PasswordFile::load(&b.join(PASSWD_FILE)).expect("passwd");
        assert!(f.check(SERVER_USER, a.expose()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode(&b), 0o700);
            assert_eq!(mode(&b.join(SERVER_SECRET_FILE)), 0o600);
            assert_eq!(mode(&b.join(PASSWD_FILE)), 0o600);
        }
    }
}
