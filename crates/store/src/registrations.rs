//! Registrar bindings (RFC 3261 §10), persisted so registered phones stay reachable across a restart.
//! The registrar keeps them in memory for the per-packet path; this table is the durable copy.

use super::{Db, Result, StoreError, is_foreign_key_violation, now_ms};

/// One contact bound to an address of record. `aor` is the extension number.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Binding {
    pub aor: String,
    pub contact_uri: String,
    /// "udp", "tcp", "tls", "ws" or "wss".
    pub transport: String,
    /// The transport source address the REGISTER came from ("ip:port", "[v6]:port").
    pub source_addr: String,
    /// The local address it arrived on, if known.
    pub local_addr: Option<String>,
    /// Unix seconds.
    pub expires_at: i64,
    pub call_id: String,
    pub cseq: i64,
    pub user_agent: Option<String>,
    /// qvalue × 1000 (0..=1000); `None` if the Contact had no q parameter.
    pub q: Option<i64>,
    /// The cluster node holding the phone's flow (docs/cluster.md); `None` when read by a query that does not
    /// select it, or for rows written before clustering.
    #[sqlx(default)]
    pub node: Option<String>,
}

/// Longest stored User-Agent; longer ones are truncated (it is attacker-controlled).
const MAX_USER_AGENT_LEN: usize = 256;

