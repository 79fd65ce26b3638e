//! Who may use the node: the catalog (users, API keys, the device
//! registry), authentication for the API, and API keys as MQTT passwords.

use std::sync::Arc;

use anyhow::Context;
use drover_api::Auth;
use drover_catalog::{Catalog, Role};
use drover_mqtt::credentials::{CredentialCheck, Rights, Verdict};

use crate::config::Config;

/// The catalog and authentication, ready for the API and the broker.
pub struct Access {
    pub catalog: Arc<Catalog>,
    pub auth: Arc<Auth>,
}

/// Opens the catalog in `data_dir/catalog`, creates user `admin` on first
/// start (printing a generated password once on standard output, never in
/// the log) and loads the token signing key.
pub async fn open(config: &Config) -> anyhow::Result<Access> {
    let dir = config.data_dir.join("catalog");
    let admin_password = config.auth.admin_password.clone();
    let ttl = config.auth.token_ttl_secs;
    tokio::task::spawn_blocking(move || {
        let catalog = Arc::new(
            Catalog::open(&dir)
                .with_context(|| format!("opening the catalog in {}", dir.display()))?,
        );
        if let Some(password) =
            drover_api::auth::bootstrap_admin(&catalog, admin_password.as_deref())
                .map_err(|e| anyhow::anyhow!("creating user admin: {e}"))?
        {
            println!(
                "Created user admin with password {password} — shown this once; \
                 change it with PATCH /api/v1/users/admin."
            );
        }
        let auth = Arc::new(Auth::open(Arc::clone(&catalog), ttl)?);
        Ok(Access { catalog, auth })
    })
    .await?
}

/// API keys as MQTT passwords: a viewer's key reads, an operator's or an
/// admin's also sends commands. The user name is not checked.
pub struct MqttKeys(pub Arc<Auth>);

impl CredentialCheck for MqttKeys {
    fn check<'a>(&'a self, _username: &'a str, password: &'a str) -> Verdict<'a> {
        Box::pin(async move {
            Some(match self.0.key_role(password)? {
                Role::Viewer => Rights::Read,
                Role::Operator | Role::Admin => Rights::ReadAndCommand,
            })
        })
    }
}
