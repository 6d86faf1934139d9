//! A throwaway PostgreSQL cluster for tests and benches: `initdb` into a temporary directory,
//! the server on a free loopback port, started by the test process itself (no system service
//! is assumed). One cluster per test process, each test in a database of its own.
//!
//! The binaries are found in `CENTINELA_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`
//! (Debian's `postgresql` package). Without them the tests that need PostgreSQL are skipped
//! with a message, unless `CENTINELA_REQUIRE_POSTGRES` is set (CI): then they fail.
//!
//! PostgreSQL refuses to run as root; as root the cluster runs as the `postgres` user the
//! package creates. The postmaster dies with the test process (`setpriv --pdeathsig`), and a
//! later run removes the directories of clusters whose process is gone.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How the cluster keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `fsync`, `synchronous_commit` and full-page writes off: a test's data need not survive a
    /// crash of the machine, and tests run much faster.
    Throwaway,
    /// PostgreSQL's defaults, as in production (benches).
    Production,
}

/// A running cluster.
#[derive(Debug)]
pub struct Cluster {
    /// Its loopback port.
    pub port: u16,
    /// Its data directory.
    pub dir: PathBuf,
}

static TEST_CLUSTER: OnceLock<Option<Cluster>> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// The directory of PostgreSQL's server binaries, if installed.
#[must_use]
pub fn bin_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("CENTINELA_PG_BIN") {
        return Some(PathBuf::from(d)).filter(|d| d.join("initdb").is_file());
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b)
}

/// The test process's cluster (started at the first call), or `None` with a message when
/// PostgreSQL is not installed and not required.
///
/// # Panics
/// When it is required and missing, or does not start.
pub fn test_cluster() -> Option<&'static Cluster> {
    TEST_CLUSTER
        .get_or_init(|| {
            let Some(bin) = bin_dir() else {
                assert!(
                    std::env::var_os("CENTINELA_REQUIRE_POSTGRES").is_none(),
                    "CENTINELA_REQUIRE_POSTGRES is set but PostgreSQL is not installed \
                     (apt install postgresql, or set CENTINELA_PG_BIN)"
                );
                eprintln!("skipped: PostgreSQL is not installed (apt install postgresql)");
                return None;
            };
            Some(Cluster::start(&bin, Durability::Throwaway).unwrap_or_else(|e| panic!("{e}")))
        })
        .as_ref()
}

/// A new, empty database in the test process's cluster: its URL (no password: the cluster
/// trusts loopback connections), or `None` when PostgreSQL is skipped.
///
/// # Panics
/// When the database cannot be made.
pub async fn test_database() -> Option<String> {
    let c = test_cluster()?;
    Some(c.create_database().await.unwrap_or_else(|e| panic!("{e}")))
}

fn is_root() -> bool {
    // The effective uid of this process, from /proc (no libc binding needed).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// The uid and gid of `user`, from /etc/passwd.
fn user_ids(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.first() != Some(&user) {
            return None;
        }
        Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
    })
}

/// A command that runs `program` as the cluster's owner (`postgres` when this process is root),
/// killed when the thread that spawns it ends.
fn as_owner(program: &Path, pdeathsig: bool) -> Command {
    let mut c = Command::new("setpriv");
    if pdeathsig {
        c.arg("--pdeathsig=KILL");
    }
    if is_root() {
        c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"]);
    }
    c.arg(program);
    c
}

/// Removes the directories of earlier clusters whose test process is gone.
fn sweep_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("centinela-pg-"))
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

