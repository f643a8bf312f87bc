//! Message templates (`templates/`, Handlebars 6).
//!
//! A campaign names a template by its base name (`template: birthday`); each
//! channel has its own file in the templates folder:
//!
//! - `birthday.sms.yaml`: `kind` (`marketing`, the default, or
//!   `notification`), `text` (the full text, for previews and the `file`
//!   provider), optional `aliyun` (`template_code`, `params` by name) and
//!   `tencent` (`template_id`, positional `params`). Marketing text ends with
//!   exactly `拒收请回复R`; notification text must not contain it; no 【】
//!   (the signature is the provider's sign name).
//! - `birthday.email.yaml`: `subject`, `html`, `text`; both bodies print
//!   `{{unsubscribe_url}}`.
//! - `birthday.wechat.yaml`: `kind` (`template`: official-account template
//!   message, the default; `subscribe`: mini-program subscribe message),
//!   `template_id`, optional `page`, optional `url` (template kind only),
//!   `data` (field key → value). Rendered values are held to WeChat's limits
//!   by the key's type prefix (`thing` ≤ 20 characters, …; see `wechat.rs`).
//!
//! Every value is a Handlebars template string (except the provider ids).
//! `page`, `url` and the SMS provider parameters are templates too; values
//! are inserted literally (no URL encoding).
//!
//! # Variables
//!
//! Templates render against a [`RenderContext`] with exactly these variables:
//!
//! | variable | example |
//! |---|---|
//! | `customer.id` | C10023 |
//! | `customer.name` | 王小明 |
//! | `customer.surname` | 王 (first character of the name) |
//! | `customer.store` | SH-001 (home store code) |
//! | `customer.birthday` | 12-07 ("" when unknown) |
//! | `customer.order_count` | 12 |
//! | `customer.total_spent` | 386.50 (yuan) |
//! | `customer.lifecycle` | new, active, at_risk, lapsed, churned |
//! | `customer.value_tier` | vip, core, regular |
//! | `customer.days_to_birthday` | 3 (empty when unknown) |
//! | `customer.tags` | a list: `{{#each customer.tags}}{{this}}{{/each}}` |
//! | `coupon.code` | BDAY7K3M9Q |
//! | `coupon.kind` | amount_off, percent_off, free_item |
//! | `coupon.value` | 10 |
//! | `coupon.value_text` | 10元代金券, 8.5折券, 免费豆浆券 |
//! | `coupon.item` | 豆浆 (free_item only, "" otherwise) |
//! | `coupon.min_spend` | 30 (yuan, "0" when none) |
//! | `coupon.expires_on` | 2026-12-21 |
//! | `coupon.expires_on_text` | 12月21日 |
//! | `coupon.valid_days` | 14 |
//! | `shop.code`, `shop.name`, `shop.signature` | SH-001, 老街豆浆人民广场店, 老街豆浆 |
//! | `campaign.id`, `campaign.name` | birthday-treat, 生日礼券 |
//! | `unsubscribe_url` | https://shop.example.com/u/… |
//!
//! `coupon.*` exists only when the campaign issues a coupon; a template used
//! by a campaign without one may still use `{{#if coupon}}…{{/if}}`.
//!
//! # Checks
//!
//! At [`TemplateSet::load`] (campaign-independent; a file with any of these
//! errors is left out and reported): YAML structure (unknown keys, wrong
//! types, duplicates), required keys, each channel's rules, Handlebars
//! syntax, variables outside the catalogue, helpers other than the
//! built-ins `if unless each with lookup eq ne gt gte lt lte and or not len`,
//! partials and decorators, `{{{…}}}` in email HTML. The walk over the
//! compiled template (see `walk.rs`) sees variables inside `{{#if}}`,
//! `{{#unless}}`, `{{#each}}`, `{{#with}}`, helper parameters, hash values
//! and subexpressions — strict mode alone would not (`{{#if nmae}}` silently
//! takes the else branch).
//!
//! At [`TemplateSet::check`] (per campaign): `coupon.*` used outside
//! `{{#if coupon}}` by a campaign without a coupon, then a strict-mode render
//! against [`RenderContext::sample`], which also holds WeChat fields to their
//! limits. Errors point at `file:line:col`; positions inside a template are
//! exact for single-line scalars and literal blocks (`|`), and the scalar's
//! start otherwise (folded `>` blocks, strings with escapes).
//!
//! # Rendering
//!
//! Each template string is compiled once at load and registered under its own
//! name in one of two registries, both in strict mode: the email `html` part
//! in one with HTML escaping, everything else (SMS, subject, plain text,
//! WeChat) in one with `no_escape`. A customer named `<b>` prints as `<b>`
//! except in email HTML (`&lt;b&gt;`); a name `{{x}}` prints as `{{x}}`.
//! [`TemplateSet::render`] serializes the context once and renders each field
//! from it. Measured on the shipped `birthday` templates (release build, one
//! core, a loop of 100,000 `render` calls with `RenderContext::sample(true)`):
//! SMS (text + 3 Aliyun + 3 Tencent params) about 7 µs, email about 10 µs,
//! WeChat (4 fields + page) about 10 µs per message.

