//! `palisade realm`: the digest realm every password is bound to.
//!
//! Passwords are stored as HA1 = H(auth_id:realm:password), so the realm is fixed once (first start) and does not
//! follow the SIP domain. Changing it is deliberate: it makes the password of every extension hashed for the old
//! realm wrong, so the command names them and asks for `--yes` first.

use clap::{Args, Subcommand};

use super::{CommonArgs, domain, output, realm};

#[derive(Debug, Args)]
pub struct RealmArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: RealmCommand,
}

#[derive(Debug, Subcommand)]
pub enum RealmCommand {
    /// Show the realm, the domain, and the extensions whose passwords were set for another realm.
    Show,
    /// Change the realm. Every extension whose password was set for the old realm then needs
    /// `palisade ext reset-password NUMBER`; without --yes the command only lists them.
    Set {
        /// The new realm, e.g. pbx.example.com.
        realm: String,
        /// Change it even though passwords stop working.
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run(args: RealmArgs) -> anyhow::Result<()> {
    let common = args.common;
    let db = common.open_or_create().await?;
    let result = async {
        match args.command {
            RealmCommand::Show => {
                let realm = realm(&db, &common.data_dir()).await?;
                let domain = domain(&db, &common.data_dir()).await?;
                let stale = db.extensions_outside_realm(&realm).await?;
                if common.json {
                    return output::json(&serde_json::json!({
                        "realm": realm, "domain": domain, "stale_passwords": stale
                    }));
                }
                crate::say!("realm  {realm}");
                crate::say!("domain {domain}");
                if stale.is_empty() {
                    crate::say!("Every extension's password is set for this realm.");
                } else {
                    crate::say!(
                        "The passwords of extension(s) {} were set for another realm and do not work; give them \
                         new ones with `palisade ext reset-password NUMBER`.",
                        stale.join(", ")
                    );
                }
                Ok(())
            }
            RealmCommand::Set { realm: new, yes } => {
                store::realm::validate_realm(&new)?;
                let current = realm(&db, &common.data_dir()).await?;
                if new == current {
                    crate::say!("The realm is already {new}; nothing changed.");
                    return Ok(());
                }
                let affected = db.extensions_outside_realm(&new).await?;
                if !affected.is_empty() && !yes {
                    anyhow::bail!(
                        "changing the realm from {current} to {new} makes the passwords of {} extension(s) wrong \
                         ({}); every phone using them is refused until it gets a new password. Re-run with --yes \
                         to change it anyway, then run `palisade ext reset-password NUMBER` for each. (Changing \
                         the SIP domain does not need this: `palisade security set domain NAME`.)",
                        affected.len(),
                        affected.join(", ")
                    );
                }
                let stale = db.set_realm(&new).await?;
                if common.json {
                    return output::json(&serde_json::json!({
                        "realm": new, "previous": current, "stale_passwords": stale
                    }));
                }
                crate::say!("realm = {new} (was {current}); restart the server for challenges to use it.");
                if !stale.is_empty() {
                    crate::say!(
                        "The passwords of extension(s) {} no longer work: run `palisade ext reset-password \
                         NUMBER` for each.",
                        stale.join(", ")
                    );
                }
                Ok(())
            }
        }
    }
    .await;
    db.close().await;
    result
}
