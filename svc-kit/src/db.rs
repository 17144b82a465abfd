//! PostgreSQL pools confined to one schema per service.
//!
//! Every connection's `search_path` is the service's schema, so the service's
//! queries and its `_sqlx_migrations` table live there and several services can
//! share one database without seeing each other's tables.

use std::{str::FromStr, time::Duration};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use sqlx::{
    AssertSqlSafe, Executor as _, PgPool,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::secret::SecretUrl;

/// Where and how to connect.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    /// A `postgres://user[:password]@host:port/db` URL; always name the user.
    pub url: SecretUrl,
    /// Pool size.
    pub max_connections: u32,
    /// How long a request waits for a pooled connection.
    pub acquire_timeout_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/taxi".into(),
            max_connections: 10,
            acquire_timeout_ms: 3_000,
        }
    }
}

/// Connects with `search_path = schema`, creates the schema if needed and
/// applies `migrator`.
pub async fn connect(
    config: &DatabaseConfig,
    schema: &'static str,
    migrator: &Migrator,
) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(config.url.expose())
        .context("DATABASE url is not a valid postgres URL")?
        .options([("search_path", schema)]);
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms))
        .connect_with(options)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL for schema {schema}"))?;
    // Replicas starting together on a new database would race to create
    // the schema (IF NOT EXISTS does not keep two creators apart), so one
    // creates it while the others wait on a lock and then find it there.
    let create = async {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('create schema ' || $1))")
            .bind(schema)
            .execute(&mut *tx)
            .await?;
        // `schema` is a compile-time constant of the calling service, never input.
        tx.execute(AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS {schema}")))
            .await?;
        tx.commit().await
    };
    create
        .await
        .with_context(|| format!("cannot create schema {schema}"))?;
    migrator
        .run(&pool)
        .await
        .with_context(|| format!("cannot migrate schema {schema}"))?;
    Ok(pool)
}

/// True while the database answers.
pub async fn is_reachable(pool: &PgPool) -> bool {
    sqlx::query("SELECT 1").execute(pool).await.is_ok()
}

/// A health probe for [`crate::grpc::serve_with_health`]: the database answers.
pub fn probe(pool: &PgPool) -> impl FnMut() -> std::pin::Pin<Box<dyn Future<Output = bool> + Send>> + use<> {
    let pool = pool.clone();
    move || {
        let pool = pool.clone();
        Box::pin(async move { is_reachable(&pool).await })
    }
}

/// Exports the pool's state at every scrape: `db_pool_connections` by state
/// (`in_use`, `idle`) and `db_pool_max_connections`. A pool whose in-use
/// connections stay at the maximum makes requests wait for a connection.
pub fn register_metrics(pool: &PgPool, registry: &mut crate::metrics::Registry) {
    registry.register_collector(Box::new(PoolCollector { pool: pool.clone() }));
}

#[derive(Debug)]
struct PoolCollector {
    pool: PgPool,
}

impl prometheus_client::collector::Collector for PoolCollector {
    fn encode(&self, mut encoder: prometheus_client::encoding::DescriptorEncoder<'_>) -> std::fmt::Result {
        use prometheus_client::{
            encoding::EncodeMetric as _, metrics::MetricType, metrics::gauge::ConstGauge,
        };

        let open = i64::from(self.pool.size());
        let idle = i64::try_from(self.pool.num_idle()).unwrap_or(i64::MAX).min(open);
        let mut connections = encoder.encode_descriptor(
            "db_pool_connections",
            "PostgreSQL connections the pool holds open, by state",
            None,
            MetricType::Gauge,
        )?;
        for (state, count) in [("in_use", open - idle), ("idle", idle)] {
            ConstGauge::new(count).encode(connections.encode_family(&[("state", state)])?)?;
        }
        let max = encoder.encode_descriptor(
            "db_pool_max_connections",
            "The most connections the pool opens",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::from(self.pool.options().get_max_connections())).encode(max)
    }
}
