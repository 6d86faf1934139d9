//! Which database the server stores in: a SQLite file (the embedded default) or PostgreSQL (a
//! national deployment, several servers on one database), and how to open it. Both go through
//! sqlx's `Any` driver with the same queries: `$N` placeholders, standard SQL, and the schema's
//! migrations written once per engine with the same versions and meaning.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::any::{AnyArguments, AnyPoolOptions};
use sqlx::{Any, AnyPool, Arguments as _, Connection as _, Transaction};

/// Where the store lives: a SQLite file, or a PostgreSQL database URL.
///
/// A URL that carries a password is refused: it would show in process lists, shell histories
/// and logs. PostgreSQL's own `PGPASSWORD` or a `~/.pgpass` file (mode 0600) give it instead.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file (created when missing).
    Sqlite(PathBuf),
    /// `postgres://user@host:port/dbname?…` (no password).
    Postgres(String),
}

/// The SQL engine behind a [`Database`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Database {
    /// The engine.
    #[must_use]
    pub fn engine(&self) -> Engine {
        match self {
            Self::Sqlite(_) => Engine::Sqlite,
            Self::Postgres(_) => Engine::Postgres,
        }
    }

    /// The SQLite file, if it is one.
    #[must_use]
    pub fn file(&self) -> Option<&Path> {
        match self {
            Self::Sqlite(p) => Some(p),
            Self::Postgres(_) => None,
        }
    }

    /// Opens a pool of at most `connections`; SQLite files are created when missing, in WAL
    /// mode with `synchronous = FULL` (see [`SQLITE_PRAGMAS`]).
    ///
    /// A connection goes back into the pool only outside any transaction: one that an error
    /// left inside a transaction (SQLite rolls a transaction back by itself after some I/O
    /// errors, and then sqlx's own count of open transactions is wrong) is closed, which rolls
    /// back whatever it held, and the pool opens a new one. Such a connection once held
    /// SQLite's write lock for ever after a full disk, and "committed" the next batches only
    /// into a savepoint of its stuck transaction.
    ///
    /// # Errors
    /// Connecting.
    pub async fn connect(&self, connections: u32) -> Result<AnyPool, sqlx::Error> {
        sqlx::any::install_default_drivers();
        match self {
            Self::Sqlite(path) => {
                AnyPoolOptions::new()
                    .max_connections(connections)
                    .after_connect(|c, _| {
                        Box::pin(async move {
                            sqlx::raw_sql(SQLITE_PRAGMAS).execute(c).await.map(|_| ())
                        })
                    })
                    .after_release(|c, _| {
                        Box::pin(async move {
                            // A raw BEGIN fails inside a transaction, whatever sqlx believes.
                            if sqlx::raw_sql("BEGIN; ROLLBACK").execute(&mut *c).await.is_err() {
                                tracing::warn!(
                                    "a database connection was left inside a transaction; closed (its transaction rolls back)"
                                );
                                return Ok(false);
                            }
                            Ok(!c.is_in_transaction())
                        })
                    })
                    .connect(&sqlite_url(path, "rwc"))
                    .await
            }
            Self::Postgres(url) => {
                AnyPoolOptions::new()
                    .max_connections(connections)
                    .acquire_timeout(std::time::Duration::from_secs(10))
                    .after_release(|c, _| Box::pin(async move { Ok(!c.is_in_transaction()) }))
                    .connect(url)
                    .await
            }
        }
    }
}

/// How every SQLite connection is set up. `synchronous = FULL`: in WAL mode each commit syncs
/// the log before it returns, so a commit that a receipt follows survives a power cut or an
/// operating-system crash (with `NORMAL` it may roll back then, SQLite's documentation says).
pub const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
     PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;";

