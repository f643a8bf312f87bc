//! What the page's templates (`ops_templates/`, compiled in by askama)
//! show: plain strings prepared by the handlers, so the templates hold no
//! logic beyond loops and conditions.

use askama::Template;

use super::i18n::{Lang, Text, fill};

/// What every page around its content shows.
#[derive(Debug)]
pub struct Chrome {
    pub tx: &'static Text,
    /// `zh` or `en`, for links.
    pub lang: &'static str,
    pub other_lang: &'static str,
    pub html_lang: &'static str,
    /// `log`, `campaigns` or `jobs`.
    pub active: &'static str,
    /// This page in the other language.
    pub switch_href: String,
    pub signed_in: Option<String>,
    pub can_logout: bool,
    pub file_errors: usize,
    pub file_errors_text: String,
    pub times_in: String,
    pub version: &'static str,
}

impl Chrome {
    pub fn new(lang: Lang, active: &'static str, switch_href: String, tz: &str) -> Chrome {
        let tx = lang.text();
        Chrome {
            tx,
            lang: lang.code(),
            other_lang: lang.other().code(),
            html_lang: lang.html(),
            active,
            switch_href,
            signed_in: None,
            can_logout: false,
            file_errors: 0,
            file_errors_text: String::new(),
            times_in: fill(tx.times_in, &[("tz", tz)]),
            version: env!("CARGO_PKG_VERSION"),
        }
    }

    pub fn with_file_errors(mut self, n: usize) -> Chrome {
        self.file_errors = n;
        self.file_errors_text = fill(self.tx.file_errors_banner, &[("n", &n.to_string())]);
        self
    }
}

/// A `<select>` option.
#[derive(Debug)]
pub struct Opt {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

/// The filter form's values as typed.
#[derive(Debug, Default)]
pub struct FilterView {
    pub campaign: String,
    pub customer: String,
    pub since: String,
    pub until: String,
}

/// A reason code with its words.
#[derive(Debug)]
pub struct ReasonView {
    pub code: String,
    pub words: String,
}

/// One send-log row.
#[derive(Debug)]
pub struct RowView {
    pub id: i64,
    pub href: String,
    pub time: String,
    pub campaign: String,
    pub campaign_href: String,
    pub customer: String,
    pub customer_href: String,
    pub channel: String,
    pub provider: String,
    pub address: String,
    pub status: &'static str,
    pub status_word: &'static str,
    pub reason: Option<ReasonView>,
    pub attempts: u32,
    pub coupon: String,
}

#[derive(Template)]
#[template(path = "log.html")]
pub struct LogPage {
    pub chrome: Chrome,
    pub queue: Option<String>,
    pub filters: FilterView,
    pub campaign_ids: Vec<String>,
    pub channels: Vec<Opt>,
    pub statuses: Vec<Opt>,
    pub error: Option<String>,
    pub rows: Vec<RowView>,
    pub newest_href: Option<String>,
    pub older_href: Option<String>,
}

/// One provider call.
#[derive(Debug)]
pub struct AttemptView {
    pub attempt: u32,
    pub at: String,
    pub provider: String,
    pub outcome: String,
    pub code: String,
    pub detail: String,
}

/// One message in full.
#[derive(Debug)]
pub struct MessageView {
    pub id: i64,
    pub status: &'static str,
    pub status_word: &'static str,
    pub reason: Option<ReasonView>,
    pub detail: Option<String>,
    pub campaign: String,
    pub campaign_href: String,
    pub customer: String,
    pub customer_href: String,
    pub channel: String,
    pub provider: String,
    pub address: String,
    pub attempts: u32,
    pub coupon: String,
    pub provider_message_id: String,
    pub next_attempt: String,
    pub sent_at: String,
    pub retryable: bool,
    pub history: Vec<AttemptView>,
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    pub chrome: Chrome,
    pub heading: String,
    pub back_href: String,
    pub notice: Option<String>,
    pub message: Option<MessageView>,
    pub form_token: String,
}

/// A suppressed-by-reason figure.
#[derive(Debug)]
pub struct ReasonCount {
    pub code: String,
    pub words: String,
    pub n: String,
}

/// A campaign's figures, formatted.
#[derive(Debug)]
pub struct Figures {
    pub issued: String,
    pub sent: String,
    pub delivered: String,
    pub failed: String,
    pub suppressed: String,
    pub waiting: String,
    pub redeemed: String,
    pub rate: String,
    pub revenue: String,
    pub by_reason: Vec<ReasonCount>,
}

/// A campaign in force.
#[derive(Debug)]
pub struct CardView {
    pub id: String,
    pub name: String,
    pub warnings: Vec<String>,
    pub trigger: String,
    pub schedule: String,
    pub next_run: String,
    pub channels: String,
    pub priority: i32,
    pub coupon: String,
    pub file: String,
    pub figures: Option<Figures>,
    pub log_href: String,
}

/// A campaign no longer in force that has messages.
#[derive(Debug)]
pub struct GoneView {
    pub id: String,
    pub figures: Option<Figures>,
    pub log_href: String,
}

#[derive(Template)]
#[template(path = "campaigns.html")]
pub struct CampaignsPage {
    pub chrome: Chrome,
    pub stats_note: String,
    /// The figures are still being computed: the page reloads itself.
    pub stats_pending: bool,
    pub cards: Vec<CardView>,
    pub gone: Vec<GoneView>,
}

/// One job run.
#[derive(Debug)]
pub struct RunView {
    pub job: String,
    pub scheduled_for: String,
    pub started: String,
    pub finished: String,
    pub duration: String,
    pub outcome: String,
    /// `ok`, `failed`, `skipped`, or empty while it runs.
    pub outcome_code: String,
    pub detail: String,
    pub claimed_by: String,
}

/// One file error.
#[derive(Debug)]
pub struct ErrorView {
    pub file: String,
    pub line: String,
    pub column: String,
    pub message: String,
}

#[derive(Template)]
#[template(path = "jobs.html")]
pub struct JobsPage {
    pub chrome: Chrome,
    pub uptime: String,
    pub started: String,
    pub database: String,
    pub scheduler: String,
    pub queue: Option<String>,
    pub runs: Vec<RunView>,
    pub runs_error: Option<String>,
    pub errors: Vec<ErrorView>,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    tx: &'static Text,
    lang: &'static str,
    other_lang: &'static str,
    html_lang: &'static str,
    next: &'a str,
    next_encoded: String,
    error: Option<String>,
    notice: Option<String>,
    has_token: bool,
}

/// The sign-in page.
pub fn login(
    lang: Lang,
    next: &str,
    error: Option<String>,
    notice: Option<String>,
    has_token: bool,
) -> String {
    render(&LoginPage {
        tx: lang.text(),
        lang: lang.code(),
        other_lang: lang.other().code(),
        html_lang: lang.html(),
        next,
        next_encoded: crate::http::auth::urlencode(next),
        error,
        notice,
        has_token,
    })
}

/// Render a template; a formatting failure (which only a bug causes) is
/// shown as such rather than as an empty page.
pub fn render<T: Template>(t: &T) -> String {
    t.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "an ops page could not be rendered");
        format!("<!DOCTYPE html><title>error</title><p>The page could not be rendered: {e}</p>")
    })
}