impl Db {
    /// Inserts or refreshes a binding. [`StoreError::NotFound`] if the AoR is not an extension.
    pub async fn upsert_binding(&self, b: &Binding) -> Result<()> {
        let user_agent = b
            .user_agent
            .as_deref()
            .map(|ua| truncate(ua, MAX_USER_AGENT_LEN));
        let now = now_ms();
        on_both!(self, pool, {
            let done = sqlx::query(
                    "INSERT INTO registrations (aor, contact_uri, transport, source_addr, local_addr, expires_at, \
                     call_id, cseq, user_agent, q, updated_at, node) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
                     $11, $12) ON CONFLICT (aor, contact_uri) DO UPDATE SET transport = $3, source_addr = $4, \
                     local_addr = $5, expires_at = $6, call_id = $7, cseq = $8, user_agent = $9, q = $10, \
                     updated_at = $11, node = $12",
                )
                .bind(&b.aor)
                .bind(&b.contact_uri)
                .bind(&b.transport)
                .bind(&b.source_addr)
                .bind(&b.local_addr)
                .bind(b.expires_at)
                .bind(&b.call_id)
                .bind(b.cseq)
                .bind(user_agent)
                .bind(b.q)
                .bind(now)
                .bind(&b.node)
                .execute(pool)
                .await;
            match done {
                Ok(_) => Ok(()),
                Err(e) if is_foreign_key_violation(&e) => {
                    Err(StoreError::NotFound(format!("extension {}", b.aor)))
                }
                Err(e) => Err(e.into()),
            }
        })
    }

    /// Removes one binding; true if it existed.
    pub async fn remove_binding(&self, aor: &str, contact_uri: &str) -> Result<bool> {
        on_both!(self, pool, {
            let done = sqlx::query("DELETE FROM registrations WHERE aor = $1 AND contact_uri = $2")
                .bind(aor)
                .bind(contact_uri)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// Removes every binding of an AoR (REGISTER with `Contact: *`); returns how many.
    pub async fn remove_all_bindings(&self, aor: &str) -> Result<u64> {
        on_both!(self, pool, {
            let done = sqlx::query("DELETE FROM registrations WHERE aor = $1")
                .bind(aor)
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        })
    }

    /// Every binding, ordered by AoR then contact.
    pub async fn list_bindings(&self) -> Result<Vec<Binding>> {
        on_both!(self, pool, Ok(sqlx::query_as(
                "SELECT aor, contact_uri, transport, source_addr, local_addr, expires_at, call_id, cseq, user_agent, q \
                 FROM registrations ORDER BY length(aor), aor, contact_uri",
            )
            .fetch_all(pool)
            .await?))
    }

    /// The bindings of one AoR, highest q first.
    pub async fn list_bindings_for(&self, aor: &str) -> Result<Vec<Binding>> {
        on_both!(self, pool, Ok(sqlx::query_as(
                "SELECT aor, contact_uri, transport, source_addr, local_addr, expires_at, call_id, cseq, user_agent, q \
                 FROM registrations WHERE aor = $1 ORDER BY COALESCE(q, 1000) DESC, contact_uri",
            )
            .bind(aor)
            .fetch_all(pool)
            .await?))
    }

    /// Deletes bindings with `expires_at <= now` (unix seconds); returns how many.
    pub async fn purge_expired_bindings(&self, now: i64) -> Result<u64> {
        on_both!(self, pool, {
            let done = sqlx::query("DELETE FROM registrations WHERE expires_at <= $1")
                .bind(now)
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        })
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A registration change from the running registrar, for [`Db::apply_binding_changes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingChange {
    Upsert(Binding),
    Remove { aor: String, contact_uri: String },
}

impl Db {
    /// Applies the registrar's changes in order, in one transaction. A binding whose extension was removed in
    /// the meantime is skipped (the registrar drops it on the next reload).
    pub async fn apply_binding_changes(&self, changes: &[BindingChange]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        // Only the last change per (AoR, contact) matters; under load a phone may refresh twice in a batch.
        let mut last: std::collections::HashMap<(&str, &str), &BindingChange> =
            std::collections::HashMap::new();
        let mut order: Vec<(&str, &str)> = Vec::new();
        for c in changes {
            let key = match c {
                BindingChange::Upsert(b) => (b.aor.as_str(), b.contact_uri.as_str()),
                BindingChange::Remove { aor, contact_uri } => (aor.as_str(), contact_uri.as_str()),
            };
            if last.insert(key, c).is_none() {
                order.push(key);
            }
        }
        let now = now_ms();
        on_both!(self, pool, {
            let mut tx = super::begin_write(pool).await?;
            let known: std::collections::HashSet<String> =
                sqlx::query_scalar::<_, String>("SELECT number FROM extensions")
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .collect();
            let mut upserts = Vec::new();
            for key in &order {
                match last[key] {
                    BindingChange::Upsert(b) if known.contains(&b.aor) => upserts.push(b),
                    // The extension was removed meanwhile: the registrar drops it on the next reload.
                    BindingChange::Upsert(_) => {}
                    BindingChange::Remove { aor, contact_uri } => {
                        sqlx::query(
                            "DELETE FROM registrations WHERE aor = $1 AND contact_uri = $2",
                        )
                        .bind(aor)
                        .bind(contact_uri)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
            // Many rows per statement (12 parameters each).
            for chunk in upserts.chunks(500) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO registrations (aor, contact_uri, transport, source_addr, local_addr, expires_at, \
                         call_id, cseq, user_agent, q, updated_at, node) ",
                );
                q.push_values(chunk, |mut row, b| {
                    row.push_bind(&b.aor)
                        .push_bind(&b.contact_uri)
                        .push_bind(&b.transport)
                        .push_bind(&b.source_addr)
                        .push_bind(&b.local_addr)
                        .push_bind(b.expires_at)
                        .push_bind(&b.call_id)
                        .push_bind(b.cseq)
                        .push_bind(
                            b.user_agent
                                .as_deref()
                                .map(|ua| truncate(ua, MAX_USER_AGENT_LEN)),
                        )
                        .push_bind(b.q)
                        .push_bind(now)
                        .push_bind(&b.node);
                });
                q.push(
                        " ON CONFLICT (aor, contact_uri) DO UPDATE SET transport = excluded.transport, \
                         source_addr = excluded.source_addr, local_addr = excluded.local_addr, \
                         expires_at = excluded.expires_at, call_id = excluded.call_id, cseq = excluded.cseq, \
                         user_agent = excluded.user_agent, q = excluded.q, updated_at = excluded.updated_at, \
                         node = excluded.node",
                    );
                // Not kept in the connection's statement cache: the text differs with every batch size, and
                // each cached multi-row statement holds its own compiled program (up to 100 per connection),
                // which made the server's memory creep up under a steady registration load.
                q.build().persistent(false).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }
}
