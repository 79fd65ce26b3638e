//! Email deliveries over SMTP.

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::rules::Notice;

/// The SMTP relay and who mail comes from.
pub(crate) struct Mailer {
    pub(crate) transport: AsyncSmtpTransport<Tokio1Executor>,
    pub(crate) from: Mailbox,
}

/// How one attempt ended: `Err` with whether another try may help.
pub(crate) async fn send(
    mailer: &Mailer,
    to: &[String],
    notice: &Notice,
) -> Result<(), (String, bool)> {
    let mut builder = Message::builder()
        .from(mailer.from.clone())
        .subject(notice.title.clone());
    for address in to {
        let mailbox: Mailbox = address
            .parse()
            .map_err(|error| (format!("bad address {address:?}: {error}"), false))?;
        builder = builder.to(mailbox);
    }
    let message = builder
        .body(notice.text.clone())
        .map_err(|error| (format!("cannot build the message: {error}"), false))?;
    mailer
        .transport
        .send(message)
        .await
        .map(drop)
        // A permanent SMTP refusal (5xx) will not change on a retry.
        .map_err(|error| (error.to_string(), !error.is_permanent()))
}
