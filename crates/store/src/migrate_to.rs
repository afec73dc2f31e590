//! `palisade db migrate-to postgres://…` (issue 17, docs/cluster.md): copies a SQLite installation into an empty
//! PostgreSQL database, every table, in one transaction, and verifies the copy before committing it.
//!
//! Generic over the schema: the tables and columns are read from SQLite (`sqlite_master`, `PRAGMA table_info`),
//! the target's column types from PostgreSQL (`information_schema`), so a table added by a later migration is
//! copied without touching this file. Both databases are first brought to this binary's migrations, so they have
//! the same tables and columns (`migrations/sqlite` and `migrations/postgres` mirror each other).
//!
//! Verification, inside the transaction: per table, the row count and an order-independent checksum of the rows
//! (the wrapping sum of a hash of each row's values as written) read back from PostgreSQL must equal the source's;
//! otherwise nothing is committed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};

use sqlx::postgres::{PgPool, PgRow};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{Column, Row, TypeInfo, ValueRef};

use super::{Result, StoreError};

/// Tables a fresh PostgreSQL schema already fills (seed rows of the migrations); replaced by the source's rows.
const SEEDED: [&str; 2] = ["settings", "ip_rules_version"];
/// Settings a fresh schema holds: a target whose `settings` has any other key is not empty.
const SEEDED_SETTINGS: [&str; 1] = ["config_version"];

/// At most this many bound values per INSERT (PostgreSQL allows 65,535).
const MAX_PARAMS: usize = 30_000;

/// One table as copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopy {
    pub table: String,
    pub rows: u64,
    /// The order-independent checksum both sides agreed on (hex).
    pub checksum: String,
}

/// A value as read from SQLite and written to PostgreSQL.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    fn hash_into(&self, h: &mut impl Hasher) {
        match self {
            Value::Null => 0u8.hash(h),
            Value::Int(i) => (1u8, i).hash(h),
            Value::Real(f) => (2u8, f.to_bits()).hash(h),
            Value::Text(s) => (3u8, s).hash(h),
            Value::Blob(b) => (4u8, b).hash(h),
        }
    }
}

/// The PostgreSQL type of a target column, as far as the copy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PgType {
    BigInt,
    Int,
    Bool,
    Text,
    Bytea,
    Double,
}

impl PgType {
    fn from_information_schema(data_type: &str) -> Option<PgType> {
        Some(match data_type {
            "bigint" => PgType::BigInt,
            "integer" | "smallint" => PgType::Int,
            "boolean" => PgType::Bool,
            "text" | "character varying" => PgType::Text,
            "bytea" => PgType::Bytea,
            "double precision" | "real" | "numeric" => PgType::Double,
            _ => return None,
        })
    }

    /// `v` as it is written into a column of this type (a SQLite 0/1 flag becomes a boolean, …), or why not.
    fn convert(self, v: Value) -> std::result::Result<Value, String> {
        Ok(match (self, v) {
            (_, Value::Null) => Value::Null,
            (PgType::BigInt | PgType::Int | PgType::Bool, Value::Int(i)) => Value::Int(i),
            (PgType::BigInt | PgType::Int, Value::Text(s)) => Value::Int(
                s.trim()
                    .parse()
                    .map_err(|_| format!("text '{s}' is not a whole number"))?,
            ),
            (PgType::Text, Value::Text(s)) => Value::Text(s),
            (PgType::Text, Value::Int(i)) => Value::Text(i.to_string()),
            (PgType::Text, Value::Real(f)) => Value::Text(f.to_string()),
            (PgType::Bytea, Value::Blob(b)) => Value::Blob(b),
            (PgType::Bytea, Value::Text(s)) => Value::Blob(s.into_bytes()),
            (PgType::Double, Value::Real(f)) => Value::Real(f),
            (PgType::Double, Value::Int(i)) => Value::Real(i as f64),
            (t, v) => return Err(format!("cannot write {v:?} into a {t:?} column")),
        })
    }
}