mod files;
mod model;
mod place;
mod vars;
mod walk;
mod wechat;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use handlebars::{Handlebars, RenderErrorReason};

pub use files::OPT_OUT;
pub use model::{AliyunSms, RenderError, Rendered, SmsKind, TencentSms, WechatKind};
pub use vars::{
    CampaignVars, CouponVars, CustomerVars, RenderContext, ShopVars, VARIABLES, coupon_value_text,
    date_text, surname_of, yuan_text,
};

use files::{Def, Field};
use walk::{WalkOptions, walk};

use crate::store::Channel;
use crate::yaml_file::{FileError, YamlSource};

const CHANNELS: [Channel; 3] = [Channel::Sms, Channel::Email, Channel::Wechat];

/// Every template file of a folder, compiled.
#[derive(Debug, Clone)]
pub struct TemplateSet {
    dir: PathBuf,
    /// SMS, email subject and text, WeChat: no escaping.
    plain: Handlebars<'static>,
    /// Email HTML: HTML escaping.
    html: Handlebars<'static>,
    loaded: HashMap<(String, Channel), Loaded>,
    /// Files that did not load, with their errors.
    failed: HashMap<(String, Channel), (PathBuf, Vec<FileError>)>,
}

#[derive(Debug, Clone)]
struct Loaded {
    path: PathBuf,
    file_name: String,
    def: Def,
}

/// What a file name in the templates folder means.
enum FileKind {
    Template(String, Channel),
    Ignored,
    Misnamed(String),
}

impl TemplateSet {
    /// No templates.
    pub fn empty() -> TemplateSet {
        let mut plain = Handlebars::new();
        plain.set_strict_mode(true);
        plain.register_escape_fn(handlebars::no_escape);
        let mut html = Handlebars::new();
        html.set_strict_mode(true);
        TemplateSet {
            dir: PathBuf::new(),
            plain,
            html,
            loaded: HashMap::new(),
            failed: HashMap::new(),
        }
    }

    /// Read every `*.sms.yaml`, `*.email.yaml` and `*.wechat.yaml` (or
    /// `.yml`) in `dir` (not recursive). Dotfiles, backups (`*~`, `*.swp`,
    /// `*.tmp`) and files not ending in `.yaml`/`.yml` (`README.md`) are
    /// ignored; a `.yaml` file whose channel part is not sms, email or wechat
    /// (`birthday.mail.yaml`) is reported. Files that fail are left out and
    /// reported; the rest load.
    pub fn load(dir: &Path) -> (TemplateSet, Vec<FileError>) {
        let mut set = TemplateSet::empty();
        set.dir = dir.to_owned();
        let mut errors = Vec::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                errors.push(FileError {
                    file: dir.to_owned(),
                    line: 0,
                    column: 0,
                    message: format!("cannot read the templates folder: {e}"),
                });
                return (set, errors);
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        paths.sort();
        for path in paths {
            let file_name = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let (name, channel) = match classify(&file_name) {
                FileKind::Ignored => continue,
                FileKind::Misnamed(message) => {
                    errors.push(whole_file(&path, message));
                    continue;
                }
                FileKind::Template(name, channel) => (name, channel),
            };
            let key = (name.clone(), channel);
            if let Some(first) = set.path_of(&name, channel) {
                errors.push(whole_file(
                    &path,
                    format!(
                        "template `{name}` for {channel} is already defined by {}; keep one of the two files",
                        first.display()
                    ),
                ));
                continue;
            }
            let parsed = YamlSource::read(&path)
                .map_err(|e| vec![e])
                .and_then(|source| files::parse(&source, &name, channel));
            match parsed {
                Ok(parsed) => {
                    for (key, html, template) in parsed.compiled {
                        let registry = if html { &mut set.html } else { &mut set.plain };
                        registry.register_template(&key, template);
                    }
                    set.loaded.insert(
                        key,
                        Loaded {
                            path,
                            file_name,
                            def: parsed.def,
                        },
                    );
                }
                Err(file_errors) => {
                    errors.extend(file_errors.iter().cloned());
                    set.failed.insert(key, (path, file_errors));
                }
            }
        }
        (set, errors)
    }

