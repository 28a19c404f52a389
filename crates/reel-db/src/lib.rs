//! Metadata in SQL: SQLite by default, PostgreSQL for several nodes, through one set of
//! queries on sqlx's `Any` driver. Portability rules that keep it so: ids are TEXT, times
//! are BIGINT Unix milliseconds, flags are BIGINT 0/1, and placeholders are `$1, $2, …`
//! (SQLite reads `$N` as a numbered parameter too).

mod apps;
mod assets;
mod changes;
mod migrations;
mod recordings;
mod repo;
mod rooms;
mod sessions;
mod webhooks;

pub use apps::*;
pub use assets::*;
pub use changes::Change;
pub use recordings::*;
pub use repo::*;
pub use rooms::*;
pub use sessions::*;
pub use webhooks::*;

use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("not found")]
    NotFound,
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

pub type Result<T, E = DbError> = std::result::Result<T, E>;

/// The file of a `sqlite://path[?…]` URL.
fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

impl DbError {
    /// The database could not take the request now (locked past `busy_timeout`, disk full,
    /// unreachable, no connection free) and the same request may succeed later. Callers
    /// keep such work and retry it; the API answers 503 with `Retry-After`.
    pub fn is_unavailable(&self) -> bool {
        let DbError::Sql(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => {
                let code = db.code().unwrap_or_default();
                // SQLite primary result codes (an extended code keeps the primary in its
                // low byte): BUSY 5, LOCKED 6, NOMEM 7, READONLY 8, IOERR 10, FULL 13,
                // CANTOPEN 14. PostgreSQL SQLSTATEs that pass: the connection's (08000-08006;
                // not 08P01, a protocol violation), insufficient resources (53100 disk full,
                // 53200 out of memory, 53300 too many connections; not 53400, a
                // configuration limit), the server shutting down or starting (57P01-57P03;
                // not 57014, a cancelled statement), serialization failure and deadlock.
                if let Ok(n) = code.parse::<i64>() {
                    matches!(n & 0xff, 5 | 6 | 7 | 8 | 10 | 13 | 14)
                } else {
                    matches!(
                        code.as_ref(),
                        "08000"
                            | "08001"
                            | "08003"
                            | "08004"
                            | "08006"
                            | "53100"
                            | "53200"
                            | "53300"
                            | "57P01"
                            | "57P02"
                            | "57P03"
                            | "40001"
                            | "40P01"
                    )
                }
            }
            _ => false,
        }
    }
}

#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    is_sqlite: bool,
    /// The SQLite file and its inode when opened: a file removed or replaced under a running
    /// server is written to blindly (the open descriptors keep the deleted one alive).
    sqlite_file: Option<(std::path::PathBuf, u64)>,
}

impl Db {
    /// `sqlite://path/to/file.db` (created if missing) or `postgres://…`.
    pub async fn connect(url: &str) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let is_sqlite = url.starts_with("sqlite:");
        let url = if is_sqlite && !url.contains('?') {
            format!("{url}?mode=rwc")
        } else {
            url.to_string()
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if is_sqlite { 4 } else { 10 })
            // An unreachable PostgreSQL answers within this, not sqlx's 30 s: the recorder
            // keeps refused work and retries it, and the API answers 503 at once.
            .acquire_timeout(std::time::Duration::from_secs(3))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if is_sqlite {
                        // WAL: readers never wait for the recorder's writes.
                        sqlx::query("PRAGMA journal_mode=WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout=5000")
                            .execute(&mut *conn)
                            .await?;
                        // NORMAL: in WAL mode a commit reaches the disk at the next
                        // checkpoint, and `make_durable` checkpoints whenever Reel reports
                        // something done (an asset). FULL (an fsync per commit) was measured
                        // to cost a burst of 1000 SIPREC calls the first packets of 480 of
                        // them: the brain's joins waited on the disk.
                        sqlx::query("PRAGMA synchronous=NORMAL")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        let sqlite_file = sqlite_path(&url).and_then(|path| {
            use std::os::unix::fs::MetadataExt;
            let inode = std::fs::metadata(&path).ok()?.ino();
            Some((path, inode))
        });
        let db = Db {
            pool,
            is_sqlite,
            sqlite_file,
        };
        migrations::run(&db).await?;
        Ok(db)
    }

