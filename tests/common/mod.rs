//! Test helpers: a fresh store per test, on SQLite (a temporary file) or on
//! PostgreSQL (a new database per test, when OUTREACH_TEST_DATABASE_URL is set).
#![allow(dead_code)]

use std::sync::Arc;

use outreach::store::{PgStore, SharedStore, SqliteStore};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

/// A store that cleans up after itself.
pub struct TestStore {
    pub store: SharedStore,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(PgConnectOptions, String)>,
}

impl TestStore {
    /// Drop the PostgreSQL database, if any (SQLite files go with the temp dir).
    pub async fn cleanup(self) {
        if let Some((admin, name)) = self.pg {
            drop(self.store);
            if let Ok(mut conn) = PgConnection::connect_with(&admin).await {
                let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await;
            }
        }
    }
}

impl TestStore {
    /// Another store on the same database, as a second process would open
    /// it.
    pub async fn reopen(&self) -> SharedStore {
        match self.store.backend() {
            outreach::store::Backend::Sqlite => Arc::new(
                SqliteStore::open(&self.url, 4)
                    .await
                    .expect("reopen sqlite"),
            ),
            outreach::store::Backend::Postgres => {
                Arc::new(PgStore::open(&self.url, 4).await.expect("reopen postgres"))
            }
        }
    }
}

/// A fresh SQLite store in a temporary directory.
pub async fn sqlite() -> TestStore {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("outreach.db").display());
    let store = SqliteStore::open(&url, 4).await.expect("open sqlite");
    TestStore {
        store: Arc::new(store),
        url,
        _dir: Some(dir),
        pg: None,
    }
}

/// The PostgreSQL test URL, or None (and a printed notice) when not configured.
pub fn pg_url() -> Option<String> {
    match std::env::var("OUTREACH_TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!("skipped: OUTREACH_TEST_DATABASE_URL is not set, PostgreSQL not tested");
            None
        }
    }
}

/// A fresh PostgreSQL database, or None when OUTREACH_TEST_DATABASE_URL is unset.
pub async fn postgres() -> Option<TestStore> {
    let url = pg_url()?;
    let admin: PgConnectOptions = url
        .parse()
        .expect("OUTREACH_TEST_DATABASE_URL is a postgres URL");
    let name = format!("outreach_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect_with(&admin)
        .await
        .expect("connect to OUTREACH_TEST_DATABASE_URL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let options = admin.clone().database(&name);
    let store = PgStore::open_with(options, 4).await.expect("open postgres");
    let db_url = replace_db(&url, &name);
    Some(TestStore {
        store: Arc::new(store),
        url: db_url,
        _dir: None,
        pg: Some((admin, name)),
    })
}

/// `url` with its database name replaced.
pub fn replace_db(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Generates one `sqlite` and one `postgres` test per listed async fn taking a
/// `SharedStore` (or, for those listed after a `;`, the whole `&TestStore`).
#[macro_export]
macro_rules! store_contract {
    // Tests after `;` take the whole `&TestStore` (its URL as well as its
    // store), for those that reach into the database themselves.
    ($($name:ident),* $(,)?; $($with_db:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::common::sqlite().await;
                    super::$name(db.store.clone()).await;
                    db.cleanup().await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $with_db() {
                    let db = $crate::common::sqlite().await;
                    super::$with_db(&db).await;
                    db.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = $crate::common::postgres().await else { return };
                    super::$name(db.store.clone()).await;
                    db.cleanup().await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $with_db() {
                    let Some(db) = $crate::common::postgres().await else { return };
                    super::$with_db(&db).await;
                    db.cleanup().await;
                }
            )*
        }
    };
    ($($name:ident),* $(,)?) => {
        $crate::store_contract!($($name),*;);
    };
}
