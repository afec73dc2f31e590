//! `palisade admin …`: the console's administrator accounts (Argon2id passwords, TOTP second factor), its API
//! tokens (stored as SHA-256 hashes, shown once) and its bans; `palisade audit`: the audit log. The console and
//! the API call the functions here too, so a rule checked in one place is checked everywhere.

use anyhow::{anyhow, bail};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use clap::{Args, Subcommand};
use serde::Serialize;
use sha2::Digest as _;
use store::admin::{AuditNew, Role};
use store::{Db, StoreError};

use super::time::{format_ms, now_ms};
use super::{CommonArgs, output, store_error};
use crate::console::totp;

#[derive(Debug, Args)]
pub struct AccountArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: AccountCommand,
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Add a console account; its random password is printed once.
    Add {
        /// Account name (letters, digits, '.', '-', '_', '@').
        name: String,
        /// admin (may change everything) or viewer (may only look).
        #[arg(long, default_value = "admin", value_name = "ROLE")]
        role: String,
    },
    /// List the console accounts.
    List,
    /// Remove a console account (not the last admin).
    Remove { name: String },
    /// Give an account a new random password (printed once).
    ResetPassword { name: String },
    /// Enrol (or re-enrol) an account's two-factor login: prints the TOTP secret and its otpauth:// URI once.
    Totp { name: String },
    /// API tokens: create, list, revoke.
    Token(TokenArgs),
    /// List the addresses banned from the console (after failed logins).
    Bans,
    /// Lift the console ban of an address.
    Unban { ip: String },
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a bearer token for the REST API; it is printed once.
    Create {
        /// A label saying what the token is for.
        name: String,
        /// read (GET only) or write (everything).
        #[arg(long, value_name = "read|write")]
        scope: String,
        /// Days until it stops working (1 to 3650); default: never.
        #[arg(long, value_name = "DAYS")]
        expires: Option<String>,
    },
    /// List the tokens (never the tokens themselves).
    List,
    /// Revoke a token by id or name.
    Revoke { id_or_name: String },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// How many entries, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

/// Length of generated console passwords.
const PASSWORD_LEN: usize = 20;

/// Argon2id with the argon2 crate's default cost (19 MiB, 2 passes): about 50 ms per login on one core.
fn hasher() -> anyhow::Result<Argon2<'static>> {
    let params =
        Params::new(19 * 1024, 2, 1, None).map_err(|e| anyhow!("argon2 parameters: {e}"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The PHC string to store for `password`.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Ok(hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow!("cannot hash the password: {e}"))?
        .to_string())
}

/// Whether `password` matches the stored PHC string (false for a malformed one).
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    hasher()
        .map(|h| h.verify_password(password.as_bytes(), &parsed).is_ok())
        .unwrap_or(false)
}

/// A random password of letters and digits.
pub fn generate_password(len: usize) -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rngs::OsRng;
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The hash under which a token is stored and looked up.
pub fn token_hash(token: &str) -> String {
    token_hash_bytes(token.as_bytes())
}

/// SHA-256 of `bytes` in lowercase hex (also a client certificate's fingerprint).
pub fn token_hash_bytes(bytes: &[u8]) -> String {
    let digest = sha2::Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random bearer token: `pal_` and 43 base64url characters (256 bits).
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::Rng::fill(&mut rand::rngs::OsRng, &mut bytes[..]);
    format!("pal_{}", data_encoding::BASE64URL_NOPAD.encode(&bytes))
}

/// A token scope, checked.
pub fn parse_scope(s: &str) -> anyhow::Result<&'static str> {
    match s.trim().to_ascii_lowercase().as_str() {
        "read" => Ok("read"),
        "write" => Ok("write"),
        _ => bail!(
            "invalid scope '{s}': expected read (may only look) or write (may change everything)"
        ),
    }
}

/// `--expires DAYS`: 1 to 3650.
pub fn parse_expiry_days(s: &str) -> anyhow::Result<u32> {
    match s.trim().parse::<u32>() {
        Ok(d) if (1..=3650).contains(&d) => Ok(d),
        _ => bail!("invalid --expires '{s}': expected a number of days from 1 to 3650"),
    }
}

/// Who did it and from where, for the audit log.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    pub source: String,
}

