//! Reading one template file (`NAME.sms.yaml`, `NAME.email.yaml`,
//! `NAME.wechat.yaml`): its YAML structure, the rules of its channel, and
//! every template string compiled and walked (variables, helpers).

use std::collections::BTreeMap;

use handlebars::template::Template;
use handlebars::{TemplateError, TemplateErrorReason};
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::model::{SmsKind, WechatKind};
use super::place::Place;
use super::walk::{WalkOptions, walk};
use super::wechat;
use crate::store::Channel;
use crate::yaml_file::{FileError, YamlSource};

/// The opt-out text marketing SMS must end with.
pub const OPT_OUT: &str = "拒收请回复R";

/// Opt-out texts Aliyun and Tencent no longer accept.
const OLD_OPT_OUTS: &[&str] = &[
    "回T退订",
    "回TD退订",
    "退订回T",
    "退订回TD",
    "回复T退订",
    "回复TD退订",
    "回N退订",
];

/// One template string of a file, compiled into a registry under `key`.
#[derive(Debug, Clone)]
pub(super) struct Field {
    /// "text", "aliyun.params.name", "tencent.params {1}", "data.thing1" …
    pub label: String,
    /// The registry name: "birthday.sms/text".
    pub key: String,
    /// Rendered with HTML escaping (the email `html` part only).
    pub html: bool,
    pub place: Place,
}

/// A loaded template file.
#[derive(Debug, Clone)]
pub(super) enum Def {
    Sms {
        kind: SmsKind,
        text: Field,
        aliyun: Option<(String, Vec<(String, Field)>)>,
        tencent: Option<(String, Vec<Field>)>,
    },
    Email {
        subject: Field,
        html: Field,
        text: Field,
    },
    Wechat {
        kind: WechatKind,
        template_id: String,
        page: Option<Field>,
        url: Option<Field>,
        data: Vec<(String, Field)>,
    },
}

impl Def {
    /// Every template string of the file, in file order.
    pub(super) fn fields(&self) -> Vec<&Field> {
        match self {
            Def::Sms {
                text,
                aliyun,
                tencent,
                ..
            } => std::iter::once(text)
                .chain(aliyun.iter().flat_map(|(_, p)| p.iter().map(|(_, f)| f)))
                .chain(tencent.iter().flat_map(|(_, p)| p.iter()))
                .collect(),
            Def::Email {
                subject,
                html,
                text,
            } => vec![subject, html, text],
            Def::Wechat {
                page, url, data, ..
            } => page
                .iter()
                .chain(url.iter())
                .chain(data.iter().map(|(_, f)| f))
                .collect(),
        }
    }
}

/// A file that passed every load-time rule, with its compiled templates
/// (registry key, HTML escaping, template).
pub(super) struct Parsed {
    pub def: Def,
    pub compiled: Vec<(String, bool, Template)>,
}

