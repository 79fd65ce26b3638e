//! Writing to InfluxDB's v1 `/write` endpoint.
//!
//! [`InfluxClient::write`] encodes messages into chunks of `batch_lines`
//! lines and sends each once. The answer decides what happens next:
//!
//! | answer | meaning | outcome |
//! |---|---|---|
//! | 204 | stored | counted |
//! | 400 `partial write … dropped=N` | the good lines **were stored** | logged, `dropped` += N, never re-sent |
//! | other 400 (unparsable batch) | nothing stored, would fail forever | logged, `rejected` += lines |
//! | 401, 403, 404, 413 | configuration | [`InfluxError`] saying what to fix |
//! | refused, timeout, 5xx | transient | [`InfluxError::Unavailable`] |
//!
//! Errors stop the call; chunks already stored stay stored, and sending them
//! again is harmless (same measurement, tags and time overwrite).

use std::sync::Arc;
use std::time::Duration;

use drover_protocols::model::DeviceMessage;
use reqwest::{StatusCode, Url};

use crate::{InfluxConfig, InfluxError, line};

/// What one write did with its messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// Messages handled (sent or skipped as unencodable).
    pub messages: usize,
    /// Lines sent (stored + dropped + rejected).
    pub lines: usize,
    /// Lines InfluxDB dropped from partial writes (field type conflicts,
    /// `max-values-per-tag`, …): the rest of their batches was stored.
    pub dropped: usize,
    /// Lines of batches InfluxDB refused whole (HTTP 400 other than a partial
    /// write): not stored, not retried.
    pub rejected: usize,
    /// Messages line protocol cannot express ([`line::Unencodable`]): not sent.
    pub unencodable: usize,
    /// Write requests answered (204 or 400).
    pub requests: usize,
}

impl WriteReport {
    /// Lines InfluxDB stored.
    pub fn stored(&self) -> usize {
        self.lines - self.dropped - self.rejected
    }
}

/// A client of one database. Cheap to clone (the HTTP connection pool is shared).
#[derive(Debug, Clone)]
pub struct InfluxClient {
    pub(super) http: reqwest::Client,
    pub(super) config: Arc<InfluxConfig>,
    /// `{url}/write?db=…&rp=…&precision=ms`, built once.
    write_url: Url,
    /// `{url}/query`; each query appends its parameters.
    pub(super) query_url: Url,
    ping_url: Url,
}

/// How InfluxDB answered one chunk that it did not refuse for configuration.
#[derive(Debug, PartialEq, Eq)]
enum ChunkOutcome {
    Stored,
    Partial { dropped: usize, message: String },
    Rejected { message: String },
}

