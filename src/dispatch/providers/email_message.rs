//! Builds the RFC 5322 message for one e-mail: `multipart/alternative` with a
//! UTF-8 plain-text part and a UTF-8 HTML part, the sender shown as the
//! store, a stable `Message-ID`, and the RFC 8058 one-click unsubscribe
//! headers. Pure: the SMTP client sends what this returns, the `file`
//! provider writes it as an `.eml` file.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use sha1::{Digest, Sha1};

use crate::dispatch::provider::Outgoing;
use crate::domain::Email;
use crate::templates::Rendered;

/// `List-Unsubscribe` (RFC 2369).
const LIST_UNSUBSCRIBE: HeaderName = HeaderName::new_from_ascii_str("List-Unsubscribe");
/// `List-Unsubscribe-Post` (RFC 8058).
const LIST_UNSUBSCRIBE_POST: HeaderName = HeaderName::new_from_ascii_str("List-Unsubscribe-Post");
/// The only value RFC 8058 allows in `List-Unsubscribe-Post`.
pub const ONE_CLICK: &str = "List-Unsubscribe=One-Click";

/// Why a message could not be built. None of these goes away on a retry.
#[derive(Debug, thiserror::Error)]
pub enum EmailMessageError {
    /// The rendered content is for another channel.
    #[error("the message was rendered for {0:?}, not for e-mail")]
    NotEmail(crate::store::Channel),
    /// The recipient is not an address lettre accepts (the text is masked).
    #[error("invalid recipient address {0}")]
    InvalidRecipient(String),
    /// The configured sender (`from` / `reply_to`) is not a mailbox.
    #[error("invalid sender mailbox `{0}` in [providers.smtp]")]
    InvalidSender(String),
    /// The unsubscribe link is not a header-safe absolute http(s) URL.
    #[error(
        "the unsubscribe link is not an absolute http(s) URL of printable ASCII without <, >, commas or spaces"
    )]
    InvalidUnsubscribeUrl,
    /// lettre refused to assemble the message.
    #[error("the message could not be assembled: {0}")]
    Build(#[from] lettre::error::Error),
}

/// The sender as configured: `会员中心 <club@example.cn>` or a bare address.
pub fn parse_mailbox(s: &str) -> Result<Mailbox, EmailMessageError> {
    s.trim()
        .parse::<Mailbox>()
        .map_err(|_| EmailMessageError::InvalidSender(s.to_owned()))
}

/// Builds the message.
///
/// - `From` is `from`'s address; its display name is the store's name when
///   `msg.store_name` is set, else `from`'s own display name.
/// - `Message-ID` is `<outreach.{message_id}.{h}@{from's domain}>`, `h` being
///   the first 16 hex digits of SHA-1(dedupe key): the same on every retry of
///   the message, so a receiver that saw the first attempt can spot a repeat,
///   and bounces quoting it can be matched.
/// - With `msg.unsubscribe_url`, `List-Unsubscribe: <url>`; when the URL is
///   `https://` also `List-Unsubscribe-Post: List-Unsubscribe=One-Click`
///   (RFC 8058 requires an HTTPS URI for one-click).
/// - `Date` is `date` (from the caller's clock, so the function stays pure).
pub fn build(
    msg: &Outgoing,
    from: &Mailbox,
    reply_to: Option<&Mailbox>,
    date: DateTime<Utc>,
) -> Result<Message, EmailMessageError> {
    let Rendered::Email {
        subject,
        html,
        text,
    } = &msg.rendered
    else {
        return Err(EmailMessageError::NotEmail(msg.channel()));
    };

    let to: Mailbox = msg
        .address
        .trim()
        .parse::<lettre::Address>()
        .map(Mailbox::from)
        .map_err(|_| {
            EmailMessageError::InvalidRecipient(Email::from_trusted(msg.address.clone()).masked())
        })?;

    let sender_name = msg
        .store_name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .or_else(|| from.name.clone());
    let sender = Mailbox::new(sender_name, from.email.clone());

    let mut builder = Message::builder()
        .from(sender)
        .to(to)
        .subject(subject.as_str())
        .date(SystemTime::from(date))
        .message_id(Some(message_id(msg, from.email.domain())));
    if let Some(r) = reply_to {
        builder = builder.reply_to(r.clone());
    }
    if let Some(url) = msg.unsubscribe_url.as_deref() {
        let url = checked_unsubscribe_url(url)?;
        builder = builder.raw_header(HeaderValue::new(LIST_UNSUBSCRIBE, format!("<{url}>")));
        if url.starts_with("https://") {
            builder = builder.raw_header(HeaderValue::new(
                LIST_UNSUBSCRIBE_POST,
                ONE_CLICK.to_owned(),
            ));
        }
    }

    Ok(builder.multipart(MultiPart::alternative_plain_html(
        text.clone(),
        html.clone(),
    ))?)
}