    /// Puts every commit so far on disk. SQLite at `synchronous=NORMAL` syncs its WAL only
    /// at a checkpoint: without one, an OS crash or a disk turned read-only could lose rows
    /// while the fsynced journals they describe survive. Called when an asset is reported
    /// done; PostgreSQL commits are durable already.
    pub async fn make_durable(&self) -> Result<()> {
        if self.is_sqlite {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Whether the database answers now (for `/healthz`): a query, and for SQLite, its file
    /// still the one opened.
    pub async fn check(&self) -> Result<(), String> {
        if let Some((path, inode)) = &self.sqlite_file {
            use std::os::unix::fs::MetadataExt;
            match std::fs::metadata(path) {
                Ok(m) if m.ino() == *inode => {}
                _ => {
                    return Err(format!(
                        "the database file {} was removed or replaced while Reel runs (what it writes goes to the removed file): restore it and restart",
                        path.display()
                    ))
                }
            }
        }
        let probe = sqlx::query("SELECT 1").execute(&self.pool);
        match tokio::time::timeout(std::time::Duration::from_secs(2), probe).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("the database refused a query: {e}")),
            Err(_) => Err("the database did not answer within 2 s".into()),
        }
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn is_sqlite(&self) -> bool {
        self.is_sqlite
    }

    /// A transaction that will write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads first and writes later fails at
    /// once with SQLITE_BUSY when another connection wrote in between, without waiting out
    /// `busy_timeout`. (Found by schemathesis on a loaded machine: a 500 on a recording stop
    /// racing the webhook worker.)
    pub(crate) async fn begin_write(&self) -> Result<WriteTx> {
        let statement = if self.is_sqlite {
            "BEGIN IMMEDIATE"
        } else {
            "BEGIN"
        };
        let conn = self.pool.acquire().await?;
        let mut tx = WriteTx {
            conn,
            committed: false,
        };
        sqlx::query(statement).execute(&mut *tx.conn).await?;
        Ok(tx)
    }
}

/// A write transaction that owns its connection's fate: committed, the connection goes back
/// to the pool; failed or dropped at any step (a refused COMMIT included), the connection
/// is closed, which rolls the transaction back. sqlx's own `Transaction` returns the
/// connection to the pool with its transaction depth still counted after a failed COMMIT,
/// and every later `begin` on it fails until restart (seen after a disk-full COMMIT).
pub(crate) struct WriteTx {
    conn: sqlx::pool::PoolConnection<sqlx::Any>,
    committed: bool,
}

impl WriteTx {
    /// Ends the transaction writing nothing; the connection goes back to the pool.
    pub(crate) async fn rollback(mut self) -> Result<()> {
        sqlx::query("ROLLBACK").execute(&mut *self.conn).await?;
        self.committed = true;
        Ok(())
    }

    pub(crate) async fn commit(mut self) -> Result<()> {
        sqlx::query("COMMIT").execute(&mut *self.conn).await?;
        self.committed = true;
        Ok(())
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if !self.committed {
            self.conn.close_on_drop();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::repo::tests::{postgres, sqlite};
    use crate::Db;

    /// A COMMIT the database refuses (here a deferred foreign key; a full disk in the field)
    /// leaves every pooled connection usable: the failed one is closed, not reused.
    async fn a_refused_commit_poisons_no_connection(db: Db) {
        for statement in [
            "CREATE TABLE fault_parent (id BIGINT PRIMARY KEY)",
            "CREATE TABLE fault_child (parent BIGINT REFERENCES fault_parent (id) DEFERRABLE INITIALLY DEFERRED)",
        ] {
            sqlx::query(statement).execute(db.pool()).await.unwrap();
        }
        for _ in 0..3 {
            let mut tx = db.begin_write().await.unwrap();
            sqlx::query("INSERT INTO fault_child (parent) VALUES (7)")
                .execute(&mut *tx)
                .await
                .unwrap();
            assert!(tx.commit().await.is_err(), "the COMMIT must fail");
        }
        // More writes than the pool has connections: each one works.
        for i in 0..12i64 {
            let mut tx = db.begin_write().await.unwrap();
            sqlx::query("INSERT INTO fault_parent (id) VALUES ($1)")
                .bind(i)
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM fault_parent")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(n, 12);
        let children: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM fault_child")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(children, 0, "a refused transaction left rows behind");
    }

    #[tokio::test]
    async fn a_refused_commit_on_sqlite() {
        a_refused_commit_poisons_no_connection(sqlite().await).await;
    }

    #[tokio::test]
    async fn a_refused_commit_on_postgres() {
        if let Some(db) = postgres().await {
            a_refused_commit_poisons_no_connection(db).await;
        }
    }
}