    /// Whether a template for `(name, channel)` is loaded.
    pub fn has(&self, name: &str, channel: Channel) -> bool {
        self.loaded.contains_key(&(name.to_owned(), channel))
    }

    /// The base names of the loaded templates, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.loaded.keys().map(|(n, _)| n.clone()).collect();
        names.sort();
        names.dedup();
        names
    }

    /// The file that defines `(name, channel)` — loaded or failed.
    pub fn path_of(&self, name: &str, channel: Channel) -> Option<&Path> {
        let key = (name.to_owned(), channel);
        self.loaded
            .get(&key)
            .map(|l| l.path.as_path())
            .or_else(|| self.failed.get(&key).map(|(p, _)| p.as_path()))
    }

    /// The folder the templates were read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Check-time validation of one template for one channel for a campaign:
    /// `coupon.*` without a coupon, a strict render of
    /// [`RenderContext::sample`]`(has_coupon)`, WeChat limits. Errors point
    /// into the template file. For a file that failed to load, its load
    /// errors are returned again (callers printing both may dedup: the
    /// errors are equal).
    pub fn check(&self, name: &str, channel: Channel, has_coupon: bool) -> Vec<FileError> {
        let key = (name.to_owned(), channel);
        if let Some((_, errors)) = self.failed.get(&key) {
            return errors.clone();
        }
        let Some(t) = self.loaded.get(&key) else {
            return vec![self.not_found(name, channel)];
        };
        let mut errors = Vec::new();
        for field in t.def.fields() {
            let Some(template) = self.registry(field).get_template(&field.key) else {
                continue;
            };
            let walked = walk(
                template,
                &WalkOptions {
                    what: &format!("{} {}", t.file_name, field.label),
                    has_coupon,
                    html: field.html,
                },
            );
            for f in walked.findings {
                let (line, column) = field.place.at(f.line, f.column);
                errors.push(error_at(&t.path, line, column, f.message));
            }
        }
        if errors.is_empty()
            && let Err(e) = self.render(name, channel, &RenderContext::sample(has_coupon))
        {
            let field = e
                .field()
                .and_then(|label| t.def.fields().into_iter().find(|f| f.label == label));
            let (line, column) = match (&e, field) {
                (
                    RenderError::Template {
                        line: Some(l),
                        column: Some(c),
                        ..
                    },
                    Some(f),
                ) => f.place.at(*l, *c),
                (_, Some(f)) => f.place.start(),
                (_, None) => (0, 0),
            };
            errors.push(error_at(
                &t.path,
                line,
                column,
                format!("with the sample values (customer 王小明, shop 老街豆浆人民广场店): {e}"),
            ));
        }
        errors
    }

    /// Render one message for one customer. Errors are per message.
    pub fn render(
        &self,
        name: &str,
        channel: Channel,
        ctx: &RenderContext,
    ) -> Result<Rendered, RenderError> {
        let t = self
            .loaded
            .get(&(name.to_owned(), channel))
            .ok_or_else(|| RenderError::NotFound {
                name: name.to_owned(),
                channel,
            })?;
        let context =
            handlebars::Context::wraps(ctx).map_err(|e| RenderError::Context(e.to_string()))?;
        let render = |field: &Field| -> Result<String, RenderError> {
            self.registry(field)
                .render_with_context(&field.key, &context)
                .map_err(|e| RenderError::Template {
                    file: t.file_name.clone(),
                    field: field.label.clone(),
                    line: e.line_no,
                    column: e.column_no,
                    message: match e.reason() {
                        RenderErrorReason::MissingVariable(Some(path)) => {
                            format!("variable `{path}` has no value")
                        }
                        RenderErrorReason::MissingVariable(None) => {
                            "a variable has no value".to_owned()
                        }
                        other => other.to_string(),
                    },
                })
        };
        let value_error = |field: &str, message: String| RenderError::Value {
            file: t.file_name.clone(),
            field: field.to_owned(),
            message,
        };
        Ok(match &t.def {
            Def::Sms {
                kind,
                text,
                aliyun,
                tencent,
            } => Rendered::Sms {
                kind: *kind,
                text: render(text)?,
                aliyun: match aliyun {
                    Some((code, params)) => Some(AliyunSms {
                        template_code: code.clone(),
                        params: params
                            .iter()
                            .map(|(k, f)| Ok((k.clone(), render(f)?)))
                            .collect::<Result<BTreeMap<_, _>, RenderError>>()?,
                    }),
                    None => None,
                },
                tencent: match tencent {
                    Some((id, params)) => Some(TencentSms {
                        template_id: id.clone(),
                        params: params.iter().map(&render).collect::<Result<_, _>>()?,
                    }),
                    None => None,
                },
            },
            Def::Email {
                subject,
                html,
                text,
            } => {
                let subject_text = render(subject)?;
                if subject_text.contains(['\n', '\r']) {
                    return Err(value_error(
                        "subject",
                        "the rendered subject contains a line break (from a variable's value); a subject must be one line".to_owned(),
                    ));
                }
                Rendered::Email {
                    subject: subject_text,
                    html: render(html)?,
                    text: render(text)?,
                }
            }
            Def::Wechat {
                kind,
                template_id,
                page,
                url,
                data,
            } => {
                let mut values = BTreeMap::new();
                for (key, field) in data {
                    let value = render(field)?;
                    wechat::check_value(key, &value).map_err(|m| value_error(&field.label, m))?;
                    values.insert(key.clone(), value);
                }
                Rendered::Wechat {
                    kind: *kind,
                    template_id: template_id.clone(),
                    page: page.as_ref().map(&render).transpose()?,
                    url: url.as_ref().map(&render).transpose()?,
                    data: values,
                }
            }
        })
    }

    fn registry(&self, field: &Field) -> &Handlebars<'static> {
        if field.html { &self.html } else { &self.plain }
    }

    /// The error for a template that does not exist.
    fn not_found(&self, name: &str, channel: Channel) -> FileError {
        let expected = self.dir.join(format!("{name}.{channel}.yaml"));
        let others: Vec<&str> = CHANNELS
            .iter()
            .filter(|c| self.has(name, **c))
            .map(|c| c.as_str())
            .collect();
        let hint = if !others.is_empty() {
            format!("; `{name}` has only {}", others.join(", "))
        } else {
            let same_channel: Vec<&str> = self
                .loaded
                .keys()
                .filter(|(_, c)| *c == channel)
                .map(|(n, _)| n.as_str())
                .collect();
            match closest(name, &same_channel) {
                Some(s) => format!("; did you mean `{s}`?"),
                None => String::new(),
            }
        };
        whole_file(
            &expected,
            format!(
                "no {channel} template `{name}`: {} does not exist{hint}",
                expected.display()
            ),
        )
    }
}