/// Begins a write transaction on `pool`, at the top level only: on SQLite `BEGIN IMMEDIATE`
/// (the write lock taken at once, waiting up to the busy timeout, instead of failing when a
/// read turns into a write), on PostgreSQL `BEGIN`. sqlx refuses a custom `BEGIN` on a
/// connection it counts as inside a transaction, and the database refuses it on one that is,
/// so the commit of what this returns is a real commit, never the release of a savepoint
/// inside a transaction that stays open.
///
/// # Errors
/// The database, or a connection left inside a transaction.
pub async fn begin(pool: &AnyPool) -> Result<Transaction<'static, Any>, sqlx::Error> {
    let sqlite = pool.connect_options().database_url.scheme() == "sqlite";
    pool.begin_with(if sqlite { "BEGIN IMMEDIATE" } else { "BEGIN" })
        .await
}

/// What a committed transaction produced. Only [`commit`] makes one, after the database
/// said the commit succeeded: receipts are built from it, so none can be said for a
/// transaction that did not commit.
#[derive(Debug)]
#[must_use]
pub struct Committed<T>(T);

impl<T> Committed<T> {
    /// What the transaction produced.
    pub fn into_inner(self) -> T {
        self.0
    }

    /// What the transaction produced, borrowed.
    pub fn get(&self) -> &T {
        &self.0
    }
}

/// Commits `tx` and hands back `value` as committed.
///
/// # Errors
/// The commit failed: nothing of `tx` is stored, and `value` is dropped.
pub async fn commit<T>(
    tx: Transaction<'static, Any>,
    value: T,
) -> Result<Committed<T>, sqlx::Error> {
    tx.commit().await?;
    Ok(Committed(value))
}

/// `sqlite://…` for a path: every byte but the unreserved ones percent-encoded, so that a `?`,
/// `#` or `%` in a directory name stays part of the path.
#[must_use]
pub fn sqlite_url(path: &Path, mode: &str) -> String {
    let mut url = String::from("sqlite://");
    for b in path.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || b"/._-~".contains(b) {
            url.push(char::from(*b));
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url.push_str("?mode=");
    url.push_str(mode);
    url
}

impl FromStr for Database {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("the database is empty: give a SQLite file or a postgres:// URL".into());
        }
        if let Some(rest) = s
            .strip_prefix("postgres://")
            .or_else(|| s.strip_prefix("postgresql://"))
        {
            let authority = rest.split(['/', '?']).next().unwrap_or("");
            if let Some((userinfo, _)) = authority.rsplit_once('@')
                && userinfo.contains(':')
            {
                return Err(
                    "the PostgreSQL URL carries a password: leave it out of the URL and give it \
                     in PGPASSWORD or a ~/.pgpass file (mode 0600)"
                        .into(),
                );
            }
            if rest.contains("password=") {
                return Err(
                    "the PostgreSQL URL carries a password (password=…): give it in PGPASSWORD \
                     or a ~/.pgpass file (mode 0600)"
                        .into(),
                );
            }
            return Ok(Self::Postgres(s.to_string()));
        }
        if s.contains("://") {
            return Err(format!(
                "`{}`: not a database this server knows (a SQLite file path, sqlite:PATH, or \
                 postgres://…)",
                s.split("://").next().unwrap_or("")
            ));
        }
        let path = s
            .strip_prefix("sqlite:")
            .filter(|p| !p.is_empty())
            .unwrap_or(s);
        Ok(Self::Sqlite(PathBuf::from(path)))
    }
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(p) => write!(f, "SQLite {}", p.display()),
            Self::Postgres(url) => write!(f, "PostgreSQL {url}"),
        }
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<'de> serde::Deserialize<'de> for Database {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Database {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Sqlite(p) => s.serialize_str(&p.to_string_lossy()),
            Self::Postgres(u) => s.serialize_str(u),
        }
    }
}

/// A statement with many rows of values (`INSERT … VALUES (…), (…)`, `IN (…)`), numbered
/// `$1, $2, …` for both engines.
#[derive(Default)]
pub struct Rows {
    sql: String,
    args: AnyArguments,
    n: usize,
}

impl Rows {
    /// Starts with `head`.
    #[must_use]
    pub fn new(head: &str) -> Self {
        Self {
            sql: head.to_string(),
            ..Self::default()
        }
    }