/// Parse and check one template file.
pub(super) fn parse(
    source: &YamlSource,
    name: &str,
    channel: Channel,
) -> Result<Parsed, Vec<FileError>> {
    let file_name = source
        .path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    if source.text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---"
    }) {
        let needs = match channel {
            Channel::Sms => "`text:`",
            Channel::Email => "`subject:`, `html:` and `text:`",
            Channel::Wechat => "`template_id:` and `data:`",
        };
        return Err(vec![source.error_at_line(
            0,
            0,
            format!(
                "the file is empty; a {channel} template needs {needs} (see templates/README.md)"
            ),
        )]);
    }
    let mut cx = Cx {
        source,
        base: format!("{name}.{channel}"),
        file_name,
        errors: Vec::new(),
        compiled: Vec::new(),
    };
    let def = match channel {
        Channel::Sms => {
            let raw = source.parse::<Spanned<RawSms>>().map_err(|e| vec![e])?;
            sms(&mut cx, raw)
        }
        Channel::Email => {
            let raw = source.parse::<Spanned<RawEmail>>().map_err(|e| vec![e])?;
            email(&mut cx, raw)
        }
        Channel::Wechat => {
            let raw = source.parse::<Spanned<RawWechat>>().map_err(|e| vec![e])?;
            wechat_file(&mut cx, raw)
        }
    };
    match def {
        Some(def) if cx.errors.is_empty() => Ok(Parsed {
            def,
            compiled: cx.compiled,
        }),
        _ => Err(cx.errors),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSms {
    kind: Option<SmsKind>,
    text: Option<Spanned<String>>,
    aliyun: Option<Spanned<RawAliyun>>,
    tencent: Option<Spanned<RawTencent>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAliyun {
    template_code: Spanned<String>,
    #[serde(default)]
    params: BTreeMap<String, Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTencent {
    template_id: Spanned<String>,
    #[serde(default)]
    params: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    subject: Option<Spanned<String>>,
    html: Option<Spanned<String>>,
    text: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWechat {
    kind: Option<WechatKind>,
    template_id: Option<Spanned<String>>,
    page: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    data: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
}

/// What is being read, and what has been found so far.
struct Cx<'a> {
    source: &'a YamlSource,
    /// "birthday.sms": the prefix of every registry key of this file.
    base: String,
    file_name: String,
    errors: Vec<FileError>,
    compiled: Vec<(String, bool, Template)>,
}

/// A compiled template string and what the walk saw in it.
struct Compiled {
    field: Field,
    text: String,
    prints_unsubscribe_url: bool,
}

impl Cx<'_> {
    fn error(&mut self, at: (u64, u64), message: impl Into<String>) {
        self.errors
            .push(self.source.error_at_line(at.0, at.1, message.into()));
    }

    fn what(&self, label: &str) -> String {
        format!("{} {label}", self.file_name)
    }

    /// A required key that is missing, reported where the document starts.
    fn missing<T>(&mut self, doc: &Spanned<T>, key: &str, hint: &str) {
        let at = doc.referenced;
        self.error(
            (at.line(), at.column()),
            format!("`{key}` is missing: {hint}"),
        );
    }

    /// Compile one template string (trailing whitespace trimmed when
    /// `trim`), walk it, and queue it for the registry.
    fn field(
        &mut self,
        label: &str,
        scalar: &Spanned<String>,
        trim: bool,
        html: bool,
    ) -> Option<Compiled> {
        let text = if trim {
            scalar.value.trim_end()
        } else {
            scalar.value.as_str()
        };
        let place = Place::of(self.source, scalar, text);
        let key = format!("{}/{label}", self.base);
        let what = self.what(label);
        let template = match Template::compile_with_name(text, key.clone()) {
            Ok(t) => t,
            Err(e) => {
                let (at, message) = syntax_error(&e, text);
                let at = match at {
                    Some((l, c)) => place.at(l, c),
                    None => place.start(),
                };
                self.error(at, format!("Handlebars syntax error in {what}: {message}"));
                return None;
            }
        };
        let walked = walk(
            &template,
            &WalkOptions {
                what: &what,
                has_coupon: true,
                html,
            },
        );
        for f in walked.findings {
            self.error(place.at(f.line, f.column), f.message);
        }
        self.compiled.push((key.clone(), html, template));
        Some(Compiled {
            field: Field {
                label: label.to_owned(),
                key,
                html,
                place,
            },
            text: text.to_owned(),
            prints_unsubscribe_url: walked.prints_unsubscribe_url,
        })
    }

    /// A literal (non-template) value that must not be empty.
    fn code(&mut self, label: &str, scalar: &Spanned<String>, example: &str) -> String {
        let value = scalar.value.trim();
        if value.is_empty() {
            let at = Place::of(self.source, scalar, &scalar.value).start();
            self.error(
                at,
                format!("{label} is empty; write the approved id, e.g. {example}"),
            );
        }
        value.to_owned()
    }

    /// 【 and 】 are the signature's brackets, added by the provider.
    fn no_brackets(&mut self, c: &Compiled) {
        if let Some(i) = c.text.find(['【', '】']) {
            let shown = bracketed(&c.text[i..]);
            let at = c.field.place.at_byte(&c.text, i);
            self.error(
                at,
                format!(
                    "{} must not contain 【 or 】: the shop's signature is passed to the provider as its sign name (shop.signature) and the provider adds 【…】 itself; remove `{shown}`",
                    c.field.label
                ),
            );
        }
    }
}

/// The `【…】` starting at the front of `s` (or just the bracket).
fn bracketed(s: &str) -> &str {
    if s.starts_with('【')
        && let Some(end) = s.find('】')
    {
        return &s[..end + '】'.len_utf8()];
    }
    &s[..s.chars().next().map_or(0, char::len_utf8)]
}

/// A Handlebars compile error: its position inside the template, when known,
/// and a message for people.
fn syntax_error(e: &TemplateError, text: &str) -> (Option<(usize, usize)>, String) {
    let pos = e.pos();
    let last_line = text.split('\n').count();
    let end = (
        last_line,
        text.rsplit('\n').next().unwrap_or("").chars().count() + 1,
    );
    let message = match e.reason() {
        TemplateErrorReason::MismatchingClosedHelper(open, close) => format!(
            "`{{{{#{open}}}}}` is closed by `{{{{/{close}}}}}`; close it with `{{{{/{open}}}}}`"
        ),
        TemplateErrorReason::InvalidSyntax(_) if pos.is_some_and(|p| p >= end) => {
            "the text ends inside a `{{…}}` tag, or a `{{#…}}` block is never closed with its `{{/…}}`".to_owned()
        }
        TemplateErrorReason::InvalidSyntax(_) => {
            "malformed `{{…}}` tag here: check the braces, the variable or helper name and its parameters".to_owned()
        }
        other => other.to_string(),
    };
    (pos, message)
}

fn sms(cx: &mut Cx<'_>, raw: Spanned<RawSms>) -> Option<Def> {
    let kind = raw.value.kind.unwrap_or_default();
    let Some(text_scalar) = &raw.value.text else {
        cx.missing(
            &raw,
            "text",
            "the full message text, used for previews and the `file` provider",
        );
        return None;
    };
    let text = cx.field("text", text_scalar, true, false);
    if let Some(t) = &text {
        sms_text_rules(cx, kind, t);
    }
    let aliyun = raw.value.aliyun.as_ref().map(|a| {
        let code = cx.code(
            "aliyun.template_code",
            &a.value.template_code,
            "SMS_468101234",
        );
        let params: Vec<(String, Field)> = a
            .value
            .params
            .iter()
            .filter_map(|(name, v)| {
                let c = cx.field(&format!("aliyun.params.{name}"), v, true, false)?;
                cx.no_brackets(&c);
                Some((name.clone(), c.field))
            })
            .collect();
        (code, params)
    });
    let tencent = raw.value.tencent.as_ref().map(|t| {
        let id = cx.code("tencent.template_id", &t.value.template_id, "\"2046123\"");
        let params: Vec<Field> = t
            .value
            .params
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                let c = cx.field(&format!("tencent.params {{{}}}", i + 1), v, true, false)?;
                cx.no_brackets(&c);
                Some(c.field)
            })
            .collect();
        (id, params)
    });
    Some(Def::Sms {
        kind,
        text: text?.field,
        aliyun,
        tencent,
    })
}

