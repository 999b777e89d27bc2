//! The functions' PostgreSQL roles: each function connects as its own role, which may only
//! read and write what its code touches ([`GRANTS`]); migrations run as the owner. The
//! `migrate` Job creates or updates the roles from `ARCA_DB_ROLES`, a directory holding one
//! file per function (named after it) with that function's `DATABASE_URL`: the role is the
//! URL's user, its password the URL's. A role's privileges are set to exactly [`GRANTS`]:
//! whatever else it held on the schema's tables and sequences is revoked. Passwords reach
//! PostgreSQL only as SCRAM-SHA-256 verifiers, never in a statement's text.

use std::path::Path;

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sqlx::PgPool;

/// Table privileges of each function's role: what the SQL its routes and jobs run needs,
/// nothing more (PostgreSQL also asks SELECT for `UPDATE … WHERE`, `RETURNING` and `ON
/// CONFLICT`, and UPDATE for `FOR UPDATE`). Every function authenticates callers (users,
/// tokens; `users.password_hash` only for `auth` and `users`: [`crate::core::users::COLUMNS`]),
/// counts requests (`rate_windows`) and appends to the audit log, which is
/// append-only for all of them: no role may update or delete `audit_log` or
/// `audit_checkpoints`. A migration that adds a table a function uses changes this too.
#[rustfmt::skip]
pub const GRANTS: &[(&str, &[(&str, &str)])] = &[
    ("artifacts", &[
        ("api_tokens", "SELECT, UPDATE"),
        ("artifacts", "SELECT, UPDATE"),
        ("audit_log", "SELECT, INSERT"),
        ("name_owners", "SELECT, INSERT, DELETE"),
        ("outbox", "SELECT, INSERT"),
        ("rate_windows", "SELECT, INSERT, UPDATE"),
        ("refresh_tokens", "SELECT"),
        ("revoked_access_tokens", "SELECT"),
        ("scans", "SELECT"),
        ("users", "SELECT (id, username, roles, disabled, created_at, updated_at)"),
    ]),
    ("audit", &[
        ("api_tokens", "SELECT, UPDATE"),
        ("audit_checkpoints", "SELECT, INSERT"),
        ("audit_log", "SELECT, INSERT"),
        ("download_links", "SELECT, INSERT"),
        ("job_leases", "SELECT, INSERT, UPDATE, DELETE"),
        ("outbox", "SELECT"),
        ("rate_windows", "SELECT, INSERT, UPDATE"),
        ("refresh_tokens", "SELECT"),
        ("revoked_access_tokens", "SELECT"),
        ("users", "SELECT (id, username, roles, disabled, created_at, updated_at)"),
    ]),
    ("auth", &[
        ("api_tokens", "SELECT, INSERT, UPDATE"),
        ("audit_log", "SELECT, INSERT"),
        ("download_links", "SELECT, DELETE"),
        ("job_leases", "SELECT, INSERT, UPDATE, DELETE"),
        ("login_throttle", "SELECT, INSERT, UPDATE, DELETE"),
        ("rate_windows", "SELECT, INSERT, UPDATE, DELETE"),
        ("refresh_tokens", "SELECT, INSERT, UPDATE, DELETE"),
        ("revoked_access_tokens", "SELECT, INSERT, DELETE"),
        ("users", "SELECT"),
    ]),
    ("download", &[
        ("api_tokens", "SELECT, UPDATE"),
        ("artifacts", "SELECT"),
        ("audit_log", "SELECT, INSERT"),
        ("download_links", "SELECT, INSERT"),
        ("rate_windows", "SELECT, INSERT, UPDATE"),
        ("refresh_tokens", "SELECT"),
        ("revoked_access_tokens", "SELECT"),
        ("signatures", "SELECT"),
        ("users", "SELECT (id, username, roles, disabled, created_at, updated_at)"),
    ]),
    ("ingest", &[
        ("api_tokens", "SELECT, UPDATE"),
        ("artifacts", "SELECT, UPDATE"),
        ("audit_log", "SELECT, INSERT"),
        ("event_claims", "SELECT, INSERT, UPDATE"),
        ("job_leases", "SELECT, INSERT, UPDATE, DELETE"),
        ("outbox", "SELECT, INSERT, UPDATE"),
        ("rate_windows", "SELECT, INSERT, UPDATE"),
        ("refresh_tokens", "SELECT"),
        ("revoked_access_tokens", "SELECT"),
        ("users", "SELECT (id, username, roles, disabled, created_at, updated_at)"),
    ]),
    ("scan", &[
        ("api_tokens", "SELECT, UPDATE"),
        ("artifacts", "SELECT, UPDATE"),
        ("audit_log", "SELECT, INSERT"),
        ("event_claims", "SELECT, INSERT, UPDATE"),
        ("exceptions", "SELECT, INSERT, UPDATE"),
        ("job_leases", "SELECT, INSERT, UPDATE, DELETE"),
        ("outbox", "SELECT, INSERT"),
        ("publisher_signatures", "SELECT"),
        ("rate_windows", "SELECT, INSERT, UPDATE"),
        ("refresh_tokens", "SELECT"),
        ("revoked_access_tokens", "SELECT"),
        ("scans", "SELECT, INSERT"),
        ("users", "SELECT (id, username, roles, disabled, created_at, updated_at)"),
    ]),
    ("sign", &[
        ("api_tokens", "SELECT, UPDATE"),
        ("artifacts", "SELECT, UPDATE"),
        ("audit_log", "SELECT, INSERT"),
        ("event_claims", "SELECT, INSERT, UPDATE"),
        ("exceptions", "SELECT"),
        ("outbox", "SELECT, INSERT"),
        ("publisher_signatures", "SELECT, INSERT"),
        ("rate_windows", "SELECT, INSERT, UPDATE"),
        ("refresh_tokens", "SELECT"),
        ("revoked_access_tokens", "SELECT"),
        ("scans", "SELECT"),
        ("signatures", "SELECT, INSERT, UPDATE"),
        ("users", "SELECT (id, username, roles, disabled, created_at, updated_at)"),
    ]),
    ("upload", &[
        ("api_tokens", "SELECT, UPDATE"),
        ("artifact_names", "SELECT, INSERT"),
        ("artifacts", "SELECT, INSERT, UPDATE"),
        ("audit_log", "SELECT, INSERT"),
        ("name_owners", "SELECT, INSERT"),
        ("outbox", "INSERT"),
        ("rate_windows", "SELECT, INSERT, UPDATE"),
        ("refresh_tokens", "SELECT"),
        ("revoked_access_tokens", "SELECT"),
        ("users", "SELECT (id, username, roles, disabled, created_at, updated_at)"),
    ]),
    ("users", &[
        ("api_tokens", "SELECT, UPDATE"),
        ("audit_log", "SELECT, INSERT"),
        ("rate_windows", "SELECT, INSERT, UPDATE"),
        ("refresh_tokens", "SELECT, UPDATE"),
        ("revoked_access_tokens", "SELECT"),
        ("users", "SELECT, INSERT, UPDATE"),
    ]),
];

