//! Who is calling: users log in with a password and get a token; integrations
//! use API keys. Both arrive as `Authorization: Bearer …` and become a
//! [`Caller`] with a [`Role`].
//!
//! Nothing secret is logged: not passwords, tokens, keys, nor the signing key.

pub mod keys;
pub mod password;
pub(crate) mod secret;
mod throttle;
mod token;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use drover_catalog::{Catalog, CatalogError, Role, User};
use drover_protocols::model::now_ms;

use crate::error::ApiError;
use throttle::Throttle;
pub use throttle::{MAX_FAILURES, WINDOW};
pub use token::TokenError;
use token::Tokens;

/// Where the token signing key is kept in the catalog's secrets.
const SIGNING_KEY: &str = "token_hs256";
const SIGNING_KEY_BYTES: usize = 32;
/// Characters of a generated admin password (hex).
const GENERATED_PASSWORD_BYTES: usize = 12;

/// Someone the API has authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// A user name, or `key:{id}` for an API key.
    pub name: String,
    pub role: Role,
}

impl Caller {
    /// 403 unless the caller's role may do what `needed` may.
    pub fn require(&self, needed: Role) -> Result<(), ApiError> {
        if self.role.allows(needed) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this needs the {} role; {} is {}",
                role_name(needed),
                self.name,
                role_name(self.role)
            )))
        }
    }
}

pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Operator => "operator",
        Role::Viewer => "viewer",
    }
}

/// Authentication of one node.
pub struct Auth {
    catalog: Arc<Catalog>,
    tokens: Tokens,
    ttl_secs: i64,
    throttle: Throttle,
}

impl Auth {
    /// Loads the signing key from the catalog, generating it at first start.
    pub fn open(catalog: Arc<Catalog>, token_ttl_secs: u64) -> Result<Auth, CatalogError> {
        let key = match catalog.secrets.get(SIGNING_KEY) {
            Some(key) if key.len() >= SIGNING_KEY_BYTES => key,
            _ => {
                let key = secret::random_bytes(SIGNING_KEY_BYTES);
                catalog.secrets.put(SIGNING_KEY, key.clone())?;
                tracing::info!("generated the token signing key");
                key
            }
        };
        Ok(Auth {
            catalog,
            tokens: Tokens::new(&key),
            ttl_secs: i64::try_from(token_ttl_secs).unwrap_or(i64::MAX).max(1),
            throttle: Throttle::default(),
        })
    }

    /// The caller a bearer credential (a token or an API key) stands for.
    pub fn authenticate(&self, bearer: &str) -> Result<Caller, ApiError> {
        if let Some(id) = keys::id_of(bearer) {
            return self
                .api_key(id, bearer)
                .ok_or_else(|| ApiError::Unauthorized("unknown or revoked API key".to_owned()));
        }
        let verified = self.tokens.verify(bearer).map_err(|e| match e {
            TokenError::Expired => ApiError::Unauthorized(e.to_string()),
            _ => ApiError::Unauthorized("the token is not valid".to_owned()),
        })?;
        // The catalog, not the token, says what the user may do now: a
        // deleted user's tokens stop working, a changed role applies at once.
        let user = self.catalog.users.get(&verified.username).ok_or_else(|| {
            ApiError::Unauthorized("the token's user no longer exists".to_owned())
        })?;
        Ok(Caller {
            name: user.username,
            role: user.role,
        })
    }

    /// The role of API key `key`, if it is one: for other front doors (MQTT).
    pub fn key_role(&self, key: &str) -> Option<Role> {
        let id = keys::id_of(key)?;
        self.api_key(id, key).map(|caller| caller.role)
    }

    fn api_key(&self, id: &str, key: &str) -> Option<Caller> {
        let stored = self.catalog.keys.get(id)?;
        keys::matches(key, &stored.digest).then(|| Caller {
            name: format!("key:{id}"),
            role: stored.role,
        })
    }

