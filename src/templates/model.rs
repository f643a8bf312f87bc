//! What a render produces, and why a render can fail.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::store::Channel;

/// An SMS template's kind: marketing texts end with the opt-out text
/// `拒收请回复R`; notification texts must not carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsKind {
    #[default]
    Marketing,
    Notification,
}

/// A WeChat template's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WechatKind {
    /// Official-account (公众号/服务号) template message.
    #[default]
    Template,
    /// Mini-program subscribe message.
    Subscribe,
}

/// Aliyun SendSms `TemplateCode` and `TemplateParam` (rendered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliyunSms {
    pub template_code: String,
    pub params: BTreeMap<String, String>,
}

/// Tencent SendSms `TemplateId` and `TemplateParamSet` (rendered, in order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TencentSms {
    pub template_id: String,
    pub params: Vec<String>,
}

/// One rendered message, ready for a provider (or the `file` provider and
/// previews).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "channel", rename_all = "lowercase")]
pub enum Rendered {
    Sms {
        kind: SmsKind,
        /// The full text, without the signature (the provider adds 【sign】).
        text: String,
        aliyun: Option<AliyunSms>,
        tencent: Option<TencentSms>,
    },
    Email {
        subject: String,
        html: String,
        text: String,
    },
    Wechat {
        kind: WechatKind,
        template_id: String,
        /// Mini-program page (`page` / `miniprogram.pagepath`).
        page: Option<String>,
        /// Official-account template messages only.
        url: Option<String>,
        data: BTreeMap<String, String>,
    },
}

impl Rendered {
    /// The channel this message goes out on.
    pub fn channel(&self) -> Channel {
        match self {
            Rendered::Sms { .. } => Channel::Sms,
            Rendered::Email { .. } => Channel::Email,
            Rendered::Wechat { .. } => Channel::Wechat,
        }
    }
}

/// Why one message could not be rendered. The caller records the message as
/// `template_error` with this error's text.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// No loaded template of that name for that channel.
    #[error(
        "no {channel} template named `{name}` is loaded (expected a file {name}.{channel}.yaml)"
    )]
    NotFound { name: String, channel: Channel },
    /// Handlebars failed on one field (in strict mode: a variable without a
    /// value). `line`/`column` are inside the template string.
    #[error("{file} {field}: {message}")]
    Template {
        file: String,
        field: String,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    /// A rendered value breaks a channel's limit (WeChat field types, a
    /// subject that is not one line).
    #[error("{file} {field}: {message}")]
    Value {
        file: String,
        field: String,
        message: String,
    },
    /// The variables could not be turned into a Handlebars context.
    #[error("cannot prepare the template variables: {0}")]
    Context(String),
}

impl RenderError {
    /// The field the error is in ("text", "data.thing1", …), if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            RenderError::Template { field, .. } | RenderError::Value { field, .. } => Some(field),
            _ => None,
        }
    }
}
