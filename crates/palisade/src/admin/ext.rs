//! `palisade ext …`: extensions. Passwords are shown once, when generated or set, and stored only as HA1s.

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use pbx::auth::credentials::{
    Credentials, check_manual_password, generate_auth_id, generate_password,
};
use serde::Serialize;
use store::{Db, Extension, ExtensionNew, ExtensionPatch, SrtpMode, StoreError, validate_number};

use super::secret::PasswordArgs;
use super::time::format_ms;
use super::{CommonArgs, output, realm, store_error};

#[derive(Debug, Args)]
pub struct ExtArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: ExtCommand,
}

#[derive(Debug, Subcommand)]
pub enum ExtCommand {
    /// Add an extension with a random auth ID and password (shown once).
    Add {
        /// Extension number, 2 to 10 digits.
        number: String,
        /// Display name.
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Auth ID (digest username) instead of a random one; must differ from the number.
        #[arg(long, value_name = "ID")]
        auth_id: Option<String>,
        /// Password instead of a random one: at least 10 characters, not containing the number or auth ID.
        /// Visible to every local user (`ps`) while the command runs: prefer --password-stdin.
        #[arg(long, value_name = "PW", conflicts_with = "password_stdin")]
        password: Option<String>,
        /// Read the password (instead of a random one) as one line from standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Email address.
        #[arg(long, value_name = "EMAIL")]
        email: Option<String>,
        /// Accept REGISTER and calls of this extension only over TLS.
        #[arg(long)]
        require_tls: bool,
        /// SRTP: disabled (plain RTP only), enabled (SRTP when the phone offers it over TLS; the default) or
        /// enforced (only SRTP over TLS; plain-RTP offers get 488).
        #[arg(long, value_name = "MODE")]
        srtp: Option<String>,
    },
    /// Add every extension number FROM to TO (at most 10,000), each with a random auth ID and password.
    ///
    /// All or nothing: if any number in the range exists already or is invalid, nothing is added. Prints the
    /// credentials as CSV (`number,auth_id,password,voicemail_pin`, with a header line) or, with --json, as a JSON array.
    /// THE OUTPUT HOLDS SECRETS: the passwords are shown only this once; redirect it to a file only you can read,
    /// and delete it once the phones are configured.
    #[command(verbatim_doc_comment)]
    AddRange {
        /// First extension number, 2 to 10 digits; leading zeros are kept (0100 0199 adds 0100, 0101, …).
        from: String,
        /// Last extension number (included).
        to: String,
        /// Accept REGISTER and calls of these extensions only over TLS.
        #[arg(long)]
        require_tls: bool,
        /// SRTP for these extensions: disabled, enabled (the default) or enforced.
        #[arg(long, value_name = "MODE")]
        srtp: Option<String>,
    },
    /// List extensions.
    List,
    /// Show one extension (never its password or hashes).
    Show { number: String },
    /// Change an extension's settings.
    Set {
        number: String,
        /// Enable or disable the extension (a disabled extension cannot register or call).
        #[arg(long, value_name = "true|false")]
        enabled: Option<bool>,
        /// Display name ("" clears it).
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Email address ("" clears it).
        #[arg(long, value_name = "EMAIL")]
        email: Option<String>,
        /// Digest algorithms for this extension, in order, e.g. "SHA-256,MD5" ("" uses the global setting).
        #[arg(long, value_name = "LIST")]
        digest_algorithms: Option<String>,
        /// Accept REGISTER and calls of this extension only over TLS (over UDP or TCP they are refused and
        /// recorded as a security event).
        #[arg(long, value_name = "true|false")]
        require_tls: Option<bool>,
        /// SRTP: disabled (plain RTP only), enabled (SRTP when the phone offers it over TLS, plain RTP otherwise)
        /// or enforced (only SRTP over TLS; a plain-RTP offer gets 488).
        #[arg(long, value_name = "disabled|enabled|enforced")]
        srtp: Option<String>,
        /// No external calls in or out, only other extensions (emergency numbers still go out).
        #[arg(long, value_name = "true|false")]
        internal_only: Option<bool>,
        /// Outbound external calls are refused until the user dials 777 and the voicemail PIN (e.g. 7771234);
        /// they are then allowed for `pin_unlock_seconds` (see `palisade policy show`).
        #[arg(long, value_name = "true|false")]
        pin_protect: Option<bool>,
        /// Registration only from the local networks (the `local_networks` policy setting).
        #[arg(long, value_name = "true|false")]
        lan_only: Option<bool>,
        /// Refuse SIP over WebSocket (ws, wss) for this extension from outside the local networks.
        #[arg(long, value_name = "true|false")]
        block_remote_ws: Option<bool>,
        /// No outbound external calls outside the office hours (the `office_hours` policy setting).
        #[arg(long, value_name = "true|false")]
        office_hours_only: Option<bool>,
        /// Voicemail for unanswered, busy and unregistered calls to this extension.
        #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
        voicemail: Option<bool>,
        /// Send message-waiting NOTIFYs to this extension's registered phones even when they did not subscribe.
        #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
        mwi_unsolicited: Option<bool>,
        /// Forward every call to this number before ringing ("" turns it off). The forwarded call is placed as
        /// if this extension dialled the number: its restrictions and the call policy apply.
        #[arg(long, value_name = "NUM")]
        forward_always: Option<String>,
        /// Forward calls to this number when every phone of the extension is busy or declines ("" turns it off);
        /// it takes precedence over voicemail.
        #[arg(long, value_name = "NUM")]
        forward_busy: Option<String>,
        /// Forward calls to this number when nobody answers within the ring time or no phone is registered
        /// ("" turns it off); it takes precedence over voicemail.
        #[arg(long, value_name = "NUM")]
        forward_no_answer: Option<String>,
        /// Most calls in progress this extension may have placed, 1 to 1000; 0 or "" for the
        /// `max_calls_per_extension` setting (default 4). The next call gets 486; emergency calls always pass.
        #[arg(long, value_name = "N")]
        max_calls: Option<String>,
        /// Most external calls (through a trunk) in progress for this extension, 1 to 1000; 0 or "" for no cap.
        #[arg(long, value_name = "N")]
        max_external_calls: Option<String>,
    },
    /// Give an extension a new random password (shown once), or the one read from standard input.
    ResetPassword {
        number: String,
        /// Set the password read as one line from standard input instead of a random one (at least 10
        /// characters, not containing the number or auth ID).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Give an extension's mailbox a new voicemail PIN: random (4 digits, shown once) or the one given.
    ResetPin {
        number: String,
        /// The PIN to set instead of a random one: 4 to 10 digits, not one digit repeated, not a run like 1234,
        /// not the extension number.
        #[arg(long, value_name = "DIGITS")]
        pin: Option<String>,
    },
    /// Lift a voicemail PIN lockout (too many wrong PINs across calls) and clear the count of wrong PINs; the
    /// running server sees it at the next PIN entry.
    UnlockPin { number: String },
    /// Remove an extension and its registrations.
    Remove { number: String },
}

/// An extension as shown: everything except secrets.
#[derive(Debug, Serialize)]
pub struct ExtensionView {
    pub number: String,
    pub display_name: Option<String>,
    pub enabled: bool,
    pub auth_id: String,
    pub realm: String,
    pub digest_algorithms: Option<String>,
    pub email: Option<String>,
    pub require_tls: bool,
    pub srtp: SrtpMode,
    pub internal_only: bool,
    pub pin_protect: bool,
    pub lan_only: bool,
    pub block_remote_ws: bool,
    pub office_hours_only: bool,
    /// Call forwards (`null`: off).
    pub forward: ForwardView,
    pub created_at: String,
    pub updated_at: String,
    pub password_changed_at: String,
    /// Mailbox settings (`ext show` and `ext set` fill them in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voicemail: Option<MailboxView>,
    /// Resource limits (filled in with the mailbox).
    pub limits: Option<LimitsView>,
}

#[derive(Debug, Serialize)]
pub struct LimitsView {
    /// Calls in progress it may have placed (its own or the `max_calls_per_extension` setting).
    pub max_calls: u32,
    pub max_calls_is_default: bool,
    /// External calls in progress it may have; null: no cap.
    pub max_external_calls: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct ForwardView {
    pub always: Option<String>,
    pub busy: Option<String>,
    pub no_answer: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct MailboxView {
    pub enabled: bool,
    pub pin_set: bool,
    pub greeting: &'static str,
    pub mwi_unsolicited: bool,
    pub new_messages: u32,
    pub old_messages: u32,
    /// Wrong PINs counted in the last 24 h (across calls).
    pub pin_failures: u32,
    /// PIN entry refused until then (RFC 3339), while locked.
    pub pin_locked_until: Option<String>,
    /// Lockouts since the last correct PIN or unlock.
    pub pin_lockouts: u32,
}

/// The extension's view with its mailbox.
async fn view_with_mailbox(db: &Db, ext: &Extension) -> anyhow::Result<ExtensionView> {
    let mut view = ExtensionView::from(ext);
    let own = db
        .extension_limits(&ext.number)
        .await
        .map_err(store_error)?;
    let default = db.policy_settings().await.map_err(store_error)?;
    view.limits = Some(LimitsView {
        max_calls: own.max_calls.unwrap_or(default.max_calls_per_extension),
        max_calls_is_default: own.max_calls.is_none(),
        max_external_calls: own.max_external_calls,
    });
    if let Some(m) = db.mailbox(&ext.number).await.map_err(store_error)? {
        let counts = db.mailbox_counts(&ext.number).await.map_err(store_error)?;
        let lock = db.pin_lock_state(&ext.number).await.map_err(store_error)?;
        let now = super::time::now_ms();
        view.voicemail = Some(MailboxView {
            pin_failures: lock.failures_at(now),
            pin_locked_until: lock.locked(now).map(format_ms),
            pin_lockouts: lock.lockouts,
            enabled: m.enabled,
            pin_set: m.pin_hash.is_some(),
            greeting: if m.greeting.is_some() {
                "recorded"
            } else {
                "default"
            },
            mwi_unsolicited: m.mwi_unsolicited,
            new_messages: counts.new,
            old_messages: counts.old,
        });
    }
    Ok(view)
}

impl From<&Extension> for ExtensionView {
    fn from(e: &Extension) -> Self {
        ExtensionView {
            number: e.number.clone(),
            display_name: e.display_name.clone(),
            enabled: e.enabled,
            auth_id: e.auth_id.clone(),
            realm: e.realm.clone(),
            digest_algorithms: e.digest_algorithms.clone(),
            email: e.email.clone(),
            require_tls: e.require_tls,
            srtp: e.srtp,
            internal_only: e.internal_only,
            pin_protect: e.pin_protect,
            lan_only: e.lan_only,
            block_remote_ws: e.block_remote_ws,
            office_hours_only: e.office_hours_only,
            forward: ForwardView {
                always: e.forward_always.clone(),
                busy: e.forward_busy.clone(),
                no_answer: e.forward_no_answer.clone(),
            },
            created_at: format_ms(e.created_at),
            updated_at: format_ms(e.updated_at),
            password_changed_at: format_ms(e.password_changed_at),
            voicemail: None,
            limits: None,
        }
    }
}

/// Credentials printed once.
#[derive(Debug, Serialize)]
pub struct NewCredentials {
    pub number: String,
    pub auth_id: String,
    /// A generated password; one the operator gave is not echoed back (`null`).
    pub password: Option<String>,
    pub realm: String,
    /// The voicemail PIN, for a new extension.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voicemail_pin: Option<String>,
}

/// `on`/`off` (also true/false, yes/no) for switches.
fn parse_on_off(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(format!(
            "expected on or off, got '{}'",
            value.escape_debug()
        )),
    }
}

/// A new random PIN for `number` and its hash.
fn new_pin(number: &str) -> anyhow::Result<(String, String)> {
    let pin = pbx::voicemail::pin::generate(number);
    let hash = pbx::voicemail::pin::hash(&pin).map_err(|e| anyhow!("{e}"))?;
    Ok((pin, hash))
}

pub async fn run(args: ExtArgs) -> anyhow::Result<()> {
    let common = args.common;
    match args.command {
        ExtCommand::Add {
            number,
            name,
            auth_id,
            password,
            password_stdin,
            email,
            require_tls,
            srtp,
        } => {
            validate_number(&number).map_err(store_error)?;
            let password = PasswordArgs {
                flag: password,
                stdin: password_stdin,
            }
            .read(None)?;
            let security = Security::parse(require_tls, srtp.as_deref())?;
            let db = common.open_or_create().await?;
            let result = add(
                &db, &common, number, name, auth_id, password, email, security,
            )
            .await;
            db.close().await;
            let creds = result?;
            if common.json {
                output::json(&creds)
            } else {
                crate::say!(
                    "Added extension {}. Configure the phone with:",
                    creds.number
                );
                print_credentials(&creds);
                Ok(())
            }
        }
        ExtCommand::AddRange {
            from,
            to,
            require_tls,
            srtp,
        } => {
            let numbers = range_numbers(&from, &to)?;
            let security = Security::parse(require_tls, srtp.as_deref())?;
            let db = common.open_or_create().await?;
            let result = add_range(&db, &common, &numbers, security).await;
            db.close().await;
            let creds = result?;
            if common.json {
                output::json(&creds)
            } else {
                let mut out = String::with_capacity(creds.len() * 40 + 32);
                out.push_str("number,auth_id,password,voicemail_pin\n");
                for c in &creds {
                    out.push_str(&format!(
                        "{},{},{},{}\n",
                        c.number,
                        c.auth_id,
                        c.password.as_deref().unwrap_or(""),
                        c.voicemail_pin.as_deref().unwrap_or("")
                    ));
                }
                print!("{out}");
                eprintln!(
                    "Added {} extensions ({}..{}) in realm {}. The passwords above are shown only this once.",
                    creds.len(),
                    from,
                    to,
                    creds.first().map(|c| c.realm.as_str()).unwrap_or("")
                );
                Ok(())
            }
        }
        ExtCommand::List => {
            let db = common.open().await?;
            let list = db.list_extensions().await;
            db.close().await;
            let views: Vec<ExtensionView> = list?.iter().map(ExtensionView::from).collect();
            if common.json {
                return output::json(&views);
            }
            if views.is_empty() {
                crate::say!("No extensions. Add one with `palisade ext add NUMBER`.");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = views
                .iter()
                .map(|v| {
                    vec![
                        v.number.clone(),
                        output::opt(&v.display_name),
                        if v.enabled { "yes" } else { "no" }.into(),
                        v.auth_id.clone(),
                        if v.require_tls { "yes" } else { "no" }.into(),
                        v.srtp.to_string(),
                        restrictions(v),
                        output::opt(&v.email),
                    ]
                })
                .collect();
            output::table(
                &[
                    "NUMBER",
                    "NAME",
                    "ENABLED",
                    "AUTH ID",
                    "TLS ONLY",
                    "SRTP",
                    "RESTRICTIONS",
                    "EMAIL",
                ],
                &rows,
            );
            Ok(())
        }
        ExtCommand::Show { number } => {
            let db = common.open().await?;
            let view = match db.get_extension(&number).await {
                Ok(ext) => view_with_mailbox(&db, &ext).await,
                Err(e) => Err(store_error(e)),
            };
            db.close().await;
            print_extension(&view?, common.json)
        }
        ExtCommand::Set {
            number,
            enabled,
            name,
            email,
            digest_algorithms,
            require_tls,
            srtp,
            internal_only,
            pin_protect,
            lan_only,
            block_remote_ws,
            office_hours_only,
            voicemail,
            mwi_unsolicited,
            forward_always,
            forward_busy,
            forward_no_answer,
            max_calls,
            max_external_calls,
        } => {
            let changes = ExtChanges {
                enabled,
                name,
                email,
                digest_algorithms,
                require_tls,
                srtp,
                internal_only,
                pin_protect,
                lan_only,
                block_remote_ws,
                office_hours_only,
                voicemail,
                mwi_unsolicited,
                forward_always,
                forward_busy,
                forward_no_answer,
                max_calls,
                max_external_calls,
            };
            let db = common.open().await?;
            let view = set(&db, &number, changes).await;
            db.close().await;
            print_extension(&view?, common.json)
        }
        ExtCommand::ResetPin { number, pin } => {
            let db = common.open().await?;
            let pin = reset_pin(&db, &number, pin).await;
            db.close().await;
            let pin = pin?;
            if common.json {
                output::json(&serde_json::json!({ "number": number, "voicemail_pin": pin }))
            } else {
                crate::say!("New voicemail PIN for extension {number}: {pin}");
                crate::say!("It is shown only this once; it is stored hashed.");
                Ok(())
            }
        }
        ExtCommand::UnlockPin { number } => {
            let db = common.open().await?;
            let result = async {
                let mailbox = db.mailbox(&number).await.map_err(store_error)?;
                if mailbox.is_none() {
                    bail!("extension {number} does not exist (list them with `palisade ext list`)");
                }
                let was = db.pin_lock_state(&number).await.map_err(store_error)?;
                db.clear_pin_lockout(&number).await.map_err(store_error)?;
                anyhow::Ok(was)
            }
            .await;
            db.close().await;
            let was = result?;
            let was_locked = was.locked(super::time::now_ms()).is_some();
            if common.json {
                output::json(&serde_json::json!({ "number": number, "was_locked": was_locked }))
            } else {
                if was_locked {
                    crate::say!("Voicemail PIN entry of extension {number} unlocked.");
                } else {
                    crate::say!(
                        "Voicemail PIN entry of extension {number} was not locked; its count of wrong PINs is cleared."
                    );
                }
                Ok(())
            }
        }
        ExtCommand::ResetPassword {
            number,
            password_stdin,
        } => {
            let given = PasswordArgs {
                flag: None,
                stdin: password_stdin,
            }
            .read(None)?;
            let db = common.open().await?;
            let result = reset_password(&db, &common, &number, given).await;
            db.close().await;
            let creds = result?;
            if common.json {
                output::json(&creds)
            } else {
                crate::say!("New password for extension {}:", creds.number);
                print_credentials(&creds);
                Ok(())
            }
        }
        ExtCommand::Remove { number } => {
            let db = common.open().await?;
            let warnings = remove(&db, &common.data_dir(), &number).await;
            db.close().await;
            for w in warnings? {
                eprintln!("warning: {w}");
            }
            if common.json {
                output::json(&serde_json::json!({ "removed": number }))
            } else {
                crate::say!("Removed extension {number} and its registrations.");
                Ok(())
            }
        }
    }
}

/// What `ext set` (and the API's PATCH) may change; `None` leaves a setting alone. Switches are booleans; the
/// text values are checked as the CLI's flags are.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtChanges {
    pub enabled: Option<bool>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub digest_algorithms: Option<String>,
    pub require_tls: Option<bool>,
    pub srtp: Option<String>,
    pub internal_only: Option<bool>,
    pub pin_protect: Option<bool>,
    pub lan_only: Option<bool>,
    pub block_remote_ws: Option<bool>,
    pub office_hours_only: Option<bool>,
    pub voicemail: Option<bool>,
    pub mwi_unsolicited: Option<bool>,
    pub forward_always: Option<String>,
    pub forward_busy: Option<String>,
    pub forward_no_answer: Option<String>,
    pub max_calls: Option<String>,
    pub max_external_calls: Option<String>,
}

/// Applies `changes` to extension `number` (`palisade ext set`, the API and the console); returns its view.
pub async fn set(db: &Db, number: &str, changes: ExtChanges) -> anyhow::Result<ExtensionView> {
    let ExtChanges {
        enabled,
        name,
        email,
        digest_algorithms,
        require_tls,
        srtp,
        internal_only,
        pin_protect,
        lan_only,
        block_remote_ws,
        office_hours_only,
        voicemail,
        mwi_unsolicited,
        forward_always,
        forward_busy,
        forward_no_answer,
        max_calls,
        max_external_calls,
    } = changes;
    let number = number.to_string();
    let max_calls = max_calls
        .map(|v| store::limits::parse_limit("--max-calls", &v))
        .transpose()
        .map_err(store_error)?;
    let max_external_calls = max_external_calls
        .map(|v| store::limits::parse_limit("--max-external-calls", &v))
        .transpose()
        .map_err(store_error)?;
    if let Some(mode) = &srtp {
        SrtpMode::parse(mode).map_err(srtp_error)?;
    }
    for (flag, value) in [
        ("--forward-always", &forward_always),
        ("--forward-busy", &forward_busy),
        ("--forward-no-answer", &forward_no_answer),
    ] {
        if let Some(target) = value.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            pbx::calls::validate_forward_target(&number, target)
                .map_err(|e| anyhow!("{flag}: {e} (\"\" turns the forward off)"))?;
        }
    }
    let patch = ExtensionPatch {
        display_name: name.map(Some),
        enabled,
        email: email.map(Some),
        digest_algorithms: digest_algorithms.map(Some),
        require_tls,
        srtp,
        internal_only,
        pin_protect,
        lan_only,
        block_remote_ws,
        office_hours_only,
        forward_always: forward_always.map(Some),
        forward_busy: forward_busy.map(Some),
        forward_no_answer: forward_no_answer.map(Some),
    };
    let limits_given = max_calls.is_some() || max_external_calls.is_some();
    if patch.is_empty() && voicemail.is_none() && mwi_unsolicited.is_none() && !limits_given {
        bail!(
            "nothing to change: give at least one of --enabled, --name, --email, --digest-algorithms, \
             --require-tls, --srtp, --internal-only, --pin-protect, --lan-only, --block-remote-ws, \
             --office-hours-only, --voicemail, --mwi-unsolicited, --forward-always, --forward-busy, \
             --forward-no-answer, --max-calls, --max-external-calls"
        );
    }
    let result = async {
        if let Some(on) = voicemail {
            db.set_voicemail_enabled(&number, on).await?;
        }
        if let Some(on) = mwi_unsolicited {
            db.set_mwi_unsolicited(&number, on).await?;
        }
        if limits_given {
            db.set_extension_limits(&number, max_calls, max_external_calls)
                .await?;
        }
        if patch.is_empty() {
            db.get_extension(&number).await
        } else {
            db.update_extension(&number, patch).await
        }
    }
    .await;
    match result {
        Ok(ext) => view_with_mailbox(db, &ext).await,
        Err(e) => Err(store_error(e)),
    }
}

/// A new voicemail PIN for `number` (random unless given); returns it (`palisade ext reset-pin`, the API).
pub async fn reset_pin(db: &Db, number: &str, pin: Option<String>) -> anyhow::Result<String> {
    let pin = match pin {
        Some(pin) => {
            pbx::voicemail::pin::validate(&pin, number)
                .map_err(|e| anyhow!("{e} (leave out --pin to get a random one)"))?;
            pin
        }
        None => pbx::voicemail::pin::generate(number),
    };
    let hash = pbx::voicemail::pin::hash(&pin).map_err(|e| anyhow!("{e}"))?;
    db.set_voicemail_pin_hash(number, &hash)
        .await
        .map_err(store_error)?;
    Ok(pin)
}

/// Removes extension `number` and its mailbox files (`palisade ext remove`, the API); returns warnings.
pub async fn remove(
    db: &Db,
    data_dir: &std::path::Path,
    number: &str,
) -> anyhow::Result<Vec<String>> {
    db.remove_extension(number).await.map_err(store_error)?;
    // The mailbox's rows went with the extension; its audio files go too.
    let mut warnings = Vec::new();
    let mailbox_dir = crate::voicemail::files::root(data_dir).join(number);
    if mailbox_dir.is_dir()
        && let Err(e) = std::fs::remove_dir_all(&mailbox_dir)
    {
        warnings.push(format!(
            "cannot remove {}: {e} (remove it by hand)",
            mailbox_dir.display()
        ));
    }
    // Several nodes on PostgreSQL: the database's copies of its audio too (docs/cluster.md).
    if db.is_postgres()
        && let Err(e) = db.delete_mailbox_audio(number).await
    {
        warnings.push(format!(
            "cannot remove the mailbox's audio from the database: {e}"
        ));
    }
    Ok(warnings)
}

/// Adds extension `number` with generated credentials (`palisade ext add` without a given auth ID or password,
/// the API and the console).
pub async fn create(
    db: &Db,
    data_dir: &std::path::Path,
    number: String,
    name: Option<String>,
    email: Option<String>,
    require_tls: bool,
    srtp: Option<&str>,
) -> anyhow::Result<NewCredentials> {
    validate_number(&number).map_err(store_error)?;
    let security = Security::parse(require_tls, srtp)?;
    let common = CommonArgs {
        data: Some(data_dir.to_path_buf()),
        database: None,
        json: false,
    };
    add(db, &common, number, name, None, None, email, security).await
}

/// New random password for extension `number` (`palisade ext reset-password`, the API and the console).
pub async fn new_password(
    db: &Db,
    data_dir: &std::path::Path,
    number: &str,
) -> anyhow::Result<NewCredentials> {
    let common = CommonArgs {
        data: Some(data_dir.to_path_buf()),
        database: None,
        json: false,
    };
    reset_password(db, &common, number, None).await
}

/// Every extension's view (`palisade ext list`).
pub async fn list_views(db: &Db) -> anyhow::Result<Vec<ExtensionView>> {
    Ok(db
        .list_extensions()
        .await?
        .iter()
        .map(ExtensionView::from)
        .collect())
}

/// A page of extension views: after `after`, at most `limit`.
pub async fn page_views(
    db: &Db,
    after: Option<&str>,
    limit: u32,
) -> anyhow::Result<Vec<ExtensionView>> {
    Ok(db
        .list_extensions_page(after, limit)
        .await?
        .iter()
        .map(ExtensionView::from)
        .collect())
}

/// One extension's view with its mailbox (`palisade ext show`).
pub async fn show(db: &Db, number: &str) -> anyhow::Result<ExtensionView> {
    let ext = db.get_extension(number).await.map_err(store_error)?;
    view_with_mailbox(db, &ext).await
}

/// The security flags of new extensions.
#[derive(Debug, Clone, Copy)]
struct Security {
    require_tls: bool,
    srtp: SrtpMode,
}

impl Security {
    fn parse(require_tls: bool, srtp: Option<&str>) -> anyhow::Result<Security> {
        Ok(Security {
            require_tls,
            srtp: srtp
                .map(SrtpMode::parse)
                .transpose()
                .map_err(srtp_error)?
                .unwrap_or_default(),
        })
    }
}

/// An invalid --srtp value, with what each mode means.
fn srtp_error(e: pbx::model::InvalidSrtpMode) -> anyhow::Error {
    anyhow!(
        "--srtp: {e} (disabled: plain RTP only; enabled: SRTP when the phone offers it over TLS, plain RTP \
         otherwise; enforced: only SRTP over TLS)"
    )
}

#[allow(clippy::too_many_arguments)]
async fn add(
    db: &Db,
    common: &CommonArgs,
    number: String,
    name: Option<String>,
    given_auth_id: Option<String>,
    given_password: Option<String>,
    email: Option<String>,
    security: Security,
) -> anyhow::Result<NewCredentials> {
    let len = db.credential_length().await?;
    let realm = realm(db, &common.data_dir()).await?;
    if let Some(id) = &given_auth_id {
        store::validate_auth_id(id, &number).map_err(store_error)?;
    }
    // A generated auth ID that happens to be taken is replaced; a given one is reported.
    for _ in 0..3 {
        let auth_id = match &given_auth_id {
            Some(id) => id.clone(),
            None => generate_auth_id(len, &number)?,
        };
        let password = match &given_password {
            Some(pw) => {
                check_manual_password(pw, &number, &auth_id).map_err(|e| {
                    anyhow!("{e} (leave out --password/--password-stdin to get a random one)")
                })?;
                pw.clone()
            }
            None => generate_password(len, &number, &auth_id)?,
        };
        let (ha1_md5, ha1_sha256) = ha1_pair(&auth_id, &realm, &password)?;
        let (pin, pin_hash) = new_pin(&number)?;
        let new = ExtensionNew {
            number: number.clone(),
            display_name: name.clone(),
            auth_id: auth_id.clone(),
            ha1_md5,
            ha1_sha256,
            realm: realm.clone(),
            email: email.clone(),
            digest_algorithms: None,
            require_tls: security.require_tls,
            srtp: security.srtp,
            voicemail_pin_hash: Some(pin_hash),
            ..ExtensionNew::default()
        };
        match db.create_extension(new).await {
            Ok(_) => {
                return Ok(NewCredentials {
                    number,
                    auth_id,
                    password: given_password.is_none().then_some(password),
                    realm,
                    voicemail_pin: Some(pin),
                });
            }
            Err(StoreError::Conflict(msg))
                if msg.starts_with("auth ID") && given_auth_id.is_none() =>
            {
                continue;
            }
            Err(StoreError::Conflict(msg)) if msg.starts_with("extension") => {
                bail!(
                    "{msg} (change it with `palisade ext set {number}` or remove it with `palisade ext remove {number}`)"
                )
            }
            Err(e) => return Err(store_error(e)),
        }
    }
    Err(anyhow!(
        "could not generate an unused auth ID; try again or give one with --auth-id"
    ))
}

/// The most extensions `ext add-range` creates at once.
const MAX_RANGE: u64 = 10_000;

/// The numbers FROM..=TO, zero-padded to the width of FROM; each must be a valid extension number.
fn range_numbers(from: &str, to: &str) -> anyhow::Result<Vec<String>> {
    validate_number(from).map_err(|e| anyhow!("FROM: {e}"))?;
    validate_number(to).map_err(|e| anyhow!("TO: {e}"))?;
    let (a, b): (u64, u64) = (from.parse()?, to.parse()?);
    if a > b {
        bail!("the range {from}..{to} is empty: FROM must not be greater than TO");
    }
    let count = b - a + 1;
    if count > MAX_RANGE {
        bail!(
            "the range {from}..{to} holds {count} numbers; at most {MAX_RANGE} can be added at once"
        );
    }
    let width = from.len();
    let numbers: Vec<String> = (a..=b).map(|n| format!("{n:0width$}")).collect();
    if numbers.last().map(String::as_str) != Some(to) {
        bail!(
            "TO {to} must be written with as many digits as FROM {from} (or more, without leading zeros)"
        );
    }
    for n in &numbers {
        validate_number(n)
            .map_err(|e| anyhow!("{e} (in the range {from}..{to}); nothing was added"))?;
    }
    Ok(numbers)
}

async fn add_range(
    db: &Db,
    common: &CommonArgs,
    numbers: &[String],
    security: Security,
) -> anyhow::Result<Vec<NewCredentials>> {
    let len = db.credential_length().await?;
    let realm = realm(db, &common.data_dir()).await?;
    // A generated auth ID that happens to be taken (or drawn twice) makes the batch fail; draw them all again.
    for _ in 0..3 {
        let mut creds = Vec::with_capacity(numbers.len());
        let mut news = Vec::with_capacity(numbers.len());
        for number in numbers {
            let auth_id = generate_auth_id(len, number)?;
            let password = generate_password(len, number, &auth_id)?;
            let (ha1_md5, ha1_sha256) = ha1_pair(&auth_id, &realm, &password)?;
            let (pin, pin_hash) = new_pin(number)?;
            news.push(ExtensionNew {
                number: number.clone(),
                auth_id: auth_id.clone(),
                ha1_md5,
                ha1_sha256,
                realm: realm.clone(),
                require_tls: security.require_tls,
                srtp: security.srtp,
                voicemail_pin_hash: Some(pin_hash),
                ..ExtensionNew::default()
            });
            creds.push(NewCredentials {
                number: number.clone(),
                auth_id,
                password: Some(password),
                realm: realm.clone(),
                voicemail_pin: Some(pin),
            });
        }
        match db.create_extensions(news).await {
            Ok(_) => return Ok(creds),
            Err(StoreError::Conflict(msg)) if msg.starts_with("auth ID") => continue,
            Err(StoreError::Conflict(msg)) => {
                bail!(
                    "{msg}; nothing was added (choose a range of free numbers, see `palisade ext list`)"
                )
            }
            Err(e) => return Err(store_error(e)),
        }
    }
    Err(anyhow!(
        "could not generate unused auth IDs; nothing was added, try again"
    ))
}

async fn reset_password(
    db: &Db,
    common: &CommonArgs,
    number: &str,
    given: Option<String>,
) -> anyhow::Result<NewCredentials> {
    let ext = db.get_extension(number).await.map_err(store_error)?;
    let len = db.credential_length().await?;
    let realm = realm(db, &common.data_dir()).await?;
    let password = match &given {
        Some(pw) => {
            check_manual_password(pw, &ext.number, &ext.auth_id)
                .map_err(|e| anyhow!("{e} (leave out --password-stdin to get a random one)"))?;
            pw.clone()
        }
        None => generate_password(len, &ext.number, &ext.auth_id)?,
    };
    let (md5, sha256) = ha1_pair(&ext.auth_id, &realm, &password)?;
    db.set_password_hashes(number, &md5, &sha256, &realm)
        .await
        .map_err(store_error)?;
    Ok(NewCredentials {
        number: ext.number,
        auth_id: ext.auth_id,
        password: given.is_none().then_some(password),
        realm,
        voicemail_pin: None,
    })
}

/// Both HA1s (MD5, SHA-256) for the store.
fn ha1_pair(auth_id: &str, realm: &str, password: &str) -> anyhow::Result<(String, String)> {
    match Credentials::from_password(auth_id, realm, password) {
        Credentials {
            ha1_md5: Some(md5),
            ha1_sha256: Some(sha256),
            ..
        } => Ok((md5, sha256)),
        _ => bail!("internal error: password hashes missing"),
    }
}

fn print_credentials(c: &NewCredentials) {
    output::fields(&[
        ("Extension", c.number.clone()),
        ("Auth ID", c.auth_id.clone()),
        (
            "Password",
            c.password
                .clone()
                .unwrap_or_else(|| "(the one given; not shown)".into()),
        ),
        ("Realm", c.realm.clone()),
    ]);
    if let Some(pin) = &c.voicemail_pin {
        output::fields(&[("Voicemail PIN", pin.clone())]);
    }
    crate::say!(
        "The password is shown only this once; `palisade ext reset-password {}` makes a new one.",
        c.number
    );
}

fn print_extension(v: &ExtensionView, json: bool) -> anyhow::Result<()> {
    if json {
        return output::json(v);
    }
    output::fields(&[
        ("Extension", v.number.clone()),
        ("Name", output::opt(&v.display_name)),
        ("Enabled", if v.enabled { "yes" } else { "no" }.into()),
        ("Auth ID", v.auth_id.clone()),
        ("Realm", v.realm.clone()),
        (
            "Digest algorithms",
            v.digest_algorithms
                .clone()
                .unwrap_or_else(|| "(global setting)".into()),
        ),
        ("Email", output::opt(&v.email)),
        (
            "TLS only",
            if v.require_tls {
                "yes (REGISTER and calls over UDP or TCP are refused)"
            } else {
                "no"
            }
            .into(),
        ),
        (
            "SRTP",
            match v.srtp {
                SrtpMode::Disabled => "disabled (plain RTP only)",
                SrtpMode::Enabled => "enabled (when the phone offers it over TLS)",
                SrtpMode::Enforced => "enforced (only SRTP over TLS)",
            }
            .into(),
        ),
        (
            "Internal only",
            yes_no(
                v.internal_only,
                "yes (no external calls in or out; emergency numbers still go out)",
            ),
        ),
        (
            "PIN protect",
            yes_no(
                v.pin_protect,
                "yes (external calls need 777 + voicemail PIN first)",
            ),
        ),
        (
            "LAN only",
            yes_no(v.lan_only, "yes (registration only from local_networks)"),
        ),
        (
            "Remote WebSocket",
            if v.block_remote_ws {
                "blocked (no SIP over WebSocket from outside local_networks)"
            } else {
                "allowed"
            }
            .into(),
        ),
        (
            "Office hours only",
            yes_no(
                v.office_hours_only,
                "yes (no outbound external calls outside office_hours)",
            ),
        ),
        ("Forward always", forward_text(&v.forward.always)),
        ("Forward on busy", forward_text(&v.forward.busy)),
        ("Forward no answer", forward_text(&v.forward.no_answer)),
        ("Created", v.created_at.clone()),
        ("Updated", v.updated_at.clone()),
        ("Password changed", v.password_changed_at.clone()),
    ]);
    if let Some(l) = &v.limits {
        output::fields(&[(
            "Call limits",
            format!(
                "{} calls at once{}; external: {}",
                l.max_calls,
                if l.max_calls_is_default {
                    " (the max_calls_per_extension setting)"
                } else {
                    ""
                },
                l.max_external_calls
                    .map_or_else(|| "no cap".to_string(), |n| format!("{n} at once"))
            ),
        )]);
    }
    if let Some(m) = &v.voicemail {
        output::fields(&[
            (
                "Voicemail",
                if m.enabled {
                    format!(
                        "on ({} new, {} old; {} greeting)",
                        m.new_messages, m.old_messages, m.greeting
                    )
                } else {
                    "off".into()
                },
            ),
            (
                "Voicemail PIN",
                if m.pin_set {
                    "set (stored hashed)".into()
                } else {
                    format!(
                        "not set: the mailbox cannot be opened (`palisade ext reset-pin {}`)",
                        v.number
                    )
                },
            ),
            (
                "PIN lockout",
                match &m.pin_locked_until {
                    Some(until) => format!(
                        "LOCKED until {until} (lockout {}; lift it with `palisade ext unlock-pin {}`)",
                        m.pin_lockouts, v.number
                    ),
                    None => format!("no ({} wrong PINs in the last 24 h)", m.pin_failures),
                },
            ),
            ("Unsolicited MWI", yes_no(m.mwi_unsolicited, "yes")),
        ]);
    }
    Ok(())
}

fn forward_text(target: &Option<String>) -> String {
    target
        .as_ref()
        .map_or_else(|| "off".into(), |t| format!("to {t}"))
}

fn yes_no(flag: bool, yes: &str) -> String {
    if flag { yes.into() } else { "no".into() }
}

/// The call restrictions that are on, for the list table ("-" for none).
fn restrictions(v: &ExtensionView) -> String {
    let on: Vec<&str> = [
        (v.internal_only, "internal-only"),
        (v.pin_protect, "pin-protect"),
        (v.lan_only, "lan-only"),
        (v.block_remote_ws, "block-remote-ws"),
        (v.office_hours_only, "office-hours-only"),
    ]
    .into_iter()
    .filter_map(|(flag, name)| flag.then_some(name))
    .collect();
    if on.is_empty() {
        "-".into()
    } else {
        on.join(",")
    }
}
