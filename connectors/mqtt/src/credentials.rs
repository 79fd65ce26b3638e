//! Who may log in to the embedded broker.
//!
//! Two kinds of login are accepted: the node account (`[mqtt] username` and
//! `password`, full rights; the publisher uses it) and whatever a
//! [`CredentialCheck`] accepts (users' API keys, read-only but for commands).
//! When `password` is unset, [`load_or_create`] generates one at first start
//! and keeps it in `{dir}/mqtt_password` (mode 0600).

use std::fmt;
use std::fs::OpenOptions;
use std::future::Future;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;

use tracing::{info, warn};

use crate::{MqttConfig, MqttError};

/// The node account's user name when `[mqtt] username` is unset.
pub const DEFAULT_USERNAME: &str = "drover";
/// The file, under the directory given to [`load_or_create`], that keeps a
/// generated password.
pub const PASSWORD_FILE: &str = "mqtt_password";
/// Random bytes in a generated password (hex-encoded: 64 characters).
const PASSWORD_BYTES: usize = 32;

/// A user name and password. The password is never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    password: String,
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// Compares in time independent of where the password differs, so that
    /// response times do not reveal how much of a guess was right.
    pub(crate) fn matches(&self, username: &str, password: &str) -> bool {
        let user = constant_time_eq(self.username.as_bytes(), username.as_bytes());
        let pass = constant_time_eq(self.password.as_bytes(), password.as_bytes());
        user & pass
    }

    /// Fresh random credentials: the login the gateway uses towards the
    /// internal broker, new at every start.
    pub(crate) fn random(username: &str) -> Result<Self, MqttError> {
        Ok(Credentials::new(username, random_password()?))
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"…")
            .finish()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // The length is not a secret worth hiding; the bytes are.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The node account: `[mqtt] username` (default `drover`) and `password`,
/// or, when `password` is unset or empty, the one kept in
/// `{dir}/mqtt_password`, generated (32 random bytes, hex) and written with
/// mode 0600 the first time. The node passes its `data_dir`. Nothing secret
/// is logged.
pub fn load_or_create(dir: &Path, config: &MqttConfig) -> Result<Credentials, MqttError> {
    let username = config
        .username
        .as_deref()
        .filter(|u| !u.is_empty())
        .unwrap_or(DEFAULT_USERNAME);
    let password = match config.configured_password() {
        Some(password) => password.to_owned(),
        None => stored_password(&password_file(dir))?,
    };
    Ok(Credentials::new(username, password))
}

fn stored_password(path: &Path) -> Result<String, MqttError> {
    let file_error = |source| MqttError::PasswordFile {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(file_error)?;
    }
    let password = random_password()?;
    // create_new: two nodes started on one data_dir at once must agree on
    // one password, so the loser reads the winner's.
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(password.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(file_error)?;
            info!(path = %path.display(), "generated the MQTT node account's password");
            Ok(password)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_password(path),
        Err(e) => Err(file_error(e)),
    }
}

fn read_password(path: &Path) -> Result<String, MqttError> {
    let file_error = |source| MqttError::PasswordFile {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(file_error)?;
    let mode = file.metadata().map_err(file_error)?.permissions().mode();
    if mode & 0o077 != 0 {
        warn!(path = %path.display(), mode = format_args!("{:o}", mode & 0o777), "the MQTT password file is readable by other users; chmod 600 it");
    }
    let mut password = String::new();
    file.read_to_string(&mut password).map_err(file_error)?;
    // An operator may have written it with an editor that adds a newline.
    let password = password.trim();
    if password.is_empty() {
        return Err(MqttError::EmptyPasswordFile(path.to_owned()));
    }
    Ok(password.to_owned())
}

fn random_password() -> Result<String, MqttError> {
    let mut bytes = [0u8; PASSWORD_BYTES];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(MqttError::Random)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// What a client logged in through a [`CredentialCheck`] may do. Either way
/// it reads only under `{prefix}/`, and publishes nothing but commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rights {
    /// Subscribe under `{prefix}/`.
    Read,
    /// Also send commands, on `{prefix}/devices/{id}/command`.
    ReadAndCommand,
}

/// A future that tells whether a login is accepted, and with what rights.
pub type Verdict<'a> = Pin<Box<dyn Future<Output = Option<Rights>> + Send + 'a>>;

/// Logins the embedded broker accepts besides the node account: the node
/// implements it with its API-key store (a user's API key as the MQTT
/// password; the user name is whatever the client sent). Asynchronous so
/// that a slow check (a password hash) can run on a blocking thread; it
/// runs within the client's connect timeout.
pub trait CredentialCheck: Send + Sync + 'static {
    fn check<'a>(&'a self, username: &'a str, password: &'a str) -> Verdict<'a>;
}

/// Accepts nobody: only the node account logs in. The default until the
/// node plugs in its API keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeAccountOnly;

impl CredentialCheck for NodeAccountOnly {
    fn check<'a>(&'a self, _username: &'a str, _password: &'a str) -> Verdict<'a> {
        Box::pin(std::future::ready(None))
    }
}

/// Where [`load_or_create`] keeps a generated password under `dir`.
pub fn password_file(dir: &Path) -> PathBuf {
    dir.join(PASSWORD_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "drover-mqtt-credentials-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_generated_password_is_kept_private_and_reused() {
        let dir = temp_dir("generated");
        let config = MqttConfig::default();
        let first = load_or_create(&dir, &config).unwrap();
        assert_eq!(first.username, DEFAULT_USERNAME);
        assert_eq!(first.password().len(), 2 * PASSWORD_BYTES);
        let mode = std::fs::metadata(password_file(&dir))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_create(&dir, &config).unwrap(), first);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_configured_password_wins_and_writes_nothing() {
        let dir = temp_dir("configured");
        let config = MqttConfig {
            username: Some("fleet".to_owned()),
            password: Some("s3cret".to_owned()),
            ..MqttConfig::default()
        };
        let account = load_or_create(&dir, &config).unwrap();
        assert_eq!(account, Credentials::new("fleet", "s3cret"));
        assert!(!dir.exists());
    }

    #[test]
    fn an_empty_password_file_is_an_error_not_an_empty_password() {
        let dir = temp_dir("empty");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(password_file(&dir), "\n").unwrap();
        let result = load_or_create(&dir, &MqttConfig::default());
        assert!(
            matches!(result, Err(MqttError::EmptyPasswordFile(_))),
            "{result:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn credentials_match_exactly_and_never_show_the_password() {
        let account = Credentials::new("drover", "s3cret");
        assert!(account.matches("drover", "s3cret"));
        assert!(!account.matches("drover", "s3cre"));
        assert!(!account.matches("drover", "s3creT"));
        assert!(!account.matches("Drover", "s3cret"));
        assert!(!format!("{account:?}").contains("s3cret"));
    }
}
