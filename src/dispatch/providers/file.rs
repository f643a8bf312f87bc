//! The built-in `file` provider: "sends" each message by writing it under
//! `<data_dir>/outbox/<channel>/`, so a marketer can read exactly what would
//! have gone out without any provider account. E-mail is written as a
//! complete `.eml` file; SMS and WeChat as JSON with the rendered text.
//!
//! A message's file is named by its id, so sending it again (a retry after
//! a crash) rewrites the same file instead of adding a second one.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde_json::json;

use crate::clock::SharedClock;
use crate::dispatch::provider::{
    Accepted, FailureClass, Outgoing, Provider, SendError, SendResult,
};
use crate::store::Channel;
use crate::templates::Rendered;

/// Writes messages of one channel to files.
#[derive(Debug)]
pub struct FileProvider {
    dir: PathBuf,
    channel: Channel,
    clock: SharedClock,
    /// `From` of the `.eml` files.
    email_from: String,
}

impl FileProvider {
    /// Messages of `channel` go to `<outbox>/<channel>/`.
    pub fn new(outbox: &Path, channel: Channel, clock: SharedClock) -> FileProvider {
        FileProvider {
            dir: outbox.join(channel.as_str()),
            channel,
            clock,
            email_from: "outreach@localhost".into(),
        }
    }

    /// The sender written into `.eml` files.
    pub fn with_email_from(mut self, from: impl Into<String>) -> FileProvider {
        self.email_from = from.into();
        self
    }

    /// The folder this provider writes to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn contents(&self, msg: &Outgoing) -> Result<(&'static str, Vec<u8>), SendError> {
        let at = self.clock.now().to_rfc3339();
        let doc = match &msg.rendered {
            Rendered::Email { .. } => {
                use crate::dispatch::providers::email_message;
                let from = email_message::parse_mailbox(&self.email_from).map_err(|e| {
                    SendError::new(FailureClass::ProviderDown, "sender", e.to_string())
                })?;
                let email =
                    email_message::build(msg, &from, None, self.clock.now()).map_err(|e| {
                        SendError::new(
                            FailureClass::Permanent {
                                suppress_address: false,
                            },
                            "email",
                            e.to_string(),
                        )
                    })?;
                return Ok(("eml", email_message::to_eml_bytes(&email)));
            }
            Rendered::Sms {
                kind,
                text,
                aliyun,
                tencent,
            } => json!({
                "message_id": msg.message_id,
                "dedupe_key": msg.dedupe_key,
                "channel": "sms",
                "to": msg.address,
                "sign_name": msg.sign_name,
                "kind": kind,
                "text": match &msg.sign_name {
                    Some(sign) => format!("【{sign}】{text}"),
                    None => text.clone(),
                },
                "aliyun": aliyun,
                "tencent": tencent,
                "written_at": at,
            }),
            Rendered::Wechat {
                kind,
                template_id,
                page,
                url,
                data,
            } => json!({
                "message_id": msg.message_id,
                "dedupe_key": msg.dedupe_key,
                "channel": "wechat",
                "touser": msg.address,
                "kind": kind,
                "template_id": template_id,
                "page": page,
                "url": url,
                "data": data,
                "written_at": at,
            }),
        };
        let bytes = serde_json::to_vec_pretty(&doc).map_err(|e| {
            SendError::new(
                FailureClass::Permanent {
                    suppress_address: false,
                },
                "json",
                e.to_string(),
            )
        })?;
        Ok(("json", bytes))
    }
}

#[async_trait]
impl Provider for FileProvider {
    fn name(&self) -> &str {
        "file"
    }

    fn channel(&self) -> Channel {
        self.channel
    }

    async fn send(&self, msg: &Outgoing) -> SendResult {
        let (ext, bytes) = self.contents(msg)?;
        let name = format!("{:010}.{ext}", msg.message_id);
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let io = |e: std::io::Error| {
            // A full disk or a read-only folder stops every message: let the
            // next provider (or a later retry) take it.
            SendError::new(
                FailureClass::ProviderDown,
                "io",
                format!("cannot write {}: {e}", path.display()),
            )
        };
        tokio::fs::create_dir_all(&self.dir).await.map_err(io)?;
        tokio::fs::write(&tmp, &bytes).await.map_err(io)?;
        tokio::fs::rename(&tmp, &path).await.map_err(io)?;
        Ok(Accepted {
            provider_message_id: Some(format!("{}/{name}", self.channel.as_str())),
        })
    }
}