fn sms_text_rules(cx: &mut Cx<'_>, kind: SmsKind, t: &Compiled) {
    let text = t.text.as_str();
    let place = &t.field.place;
    if text.trim().is_empty() {
        cx.error(place.start(), "text is empty; write the message");
        return;
    }
    cx.no_brackets(t);
    match kind {
        SmsKind::Marketing if !text.ends_with(OPT_OUT) => {
            if let Some(old) = OLD_OPT_OUTS.iter().find(|o| text.ends_with(**o)) {
                cx.error(
                    place.at_byte(text, text.len() - old.len()),
                    format!(
                        "`{old}` is the old opt-out text; Aliyun and Tencent now require marketing SMS to end with exactly `{OPT_OUT}`: replace it"
                    ),
                );
            } else if let Some(i) = text.rfind(OPT_OUT) {
                let after = &text[i + OPT_OUT.len()..];
                cx.error(
                    place.at_byte(text, i),
                    format!(
                        "a marketing SMS must end with exactly `{OPT_OUT}`, but `{after}` follows it; move `{OPT_OUT}` to the very end"
                    ),
                );
            } else {
                let chars: Vec<char> = text.chars().collect();
                let tail: String = chars[chars.len().saturating_sub(8)..].iter().collect();
                cx.error(
                    place.at_byte(text, text.len()),
                    format!(
                        "a marketing SMS must end with exactly `{OPT_OUT}` (the opt-out text Aliyun and Tencent require); append it: `…{tail}{OPT_OUT}` (or set `kind: notification` for a non-marketing text)"
                    ),
                );
            }
        }
        SmsKind::Notification => {
            if let Some(i) = text.find(OPT_OUT) {
                cx.error(
                    place.at_byte(text, i),
                    format!(
                        "a notification SMS must not contain `{OPT_OUT}` (providers reject notification templates that carry the marketing opt-out text); remove it, or set `kind: marketing`"
                    ),
                );
            }
        }
        SmsKind::Marketing => {}
    }
}