/// Copies every table of `src` into `dst` (both already migrated by this binary) in one transaction, verifies
/// the copy and commits it. Refuses a non-empty target.
pub async fn copy_sqlite_to_postgres(src: &SqlitePool, dst: &PgPool) -> Result<Vec<TableCopy>> {
    let tables = source_tables(src).await?;
    let target_columns = target_columns(dst).await?;
    refuse_non_empty(dst, &tables).await?;
    // One consistent snapshot of the source, even if a server still writes to it.
    let mut read = src.begin().await?;
    let mut tx = dst.begin().await?;
    for t in SEEDED {
        sqlx::query(audited(format!("DELETE FROM {}", quote(t))))
            .execute(&mut *tx)
            .await?;
    }
    let mut copied = Vec::new();
    for table in order_by_foreign_keys(&mut read, &tables).await? {
        let columns = &tables[&table];
        let types = columns
            .iter()
            .map(|c| {
                target_columns
                    .get(&(table.clone(), c.clone()))
                    .copied()
                    .ok_or_else(|| {
                        StoreError::Invalid(format!(
                            "the PostgreSQL database has no column {table}.{c}: it was not created by this \
                             version of Palisade; migrate into a new, empty database"
                        ))
                    })
            })
            .collect::<Result<Vec<PgType>>>()?;
        let select = format!(
            "SELECT {} FROM {}",
            columns
                .iter()
                .map(|c| quote(c))
                .collect::<Vec<_>>()
                .join(", "),
            quote(&table)
        );
        let rows: Vec<SqliteRow> = sqlx::query(audited(select.clone()))
            .fetch_all(&mut *read)
            .await?;
        let mut values: Vec<Vec<Value>> = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut out = Vec::with_capacity(columns.len());
            for (i, ty) in types.iter().enumerate() {
                let v = sqlite_value(row, i)?;
                out.push(ty.convert(v).map_err(|e| {
                    StoreError::Invalid(format!("table {table}, column {}: {e}", columns[i]))
                })?);
            }
            values.push(out);
        }
        insert_rows(&mut tx, &table, columns, &types, &values).await?;
        let expected = (values.len() as u64, checksum(values.iter()));
        fix_identity(
            &mut tx,
            &table,
            &target_columns_identity(dst, &table).await?,
        )
        .await?;
        let back: Vec<PgRow> = sqlx::query(audited(select.clone()))
            .fetch_all(&mut *tx)
            .await?;
        let back_values = back
            .iter()
            .map(|r| (0..columns.len()).map(|i| pg_value(r, i)).collect())
            .collect::<Result<Vec<Vec<Value>>>>()?;
        let got = (back_values.len() as u64, checksum(back_values.iter()));
        if got != expected {
            return Err(StoreError::Invalid(format!(
                "verification failed for table {table}: SQLite has {} rows (checksum {:016x}), PostgreSQL \
                 {} (checksum {:016x}); nothing was committed",
                expected.0, expected.1, got.0, got.1
            )));
        }
        copied.push(TableCopy {
            table,
            rows: expected.0,
            checksum: format!("{:016x}", expected.1),
        });
    }
    tx.commit().await?;
    read.rollback().await?;
    Ok(copied)
}

/// Every table of the source with its columns in order (not SQLite's own tables nor the migrations' ledger,
/// which each database keeps for itself).
async fn source_tables(src: &SqlitePool) -> Result<BTreeMap<String, Vec<String>>> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(src)
    .await?;
    let mut tables = BTreeMap::new();
    for name in names {
        let columns: Vec<(i64, String)> =
            sqlx::query_as("SELECT cid, name FROM pragma_table_info($1) ORDER BY cid")
                .bind(&name)
                .fetch_all(src)
                .await?;
        tables.insert(name, columns.into_iter().map(|(_, c)| c).collect());
    }
    Ok(tables)
}

/// (table, column) → type of every column of the target's `public` schema.
async fn target_columns(dst: &PgPool) -> Result<HashMap<(String, String), PgType>> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = current_schema()",
    )
    .fetch_all(dst)
    .await?;
    let mut out = HashMap::new();
    for (table, column, data_type) in rows {
        if let Some(t) = PgType::from_information_schema(&data_type) {
            out.insert((table, column), t);
        }
    }
    Ok(out)
}

/// The identity columns of `table` on the target.
async fn target_columns_identity(dst: &PgPool, table: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns WHERE table_schema = current_schema() \
         AND table_name = $1 AND is_identity = 'YES'",
    )
    .bind(table)
    .fetch_all(dst)
    .await?)
}