/// The message as bytes (CRLF line endings), what an `.eml` file holds.
pub fn to_eml_bytes(message: &Message) -> Vec<u8> {
    message.formatted()
}

/// The stable `Message-ID` of `msg` (with angle brackets).
pub fn message_id(msg: &Outgoing, domain: &str) -> String {
    let digest = Sha1::digest(msg.dedupe_key.as_bytes());
    let h = hex::encode(digest);
    format!("<outreach.{}.{}@{}>", msg.message_id, &h[..16], domain)
}

/// The URL, if it can go between `<` and `>` in a header unchanged.
fn checked_unsubscribe_url(url: &str) -> Result<&str, EmailMessageError> {
    let url = url.trim();
    let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
    let chars_ok = url
        .bytes()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b',' | b'"'));
    if scheme_ok && chars_ok && url.len() > "https://".len() {
        Ok(url)
    } else {
        Err(EmailMessageError::InvalidUnsubscribeUrl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn outgoing(unsubscribe_url: Option<&str>) -> Outgoing {
        Outgoing {
            message_id: 42,
            dedupe_key: "birthday/2026/c42".to_owned(),
            address: "li.lei@example.com".to_owned(),
            sign_name: None,
            store_name: Some("老王川菜馆".to_owned()),
            unsubscribe_url: unsubscribe_url.map(str::to_owned),
            rendered: Rendered::Email {
                subject: "生日快乐！送您一张优惠券".to_owned(),
                html: "<p>您好 &amp; 欢迎</p>".to_owned(),
                text: "您好 & 欢迎".to_owned(),
            },
            attempt: 1,
        }
    }

    fn date() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 8, 0, 0).unwrap()
    }

    fn eml(msg: &Outgoing) -> String {
        let from = parse_mailbox("会员中心 <club@example.cn>").unwrap();
        let m = build(msg, &from, None, date()).unwrap();
        String::from_utf8(to_eml_bytes(&m)).unwrap()
    }

    #[test]
    fn headers_and_parts() {
        let s = eml(&outgoing(Some("https://u.example.cn/u/TOKEN")));
        assert!(s.contains("List-Unsubscribe: <https://u.example.cn/u/TOKEN>\r\n"));
        assert!(s.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));
        assert!(s.contains("Message-ID: <outreach.42."));
        assert!(s.contains("@example.cn>\r\n"));
        assert!(s.contains("To: li.lei@example.com\r\n"));
        assert!(s.contains("multipart/alternative"));
        assert!(s.contains("Content-Type: text/plain; charset=utf-8"));
        assert!(s.contains("Content-Type: text/html; charset=utf-8"));
        // The subject and the store name are encoded words, not raw UTF-8.
        assert!(s.contains("Subject: =?utf-8?"));
        assert!(s.contains("From: =?utf-8?"));
        assert!(s.is_ascii());
    }

    #[test]
    fn message_id_is_stable() {
        let a = outgoing(None);
        let mut b = a.clone();
        b.attempt = 3;
        assert_eq!(message_id(&a, "x.cn"), message_id(&b, "x.cn"));
        b.dedupe_key.push('x');
        assert_ne!(message_id(&a, "x.cn"), message_id(&b, "x.cn"));
    }

    #[test]
    fn http_link_gets_no_one_click() {
        let s = eml(&outgoing(Some("http://localhost:8080/u/T")));
        assert!(s.contains("List-Unsubscribe: <http://localhost:8080/u/T>"));
        assert!(!s.contains("List-Unsubscribe-Post"));
        let s = eml(&outgoing(None));
        assert!(!s.contains("List-Unsubscribe"));
    }

    #[test]
    fn unsafe_links_and_addresses_are_refused() {
        let from = parse_mailbox("club@example.cn").unwrap();
        for bad in [
            "https://x.cn/u>\r\nBcc: a@b.cn",
            "mailto:u@x.cn",
            "https://x.cn/a b",
        ] {
            let r = build(&outgoing(Some(bad)), &from, None, date());
            assert!(matches!(r, Err(EmailMessageError::InvalidUnsubscribeUrl)));
        }
        let mut m = outgoing(None);
        m.address = "not an address".to_owned();
        assert!(matches!(
            build(&m, &from, None, date()),
            Err(EmailMessageError::InvalidRecipient(_))
        ));
    }

    #[test]
    fn configured_name_when_no_store() {
        let mut m = outgoing(None);
        m.store_name = None;
        let from = parse_mailbox("Club <club@example.cn>").unwrap();
        let reply = parse_mailbox("help@example.cn").unwrap();
        let built = build(&m, &from, Some(&reply), date()).unwrap();
        let s = String::from_utf8(to_eml_bytes(&built)).unwrap();
        assert!(s.contains("From: Club <club@example.cn>\r\n"));
        assert!(s.contains("Reply-To: help@example.cn\r\n"));
    }
}