    /// Appends SQL text.
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder bound to `v`.
    pub fn bind<'a, T>(&mut self, v: T) -> &mut Self
    where
        T: sqlx::Encode<'a, sqlx::Any> + sqlx::Type<sqlx::Any>,
    {
        self.n += 1;
        self.sql.push('$');
        self.sql.push_str(&self.n.to_string());
        // Encoding into Any's buffer of values does not fail for the types we bind.
        let _ = self.args.add(v);
        self
    }

    /// `(v1, v2, …)` per row, comma-separated, each row's values given by `each`.
    pub fn values<I, F>(&mut self, rows: I, mut each: F) -> &mut Self
    where
        I: IntoIterator,
        F: FnMut(&mut Row<'_>, I::Item),
    {
        self.sql.push_str("VALUES ");
        for (i, item) in rows.into_iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.sql.push('(');
            let mut r = Row {
                rows: self,
                first: true,
            };
            each(&mut r, item);
            self.sql.push(')');
        }
        self
    }

    /// The statement.
    pub fn build(self) -> sqlx::query::Query<'static, sqlx::Any, AnyArguments> {
        sqlx::query_with(sqlx::AssertSqlSafe(self.sql), self.args)
    }
}

impl fmt::Debug for Rows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rows")
            .field("sql", &self.sql)
            .field("values", &self.n)
            .finish()
    }
}

/// One row of [`Rows::values`].
#[derive(Debug)]
pub struct Row<'r> {
    rows: &'r mut Rows,
    first: bool,
}

impl Row<'_> {
    /// The row's next value.
    pub fn bind<'a, T>(&mut self, v: T) -> &mut Self
    where
        T: sqlx::Encode<'a, sqlx::Any> + sqlx::Type<sqlx::Any>,
    {
        if !self.first {
            self.rows.sql.push_str(", ");
        }
        self.first = false;
        self.rows.bind(v);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_is_a_file_or_a_postgres_url_without_a_password() {
        assert_eq!(
            "centinela.db".parse::<Database>(),
            Ok(Database::Sqlite("centinela.db".into()))
        );
        assert_eq!(
            "sqlite:/var/lib/c.db".parse::<Database>(),
            Ok(Database::Sqlite("/var/lib/c.db".into()))
        );
        assert_eq!(
            "postgres://centinela@db.local:5432/centinela".parse::<Database>(),
            Ok(Database::Postgres(
                "postgres://centinela@db.local:5432/centinela".into()
            ))
        );
        for bad in [
            "postgres://centinela:hunter2@db/centinela",
            "postgresql://u:p@h/d",
            "postgres://u@h/d?password=hunter2",
        ] {
            let e = bad.parse::<Database>().expect_err(bad);
            assert!(e.contains("password"), "{e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
        assert!("mysql://x/y".parse::<Database>().is_err());
        assert!("".parse::<Database>().is_err());
    }

    #[test]
    fn a_sqlite_url_keeps_odd_characters_of_the_path() {
        assert_eq!(
            sqlite_url(Path::new("/tmp/a b?#%/c.db"), "rwc"),
            "sqlite:///tmp/a%20b%3F%23%25/c.db?mode=rwc"
        );
    }

    #[tokio::test]
    async fn many_rows_are_numbered_for_both_engines() {
        let dir = tempfile::tempdir().expect("tmp");
        let pool = Database::Sqlite(dir.path().join("r.db"))
            .connect(1)
            .await
            .expect("open");
        sqlx::query("CREATE TABLE t (a BIGINT, b TEXT)")
            .execute(&pool)
            .await
            .expect("create");
        let mut q = Rows::new("INSERT INTO t (a, b) ");
        q.values([(1_i64, "x"), (2, "y"), (3, "z")], |r, (a, b)| {
            r.bind(a).bind(b);
        });
        q.push(" RETURNING a");
        let n = q.build().fetch_all(&pool).await.expect("insert").len();
        assert_eq!(n, 3);
        let mut q = Rows::new("SELECT count(*) FROM t WHERE b IN (");
        q.bind("x").push(", ").bind("z").push(")");
        let c: i64 = sqlx::Row::get(&q.build().fetch_one(&pool).await.expect("select"), 0);
        assert_eq!(c, 2);
    }
}
