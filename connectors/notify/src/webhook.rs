//! Webhook deliveries: a signed POST of the alert's JSON.

use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use sha2::Sha256;

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

pub(crate) async fn post(
    http: &reqwest::Client,
    url: &str,
    secret: Option<&str>,
    notice: &Notice,
    timeout: Duration,
) -> Outcome {
    let mut request = http
        .post(url)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Drover-Event", "alert")
        .header(
            "X-Drover-Delivery",
            format!("{}:{}", notice.id, notice.state),
        );
    if let Some(secret) = secret {
        request = request.header("X-Drover-Signature", signature(secret, &notice.json));
    }
    match request.body(notice.json.clone()).send().await {
        Ok(response) if response.status().is_success() => Outcome::Delivered,
        Ok(response) => {
            let status = response.status();
            let why = format!("HTTP {status}");
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                Outcome::Retry(why)
            } else {
                Outcome::Refused(why)
            }
        }
        Err(error) => Outcome::Retry(error.to_string()),
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
