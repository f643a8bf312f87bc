//! WeChat server pushes: the callback signature and the template-message
//! delivery event (`TEMPLATESENDJOBFINISH`).
//!
//! Only plain-text mode is handled; a push in safe mode (`encrypt_type=aes`,
//! an `<Encrypt>` element instead of the event) is refused with
//! [`WechatCallbackError::Encrypted`].

use chrono::DateTime;
use serde::Deserialize;
use sha1::{Digest, Sha1};

use crate::dispatch::provider::{Receipt, ReceiptKey};

/// The `Status` of a delivery the user refused ("failed:user block"): the
/// receiver of the receipt should put the OpenID on the suppression list.
pub const USER_BLOCK: &str = "failed:user block";

/// Why a push could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WechatCallbackError {
    /// Not well-formed XML, or a field of the wrong type.
    #[error("the WeChat push is not readable XML: {0}")]
    Xml(#[from] quick_xml::DeError),
    /// The push is encrypted (safe mode), which is not supported.
    #[error("the WeChat push is encrypted (safe mode); configure plain-text mode")]
    Encrypted,
    /// A `TEMPLATESENDJOBFINISH` event without `MsgID` or `Status`.
    #[error("TEMPLATESENDJOBFINISH without {0}")]
    Missing(&'static str),
}

/// The signature WeChat puts in the `signature` query parameter:
/// hex(SHA-1(the three strings sorted byte-wise and concatenated)).
pub fn signature(token: &str, timestamp: &str, nonce: &str) -> String {
    let mut parts = [token, timestamp, nonce];
    parts.sort_unstable();
    let mut h = Sha1::new();
    for p in parts {
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Whether `signature` (the `signature` query parameter) is right for the
/// configured `token` and the push's `timestamp` and `nonce`. Compares in
/// constant time; hex case is ignored.
pub fn verify_signature(token: &str, timestamp: &str, nonce: &str, signature: &str) -> bool {
    let expected = self::signature(token, timestamp, nonce);
    let given = signature.trim().to_ascii_lowercase();
    crate::dispatch::sign::constant_time_eq(expected.as_bytes(), given.as_bytes())
}

/// The push as XML; every field optional so any event parses.
#[derive(Debug, Deserialize)]
struct Push {
    #[serde(rename = "MsgType")]
    msg_type: Option<String>,
    #[serde(rename = "Event")]
    event: Option<String>,
    #[serde(rename = "MsgID", alias = "MsgId")]
    msg_id: Option<String>,
    #[serde(rename = "Status")]
    status: Option<String>,
    #[serde(rename = "CreateTime")]
    create_time: Option<i64>,
    #[serde(rename = "Encrypt")]
    encrypt: Option<String>,
}

/// Reads a push. `TEMPLATESENDJOBFINISH` gives a [`Receipt`] keyed by the
/// `msgid` the send returned: `Status` `success` is delivered, anything else
/// (`failed:user block`, `failed: system failed`, …) is failed with the
/// status as its code. Any other push (messages, other events) is `None`.
pub fn parse_event(xml: &[u8]) -> Result<Option<Receipt>, WechatCallbackError> {
    let text = String::from_utf8_lossy(xml);
    let push: Push = quick_xml::de::from_str(&text)?;
    if push.msg_type.is_none() && push.encrypt.is_some() {
        return Err(WechatCallbackError::Encrypted);
    }
    let is_event = push
        .msg_type
        .as_deref()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("event"));
    let is_job_finish = push
        .event
        .as_deref()
        .is_some_and(|e| e.trim().eq_ignore_ascii_case("TEMPLATESENDJOBFINISH"));
    if !(is_event && is_job_finish) {
        return Ok(None);
    }
    let msg_id = push
        .msg_id
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .ok_or(WechatCallbackError::Missing("MsgID"))?;
    let status = push
        .status
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .ok_or(WechatCallbackError::Missing("Status"))?;
    let delivered = status == "success";
    let description = if delivered {
        "delivered to the user"
    } else if status == USER_BLOCK {
        "the user refuses messages from this account"
    } else if status.replace(' ', "") == "failed:systemfailed" {
        "WeChat could not deliver it (system failure)"
    } else {
        "not delivered"
    };
    let suppress_address = status == USER_BLOCK;
    Ok(Some(Receipt {
        provider: "wechat".to_owned(),
        key: ReceiptKey::ProviderMessageId(msg_id),
        delivered,
        suppress_address,
        code: status,
        description: description.to_owned(),
        at: push
            .create_time
            .and_then(|secs| DateTime::from_timestamp(secs, 0)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vector W1 (wechatpy `check_signature`), providers.md §3.3.
    #[test]
    fn w1_callback_signature() {
        let token = "restaurant_token_2024";
        let (timestamp, nonce) = ("1700000000", "381957214");
        let expected = "996568223385962b46e1faced3d4dafbca95fe80";
        assert_eq!(signature(token, timestamp, nonce), expected);
        assert!(verify_signature(token, timestamp, nonce, expected));
        assert!(verify_signature(
            token,
            timestamp,
            nonce,
            &expected.to_ascii_uppercase()
        ));
        assert!(!verify_signature(token, timestamp, "381957215", expected));
        assert!(!verify_signature("other", timestamp, nonce, expected));
        assert!(!verify_signature(token, timestamp, nonce, &expected[..39]));
        assert!(!verify_signature(token, timestamp, nonce, ""));
    }

    fn push(status: &str) -> String {
        format!(
            "<xml><ToUserName><![CDATA[gh_7f083739789a]]></ToUserName>\
             <FromUserName><![CDATA[oia2TjuEGTNoeX76QEjQNrcURxG8]]></FromUserName>\
             <CreateTime>1395658920</CreateTime><MsgType><![CDATA[event]]></MsgType>\
             <Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>200163836</MsgID>\
             <Status><![CDATA[{status}]]></Status></xml>"
        )
    }

    #[test]
    fn delivered() {
        let r = parse_event(push("success").as_bytes()).unwrap().unwrap();
        assert_eq!(r.provider, "wechat");
        assert_eq!(r.key, ReceiptKey::ProviderMessageId("200163836".to_owned()));
        assert!(r.delivered);
        assert_eq!(r.code, "success");
        assert_eq!(r.at.map(|t| t.timestamp()), Some(1_395_658_920));
    }

    #[test]
    fn failures_keep_their_status() {
        for status in [
            "failed:user block",
            "failed: system failed",
            "failed:freq limit",
        ] {
            let r = parse_event(push(status).as_bytes()).unwrap().unwrap();
            assert!(!r.delivered);
            assert_eq!(r.code, status);
        }
    }

    #[test]
    fn other_pushes_are_none() {
        let text = "<xml><ToUserName><![CDATA[gh]]></ToUserName><FromUserName><![CDATA[o]]></FromUserName>\
                    <CreateTime>1</CreateTime><MsgType><![CDATA[text]]></MsgType>\
                    <Content><![CDATA[R]]></Content><MsgId>1234567890123456</MsgId></xml>";
        assert_eq!(parse_event(text.as_bytes()).unwrap(), None);
        let sub =
            "<xml><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event></xml>";
        assert_eq!(parse_event(sub.as_bytes()).unwrap(), None);
    }

    #[test]
    fn bad_pushes_are_errors() {
        assert!(matches!(
            parse_event(
                b"<xml><ToUserName>gh</ToUserName><Encrypt><![CDATA[abc]]></Encrypt></xml>"
            ),
            Err(WechatCallbackError::Encrypted)
        ));
        let no_status = "<xml><MsgType>event</MsgType><Event>TEMPLATESENDJOBFINISH</Event><MsgID>1</MsgID></xml>";
        assert!(matches!(
            parse_event(no_status.as_bytes()),
            Err(WechatCallbackError::Missing("Status"))
        ));
        assert!(parse_event(b"<xml><MsgType>event</MsgType>").is_err());
        assert!(parse_event(b"not xml at all").is_err());
    }
}