impl Default for TemplateSet {
    fn default() -> Self {
        TemplateSet::empty()
    }
}

fn classify(file_name: &str) -> FileKind {
    if file_name.starts_with('.')
        || file_name.ends_with('~')
        || file_name.ends_with(".swp")
        || file_name.ends_with(".tmp")
    {
        return FileKind::Ignored;
    }
    let Some(stem) = file_name
        .strip_suffix(".yaml")
        .or_else(|| file_name.strip_suffix(".yml"))
    else {
        return FileKind::Ignored;
    };
    let expected = "template files are named NAME.sms.yaml, NAME.email.yaml or NAME.wechat.yaml";
    let Some((name, middle)) = stem.rsplit_once('.').filter(|(n, _)| !n.is_empty()) else {
        return FileKind::Misnamed(format!(
            "{file_name} is not a template file name: {expected}, e.g. {stem}.sms.yaml"
        ));
    };
    match middle {
        "sms" => FileKind::Template(name.to_owned(), Channel::Sms),
        "email" => FileKind::Template(name.to_owned(), Channel::Email),
        "wechat" => FileKind::Template(name.to_owned(), Channel::Wechat),
        other => {
            let ext = &file_name[stem.len()..];
            let hint = match channel_alias(other) {
                Some(c) => format!("; did you mean {name}.{c}{ext}?"),
                None => String::new(),
            };
            FileKind::Misnamed(format!(
                "unknown channel `{other}` in the file name {file_name}: {expected}{hint}"
            ))
        }
    }
}

/// The channel a misspelt or translated channel name most likely means.
fn channel_alias(word: &str) -> Option<&'static str> {
    let w = word.to_lowercase();
    match w.as_str() {
        "sms" | "text" | "txt" | "message" | "msg" | "duanxin" | "短信" => return Some("sms"),
        "email" | "mail" | "e-mail" | "html" | "邮件" => return Some("email"),
        "wechat" | "weixin" | "wx" | "mp" | "miniprogram" | "微信" => return Some("wechat"),
        _ => {}
    }
    ["sms", "email", "wechat"]
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(&w, c), c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), *c))
        .filter(|(d, c)| *d <= (c.chars().count() / 3).max(1))
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}

fn whole_file(path: &Path, message: String) -> FileError {
    error_at(path, 0, 0, message)
}

fn error_at(path: &Path, line: u64, column: u64, message: String) -> FileError {
    FileError {
        file: path.to_owned(),
        line,
        column,
        message,
    }
}
