//! Webhook deliveries: a signed POST of the alert's JSON.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::CONTENT_TYPE;
use hyper::{Request, StatusCode};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sha2::Sha256;

use crate::NotifyError;
use crate::rules::Notice;

/// `sha256=` and the hex HMAC-SHA256 of `body` under `secret`: the value of
/// `X-Drover-Signature`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// How one attempt ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Delivered,
    /// Worth another try: the network, 429, 5xx.
    Retry(String),
    /// Not worth another: the receiver refused it.
    Refused(String),
}

/// The webhook client: HTTP and HTTPS (rustls with the system's roots and
/// those of [`crate::NotifyConfig::ca_file`]).
#[derive(Clone)]
pub(crate) struct HttpClient(Client<HttpsConnector<HttpConnector>, Full<Bytes>>);

impl HttpClient {
    pub(crate) fn new(ca_file: &str, connect_timeout: Duration) -> Result<HttpClient, NotifyError> {
        let mut roots = RootCertStore::empty();
        // Unreadable system certificates leave the others usable.
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        if !ca_file.is_empty() {
            let bad = |why: String| {
                NotifyError::Config(format!("notifications.ca_file {ca_file}: {why}"))
            };
            let certificates = CertificateDer::pem_file_iter(ca_file)
                .map_err(|error| bad(error.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| bad(error.to_string()))?;
            let (added, _) = roots.add_parsable_certificates(certificates);
            if added == 0 {
                return Err(bad("no usable certificate".to_owned()));
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|error| NotifyError::Config(format!("TLS: {error}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(connect_timeout));
        // https:// and http:// both go through it.
        http.enforce_http(false);
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(HttpClient(
            Client::builder(TokioExecutor::new()).build(connector),
        ))
    }
}

pub(crate) async fn post(
    http: &HttpClient,
    url: &str,
    secret: Option<&str>,
    notice: &Notice,
    timeout: Duration,
) -> Outcome {
    let mut request = Request::post(url)
        .header(CONTENT_TYPE, "application/json")
        .header("X-Drover-Event", "alert")
        .header(
            "X-Drover-Delivery",
            format!("{}:{}", notice.id, notice.state),
        );
    if let Some(secret) = secret {
        request = request.header("X-Drover-Signature", signature(secret, &notice.json));
    }
    let request = match request.body(Full::new(Bytes::from(notice.json.clone()))) {
        Ok(request) => request,
        // Checked when the rule was made: a url the client cannot take now
        // will not be taken later either.
        Err(error) => return Outcome::Refused(format!("bad request: {error}")),
    };
    match tokio::time::timeout(timeout, http.0.request(request)).await {
        Ok(Ok(response)) if response.status().is_success() => Outcome::Delivered,
        Ok(Ok(response)) => {
            let status = response.status();
            let why = format!("HTTP {status}");
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                Outcome::Retry(why)
            } else {
                Outcome::Refused(why)
            }
        }
        Ok(Err(error)) => Outcome::Retry(error.to_string()),
        Err(_) => Outcome::Retry(format!("no answer in {timeout:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