/// The table privileges of `function`'s role.
fn grants_of(function: &str) -> Option<&'static [(&'static str, &'static str)]> {
    GRANTS.iter().find(|(name, _)| *name == function).map(|(_, grants)| *grants)
}

/// One function's role as its `DATABASE_URL` names it.
struct FunctionRole {
    function: String,
    role: String,
    password: String,
}

/// Reads `dir`: one file per function, each a PostgreSQL URL. Kubernetes' own entries of a
/// Secret volume (`..data`, `..2026_…`) are skipped.
fn read_roles(dir: &Path) -> anyhow::Result<Vec<FunctionRole>> {
    let mut roles = Vec::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("ARCA_DB_ROLES: cannot read {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("ARCA_DB_ROLES: cannot read {}", dir.display()))?;
        let function = entry.file_name().to_string_lossy().into_owned();
        if function.starts_with('.') {
            continue;
        }
        if grants_of(&function).is_none() {
            let known: Vec<&str> = GRANTS.iter().map(|(name, _)| *name).collect();
            bail!("ARCA_DB_ROLES: '{function}' is not an Arca function (expected one of {})", known.join(", "));
        }
        let text = std::fs::read_to_string(entry.path())
            .with_context(|| format!("ARCA_DB_ROLES: cannot read {}", entry.path().display()))?;
        // The URL holds a password: errors name the file, never the text.
        let url = url::Url::parse(text.trim())
            .map_err(|_| anyhow::anyhow!("ARCA_DB_ROLES: {function}: not a PostgreSQL URL"))?;
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8().map(|s| s.into_owned());
        let role = decode(url.username()).unwrap_or_default();
        let password = url.password().map(decode).transpose().ok().flatten().unwrap_or_default();
        if !matches!(url.scheme(), "postgres" | "postgresql") || role.is_empty() || password.len() < 16 {
            bail!("ARCA_DB_ROLES: {function}: expected postgres://ROLE:PASSWORD@… with a password of 16 characters or more");
        }
        roles.push(FunctionRole { function, role, password });
    }
    roles.sort_by(|a, b| a.function.cmp(&b.function));
    Ok(roles)
}

/// A SCRAM-SHA-256 verifier of `password` (RFC 5802, RFC 7677), as PostgreSQL stores it:
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
fn scram_verifier(password: &str) -> String {
    use ring::{digest, hmac, pbkdf2};
    const ITERATIONS: u32 = 4096; // PostgreSQL's scram_iterations default
    let salt: [u8; 16] = rand::random();
    let mut salted = [0u8; 32];
    let iterations = std::num::NonZeroU32::new(ITERATIONS).expect("non-zero");
    pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, iterations, &salt, password.as_bytes(), &mut salted);
    let key = hmac::Key::new(hmac::HMAC_SHA256, &salted);
    let client_key = hmac::sign(&key, b"Client Key");
    let stored_key = digest::digest(&digest::SHA256, client_key.as_ref());
    let server_key = hmac::sign(&key, b"Server Key");
    format!(
        "SCRAM-SHA-256${ITERATIONS}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key.as_ref()),
        STANDARD.encode(server_key.as_ref())
    )
}