/// An error naming the first table of the target that holds rows of its own.
async fn refuse_non_empty(dst: &PgPool, tables: &BTreeMap<String, Vec<String>>) -> Result<()> {
    for table in tables.keys() {
        let count: i64 = if table == "settings" {
            sqlx::query_scalar("SELECT COUNT(*) FROM settings WHERE NOT (key = ANY($1))")
                .bind(&SEEDED_SETTINGS[..])
                .fetch_one(dst)
                .await?
        } else if SEEDED.contains(&table.as_str()) {
            0
        } else {
            sqlx::query_scalar(audited(format!("SELECT COUNT(*) FROM {}", quote(table))))
                .fetch_one(dst)
                .await
                .map_err(|e| match e {
                    sqlx::Error::Database(d) if d.code().as_deref() == Some("42P01") => {
                        StoreError::Invalid(format!(
                            "the PostgreSQL database has no table {table}; migrate into a new, empty database"
                        ))
                    }
                    e => e.into(),
                })?
        };
        if count > 0 {
            return Err(StoreError::Conflict(format!(
                "the PostgreSQL database is not empty (table {table} holds {count} row(s)); nothing was copied. \
                 Migrate into a new, empty database (e.g. `createdb palisade_new`), or drop this one first"
            )));
        }
    }
    Ok(())
}