impl InfluxClient {
    /// Checks the configuration and builds the HTTP client. No network I/O.
    pub fn new(config: InfluxConfig) -> Result<Self, InfluxError> {
        validate(&config)?;
        let base = base_url(&config.url)?;
        let endpoint = |path: &str| {
            base.join(path)
                .map_err(|e| InfluxError::Config(format!("url {:?}: {e}", config.url)))
        };
        let mut write_url = endpoint("write")?;
        write_url
            .query_pairs_mut()
            .append_pair("db", &config.database)
            .append_pair("precision", "ms");
        if let Some(rp) = &config.retention_policy {
            write_url.query_pairs_mut().append_pair("rp", rp);
        }
        let timeout = Duration::from_millis(config.timeout_ms);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| InfluxError::Config(format!("HTTP client: {e}")))?;
        Ok(InfluxClient {
            http,
            query_url: endpoint("query")?,
            ping_url: endpoint("ping")?,
            write_url,
            config: Arc::new(config),
        })
    }

    pub fn config(&self) -> &InfluxConfig {
        &self.config
    }

    /// `GET /ping`: Ok when the server answers 204.
    pub async fn ping(&self) -> Result<(), InfluxError> {
        let response = self
            .authorize(self.http.get(self.ping_url.clone()))
            .send()
            .await
            .map_err(unavailable)?;
        match response.status() {
            StatusCode::NO_CONTENT | StatusCode::OK => Ok(()),
            status => Err(self.error_for(status, read_error(response).await, 0)),
        }
    }

    /// `CREATE DATABASE` when `create_database` is set (a no-op if it exists).
    /// A refusal (no admin rights, or a 2.x/3.x server without the statement)
    /// is logged and ignored: the database may well exist already. Errors only
    /// when the server cannot be reached.
    pub async fn ensure_database(&self) -> Result<(), InfluxError> {
        if !self.config.create_database {
            return Ok(());
        }
        let statement = format!(
            "CREATE DATABASE {}",
            crate::query::quote_ident(&self.config.database)
        );
        match self.execute(&statement, "POST").await {
            Ok(_) => {
                tracing::info!(database = %self.config.database, "InfluxDB database ready");
                Ok(())
            }
            Err(error @ InfluxError::Unavailable { .. }) => Err(error),
            Err(error) => {
                tracing::warn!(
                    database = %self.config.database, %error,
                    "could not create the InfluxDB database; assuming it exists"
                );
                Ok(())
            }
        }
    }

    /// Encodes `messages` and writes them in chunks of `batch_lines` lines,
    /// one attempt per chunk. Stops at the first error; what was sent before
    /// it stays stored.
    pub async fn write(&self, messages: &[Arc<DeviceMessage>]) -> Result<WriteReport, InfluxError> {
        let mut report = WriteReport::default();
        let mut next = 0;
        self.write_from(messages, &mut next, &mut report).await?;
        Ok(report)
    }

    /// Writes `messages[*next..]`, advancing `*next` past each chunk answered.
    async fn write_from(
        &self,
        messages: &[Arc<DeviceMessage>],
        next: &mut usize,
        report: &mut WriteReport,
    ) -> Result<(), InfluxError> {
        let mut body = String::new();
        while *next < messages.len() {
            body.clear();
            let (end, lines, unencodable) = self.encode_chunk(&messages[*next..], &mut body);
            let end = *next + end;
            if lines > 0 {
                self.send_lines(&body, lines, report).await?;
            }
            report.lines += lines;
            report.unencodable += unencodable;
            report.messages += end - *next;
            *next = end;
        }
        Ok(())
    }

    /// Encodes messages until the chunk holds `batch_lines` lines. Returns how
    /// many messages it consumed, the lines written and the messages skipped.
    fn encode_chunk(
        &self,
        messages: &[Arc<DeviceMessage>],
        body: &mut String,
    ) -> (usize, usize, usize) {
        let limit = self.config.batch_lines.max(1);
        let (mut lines, mut unencodable) = (0, 0);
        for (i, message) in messages.iter().enumerate() {
            if lines >= limit {
                return (i, lines, unencodable);
            }
            match line::encode(message, body) {
                Ok(n) => lines += n,
                Err(why) => {
                    unencodable += 1;
                    tracing::warn!(
                        device = ?message.device.as_str(), time_ms = message.record.time_ms,
                        reason = %why, "record not written to InfluxDB"
                    );
                }
            }
        }
        (messages.len(), lines, unencodable)
    }

    /// Sends `body` (`lines` lines) in one request and notes the outcome.
    pub(super) async fn send_lines(
        &self,
        body: &str,
        lines: usize,
        report: &mut WriteReport,
    ) -> Result<(), InfluxError> {
        let outcome = self.send_chunk(body, lines).await?;
        report.requests += 1;
        self.account(outcome, lines, report);
        Ok(())
    }

    fn account(&self, outcome: ChunkOutcome, lines: usize, report: &mut WriteReport) {
        match outcome {
            ChunkOutcome::Stored => {}
            ChunkOutcome::Partial { dropped, message } => {
                let dropped = dropped.min(lines);
                report.dropped += dropped;
                tracing::warn!(
                    database = %self.config.database, lines, dropped, error = %message,
                    "InfluxDB stored a batch partially; the dropped lines are not re-sent"
                );
            }
            ChunkOutcome::Rejected { message } => {
                report.rejected += lines;
                tracing::error!(
                    database = %self.config.database, lines, error = %message,
                    "InfluxDB rejected a whole batch; it is not re-sent"
                );
            }
        }
    }

    async fn send_chunk(&self, body: &str, lines: usize) -> Result<ChunkOutcome, InfluxError> {
        let mut request = self
            .authorize(self.http.post(self.write_url.clone()))
            .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8");
        let bytes = if self.config.gzip {
            let compressed = gzip(body.as_bytes())?;
            request = request.header(reqwest::header::CONTENT_ENCODING, "gzip");
            compressed
        } else {
            body.as_bytes().to_vec()
        };
        let size = bytes.len();
        let response = request.body(bytes).send().await.map_err(unavailable)?;
        let status = response.status();
        if status == StatusCode::NO_CONTENT || status == StatusCode::OK {
            tracing::debug!(lines, bytes = size, "InfluxDB stored a batch");
            return Ok(ChunkOutcome::Stored);
        }
        let message = read_error(response).await;
        if status == StatusCode::BAD_REQUEST {
            return Ok(classify_bad_request(message));
        }
        Err(self.error_for(status, message, size))
    }

    /// The error for a status that is neither success nor 400.
    pub(super) fn error_for(
        &self,
        status: StatusCode,
        message: String,
        bytes: usize,
    ) -> InfluxError {
        let database = self.config.database.clone();
        match status {
            StatusCode::NOT_FOUND => InfluxError::DatabaseNotFound { database },
            StatusCode::UNAUTHORIZED => InfluxError::Unauthorized { message },
            StatusCode::FORBIDDEN => InfluxError::Forbidden { database, message },
            StatusCode::PAYLOAD_TOO_LARGE => InfluxError::TooLarge { bytes },
            s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                InfluxError::Unavailable {
                    reason: format!("HTTP {}: {message}", s.as_u16()),
                }
            }
            s => InfluxError::Unexpected {
                status: s.as_u16(),
                message,
            },
        }
    }

    pub(super) fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if let Some(token) = &self.config.token {
            request.header(reqwest::header::AUTHORIZATION, format!("Token {token}"))
        } else if let Some(user) = &self.config.username {
            request.basic_auth(user, self.config.password.as_deref())
        } else {
            request
        }
    }
}

