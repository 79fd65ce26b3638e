//! The delivery queue and its workers.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use drover_catalog::{Channel, NotificationRule};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::NotifyError;
use crate::email::{self, Mailer};
use crate::rules::Notice;
use crate::spool::{Spool, Spooled};
use crate::webhook::{self, HttpClient, Outcome};

/// `[notifications]`: how deliveries are made and retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// Tries per delivery, the first included.
    pub attempts: u32,
    /// The wait before the second try; each next wait doubles (up to a minute).
    pub first_retry_ms: u64,
    /// One webhook request, connection included.
    pub timeout_secs: u64,
    /// Deliveries waiting at most; more are dropped and counted.
    pub queue: usize,
    /// Deliveries under way at once.
    pub workers: usize,
    /// A PEM file of CA certificates trusted for `https` webhooks besides
    /// the system's (a private CA, a self-signed receiver); empty: none.
    pub ca_file: String,
    pub smtp: SmtpConfig,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            attempts: 5,
            first_retry_ms: 1_000,
            timeout_secs: 10,
            queue: 10_000,
            workers: 4,
            ca_file: String::new(),
            smtp: SmtpConfig::default(),
        }
    }
}

/// `[notifications.smtp]`: the relay email goes through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// Empty: no email (rules with an email channel are refused).
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The sender, e.g. `Drover <drover@example.com>`.
    pub from: String,
    /// How the connection is secured.
    pub tls: SmtpTls,
}

/// How the SMTP connection is secured; the server's certificate must chain
/// to the system's CAs or to one in `notifications.ca_file`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain SMTP (a relay on the same host or network).
    #[default]
    None,
    /// Plain, then upgraded by STARTTLS, which is required (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: String::new(),
            port: 25,
            username: None,
            password: None,
            from: "Drover <drover@localhost>".to_owned(),
            tls: SmtpTls::None,
        }
    }
}

/// What became of deliveries.
#[derive(Debug, Default)]
pub struct NotifyStats {
    pub delivered: AtomicU64,
    /// Tries after a failed one.
    pub retried: AtomicU64,
    /// Given up: refused, or out of tries.
    pub failed: AtomicU64,
    /// Not queued: the queue was full.
    pub dropped: AtomicU64,
}

struct Job {
    rule: String,
    channel: Channel,
    notice: Arc<Notice>,
    /// Its file in the spool, removed once the delivery is done.
    spooled: Option<PathBuf>,
}

/// Hands deliveries to its workers; never waits. Dropping it (and letting
/// the queue drain) ends the workers.
pub struct Notifier {
    queue: flume::Sender<Job>,
    stats: Arc<NotifyStats>,
    email: bool,
    spool: Option<Arc<Spool>>,
}

struct Worker {
    http: HttpClient,
    mailer: Option<Arc<Mailer>>,
    config: NotifyConfig,
    stats: Arc<NotifyStats>,
    spool: Option<Arc<Spool>>,
}

impl Notifier {
    /// Starts the workers on the current tokio runtime, with the
    /// deliveries an earlier run left in `spool` (a directory) queued first.
    pub fn start(
        config: &NotifyConfig,
        spool: Option<&Path>,
    ) -> Result<(Notifier, Vec<JoinHandle<()>>), NotifyError> {
        let spool = spool
            .map(|dir| {
                Spool::open(dir).map(Arc::new).map_err(|error| {
                    NotifyError::Config(format!("notification spool {}: {error}", dir.display()))
                })
            })
            .transpose()?;
        let http = HttpClient::new(
            &config.ca_file,
            Duration::from_secs(config.timeout_secs.max(1)),
        )?;
        let mailer = mailer(&config.smtp, &config.ca_file)?.map(Arc::new);
        let stats = Arc::new(NotifyStats::default());
        let (queue, jobs) = flume::bounded(config.queue.max(1));
        let workers = (0..config.workers.max(1))
            .map(|_| {
                let worker = Worker {
                    http: http.clone(),
                    mailer: mailer.clone(),
                    config: config.clone(),
                    stats: Arc::clone(&stats),
                    spool: spool.clone(),
                };
                let jobs: flume::Receiver<Job> = jobs.clone();
                tokio::spawn(async move {
                    while let Ok(job) = jobs.recv_async().await {
                        worker.deliver(job).await;
                    }
                })
            })
            .collect();
        let notifier = Notifier {
            queue,
            stats,
            email: mailer.is_some(),
            spool,
        };
        notifier.resume();
        Ok((notifier, workers))
    }

    /// Queues what an earlier run left in the spool.
    fn resume(&self) {
        let Some(spool) = &self.spool else { return };
        let left = match spool.left() {
            Ok(left) => left,
            Err(error) => {
                tracing::warn!(%error, "the notification spool could not be read");
                return;
            }
        };
        if !left.is_empty() {
            tracing::info!(
                deliveries = left.len(),
                "resuming notifications left by the last run"
            );
        }
        for (path, delivery) in left {
            let job = Job {
                rule: delivery.rule,
                channel: delivery.channel,
                notice: Arc::new(delivery.notice),
                spooled: Some(path),
            };
            self.queue_job(job);
        }
    }