/// The tables in an order where every table comes after the tables its foreign keys reference.
async fn order_by_foreign_keys(
    read: &mut sqlx::SqliteConnection,
    tables: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<String>> {
    let mut parents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for table in tables.keys() {
        let refs: Vec<String> =
            sqlx::query_scalar("SELECT \"table\" FROM pragma_foreign_key_list($1)")
                .bind(table)
                .fetch_all(&mut *read)
                .await?;
        parents.insert(
            table.clone(),
            refs.into_iter()
                .filter(|r| r != table && tables.contains_key(r))
                .collect(),
        );
    }
    let mut order = Vec::new();
    let mut done = BTreeSet::new();
    while done.len() < tables.len() {
        let ready: Vec<String> = parents
            .iter()
            .filter(|(t, ps)| !done.contains(*t) && ps.iter().all(|p| done.contains(p)))
            .map(|(t, _)| t.clone())
            .collect();
        if ready.is_empty() {
            return Err(StoreError::Invalid(
                "the tables' foreign keys form a cycle; cannot order the copy".into(),
            ));
        }
        for t in ready {
            done.insert(t.clone());
            order.push(t);
        }
    }
    Ok(order)
}

async fn insert_rows(
    tx: &mut sqlx::PgConnection,
    table: &str,
    columns: &[String],
    types: &[PgType],
    rows: &[Vec<Value>],
) -> Result<()> {
    if rows.is_empty() || columns.is_empty() {
        return Ok(());
    }
    let per_statement = (MAX_PARAMS / columns.len()).max(1);
    let head = format!(
        "INSERT INTO {} ({}) VALUES ",
        quote(table),
        columns
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for chunk in rows.chunks(per_statement) {
        let mut sql = head.clone();
        let mut n = 0;
        for (r, _) in chunk.iter().enumerate() {
            if r > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for c in 0..columns.len() {
                if c > 0 {
                    sql.push_str(", ");
                }
                n += 1;
                sql.push_str(&format!("${n}"));
            }
            sql.push(')');
        }
        let mut q = sqlx::query(audited(sql));
        for row in chunk {
            for (v, ty) in row.iter().zip(types) {
                q = match (v, ty) {
                    (Value::Null, PgType::BigInt) => q.bind(None::<i64>),
                    (Value::Null, PgType::Int) => q.bind(None::<i32>),
                    (Value::Null, PgType::Bool) => q.bind(None::<bool>),
                    (Value::Null, PgType::Text) => q.bind(None::<String>),
                    (Value::Null, PgType::Bytea) => q.bind(None::<Vec<u8>>),
                    (Value::Null, PgType::Double) => q.bind(None::<f64>),
                    (Value::Int(i), PgType::Bool) => q.bind(*i != 0),
                    (Value::Int(i), PgType::Int) => q.bind(i32::try_from(*i).map_err(|_| {
                        StoreError::Invalid(format!(
                            "table {table}: {i} does not fit a 32-bit column"
                        ))
                    })?),
                    (Value::Int(i), _) => q.bind(*i),
                    (Value::Real(f), _) => q.bind(*f),
                    (Value::Text(s), _) => q.bind(s.clone()),
                    (Value::Blob(b), _) => q.bind(b.clone()),
                };
            }
        }
        q.execute(&mut *tx).await?;
    }
    Ok(())
}

/// Sets each identity column's sequence past the largest copied id, so the next insert does not collide.
async fn fix_identity(tx: &mut sqlx::PgConnection, table: &str, identity: &[String]) -> Result<()> {
    for column in identity {
        let sql = format!(
            "SELECT setval(pg_get_serial_sequence($1, $2), GREATEST(COALESCE(MAX({c}), 0), 1), \
             MAX({c}) IS NOT NULL) FROM {t}",
            c = quote(column),
            t = quote(table)
        );
        sqlx::query(audited(sql))
            .bind(quote(table))
            .bind(column)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

fn sqlite_value(row: &SqliteRow, i: usize) -> Result<Value> {
    let raw = row.try_get_raw(i)?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let kind = raw.type_info().name().to_ascii_uppercase();
    Ok(match kind.as_str() {
        "INTEGER" | "INT" | "BIGINT" | "BOOLEAN" => Value::Int(row.try_get(i)?),
        "REAL" | "FLOAT" | "DOUBLE" => Value::Real(row.try_get(i)?),
        "BLOB" => Value::Blob(row.try_get(i)?),
        _ => Value::Text(row.try_get(i)?),
    })
}

fn pg_value(row: &PgRow, i: usize) -> Result<Value> {
    let raw = row.try_get_raw(i)?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let kind = row.column(i).type_info().name().to_string();
    Ok(match kind.as_str() {
        "INT8" => Value::Int(row.try_get(i)?),
        "INT4" => Value::Int(i64::from(row.try_get::<i32, _>(i)?)),
        "INT2" => Value::Int(i64::from(row.try_get::<i16, _>(i)?)),
        "BOOL" => Value::Int(i64::from(row.try_get::<bool, _>(i)?)),
        "FLOAT8" => Value::Real(row.try_get(i)?),
        "FLOAT4" => Value::Real(f64::from(row.try_get::<f32, _>(i)?)),
        "BYTEA" => Value::Blob(row.try_get(i)?),
        _ => Value::Text(row.try_get(i)?),
    })
}

/// The wrapping sum of a hash of each row: equal for the same rows in any order.
fn checksum<'a>(rows: impl Iterator<Item = &'a Vec<Value>>) -> u64 {
    rows.fold(0u64, |sum, row| {
        let mut h = std::hash::DefaultHasher::new();
        for v in row {
            v.hash_into(&mut h);
        }
        sum.wrapping_add(h.finish())
    })
}

/// SQL built here from identifiers of the source's own schema, each passed through [`quote`]; values are always
/// bound parameters.
fn audited(sql: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql)
}

/// A SQL identifier, double-quoted (table and column names come from the source's own schema).
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_ignores_row_order_but_not_values() {
        let a = vec![Value::Int(1), Value::Text("x".into())];
        let b = vec![Value::Null, Value::Blob(vec![1, 2])];
        let c = vec![Value::Int(2), Value::Text("x".into())];
        assert_eq!(
            checksum([&a, &b].into_iter()),
            checksum([&b, &a].into_iter())
        );
        assert_ne!(
            checksum([&a, &b].into_iter()),
            checksum([&c, &b].into_iter())
        );
    }

    #[test]
    fn flags_become_booleans_and_mismatches_are_explained() {
        assert_eq!(PgType::Bool.convert(Value::Int(1)), Ok(Value::Int(1)));
        assert_eq!(
            PgType::Text.convert(Value::Int(7)),
            Ok(Value::Text("7".into()))
        );
        assert!(PgType::BigInt.convert(Value::Text("seven".into())).is_err());
        assert_eq!(PgType::Bytea.convert(Value::Null), Ok(Value::Null));
    }
}
