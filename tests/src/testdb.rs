//! The database a scenario runs on: a SQLite file in the test's directory, or a new database
//! in the test process's throwaway PostgreSQL cluster ([`crate::pg`]). Scenarios that store
//! anything run on both ([`on_both_databases!`](crate::on_both_databases)).

use std::path::{Path, PathBuf};

use central_server::db::Database;

/// Which engine a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file (the embedded default).
    Sqlite,
    /// PostgreSQL (a national deployment).
    Postgres,
}

/// A scenario's database and the directory for the server's own files.
#[derive(Debug, Clone)]
pub struct TestDb {
    /// The engine.
    pub backend: Backend,
    /// The database.
    pub db: Database,
    /// The server's data directory (broker files, secrets), and the SQLite file's.
    pub dir: PathBuf,
}

impl Backend {
    /// A new, empty database for a scenario whose files go in `dir`: `dir/c.db`, or a new
    /// PostgreSQL database. `None` (with a message) when PostgreSQL is not installed and not
    /// required.
    ///
    /// # Panics
    /// When PostgreSQL is required and cannot be started.
    pub async fn open(self, dir: &Path) -> Option<TestDb> {
        self.open_named(dir, "c.db").await
    }

    /// As [`Backend::open`], the SQLite file named `file`.
    ///
    /// # Panics
    /// When PostgreSQL is required and cannot be started.
    pub async fn open_named(self, dir: &Path, file: &str) -> Option<TestDb> {
        let db = match self {
            Self::Sqlite => Database::Sqlite(dir.join(file)),
            Self::Postgres => Database::Postgres(crate::pg::test_database().await?),
        };
        Some(TestDb {
            backend: self,
            db,
            dir: dir.to_path_buf(),
        })
    }
}

impl TestDb {
    /// A connection pool of one connection, for a test that reads what a server stored while
    /// it runs.
    ///
    /// # Panics
    /// When the database cannot be opened.
    pub async fn reader(&self) -> sqlx::AnyPool {
        self.db
            .connect(1)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.db))
    }

    /// A copy of this database as it is now (a server must not be using it), named `name`:
    /// a file in the same directory, or a PostgreSQL database made from this one.
    ///
    /// # Panics
    /// When it cannot be copied.
    pub async fn copy(&self, name: &str) -> TestDb {
        let db = match &self.db {
            Database::Sqlite(path) => {
                let to = self.dir.join(format!("{name}.db"));
                std::fs::copy(path, &to).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                Database::Sqlite(to)
            }
            Database::Postgres(url) => {
                let from = url.rsplit('/').next().unwrap_or_default();
                let cluster = crate::pg::test_cluster().expect("the test cluster runs");
                Database::Postgres(
                    cluster
                        .copy_database(from, &format!("{from}_{name}"))
                        .await
                        .unwrap_or_else(|e| panic!("{e}")),
                )
            }
        };
        TestDb { db, ..self.clone() }
    }

    /// Runs one statement with one text value bound to `$1`, and returns how many rows it
    /// changed (a test that tampers with what a server stored).
    ///
    /// # Panics
    /// When it fails.
    pub async fn execute(&self, sql: &str, value: &str) -> u64 {
        let pool = self.reader().await;
        let n = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .bind(value.to_string())
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .rows_affected();
        pool.close().await;
        n
    }

    /// The database as the server's `--db` argument takes it.
    #[must_use]
    pub fn arg(&self) -> String {
        match &self.db {
            Database::Sqlite(p) => p.display().to_string(),
            Database::Postgres(url) => url.clone(),
        }
    }

    /// The SQLite file.
    ///
    /// # Panics
    /// On PostgreSQL.
    #[must_use]
    pub fn file(&self) -> &Path {
        self.db.file().expect("a SQLite scenario")
    }
}

/// Runs an `async fn NAME(backend: Backend)` scenario as two tests, `NAME::sqlite` and
/// `NAME::postgres`, each on a multi-threaded runtime.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::testdb::Backend::Sqlite).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::testdb::Backend::Postgres).await;
                }
            }
        )+
    };
}