    /// Queues the delivery of `notice` by `rule`'s webhook or email
    /// channel (an MQTT channel is the caller's).
    pub fn send(&self, rule: &NotificationRule, notice: Arc<Notice>) {
        if matches!(rule.channel, Channel::Mqtt) {
            return;
        }
        let spooled = self.spool.as_ref().and_then(|spool| {
            let delivery = Spooled {
                rule: rule.id.clone(),
                channel: rule.channel.clone(),
                notice: (*notice).clone(),
            };
            spool
                .keep(&delivery)
                .inspect_err(|error| {
                    tracing::warn!(%error, rule = %rule.id, "notification not spooled; a restart would lose it")
                })
                .ok()
        });
        self.queue_job(Job {
            rule: rule.id.clone(),
            channel: rule.channel.clone(),
            notice,
            spooled,
        });
    }

    fn queue_job(&self, job: Job) {
        if let Err(error) = self.queue.try_send(job) {
            let job = error.into_inner();
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(rule = %job.rule, "notification dropped: the delivery queue is full");
            if let (Some(spool), Some(path)) = (&self.spool, &job.spooled) {
                spool.done(path);
            }
        }
    }

    /// Whether email can be sent (an SMTP relay is configured).
    pub fn email(&self) -> bool {
        self.email
    }

    pub fn stats(&self) -> Arc<NotifyStats> {
        Arc::clone(&self.stats)
    }
}

fn mailer(smtp: &SmtpConfig, ca_file: &str) -> Result<Option<Mailer>, NotifyError> {
    if smtp.host.is_empty() {
        return Ok(None);
    }
    let from: Mailbox = smtp
        .from
        .parse()
        .map_err(|error| NotifyError::Config(format!("smtp.from {:?}: {error}", smtp.from)))?;
    let mut transport =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host).port(smtp.port);
    if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
        transport = transport.credentials(Credentials::new(user.clone(), password.clone()));
    }
    if smtp.tls != SmtpTls::None {
        let parameters = tls_parameters(&smtp.host, ca_file)?;
        transport = transport.tls(match smtp.tls {
            SmtpTls::Tls => Tls::Wrapper(parameters),
            _ => Tls::Required(parameters),
        });
    }
    Ok(Some(Mailer {
        transport: transport.build(),
        from,
    }))
}

/// TLS towards `host`, trusting the system's roots and `ca_file`'s.
fn tls_parameters(host: &str, ca_file: &str) -> Result<TlsParameters, NotifyError> {
    let bad = |why: String| NotifyError::Config(format!("SMTP TLS: {why}"));
    let mut builder = TlsParameters::builder(host.to_owned());
    if !ca_file.is_empty() {
        let pem = std::fs::read(ca_file)
            .map_err(|error| bad(format!("notifications.ca_file {ca_file}: {error}")))?;
        let certificate = Certificate::from_pem(&pem)
            .map_err(|error| bad(format!("notifications.ca_file {ca_file}: {error}")))?;
        builder = builder.add_root_certificate(certificate);
    }
    builder
        .build_rustls()
        .map_err(|error| bad(error.to_string()))
}

impl Worker {
    async fn deliver(&self, job: Job) {
        self.try_all(&job).await;
        if let (Some(spool), Some(path)) = (&self.spool, &job.spooled) {
            spool.done(path);
        }
    }

    /// Tries `job` until it is delivered or given up.
    async fn try_all(&self, job: &Job) {
        let timeout = Duration::from_secs(self.config.timeout_secs.max(1));
        let mut wait = Duration::from_millis(self.config.first_retry_ms);
        for attempt in 1..=self.config.attempts.max(1) {
            let (error, again) = match self.attempt(job, timeout).await {
                Ok(()) => {
                    self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(failed) => failed,
            };
            if !again || attempt == self.config.attempts.max(1) {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(rule = %job.rule, alert = %job.notice.id, attempt, %error,
                    "notification not delivered; giving up");
                return;
            }
            tracing::info!(rule = %job.rule, alert = %job.notice.id, attempt, %error,
                retry_in_ms = wait.as_millis() as u64, "notification not delivered; retrying");
            self.stats.retried.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(60));
        }
    }

    /// One try: `Err` with why and whether another may help.
    async fn attempt(&self, job: &Job, timeout: Duration) -> Result<(), (String, bool)> {
        match &job.channel {
            Channel::Webhook { url, secret } => {
                match webhook::post(&self.http, url, secret.as_deref(), &job.notice, timeout).await
                {
                    Outcome::Delivered => Ok(()),
                    Outcome::Retry(why) => Err((why, true)),
                    Outcome::Refused(why) => Err((why, false)),
                }
            }
            Channel::Email { to } => match &self.mailer {
                Some(mailer) => email::send(mailer, to, &job.notice).await,
                None => Err((
                    "no SMTP relay is configured ([notifications.smtp] host)".to_owned(),
                    false,
                )),
            },
            Channel::Mqtt => Ok(()),
        }
    }
}
