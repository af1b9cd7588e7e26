//! Embedded schema migrations, applied in order inside one transaction and recorded
//! in `schema_migrations`.

use deadpool_postgres::Client;
use ordo_store::StoreResult;

use crate::error::db;

/// Advisory lock key ("ordomigr"): two processes starting at once queue here, and the
/// second finds the first's migrations recorded.
const MIGRATION_LOCK: i64 = 0x6f72_646f_6d69_6772;

/// (version, name, SQL), in the order they apply.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (
        2,
        "payment_reminder",
        include_str!("../migrations/0002_payment_reminder.sql"),
    ),
    (
        3,
        "limits_and_channels",
        include_str!("../migrations/0003_limits_and_channels.sql"),
    ),
    (4, "notifications", include_str!("../migrations/0004_notifications.sql")),
    (5, "code_pools", include_str!("../migrations/0005_code_pools.sql")),
];

pub(crate) async fn run(client: &mut Client) -> StoreResult<()> {
    let tx = client.transaction().await.map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version     BIGINT PRIMARY KEY,
             name        TEXT NOT NULL,
             applied_at  BIGINT NOT NULL
         )",
    )
    .await
    .map_err(db)?;
    let applied: Vec<i64> = tx
        .query("SELECT version FROM schema_migrations", &[])
        .await
        .map_err(db)?
        .iter()
        .map(|row| crate::codec::col(row, "version"))
        .collect::<StoreResult<_>>()?;
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await.map_err(db)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at)
             VALUES ($1, $2, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)",
            &[version, name],
        )
        .await
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)
}