fn email(cx: &mut Cx<'_>, raw: Spanned<RawEmail>) -> Option<Def> {
    let r = &raw.value;
    let (Some(subject), Some(html), Some(text)) = (&r.subject, &r.html, &r.text) else {
        for (key, value, hint) in [
            ("subject", &r.subject, "the subject line"),
            ("html", &r.html, "the HTML body, a small HTML document"),
            (
                "text",
                &r.text,
                "the plain-text body, for mail readers without HTML",
            ),
        ] {
            if value.is_none() {
                cx.missing(&raw, key, hint);
            }
        }
        return None;
    };
    let subject = cx.field("subject", subject, true, false);
    let html = cx.field("html", html, false, true);
    let text = cx.field("text", text, false, false);
    if let Some(s) = &subject {
        if s.text.trim().is_empty() {
            cx.error(
                s.field.place.start(),
                "subject is empty; write a subject line",
            );
        } else if let Some(i) = s.text.find('\n') {
            cx.error(
                s.field.place.at_byte(&s.text, i),
                "subject must be a single line",
            );
        }
    }
    for (c, example) in [
        (&html, "<a href=\"{{unsubscribe_url}}\">退订</a>"),
        (&text, "退订：{{unsubscribe_url}}"),
    ] {
        if let Some(c) = c {
            if c.text.trim().is_empty() {
                cx.error(
                    c.field.place.start(),
                    format!("{} is empty; write the message body", c.field.label),
                );
            } else if !c.prints_unsubscribe_url {
                cx.error(
                    c.field.place.start(),
                    format!(
                        "{} must show an unsubscribe link with {{{{unsubscribe_url}}}}, e.g. {example}: bulk mail must carry a visible unsubscribe link",
                        c.field.label
                    ),
                );
            }
        }
    }
    Some(Def::Email {
        subject: subject?.field,
        html: html?.field,
        text: text?.field,
    })
}

fn wechat_file(cx: &mut Cx<'_>, raw: Spanned<RawWechat>) -> Option<Def> {
    let r = &raw.value;
    let kind = r.kind.unwrap_or_default();
    let Some(id) = &r.template_id else {
        cx.missing(
            &raw,
            "template_id",
            "the id of the template in the WeChat backend (模板ID)",
        );
        return None;
    };
    let template_id = cx.code(
        "template_id",
        id,
        "ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY",
    );
    if template_id.contains(char::is_whitespace) {
        let at = Place::of(cx.source, id, &id.value).start();
        cx.error(at, "template_id must not contain spaces");
    }
    let page = r
        .page
        .as_ref()
        .and_then(|p| cx.field("page", p, true, false))
        .map(|c| c.field);
    let url = match (&r.url, kind) {
        (Some(u), WechatKind::Subscribe) => {
            let at = Place::of(cx.source, u, &u.value).start();
            cx.error(
                at,
                "url is only for official-account template messages (kind: template); a subscribe message opens its mini-program `page`",
            );
            None
        }
        (Some(u), WechatKind::Template) => {
            let c = cx.field("url", u, true, false);
            if let Some(c) = &c
                && !(c.text.starts_with("https://") || c.text.starts_with("http://"))
            {
                cx.error(
                    c.field.place.start(),
                    "url must start with https:// (the page WeChat opens when the message is tapped)",
                );
            }
            c.map(|c| c.field)
        }
        (None, _) => None,
    };
    let Some(data) = &r.data else {
        cx.missing(
            &raw,
            "data",
            "the template's fields and their values, e.g. `thing1: \"{{coupon.value_text}}\"`",
        );
        return None;
    };
    if data.value.is_empty() {
        let at = data.referenced;
        cx.error(
            (at.line(), at.column()),
            "data is empty; list the template's fields, e.g. `thing1: \"{{coupon.value_text}}\"`",
        );
    }
    let fields: Vec<(String, Field)> = data
        .value
        .iter()
        .filter_map(|(key, v)| {
            if let Err(msg) = wechat::check_key(key) {
                let at = Place::of(cx.source, v, &v.value).start();
                cx.error(at, format!("{}: {msg}", cx.what("data")));
                return None;
            }
            let c = cx.field(&format!("data.{key}"), v, true, false)?;
            Some((key.clone(), c.field))
        })
        .collect();
    Some(Def::Wechat {
        kind,
        template_id,
        page,
        url,
        data: fields,
    })
}