impl Cluster {
    /// Makes a cluster and starts its server on a free loopback port; the server lives as long
    /// as this process.
    ///
    /// # Errors
    /// `initdb` or the server failing, with their output.
    pub fn start(bin: &Path, durability: Durability) -> Result<Self, String> {
        let parent = std::env::temp_dir();
        sweep_stale(&parent);
        let dir = parent.join(format!(
            "centinela-pg-{}-{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let data = dir.join("data");
        let sockets = dir.join("sockets");
        std::fs::create_dir_all(&sockets).map_err(|e| format!("{}: {e}", sockets.display()))?;
        if is_root() {
            let (uid, gid) = user_ids("postgres").ok_or(
                "running as root, PostgreSQL needs the `postgres` user (apt install postgresql)",
            )?;
            for d in [&dir, &sockets] {
                std::os::unix::fs::chown(d, Some(uid), Some(gid))
                    .map_err(|e| format!("chown {}: {e}", d.display()))?;
            }
        }
        let out = as_owner(&bin.join("initdb"), false)
            .args(["--auth=trust", "--username=postgres", "--encoding=UTF8"])
            .args(["--locale=C", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let mut last = String::new();
        for _ in 0..5 {
            let port = crate::free_port();
            let mut args: Vec<String> = vec![
                "-D".into(),
                data.display().to_string(),
                "-p".into(),
                port.to_string(),
                "-k".into(),
                sockets.display().to_string(),
                "-c".into(),
                "listen_addresses=127.0.0.1".into(),
                "-c".into(),
                "max_connections=200".into(),
            ];
            if durability == Durability::Throwaway {
                for s in [
                    "fsync=off",
                    "synchronous_commit=off",
                    "full_page_writes=off",
                ] {
                    args.push("-c".into());
                    args.push(s.into());
                }
            }
            let log = dir.join(format!("server-{port}.log"));
            let postgres = bin.join("postgres");
            let log2 = log.clone();
            // The postmaster is killed when the thread that started it ends: a thread that
            // lives as long as the process starts it and waits for it.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let spawned = std::fs::File::create(&log2).and_then(|f| {
                    let f2 = f.try_clone()?;
                    as_owner(&postgres, true)
                        .args(&args)
                        .stdin(Stdio::null())
                        .stdout(f)
                        .stderr(f2)
                        .spawn()
                });
                match spawned {
                    Ok(mut child) => {
                        let _ = tx.send(Ok(()));
                        let _ = child.wait();
                    }
                    Err(e) => {
                        let _ = tx.send(Err(format!("postgres: {e}")));
                    }
                }
            });
            rx.recv().map_err(|e| e.to_string())??;
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                let ready = as_owner(&bin.join("pg_isready"), false)
                    .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
                    .status()
                    .is_ok_and(|s| s.success());
                if ready {
                    return Ok(Self { port, dir });
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            last = std::fs::read_to_string(&log).unwrap_or_default();
            if !last.contains("could not bind") && !last.contains("Address already in use") {
                break;
            }
        }
        Err(format!("PostgreSQL did not start:\n{last}"))
    }

    /// The URL of database `name` in this cluster.
    #[must_use]
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Makes database `to` as a copy of `from` (no one may be connected to `from`) and returns
    /// its URL.
    ///
    /// # Errors
    /// Connecting to the cluster or copying the database.
    pub async fn copy_database(&self, from: &str, to: &str) -> Result<String, String> {
        use sqlx::Connection as _;
        let ok = |n: &str| n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok(from) || !ok(to) {
            return Err(format!(
                "database names `{from}`, `{to}`: letters, digits and _ only"
            ));
        }
        let mut c = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .map_err(|e| format!("PostgreSQL on port {}: {e}", self.port))?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {to} TEMPLATE {from}"
        )))
        .execute(&mut c)
        .await
        .map_err(|e| format!("CREATE DATABASE {to} TEMPLATE {from}: {e}"))?;
        let _ = c.close().await;
        Ok(self.url(to))
    }

    /// Makes a new, empty database whose files live in `location` (a directory the cluster's
    /// owner owns, empty: a tablespace is made there) and returns its URL.
    ///
    /// # Errors
    /// Connecting to the cluster, or making the tablespace or the database.
    pub async fn create_database_in(&self, location: &Path) -> Result<String, String> {
        use sqlx::Connection as _;
        let name = format!(
            "t_{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        let at = location.display().to_string();
        if at.contains('\'') {
            return Err(format!("{at}: a tablespace location without quotes"));
        }
        let mut c = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .map_err(|e| format!("PostgreSQL on port {}: {e}", self.port))?;
        for sql in [
            format!("CREATE TABLESPACE ts_{name} LOCATION '{at}'"),
            format!("CREATE DATABASE {name} TABLESPACE ts_{name}"),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&mut c)
                .await
                .map_err(|e| format!("{sql}: {e}"))?;
        }
        let _ = c.close().await;
        Ok(self.url(&name))
    }

    /// Makes a new, empty database and returns its URL.
    ///
    /// # Errors
    /// Connecting to the cluster or creating the database.
    pub async fn create_database(&self) -> Result<String, String> {
        use sqlx::Connection as _;
        let name = format!(
            "t_{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        let mut c = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .map_err(|e| format!("PostgreSQL on port {}: {e}", self.port))?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut c)
            .await
            .map_err(|e| format!("CREATE DATABASE {name}: {e}"))?;
        let _ = c.close().await;
        Ok(self.url(&name))
    }
}
