//! Durable storage: SQLite embedded by default, behind an interface a PostgreSQL backend can implement.