/// Creates or updates the roles the files in `dir` name and sets their privileges; returns
/// the functions whose roles were set. One transaction: all or nothing.
pub async fn apply(pool: &PgPool, dir: &Path) -> anyhow::Result<Vec<String>> {
    let roles = read_roles(dir)?;
    let mut tx = pool.begin().await.context("database roles")?;
    let owner: String = sqlx::query_scalar("SELECT current_user::text").fetch_one(&mut *tx).await?;
    // Before PostgreSQL 15 every role could create objects in `public`.
    sqlx::query("REVOKE CREATE ON SCHEMA public FROM PUBLIC").execute(&mut *tx).await?;
    for FunctionRole { function, role, password } in &roles {
        if *role == owner {
            bail!("ARCA_DB_ROLES: {function}: the role must not be the owner's ('{owner}'), which migrations use");
        }
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(role)
            .fetch_one(&mut *tx)
            .await?;
        let verb = if exists { "ALTER" } else { "CREATE" };
        let statement: String = sqlx::query_scalar(
            "SELECT format('%s ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD %L', $1::text, $2::text, $3::text)",
        )
        .bind(verb)
        .bind(role)
        .bind(scram_verifier(password))
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(&statement)
            .execute(&mut *tx)
            .await
            .with_context(|| format!("database roles: {verb} ROLE {role}"))?;
        let mut statements = vec![
            "GRANT CONNECT ON DATABASE %s TO %I".to_owned(),
            "GRANT USAGE ON SCHEMA public TO %I".to_owned(),
            "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM %I".to_owned(),
            "REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM %I".to_owned(),
        ];
        for (table, privileges) in grants_of(function).unwrap_or_default() {
            statements.push(format!("GRANT {privileges} ON TABLE {table} TO %I"));
        }
        for template in statements {
            let sql = if template.contains("DATABASE %s") {
                "SELECT format($1, quote_ident(current_database()), $2::text)"
            } else {
                "SELECT format($1, $2::text)"
            };
            let statement: String = sqlx::query_scalar(sql).bind(&template).bind(role).fetch_one(&mut *tx).await?;
            sqlx::query(&statement).execute(&mut *tx).await.with_context(|| format!("database roles: {statement}"))?;
        }
    }
    tx.commit().await.context("database roles")?;
    Ok(roles.into_iter().map(|r| r.function).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scram_verifier_has_postgres_shape() {
        let v = scram_verifier("correct horse battery staple");
        let (head, keys) = v.split_once('$').unwrap().1.split_once('$').unwrap();
        let (iterations, salt) = head.split_once(':').unwrap();
        assert_eq!(iterations, "4096");
        assert_eq!(STANDARD.decode(salt).unwrap().len(), 16);
        let (stored, server) = keys.split_once(':').unwrap();
        assert_eq!(STANDARD.decode(stored).unwrap().len(), 32);
        assert_eq!(STANDARD.decode(server).unwrap().len(), 32);
        assert_ne!(v, scram_verifier("correct horse battery staple"), "a fresh salt each time");
    }

    #[test]
    fn every_function_has_grants_and_none_rewrites_the_audit_log() {
        let mut names: Vec<&str> = GRANTS.iter().map(|(name, _)| *name).collect();
        names.sort();
        assert_eq!(names, ["artifacts", "audit", "auth", "download", "ingest", "scan", "sign", "upload", "users"]);
        for (function, grants) in GRANTS {
            for (table, privileges) in *grants {
                if table.starts_with("audit") {
                    assert!(
                        !privileges.contains("UPDATE") && !privileges.contains("DELETE"),
                        "{function} may {privileges} {table}"
                    );
                }
            }
        }
    }

    #[test]
    fn role_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("..2026_12_08")).unwrap();
        std::fs::write(dir.path().join("auth"), "postgres://arca_auth:0123456789abcdef0123@db:5432/arca\n").unwrap();
        let roles = read_roles(dir.path()).unwrap();
        assert_eq!((roles[0].role.as_str(), roles[0].password.as_str()), ("arca_auth", "0123456789abcdef0123"));
        std::fs::write(dir.path().join("auth"), "postgres://arca_auth:short@db/arca").unwrap();
        let e = read_roles(dir.path()).err().unwrap().to_string();
        assert!(e.contains("16 characters") && !e.contains("short"), "{e}");
        std::fs::remove_file(dir.path().join("auth")).unwrap();
        std::fs::write(dir.path().join("nginx"), "postgres://x:0123456789abcdef0123@db/arca").unwrap();
        let e = read_roles(dir.path()).err().unwrap().to_string();
        assert!(e.contains("'nginx' is not an Arca function"), "{e}");
    }
}