fn validate(config: &InfluxConfig) -> Result<(), InfluxError> {
    let problem = if config.database.is_empty() {
        "`database` is empty"
    } else if config.token.is_some() && config.username.is_some() {
        "set either `token` or `username`/`password`, not both"
    } else if config.password.is_some() && config.username.is_none() {
        "`password` is set without `username`"
    } else if config.timeout_ms == 0 {
        "`timeout_ms` must be above 0"
    } else {
        return Ok(());
    };
    Err(InfluxError::Config(problem.to_owned()))
}

/// The URL with a trailing slash, so that joining `write` keeps a path prefix
/// (`http://proxy/influx` → `http://proxy/influx/write`).
fn base_url(url: &str) -> Result<Url, InfluxError> {
    let mut base = Url::parse(url).map_err(|e| InfluxError::Config(format!("url {url:?}: {e}")))?;
    if base.scheme() != "http" {
        return Err(InfluxError::Config(format!(
            "url {url:?}: only http is supported (this build has no TLS; put a \
             TLS-terminating proxy on the InfluxDB side)"
        )));
    }
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    Ok(base)
}

pub(super) fn unavailable(error: reqwest::Error) -> InfluxError {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    // reqwest's Display hides the cause (e.g. "connection refused").
    let mut reason = format!("{kind}: {error}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        reason.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    InfluxError::Unavailable { reason }
}

/// The `error` of InfluxDB's JSON error body, or the body as it is.
pub(super) async fn read_error(response: reqwest::Response) -> String {
    let body = response.text().await.unwrap_or_default();
    error_message(&body)
}

fn error_message(body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: String,
    }
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(parsed) => parsed.error,
        Err(_) => body.trim().to_owned(),
    }
}

/// A 400 is either a partial write (good lines stored) or a refusal of the
/// whole batch.
fn classify_bad_request(message: String) -> ChunkOutcome {
    if !message.contains("partial write") {
        return ChunkOutcome::Rejected { message };
    }
    let dropped = dropped_count(&message)
        // Parse errors are listed one per line, without a count.
        .unwrap_or_else(|| message.matches("unable to parse").count())
        // At least one line was dropped, or it would not be partial.
        .max(1);
    ChunkOutcome::Partial { dropped, message }
}