impl Actor {
    /// The local user running a CLI command.
    pub fn cli() -> Actor {
        let user = std::env::var("SUDO_USER")
            .or_else(|_| std::env::var("USER"))
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| {
                // No name in the environment (a service, a container): the numeric uid.
                std::fs::read_to_string("/proc/self/status")
                    .ok()
                    .and_then(|s| {
                        s.lines()
                            .find_map(|l| l.strip_prefix("Uid:"))
                            .and_then(|l| l.split_whitespace().next().map(|u| format!("uid{u}")))
                    })
                    .unwrap_or_else(|| "unknown".into())
            });
        Actor {
            name: format!("cli:{user}"),
            source: "local".into(),
        }
    }
}

/// Writes an audit entry; `before` and `after` are JSON values (null for none).
pub async fn audit(
    db: &Db,
    actor: &Actor,
    action: &str,
    target: Option<&str>,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> anyhow::Result<()> {
    db.append_audit(&AuditNew {
        actor: actor.name.clone(),
        source: actor.source.clone(),
        action: action.into(),
        target: target.map(str::to_string),
        before: before.filter(|v| !v.is_null()).map(|v| v.to_string()),
        after: after.filter(|v| !v.is_null()).map(|v| v.to_string()),
    })
    .await
    .map_err(store_error)?;
    Ok(())
}

/// An account as shown (never its hashes or secret).
#[derive(Debug, Serialize)]
pub struct AccountView {
    pub name: String,
    pub role: Role,
    pub totp_enrolled: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&store::admin::AdminAccount> for AccountView {
    fn from(a: &store::admin::AdminAccount) -> Self {
        AccountView {
            name: a.name.clone(),
            role: a.role,
            totp_enrolled: a.totp_secret.is_some(),
            created_at: format_ms(a.created_at),
            updated_at: format_ms(a.updated_at),
        }
    }
}

/// Adds an account with a random password; returns the password.
pub async fn add_account(db: &Db, actor: &Actor, name: &str, role: &str) -> anyhow::Result<String> {
    let role = Role::parse(role).map_err(store_error)?;
    store::admin::validate_admin_name(name).map_err(store_error)?;
    let password = generate_password(PASSWORD_LEN);
    let hash = hash_password(&password)?;
    match db.create_admin(name, &hash, role).await {
        Err(StoreError::Conflict(msg)) => bail!(
            "{msg} (give it a new password with `palisade admin reset-password {name}` or remove it with \
             `palisade admin remove {name}`)"
        ),
        r => r.map_err(store_error)?,
    }
    audit(
        db,
        actor,
        "admin.add",
        Some(name),
        None,
        Some(serde_json::json!({ "role": role })),
    )
    .await?;
    Ok(password)
}

/// Removes an account.
pub async fn remove_account(db: &Db, actor: &Actor, name: &str) -> anyhow::Result<()> {
    let before = db.admin(name).await.map_err(store_error)?;
    db.remove_admin(name).await.map_err(account_error)?;
    let before = before.map(|a| serde_json::json!(AccountView::from(&a)));
    audit(db, actor, "admin.remove", Some(name), before, None).await
}

/// A new random password for an account; returns it.
pub async fn reset_account_password(db: &Db, actor: &Actor, name: &str) -> anyhow::Result<String> {
    let password = generate_password(PASSWORD_LEN);
    db.set_admin_password(name, &hash_password(&password)?)
        .await
        .map_err(account_error)?;
    audit(db, actor, "admin.reset_password", Some(name), None, None).await?;
    Ok(password)
}

/// Stores a TOTP secret for an account (enrolment); returns the secret.
pub async fn enrol_totp(db: &Db, actor: &Actor, name: &str, secret: &str) -> anyhow::Result<()> {
    db.set_admin_totp(name, Some(secret))
        .await
        .map_err(account_error)?;
    audit(db, actor, "admin.totp_enrol", Some(name), None, None).await
}

/// Creates a token; returns the token (shown once) and its id.
pub async fn create_token(
    db: &Db,
    actor: &Actor,
    name: &str,
    scope: &str,
    expires_days: Option<u32>,
) -> anyhow::Result<(String, i64)> {
    let scope = parse_scope(scope)?;
    let token = generate_token();
    let expires_at = expires_days.map(|d| now_ms() + i64::from(d) * 86_400_000);
    let id = db
        .create_token(name, &token_hash(&token), scope, expires_at)
        .await
        .map_err(store_error)?;
    audit(
        db,
        actor,
        "token.create",
        Some(name),
        None,
        Some(serde_json::json!({ "id": id, "scope": scope, "expires_at": expires_at.map(format_ms) })),
    )
    .await?;
    Ok((token, id))
}

/// Revokes tokens by id or name.
pub async fn revoke_token(db: &Db, actor: &Actor, id_or_name: &str) -> anyhow::Result<u64> {
    let n = db.revoke_token(id_or_name).await.map_err(|e| match e {
        StoreError::NotFound(what) => {
            anyhow!("{what} does not exist (list them with `palisade admin token list`)")
        }
        e => store_error(e),
    })?;
    audit(db, actor, "token.revoke", Some(id_or_name), None, None).await?;
    Ok(n)
}

/// Store errors about accounts, with a hint.
fn account_error(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::NotFound(what) => {
            anyhow!("{what} does not exist (list them with `palisade admin list`)")
        }
        e => store_error(e),
    }
}

/// A token record as shown.
#[derive(Debug, Serialize)]
pub struct TokenView {
    pub id: i64,
    pub name: String,
    pub scope: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
    pub live: bool,
}

impl TokenView {
    pub fn new(t: &store::admin::ApiToken, now: i64) -> TokenView {
        TokenView {
            id: t.id,
            name: t.name.clone(),
            scope: t.scope.clone(),
            created_at: format_ms(t.created_at),
            expires_at: t.expires_at.map(format_ms),
            revoked_at: t.revoked_at.map(format_ms),
            last_used_at: t.last_used_at.map(format_ms),
            live: t.is_live(now),
        }
    }
}

pub async fn run(args: AccountArgs) -> anyhow::Result<()> {
    let common = args.common;
    let db = common.open_or_create().await?;
    let result = run_on(&db, &common, args.command).await;
    db.close().await;
    result
}

async fn run_on(db: &Db, common: &CommonArgs, command: AccountCommand) -> anyhow::Result<()> {
    let actor = Actor::cli();
    match command {
        AccountCommand::Add { name, role } => {
            let password = add_account(db, &actor, &name, &role).await?;
            if common.json {
                return output::json(&serde_json::json!({ "name": name, "password": password }));
            }
            crate::say!("Account {name} added. Its password (shown only now): {password}");
            crate::say!(
                "Enrol its second factor with `palisade admin totp {name}` or at its first console login."
            );
        }
        AccountCommand::List => {
            let views: Vec<AccountView> = db
                .list_admins()
                .await
                .map_err(store_error)?
                .iter()
                .map(AccountView::from)
                .collect();
            if common.json {
                return output::json(&views);
            }
            if views.is_empty() {
                crate::say!("No console accounts. Add one with `palisade admin add NAME`.");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = views
                .iter()
                .map(|v| {
                    vec![
                        v.name.clone(),
                        v.role.as_str().into(),
                        if v.totp_enrolled { "yes" } else { "no" }.into(),
                        v.created_at.clone(),
                    ]
                })
                .collect();
            output::table(&["NAME", "ROLE", "2FA", "CREATED"], &rows);
        }
        AccountCommand::Remove { name } => {
            remove_account(db, &actor, &name).await?;
            if common.json {
                return output::json(&serde_json::json!({ "removed": name }));
            }
            crate::say!("Account {name} removed; its console sessions end at their next request.");
        }
        AccountCommand::ResetPassword { name } => {
            let password = reset_account_password(db, &actor, &name).await?;
            if common.json {
                return output::json(&serde_json::json!({ "name": name, "password": password }));
            }
            crate::say!("New password for {name} (shown only now): {password}");
        }
        AccountCommand::Totp { name } => {
            let secret = totp::new_secret();
            enrol_totp(db, &actor, &name, &secret).await?;
            let domain = db.domain().await.unwrap_or_else(|_| "palisade".into());
            let uri = totp::otpauth_uri(&format!("Palisade {domain}"), &name, &secret);
            if common.json {
                return output::json(
                    &serde_json::json!({ "name": name, "secret": secret, "uri": uri }),
                );
            }
            crate::say!(
                "Two-factor login enrolled for {name}. Add this secret to an authenticator app:"
            );
            crate::say!("  secret: {secret}");
            crate::say!("  uri:    {uri}");
        }
        AccountCommand::Token(t) => match t.command {
            TokenCommand::Create {
                name,
                scope,
                expires,
            } => {
                let days = expires.as_deref().map(parse_expiry_days).transpose()?;
                let (token, id) = create_token(db, &actor, &name, &scope, days).await?;
                if common.json {
                    return output::json(
                        &serde_json::json!({ "id": id, "name": name, "token": token }),
                    );
                }
                crate::say!("Token {id} ({name}) created. The token (shown only now): {token}");
                crate::say!("Use it as `Authorization: Bearer TOKEN` on /api/v1.");
            }
            TokenCommand::List => {
                let now = now_ms();
                let views: Vec<TokenView> = db
                    .list_tokens()
                    .await
                    .map_err(store_error)?
                    .iter()
                    .map(|t| TokenView::new(t, now))
                    .collect();
                if common.json {
                    return output::json(&views);
                }
                let rows: Vec<Vec<String>> = views
                    .iter()
                    .map(|v| {
                        vec![
                            v.id.to_string(),
                            output::clean(&v.name).into_owned(),
                            v.scope.clone(),
                            v.expires_at.clone().unwrap_or_else(|| "never".into()),
                            if v.live { "live" } else { "revoked/expired" }.into(),
                        ]
                    })
                    .collect();
                output::table(&["ID", "NAME", "SCOPE", "EXPIRES", "STATE"], &rows);
            }
            TokenCommand::Revoke { id_or_name } => {
                let n = revoke_token(db, &actor, &id_or_name).await?;
                if common.json {
                    return output::json(&serde_json::json!({ "revoked": n }));
                }
                crate::say!("Revoked {n} token(s); they stop working at once.");
            }
        },
        AccountCommand::Bans => {
            let bans = db.admin_bans(now_ms()).await.map_err(store_error)?;
            if common.json {
                let v: Vec<_> = bans
                    .iter()
                    .map(|(ip, until, reason)| {
                        serde_json::json!({ "ip": ip, "until": format_ms(*until), "reason": reason })
                    })
                    .collect();
                return output::json(&v);
            }
            if bans.is_empty() {
                crate::say!("No address is banned from the console.");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = bans
                .iter()
                .map(|(ip, until, reason)| vec![ip.clone(), format_ms(*until), reason.clone()])
                .collect();
            output::table(&["ADDRESS", "UNTIL", "WHY"], &rows);
        }
        AccountCommand::Unban { ip } => {
            let ip: std::net::IpAddr = ip
                .trim()
                .parse()
                .map_err(|_| anyhow!("invalid address '{ip}': expected an IPv4 or IPv6 address"))?;
            if !db
                .remove_admin_ban(&ip.to_string())
                .await
                .map_err(store_error)?
            {
                bail!("{ip} is not banned from the console (see `palisade admin bans`)");
            }
            audit(
                db,
                &actor,
                "console.unban",
                Some(&ip.to_string()),
                None,
                None,
            )
            .await?;
            crate::say!(
                "{ip} may use the console again (the running server applies it within 2 seconds)."
            );
        }
    }
    Ok(())
}

/// `palisade audit`.
pub async fn run_audit(args: AuditArgs) -> anyhow::Result<()> {
    let db = args.common.open().await?;
    let entries = db.list_audit(None, args.limit).await;
    db.close().await;
    let entries = entries.map_err(store_error)?;
    if args.common.json {
        return output::json(&entries);
    }
    if entries.is_empty() {
        crate::say!("The audit log is empty.");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                format_ms(e.at),
                e.actor.clone(),
                e.source.clone(),
                e.action.clone(),
                output::opt(&e.target),
                format!(
                    "{} -> {}",
                    e.before.as_deref().unwrap_or("-"),
                    e.after.as_deref().unwrap_or("-")
                ),
            ]
        })
        .collect();
    output::table(
        &["AT", "WHO", "FROM", "WHAT", "TARGET", "BEFORE -> AFTER"],
        &rows,
    );
    Ok(())
}
