//! The ops page in Chinese and English: every visible string, in both.
//!
//! Strings with `{…}` placeholders are filled by [`fill`]; both languages
//! carry the same placeholders (a unit test checks it).

use axum::http::HeaderMap;
use axum::http::header::ACCEPT_LANGUAGE;

/// The page's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    /// The other language (for the switch link).
    pub fn other(self) -> Lang {
        match self {
            Lang::Zh => Lang::En,
            Lang::En => Lang::Zh,
        }
    }

    /// `zh-CN` for the `lang` attribute.
    pub fn html(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    pub fn text(self) -> &'static Text {
        match self {
            Lang::Zh => &ZH,
            Lang::En => &EN,
        }
    }

    /// `?lang=zh|en` when given and valid, else the first language of
    /// `Accept-Language` that is Chinese or English (zh* → Chinese), else
    /// Chinese.
    pub fn pick(query: Option<&str>, headers: &HeaderMap) -> Lang {
        if let Some(l) = query.and_then(Lang::parse) {
            return l;
        }
        let accept = headers
            .get(ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Lang::from_accept_language(accept).unwrap_or(Lang::Zh)
    }

    pub fn parse(s: &str) -> Option<Lang> {
        match s.trim().to_ascii_lowercase().as_str() {
            "zh" | "cn" | "zh-cn" | "zh-hans" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The preferred of zh/en in an `Accept-Language` value, by weight.
    fn from_accept_language(value: &str) -> Option<Lang> {
        let mut best: Option<(f32, usize, Lang)> = None;
        for (i, part) in value.split(',').enumerate() {
            let mut bits = part.split(';');
            let tag = bits.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = bits
                .find_map(|b| b.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let lang = if tag == "zh" || tag.starts_with("zh-") {
                Lang::Zh
            } else if tag == "en" || tag.starts_with("en-") {
                Lang::En
            } else {
                continue;
            };
            if q <= 0.0 {
                continue;
            }
            // Higher weight wins; on a tie, the earlier one.
            let better = match best {
                None => true,
                Some((bq, _, _)) => q > bq,
            };
            if better {
                best = Some((q, i, lang));
            }
        }
        best.map(|(_, _, l)| l)
    }
}

/// Replace `{name}` in `template` with each value.
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = template.to_owned();
    for (name, value) in values {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

macro_rules! catalog {
    ($($key:ident: $zh:expr, $en:expr;)*) => {
        /// Every visible string of the page, in one language.
        #[derive(Debug)]
        pub struct Text {
            $(pub $key: &'static str,)*
        }

        pub static ZH: Text = Text { $($key: $zh,)* };
        pub static EN: Text = Text { $($key: $en,)* };

        /// (key, Chinese, English) of every string, for the tests.
        #[cfg(test)]
        pub const ENTRIES: &[(&str, &str, &str)] = &[$((stringify!($key), $zh, $en),)*];
    };
}

catalog! {
    title: "outreach 运营", "outreach ops";
    nav_log: "发送记录", "Send log";
    nav_campaigns: "活动", "Campaigns";
    nav_jobs: "任务与文件", "Jobs and files";
    switch_to: "English", "中文";
    logout: "退出登录", "Sign out";
    signed_in_as: "已登录：{login}", "Signed in as {login}";
    times_in: "时间均为 {tz} 时区", "Times are in {tz}";
    file_errors_banner: "活动文件有 {n} 处错误，相关活动继续按上一个正确版本运行。", "{n} error(s) in campaign files; the campaigns concerned keep running their last good version.";
    see_details: "查看详情", "See details";

    // Send log
    log_heading: "发送记录", "Send log";
    log_intro: "每条消息一行，最新的在前。未发送的消息都写明原因。", "One row per message, newest first. Every message that was not sent says why.";
    queue_label: "队列", "Queue";
    queue_queued: "排队 {n}", "queued {n}";
    queue_deferred: "延后 {n}", "deferred {n}";
    queue_due: "已到期 {n}", "due now {n}";
    queue_sending: "发送中 {n}", "sending {n}";
    queue_unknown: "队列暂时无法读取", "the queue cannot be read right now";
    filter_campaign: "活动", "Campaign";
    filter_channel: "渠道", "Channel";
    filter_status: "状态", "Status";
    filter_customer: "顾客编号", "Customer id";
    filter_since: "起始日期", "From";
    filter_until: "截止日期（含）", "To (inclusive)";
    filter_any: "全部", "any";
    filter_apply: "筛选", "Filter";
    filter_clear: "清除筛选", "Clear";
    bad_filter: "筛选条件有误：{error}", "The filter is not valid: {error}";
    col_time: "时间", "Time";
    col_campaign: "活动", "Campaign";
    col_customer: "顾客", "Customer";
    col_channel: "渠道", "Channel";
    col_provider: "服务商", "Provider";
    col_address: "地址", "Address";
    col_status: "状态", "Status";
    col_reason: "原因", "Reason";
    col_attempts: "尝试次数", "Attempts";
    col_coupon: "优惠券", "Coupon";
    log_empty: "没有符合条件的消息。", "No messages match these filters.";
    page_newest: "← 最新", "← Newest";
    page_older: "更早 →", "Older →";
    log_unavailable: "发送记录暂时无法读取：{error}", "The send log cannot be read right now: {error}";

    // Statuses
    status_queued: "排队中", "queued";
    status_deferred: "延后", "deferred";
    status_sending: "发送中", "sending";
    status_sent: "已发送", "sent";
    status_delivered: "已送达", "delivered";
    status_failed: "失败", "failed";
    status_dead: "已放弃", "dead";
    status_suppressed: "未发送", "suppressed";

    // Channels
    channel_sms: "短信", "SMS";
    channel_email: "邮件", "e-mail";
    channel_wechat: "微信", "WeChat";

    // One message
    message_heading: "消息 #{id}", "Message #{id}";
    message_missing: "没有编号为 {id} 的消息。", "There is no message #{id}.";
    back_to_log: "← 返回发送记录", "← Back to the send log";
    field_detail: "详情", "Detail";
    field_provider_message_id: "服务商消息编号", "Provider message id";
    field_next_attempt: "下次尝试", "Next attempt";
    field_sent_at: "发送时间", "Sent at";
    attempts_heading: "服务商调用记录", "Provider calls";
    attempts_none: "还没有调用过服务商。", "No provider call was made.";
    col_number: "次", "#";
    col_outcome: "结果", "Outcome";
    col_code: "代码", "Code";
    retry_button: "立即重试", "Retry now";
    retry_explain: "把消息放回队列，重新计算尝试次数；仍遵守发送时段、退订和频次限制。", "Puts the message back in the queue with its attempts counted afresh; send windows, opt-outs and caps still apply.";
    retry_done: "已重新排队，将由发送程序发出。", "Queued again; the outbox worker will send it.";
    retry_refused: "这条消息无法重试：{why}", "This message cannot be retried: {why}";
    retry_forbidden: "表单已过期，请刷新页面后再试。", "The form has expired; reload the page and try again.";
    retry_failed: "重试没有记录下来：{error}", "The retry was not recorded: {error}";
    retry_not_retryable: "只有“失败”和“已放弃”的消息可以重试，这条是“{status}”", "only failed and dead messages can be retried; this one is {status}";
    retry_coupon_blocked: "它的优惠券 {code} 已{why}，重发会给顾客一张用不了的券", "its coupon {code} is {why}; sending it again would offer the customer a coupon the shop refuses";
    retry_not_found: "没有这条消息", "there is no such message";
    coupon_voided: "作废", "withdrawn";
    coupon_expired: "过期", "expired";
    coupon_redeemed: "被使用", "already redeemed";

    // Campaigns
    campaigns_heading: "活动", "Campaigns";
    campaigns_intro: "正在生效的活动（来自活动文件）及其统计。", "The campaigns in force (from their files) and their figures.";
    campaigns_none: "没有正在生效的活动。", "No campaign is in force.";
    campaign_stale: "文件有错误，继续按上一个正确版本运行", "its file has errors; running its last good version";
    campaign_disabled: "已停用（enabled: false）", "disabled (enabled: false)";
    field_trigger: "触发条件", "Trigger";
    field_schedule: "运行时间", "Schedule";
    field_next_run: "下次运行", "Next run";
    field_channels: "渠道（按优先顺序）", "Channels (in order)";
    field_priority: "优先级", "Priority";
    field_coupon: "优惠券", "Coupon";
    field_file: "文件", "File";
    no_next_run: "不再运行", "none";
    no_coupon: "无", "none";
    trigger_birthday: "生日前 {n} 天", "{n} day(s) before the birthday";
    trigger_birthday_today: "生日当天", "on the birthday";
    trigger_lapsed: "连续 {n} 天未下单", "no order for {n} days";
    trigger_lapsed_max: "连续 {n}–{max} 天未下单", "no order for {n}–{max} days";
    trigger_segment: "进入分群 {segment} 时", "on entering the segment {segment}";
    trigger_broadcast: "群发", "broadcast";
    trigger_broadcast_at: "群发，时间 {at}", "broadcast at {at}";
    coupon_amount_off: "减 {value} 元", "¥{value} off";
    coupon_percent_off: "{value}% 折扣", "{value}% off";
    coupon_free_item: "赠品：{value}", "free item: {value}";
    coupon_min_spend: "满 {min} 元可用", "from ¥{min}";
    coupon_valid_days: "有效期 {n} 天", "valid {n} days";
    stat_issued: "发券", "Issued";
    stat_sent: "已发送", "Sent";
    stat_delivered: "已送达", "Delivered";
    stat_failed: "失败", "Failed";
    stat_suppressed: "未发送", "Suppressed";
    stat_waiting: "待发送", "Waiting";
    stat_redeemed: "已核销", "Redeemed";
    stat_revenue: "核销带来收入", "Revenue";
    stat_rate: "核销率", "Redemption rate";
    stats_as_of: "统计截至 {at}（最多缓存 {secs} 秒）", "Figures as of {at} (cached for up to {secs} s)";
    stats_unavailable: "统计暂时无法读取：{error}", "The figures cannot be read right now: {error}";
    stats_pending: "统计正在计算，本页几秒后自动刷新。", "The figures are being computed; this page reloads itself in a few seconds.";
    suppressed_by_reason: "未发送原因", "Not sent, by reason";
    campaigns_gone: "已不在生效但有发送记录的活动", "Campaigns no longer in force that have messages";
    show_messages: "查看发送记录", "Show its messages";

    // Jobs and files
    jobs_heading: "任务与文件", "Jobs and files";
    health_heading: "运行状态", "Health";
    health_uptime: "已运行", "Up for";
    health_database: "数据库", "Database";
    health_version: "版本", "Version";
    health_started: "启动时间", "Started at";
    runs_heading: "最近的任务运行", "Recent job runs";
    runs_none: "还没有任务运行记录。", "No job has run yet.";
    runs_unavailable: "任务记录暂时无法读取：{error}", "The job runs cannot be read right now: {error}";
    col_job: "任务", "Job";
    col_scheduled_for: "计划时间", "Scheduled for";
    col_started: "开始", "Started";
    col_finished: "结束", "Finished";
    col_duration: "用时", "Duration";
    col_claimed_by: "执行进程", "Run by";
    run_unfinished: "进行中", "running";
    run_ok: "成功", "ok";
    run_failed: "失败", "failed";
    run_skipped: "跳过", "skipped";
    run_taken_over: "{by}（第 {n} 次，接手中断的运行）", "{by} (attempt {n}, taken over)";
    health_scheduler: "调度器", "Scheduler";
    scheduler_alive: "运行中，上一轮 {at}", "alive; last pass {at}";
    scheduler_starting: "刚启动", "starting";
    scheduler_stalled: "没有响应（上一轮 {at}）", "not responding (last pass {at})";
    scheduler_absent: "本进程没有运行调度器", "no scheduler runs in this process";
    errors_heading: "活动文件错误", "Campaign file errors";
    errors_none: "所有活动、模板和分群文件都没有错误。", "Every campaign, template and segment file is fine.";
    col_file: "文件", "File";
    col_line: "行", "Line";
    col_column: "列", "Column";
    col_message: "说明", "Message";

    // Sign in
    login_heading: "登录", "Sign in";
    login_intro: "请输入配置中的访问令牌（http.token）。", "Enter the access token from the configuration (http.token).";
    login_token: "访问令牌", "Token";
    login_name: "您的名字（记入重试等操作的审计记录，可不填）", "Your name (kept with retries and other actions; optional)";
    login_button: "登录", "Sign in";
    login_wrong: "令牌不正确。", "That token is not right.";
    login_not_needed: "未配置访问令牌，本机访问无需登录。", "No token is configured; nothing to sign in to on loopback.";
    logged_out: "已退出登录。", "You are signed out.";
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn placeholders(s: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = s;
        while let Some(start) = rest.find('{') {
            let Some(end) = rest[start..].find('}') else {
                break;
            };
            out.push(rest[start..start + end + 1].to_owned());
            rest = &rest[start + end + 1..];
        }
        out.sort();
        out
    }

    #[test]
    fn every_string_exists_in_both_languages_with_the_same_placeholders() {
        let mut seen = std::collections::BTreeSet::new();
        for (key, zh, en) in ENTRIES {
            assert!(seen.insert(*key), "{key} twice");
            assert!(!zh.trim().is_empty(), "{key}: no Chinese");
            assert!(!en.trim().is_empty(), "{key}: no English");
            assert_eq!(placeholders(zh), placeholders(en), "{key}");
        }
        // The Chinese strings are Chinese (a few are names and symbols).
        let latin_ok = ["switch_to", "title"];
        for (key, zh, en) in ENTRIES {
            if latin_ok.contains(key) {
                continue;
            }
            let cjk = zh.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
            assert!(cjk, "{key}: {zh:?} has no Chinese");
            assert_ne!(zh, en, "{key} is not translated");
        }
    }

    #[test]
    fn language_from_query_then_accept_language() {
        let mut h = HeaderMap::new();
        assert_eq!(Lang::pick(None, &h), Lang::Zh);
        h.insert(ACCEPT_LANGUAGE, HeaderValue::from_static("en-US,en;q=0.9"));
        assert_eq!(Lang::pick(None, &h), Lang::En);
        assert_eq!(Lang::pick(Some("zh"), &h), Lang::Zh);
        assert_eq!(Lang::pick(Some("xx"), &h), Lang::En);
        h.insert(
            ACCEPT_LANGUAGE,
            HeaderValue::from_static("fr;q=1, zh-TW;q=0.8, en;q=0.5"),
        );
        assert_eq!(Lang::pick(None, &h), Lang::Zh);
        h.insert(
            ACCEPT_LANGUAGE,
            HeaderValue::from_static("zh-CN;q=0.3, en-GB;q=0.7"),
        );
        assert_eq!(Lang::pick(None, &h), Lang::En);
        h.insert(ACCEPT_LANGUAGE, HeaderValue::from_static("de, fr"));
        assert_eq!(Lang::pick(None, &h), Lang::Zh);
        assert_eq!(Lang::Zh.other(), Lang::En);
    }

    #[test]
    fn fill_replaces_each_placeholder() {
        assert_eq!(fill(EN.message_heading, &[("id", "42")]), "Message #42");
        assert_eq!(
            fill(ZH.trigger_lapsed_max, &[("n", "30"), ("max", "180")]),
            "连续 30–180 天未下单"
        );
    }
}