    /// Checks a password and issues a token: `(token, expires_at_s)`.
    /// Failures are throttled per user name and per address.
    pub async fn login(
        self: &Arc<Self>,
        username: &str,
        password: &str,
        from: IpAddr,
    ) -> Result<(String, i64), ApiError> {
        let user_key = format!("user:{username}");
        let ip_key = format!("ip:{from}");
        let keys = [user_key.as_str(), ip_key.as_str()];
        if let Some(wait) = self.throttle.blocked(&keys, Instant::now()) {
            tracing::warn!(user = username, peer = %from, "login throttled");
            return Err(ApiError::TooMany {
                message: format!("too many failed logins; try again in {wait} s"),
                retry_after_secs: wait,
            });
        }
        let user = self.catalog.users.get(username);
        let (password_owned, user_for_check) = (password.to_owned(), user.clone());
        let ok = tokio::task::spawn_blocking(move || match user_for_check {
            Some(user) => password::verify(&password_owned, &user.password_hash),
            None => {
                password::verify_nobody(&password_owned);
                false
            }
        })
        .await
        .map_err(ApiError::internal)?;
        match user.filter(|_| ok) {
            Some(user) => {
                self.throttle.succeeded(&user_key);
                tracing::info!(user = %user.username, peer = %from, "logged in");
                self.tokens
                    .issue(&user.username, now_ms() / 1000, self.ttl_secs)
                    .map_err(ApiError::internal)
            }
            None => {
                self.throttle.failed(&keys, Instant::now());
                tracing::info!(user = username, peer = %from, "failed login");
                Err(ApiError::Unauthorized(
                    "wrong user name or password".to_owned(),
                ))
            }
        }
    }
}

/// Creates user `admin` when there are no users: with `password` if given,
/// else a generated one, returned so the caller can show it once.
pub fn bootstrap_admin(
    catalog: &Catalog,
    password: Option<&str>,
) -> Result<Option<String>, ApiError> {
    if !catalog.users.is_empty() {
        return Ok(None);
    }
    let (password, generated) = match password.filter(|p| !p.is_empty()) {
        Some(p) => (p.to_owned(), false),
        None => (secret::random_hex(GENERATED_PASSWORD_BYTES), true),
    };
    let now = now_ms();
    let user = User {
        username: "admin".to_owned(),
        role: Role::Admin,
        password_hash: password::hash(&password).map_err(ApiError::internal)?,
        created_ms: now,
        updated_ms: now,
    };
    catalog.users.insert("admin", user)?;
    tracing::info!("created user admin");
    Ok(generated.then_some(password))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> (tempfile::TempDir, Arc<Auth>) {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Arc::new(Catalog::open(dir.path()).unwrap());
        bootstrap_admin(&catalog, Some("admin password")).unwrap();
        (dir, Arc::new(Auth::open(catalog, 3600).unwrap()))
    }

    #[tokio::test]
    async fn login_issues_a_token_that_authenticates_the_user() {
        let (_dir, auth) = auth();
        let ip = IpAddr::from([127, 0, 0, 1]);
        let (token, _) = auth.login("admin", "admin password", ip).await.unwrap();
        let caller = auth.authenticate(&token).unwrap();
        assert_eq!(
            caller,
            Caller {
                name: "admin".into(),
                role: Role::Admin
            }
        );
        assert!(matches!(
            auth.login("admin", "guess", ip).await,
            Err(ApiError::Unauthorized(_))
        ));
    }

    #[tokio::test]
    async fn repeated_failures_are_throttled_even_with_the_right_password() {
        let (_dir, auth) = auth();
        let ip = IpAddr::from([10, 1, 2, 3]);
        for _ in 0..MAX_FAILURES {
            let _ = auth.login("admin", "guess", ip).await;
        }
        assert!(matches!(
            auth.login("admin", "admin password", ip).await,
            Err(ApiError::TooMany { .. })
        ));
    }

    #[test]
    fn the_signing_key_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let first = {
            let catalog = Arc::new(Catalog::open(dir.path()).unwrap());
            bootstrap_admin(&catalog, Some("pw pw pw pw")).unwrap();
            let auth = Auth::open(catalog, 60).unwrap();
            auth.tokens.issue("admin", now_ms() / 1000, 60).unwrap().0
        };
        let catalog = Arc::new(Catalog::open(dir.path()).unwrap());
        let auth = Auth::open(catalog, 60).unwrap();
        assert_eq!(auth.authenticate(&first).unwrap().name, "admin");
    }

    #[test]
    fn a_generated_admin_password_is_returned_once() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path()).unwrap();
        let generated = bootstrap_admin(&catalog, None).unwrap().unwrap();
        assert_eq!(generated.len(), GENERATED_PASSWORD_BYTES * 2);
        assert_eq!(bootstrap_admin(&catalog, None).unwrap(), None);
    }
}