/// `N` in InfluxDB's `… dropped=N`.
fn dropped_count(message: &str) -> Option<usize> {
    let at = message.rfind("dropped=")? + "dropped=".len();
    let digits: &str = &message[at..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

fn gzip(body: &[u8]) -> Result<Vec<u8>, InfluxError> {
    use std::io::Write as _;
    // The fastest level: compression is for slow links, and CPU is what a
    // small server lacks.
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    encoder
        .write_all(body)
        .and_then(|()| encoder.finish())
        .map_err(|e| InfluxError::Config(format!("gzip: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_write_counts_dropped_lines() {
        let body = r#"{"error":"partial write: field type conflict: input field \"rpm\" on measurement \"obd\" is type float, already exists as type integer dropped=2"}"#;
        match classify_bad_request(error_message(body)) {
            ChunkOutcome::Partial { dropped, message } => {
                assert_eq!(dropped, 2);
                assert!(message.starts_with("partial write: field type conflict"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn partial_parse_errors_are_counted_per_line() {
        let message = "partial write: unable to parse 'a': x\nunable to parse 'b': y".to_owned();
        assert!(matches!(
            classify_bad_request(message),
            ChunkOutcome::Partial { dropped: 2, .. }
        ));
    }

    #[test]
    fn other_bad_requests_reject_the_batch() {
        let body =
            r#"{"error":"unable to parse 'm,device=a\\,protocol=x f=1': invalid tag format"}"#;
        assert!(matches!(
            classify_bad_request(error_message(body)),
            ChunkOutcome::Rejected { message } if message.contains("invalid tag format")
        ));
        assert_eq!(error_message("not json\n"), "not json");
    }

    #[test]
    fn base_url_keeps_a_path_prefix() {
        let u = base_url("http://h:1/influx")
            .unwrap()
            .join("write")
            .unwrap();
        assert_eq!(u.as_str(), "http://h:1/influx/write");
        let u = base_url("http://h:1").unwrap().join("write").unwrap();
        assert_eq!(u.as_str(), "http://h:1/write");
        assert!(base_url("ftp://h").is_err());
        assert!(base_url("https://h").is_err());
        assert!(base_url("not a url").is_err());
    }

    #[test]
    fn configuration_mistakes_are_refused() {
        let both = InfluxConfig {
            token: Some("t".into()),
            username: Some("u".into()),
            ..InfluxConfig::default()
        };
        assert!(matches!(
            InfluxClient::new(both),
            Err(InfluxError::Config(_))
        ));
        let orphan_password = InfluxConfig {
            password: Some("p".into()),
            ..InfluxConfig::default()
        };
        assert!(matches!(
            InfluxClient::new(orphan_password),
            Err(InfluxError::Config(_))
        ));
        let client = InfluxClient::new(InfluxConfig {
            retention_policy: Some("a week".into()),
            ..InfluxConfig::default()
        })
        .unwrap();
        assert_eq!(
            client.write_url.as_str(),
            "http://127.0.0.1:8086/write?db=drover&precision=ms&rp=a+week"
        );
    }

    #[test]
    fn statuses_map_to_errors_that_say_what_to_fix() {
        let client = InfluxClient::new(InfluxConfig::default()).unwrap();
        let error = |code: u16| {
            let status = StatusCode::from_u16(code).unwrap();
            client.error_for(status, "msg".into(), 26_000_000)
        };
        assert!(
            matches!(error(404), InfluxError::DatabaseNotFound { database } if database == "drover")
        );
        assert!(matches!(error(401), InfluxError::Unauthorized { .. }));
        assert!(error(401).to_string().contains("token"));
        assert!(matches!(error(403), InfluxError::Forbidden { .. }));
        assert!(error(403).to_string().contains("grant"));
        assert!(matches!(
            error(413),
            InfluxError::TooLarge { bytes: 26_000_000 }
        ));
        for transient in [500, 502, 503, 429] {
            assert!(error(transient).is_transient(), "{transient}");
        }
        assert!(matches!(
            error(405),
            InfluxError::Unexpected { status: 405, .. }
        ));
        assert!(!error(405).is_transient());
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read as _;
        let body = "position,device=1,protocol=gt06 lat=1 1\n".repeat(100);
        let packed = gzip(body.as_bytes()).unwrap();
        assert!(packed.len() < body.len() / 10);
        let mut unpacked = String::new();
        flate2::read::GzDecoder::new(&packed[..])
            .read_to_string(&mut unpacked)
            .unwrap();
        assert_eq!(unpacked, body);
    }
}
