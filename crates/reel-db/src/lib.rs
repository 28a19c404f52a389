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

#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    is_sqlite: bool,
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
                        sqlx::query("PRAGMA synchronous=NORMAL")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        let db = Db { pool, is_sqlite };
        migrations::run(&db).await?;
        Ok(db)
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
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        let statement = if self.is_sqlite {
            "BEGIN IMMEDIATE"
        } else {
            "BEGIN"
        };
        Ok(self.pool.begin_with(statement).await?)
    }
}
