//! Ring groups ([`pbx::office::RingGroup`]): a group row and its members in ring order. Every write validates the
//! group with the same rules the console and API use, refuses a number an extension or another group already has,
//! and bumps the configuration version so a running server reloads within a second.

use pbx::office::{Fallback, RingGroup, Strategy};

use super::{Db, Result, StoreError, bump_version, now_ms};

/// Most ring groups.
pub const MAX_RING_GROUPS: i64 = 500;

#[derive(sqlx::FromRow)]
struct GroupRow {
    number: String,
    strategy: String,
    ring_seconds: i64,
    fallback: String,
}

impl Db {
    /// Adds a ring group. [`StoreError::Invalid`] for a bad definition, [`StoreError::Conflict`] when the number
    /// is an extension's or another group's.
    pub async fn add_ring_group(&self, group: &RingGroup) -> Result<()> {
        self.write_ring_group(group, false).await
    }

    /// Replaces ring group `group.number` (members, strategy, ring time, fallback). [`StoreError::NotFound`] if
    /// there is none.
    pub async fn update_ring_group(&self, group: &RingGroup) -> Result<()> {
        self.write_ring_group(group, true).await
    }

    async fn write_ring_group(&self, group: &RingGroup, replace: bool) -> Result<()> {
        group.validate().map_err(StoreError::Invalid)?;
        let now = now_ms();
        on_both!(self, pool, {
            let mut tx = super::begin_write(pool).await?;
            let ext: Option<String> =
                sqlx::query_scalar("SELECT number FROM extensions WHERE number = $1")
                    .bind(&group.number)
                    .fetch_optional(&mut *tx)
                    .await?;
            if ext.is_some() {
                return Err(StoreError::Conflict(format!(
                    "{} already exists as an extension; a ring group needs a number of its own",
                    group.number
                )));
            }
            let queue: Option<String> =
                sqlx::query_scalar("SELECT number FROM call_queues WHERE number = $1")
                    .bind(&group.number)
                    .fetch_optional(&mut *tx)
                    .await?;
            if queue.is_some() {
                return Err(StoreError::Conflict(format!(
                    "{} already exists as a queue; a ring group needs a number of its own",
                    group.number
                )));
            }
            let exists: Option<String> =
                sqlx::query_scalar("SELECT number FROM ring_groups WHERE number = $1")
                    .bind(&group.number)
                    .fetch_optional(&mut *tx)
                    .await?;
            match (exists.is_some(), replace) {
                (true, false) => {
                    return Err(StoreError::Conflict(format!(
                        "ring group {} already exists; change it with `palisade group change {}`",
                        group.number, group.number
                    )));
                }
                (false, true) => {
                    return Err(StoreError::NotFound(format!("ring group {}", group.number)));
                }
                (false, false) => {
                    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ring_groups")
                        .fetch_one(&mut *tx)
                        .await?;
                    if count >= MAX_RING_GROUPS {
                        return Err(StoreError::Invalid(format!(
                            "at most {MAX_RING_GROUPS} ring groups; remove some first"
                        )));
                    }
                    sqlx::query(
                            "INSERT INTO ring_groups (number, strategy, ring_seconds, fallback, created_at, updated_at) \
                             VALUES ($1, $2, $3, $4, $5, $5)",
                        )
                        .bind(&group.number)
                        .bind(group.strategy.as_str())
                        .bind(i64::from(group.ring_seconds))
                        .bind(group.fallback.to_string())
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                (true, true) => {
                    sqlx::query(
                            "UPDATE ring_groups SET strategy = $2, ring_seconds = $3, fallback = $4, updated_at = $5 \
                             WHERE number = $1",
                        )
                        .bind(&group.number)
                        .bind(group.strategy.as_str())
                        .bind(i64::from(group.ring_seconds))
                        .bind(group.fallback.to_string())
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("DELETE FROM ring_group_members WHERE group_number = $1")
                        .bind(&group.number)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            for (i, member) in group.members.iter().enumerate() {
                sqlx::query(
                        "INSERT INTO ring_group_members (group_number, position, member) VALUES ($1, $2, $3)",
                    )
                    .bind(&group.number)
                    .bind(i64::try_from(i).unwrap_or(i64::MAX))
                    .bind(member)
                    .execute(&mut *tx)
                    .await?;
            }
            bump_version(&mut tx, now).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Removes ring group `number` and returns it. [`StoreError::NotFound`] if there is none.
    pub async fn remove_ring_group(&self, number: &str) -> Result<RingGroup> {
        let group = self
            .ring_group(number)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("ring group {number}")))?;
        let now = now_ms();
        on_both!(self, pool, {
            let mut tx = super::begin_write(pool).await?;
            sqlx::query("DELETE FROM ring_groups WHERE number = $1")
                .bind(number)
                .execute(&mut *tx)
                .await?;
            bump_version(&mut tx, now).await?;
            tx.commit().await?;
            Ok(group)
        })
    }

    /// Ring group `number`, if there is one.
    pub async fn ring_group(&self, number: &str) -> Result<Option<RingGroup>> {
        Ok(self
            .list_ring_groups()
            .await?
            .into_iter()
            .find(|g| g.number == number))
    }

    /// Every ring group, by number, with its members in ring order. A row that no longer parses (edited by
    /// hand) is reported as an error rather than silently changed.
    pub async fn list_ring_groups(&self) -> Result<Vec<RingGroup>> {
        on_both!(self, pool, {
            let rows: Vec<GroupRow> = sqlx::query_as(
                "SELECT number, strategy, ring_seconds, fallback FROM ring_groups ORDER BY number",
            )
            .fetch_all(pool)
            .await?;
            let members: Vec<(String, String)> = sqlx::query_as(
                    "SELECT group_number, member FROM ring_group_members ORDER BY group_number, position",
                )
                .fetch_all(pool)
                .await?;
            rows.into_iter()
                .map(|r| {
                    let bad = |e: String| {
                        StoreError::Invalid(format!("stored ring group {}: {e}", r.number))
                    };
                    Ok(RingGroup {
                        members: members
                            .iter()
                            .filter(|(g, _)| *g == r.number)
                            .map(|(_, m)| m.clone())
                            .collect(),
                        strategy: Strategy::parse(&r.strategy).map_err(bad)?,
                        ring_seconds: u32::try_from(r.ring_seconds)
                            .map_err(|e| bad(e.to_string()))?,
                        fallback: Fallback::parse(&r.fallback).map_err(bad)?,
                        number: r.number,
                    })
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group() -> RingGroup {
        RingGroup {
            number: "600".into(),
            members: vec!["201".into(), "202".into(), "203".into()],
            strategy: Strategy::Order,
            ring_seconds: 15,
            fallback: Fallback::Voicemail("201".into()),
        }
    }

    #[tokio::test]
    async fn groups_round_trip_in_member_order_and_bump_the_version() {
        crate::tests::on_each_backend(check_round_trip).await;
    }

    async fn check_round_trip(db: Db) {
        let v0 = db.current_version().await.unwrap();
        db.add_ring_group(&group()).await.unwrap();
        assert!(db.current_version().await.unwrap() > v0);
        assert_eq!(db.list_ring_groups().await.unwrap(), vec![group()]);
        let mut changed = group();
        changed.members = vec!["203".into(), "201".into()];
        changed.strategy = Strategy::RoundRobin;
        changed.fallback = Fallback::Hangup;
        db.update_ring_group(&changed).await.unwrap();
        assert_eq!(db.ring_group("600").await.unwrap(), Some(changed.clone()));
        assert_eq!(db.remove_ring_group("600").await.unwrap(), changed);
        assert!(db.list_ring_groups().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn conflicts_and_bad_groups_are_refused_with_a_reason() {
        crate::tests::on_each_backend(check_conflicts).await;
    }

    async fn check_conflicts(db: Db) {
        db.add_ring_group(&group()).await.unwrap();
        let e = db.add_ring_group(&group()).await.unwrap_err();
        assert!(matches!(e, StoreError::Conflict(_)), "{e}");
        let mut other = group();
        other.number = "601".into();
        assert!(matches!(
            db.update_ring_group(&other).await.unwrap_err(),
            StoreError::NotFound(_)
        ));
        other.members.push("201".into());
        assert!(matches!(
            db.add_ring_group(&other).await.unwrap_err(),
            StoreError::Invalid(_)
        ));
        assert!(matches!(
            db.remove_ring_group("699").await.unwrap_err(),
            StoreError::NotFound(_)
        ));
    }
}
