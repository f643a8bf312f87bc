//! Why a message was not sent, in words: the send log's `reason` codes
//! (written by campaign runs, the outbox worker and receipts) explained in
//! Chinese and English. Provider codes that are only numbers (WeChat's
//! `errcode`, Twilio's error codes, SMTP replies) are read with the
//! message's provider.

use super::i18n::Lang;

/// (code, Chinese, English).
type Entry = (&'static str, &'static str, &'static str);

/// Reasons outreach itself writes.
const OWN: &[Entry] = &[
    // Campaign runs: suppressed, never sent.
    (
        "no_consent",
        "顾客没有同意接收该渠道的营销消息（未同意或未知都不发）",
        "the customer has not opted in to any of the campaign's channels (unknown counts as no)",
    ),
    ("opted_out", "该地址已退订", "the address opted out"),
    (
        "undeliverable",
        "服务商报告该地址无法送达（空号、停机、拉黑等），已列入抑制名单",
        "a provider reported the address undeliverable (unknown number, blocked, …); it is on the suppression list",
    ),
    (
        "no_address",
        "顾客在活动的渠道上都没有联系方式",
        "the customer has no address on any of the campaign's channels",
    ),
    (
        "invalid_address",
        "联系方式无效（号码或邮箱格式不对，或服务商拒收）",
        "the address is not valid (malformed, or refused by the provider)",
    ),
    (
        "capped",
        "触发了频次上限：近期营销消息已达上限，或被当天优先级更高的活动替换",
        "frequency cap: the customer had enough marketing messages lately, or a higher-priority campaign took the day's place",
    ),
    (
        "template_error",
        "该顾客的消息模板渲染失败",
        "the template could not be rendered for this customer",
    ),
    (
        "too_late",
        "错过发送时间太久（超过活动的 catch_up），不再补发",
        "it came due too long ago (beyond the campaign's catch_up) to be sent now",
    ),
    // The outbox worker: deferred, will be tried again.
    (
        "send_window",
        "不在发送时段内，等时段开始再发",
        "outside the send window; waits until it opens",
    ),
    (
        "retry",
        "服务商暂时出错，稍后按退避时间重试",
        "a transient provider error; retried after a backoff",
    ),
    (
        "rate_limited",
        "服务商限流，按其要求等待后再发",
        "the provider's rate limit; waits as long as it says",
    ),
    (
        "outcome_unknown",
        "请求已发出但没有收到答复，先等待回执再决定是否重发",
        "the request left but no answer came; waiting for a delivery receipt before sending again",
    ),
    (
        "failover",
        "服务商不可用，交给该渠道的下一个服务商",
        "the provider is down; handed to the channel's next provider",
    ),
    (
        "no_provider",
        "该渠道没有配置服务商",
        "no provider is set up for the channel",
    ),
    (
        "bad_payload",
        "消息内容无法读取，无法发送",
        "the rendered message cannot be read, so it cannot be sent",
    ),
    // Transport and provider-independent codes of the clients.
    (
        "connect",
        "连接不上服务商",
        "could not connect to the provider",
    ),
    (
        "timeout",
        "服务商在超时前没有答复（可能已收下消息）",
        "no answer within the timeout (the provider may have taken it)",
    ),
    (
        "http",
        "与服务商的连接中断",
        "the connection to the provider broke",
    ),
    (
        "request",
        "请求无法构造（请检查 base_url）",
        "the request could not be built (check base_url)",
    ),
    (
        "bad_response",
        "服务商的答复无法识别",
        "the provider's answer could not be read",
    ),
    (
        "template_param",
        "短信模板参数无法生成",
        "the SMS template parameters could not be built",
    ),
    (
        "wrong_channel",
        "消息内容与渠道不符",
        "the message does not belong to this channel",
    ),
    ("message", "邮件无法生成", "the e-mail could not be built"),
    (
        "tls",
        "与邮件服务器的 TLS 连接失败",
        "the TLS connection to the mail server failed",
    ),
    (
        "client",
        "邮件客户端配置有误",
        "the mail client is misconfigured",
    ),
    (
        "shutdown",
        "邮件服务器关闭了连接",
        "the mail server closed the connection",
    ),
    (
        "response",
        "邮件服务器的答复无法识别",
        "the mail server's answer could not be read",
    ),
    (
        "network",
        "与邮件服务器的网络连接出错",
        "a network error talking to the mail server",
    ),
    (
        "io",
        "写入本地发件箱文件失败",
        "the local outbox file could not be written",
    ),
    (
        "sender",
        "本地发件箱不可用",
        "the local outbox is not usable",
    ),
    (
        "token_rejected",
        "微信拒绝了访问令牌",
        "WeChat rejected the access token",
    ),
    (
        "token_reply",
        "获取微信访问令牌失败",
        "the WeChat access token could not be fetched",
    ),
];

/// Codes of named providers (Aliyun, Tencent Cloud, WeChat receipts).
const PROVIDER: &[Entry] = &[
    (
        "isv.MOBILE_NUMBER_ILLEGAL",
        "阿里云：手机号码格式错误",
        "Aliyun: the mobile number is not valid",
    ),
    (
        "isv.BUSINESS_LIMIT_CONTROL",
        "阿里云：触发号码发送频率限制，次日再发",
        "Aliyun: the number's sending limit was reached; next day",
    ),
    (
        "isv.DAY_LIMIT_CONTROL",
        "阿里云：触发日发送上限，次日再发",
        "Aliyun: the daily limit was reached; next day",
    ),
    (
        "isv.MONTH_LIMIT_CONTROL",
        "阿里云：触发月发送上限",
        "Aliyun: the monthly limit was reached",
    ),
    (
        "isv.AMOUNT_NOT_ENOUGH",
        "阿里云：账户余额不足",
        "Aliyun: the account balance is too low",
    ),
    (
        "isv.OUT_OF_SERVICE",
        "阿里云：业务已停机",
        "Aliyun: the service is suspended",
    ),
    (
        "isv.BLACK_KEY_CONTROL_LIMIT",
        "阿里云：内容含有禁止的关键字",
        "Aliyun: the text contains a forbidden keyword",
    ),
    (
        "isv.SMS_CONTENT_ILLEGAL",
        "阿里云：短信内容违规",
        "Aliyun: the text is not allowed",
    ),
    (
        "isv.SMS_TEMPLATE_ILLEGAL",
        "阿里云：短信模板不存在或未通过审核",
        "Aliyun: the SMS template does not exist or is not approved",
    ),
    (
        "isv.SMS_SIGNATURE_ILLEGAL",
        "阿里云：短信签名不存在或未通过审核",
        "Aliyun: the SMS signature does not exist or is not approved",
    ),
    (
        "isv.TEMPLATE_MISSING_PARAMETERS",
        "阿里云：模板缺少参数",
        "Aliyun: the template is missing parameters",
    ),
    (
        "isv.TEMPLATE_PARAMS_ILLEGAL",
        "阿里云：模板参数不合规",
        "Aliyun: the template parameters are not allowed",
    ),
    (
        "FailedOperation.PhoneNumberInBlacklist",
        "腾讯云：号码在黑名单中（用户退订过）",
        "Tencent Cloud: the number is on the blocklist (it unsubscribed)",
    ),
    (
        "InvalidParameterValue.IncorrectPhoneNumber",
        "腾讯云：手机号码格式错误",
        "Tencent Cloud: the mobile number is not valid",
    ),
    (
        "FailedOperation.PhoneNumberParseFail",
        "腾讯云：号码无法解析",
        "Tencent Cloud: the number cannot be parsed",
    ),
    (
        "FailedOperation.InsufficientBalanceInSmsPackage",
        "腾讯云：短信套餐包余量不足",
        "Tencent Cloud: the SMS package is used up",
    ),
    (
        "FailedOperation.MarketingSendTimeConstraint",
        "腾讯云：营销短信只能在 8:00–22:00 发送",
        "Tencent Cloud: marketing SMS only between 08:00 and 22:00",
    ),
    (
        "LimitExceeded.PhoneNumberDailyLimit",
        "腾讯云：该号码当日发送量已达上限",
        "Tencent Cloud: the number's daily limit was reached",
    ),
    (
        "failed:user block",
        "微信：用户拒收本公众号消息",
        "WeChat: the user refuses messages from this account",
    ),
    (
        "failed: system failed",
        "微信：系统原因发送失败",
        "WeChat: not delivered (WeChat system failure)",
    ),
    ("DELIVRD", "已送达", "delivered"),
];

/// Number-only codes, by provider.
const NUMBERED: &[(&str, Entry)] = &[
    (
        "wechat",
        (
            "43101",
            "微信：用户未订阅该消息（拒收）",
            "WeChat: the user has not subscribed to (or refused) the message",
        ),
    ),
    (
        "wechat",
        (
            "43004",
            "微信：用户未关注公众号",
            "WeChat: the user does not follow the account",
        ),
    ),
    (
        "wechat",
        (
            "40003",
            "微信：OpenID 无效",
            "WeChat: the OpenID is not valid",
        ),
    ),
    (
        "wechat",
        (
            "45009",
            "微信：接口调用已达当日上限，次日再发",
            "WeChat: the daily API quota was reached; next day",
        ),
    ),
    (
        "twilio",
        (
            "21610",
            "Twilio：收件人回复过 STOP",
            "Twilio: the recipient replied STOP",
        ),
    ),
    (
        "twilio",
        (
            "21211",
            "Twilio：号码无效",
            "Twilio: the number is not valid",
        ),
    ),
    (
        "twilio",
        (
            "30003",
            "运营商：手机无法接通",
            "carrier: the handset is unreachable",
        ),
    ),
    (
        "twilio",
        (
            "30005",
            "运营商：号码不存在",
            "carrier: unknown destination",
        ),
    ),
    (
        "twilio",
        (
            "30006",
            "运营商：固定电话，无法接收短信",
            "carrier: a landline, which cannot receive SMS",
        ),
    ),
    (
        "twilio",
        ("30007", "运营商：被过滤拦截", "carrier: filtered as spam"),
    ),
];

/// What a reason code means, in `lang`. Codes we do not know are named as
/// the provider's, with the code (the message's detail has its words).
pub fn explain(code: &str, provider: Option<&str>, lang: Lang) -> String {
    let pick = |e: &Entry| match lang {
        Lang::Zh => e.1.to_owned(),
        Lang::En => e.2.to_owned(),
    };
    if let Some(e) = OWN.iter().chain(PROVIDER).find(|e| e.0 == code) {
        return pick(e);
    }
    if let Some((_, e)) = NUMBERED
        .iter()
        .find(|(p, e)| Some(*p) == provider && e.0 == code)
    {
        return pick(e);
    }
    if let Some(status) = code.strip_prefix("http ") {
        return match lang {
            Lang::Zh => format!("服务商返回 HTTP {status}"),
            Lang::En => format!("the provider answered HTTP {status}"),
        };
    }
    if provider == Some("smtp") && code.len() == 3 && code.chars().all(|c| c.is_ascii_digit()) {
        return match lang {
            Lang::Zh => format!("邮件服务器拒绝（SMTP {code}）"),
            Lang::En => format!("the mail server refused it (SMTP {code})"),
        };
    }
    match (lang, provider) {
        (Lang::Zh, Some(p)) => format!("服务商 {p} 返回的代码，详见消息详情"),
        (Lang::En, Some(p)) => format!("a code of the provider {p}; see the message's detail"),
        (Lang::Zh, None) => "详见消息详情".to_owned(),
        (Lang::En, None) => "see the message's detail".to_owned(),
    }
}

/// Every reason code outreach itself writes (for the tests).
#[cfg(test)]
fn own_codes() -> Vec<&'static str> {
    use crate::campaigns::outbox::Reason;
    use crate::dispatch::outcome::reason;
    // A match, so a new campaign reason cannot be added without words.
    let campaign = |r: Reason| match r {
        Reason::NoConsent
        | Reason::OptedOut
        | Reason::Undeliverable
        | Reason::NoAddress
        | Reason::InvalidAddress
        | Reason::Capped
        | Reason::TemplateError
        | Reason::TooLate
        | Reason::SendWindow => r.as_str(),
    };
    vec![
        campaign(Reason::NoConsent),
        campaign(Reason::OptedOut),
        campaign(Reason::Undeliverable),
        campaign(Reason::NoAddress),
        campaign(Reason::InvalidAddress),
        campaign(Reason::Capped),
        campaign(Reason::TemplateError),
        campaign(Reason::TooLate),
        campaign(Reason::SendWindow),
        reason::RETRY,
        reason::RATE_LIMITED,
        reason::OUTCOME_UNKNOWN,
        reason::FAILOVER,
        reason::SEND_WINDOW,
        reason::BAD_PAYLOAD,
        reason::NO_PROVIDER,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_outreach_writes_has_words_in_both_languages() {
        for code in own_codes() {
            let e = OWN
                .iter()
                .find(|e| e.0 == code)
                .unwrap_or_else(|| panic!("{code} has no words"));
            assert!(!e.1.is_empty() && !e.2.is_empty(), "{code}");
        }
    }

    #[test]
    fn no_code_is_listed_twice_and_each_has_both_languages() {
        let mut seen = std::collections::BTreeSet::new();
        for e in OWN.iter().chain(PROVIDER) {
            assert!(seen.insert(e.0), "{} twice", e.0);
            assert!(!e.1.is_empty() && !e.2.is_empty(), "{}", e.0);
            assert_ne!(e.1, e.2, "{}", e.0);
        }
        let mut seen = std::collections::BTreeSet::new();
        for (p, e) in NUMBERED {
            assert!(seen.insert((p, e.0)), "{p} {} twice", e.0);
            assert!(!e.1.is_empty() && !e.2.is_empty(), "{}", e.0);
        }
    }

    #[test]
    fn provider_codes_and_unknown_codes() {
        assert_eq!(
            explain("capped", None, Lang::En),
            "frequency cap: the customer had enough marketing messages lately, or a higher-priority campaign took the day's place"
        );
        assert_eq!(explain("opted_out", None, Lang::Zh), "该地址已退订");
        assert_eq!(
            explain("43101", Some("wechat"), Lang::En),
            "WeChat: the user has not subscribed to (or refused) the message"
        );
        // The same number from another provider is not WeChat's.
        assert!(explain("43101", Some("twilio"), Lang::En).contains("provider twilio"));
        assert_eq!(
            explain("http 503", Some("aliyun"), Lang::En),
            "the provider answered HTTP 503"
        );
        assert_eq!(
            explain("550", Some("smtp"), Lang::Zh),
            "邮件服务器拒绝（SMTP 550）"
        );
        assert_eq!(
            explain("isv.WHATEVER", Some("aliyun"), Lang::En),
            "a code of the provider aliyun; see the message's detail"
        );
    }
}
