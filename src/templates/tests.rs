//! Tests of the templates module: loading, every rule with its position,
//! the variable catalogue, rendering and the shipped templates.

use std::path::{Path, PathBuf};

use super::*;

/// Write `files` into a fresh folder and load it.
fn load(files: &[(&str, &str)]) -> (tempfile::TempDir, TemplateSet, Vec<FileError>) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let (set, errors) = TemplateSet::load(dir.path());
    (dir, set, errors)
}

/// The only load error of one file.
fn load_error(file: &str, text: &str) -> FileError {
    let (dir, set, errors) = load(&[(file, text)]);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(set.names(), Vec::<String>::new());
    let e = errors.into_iter().next().unwrap();
    assert_eq!(e.file, dir.path().join(file));
    e
}

fn at(e: &FileError) -> (u64, u64) {
    (e.line, e.column)
}

fn valid() -> String {
    VARIABLES.join(", ")
}

const SMS: &str = r#"kind: marketing
text: "{{customer.name}}会员您好：{{coupon.value_text}}已到账，{{coupon.expires_on_text}}前到店使用。拒收请回复R"
aliyun:
  template_code: SMS_468101234
  params: { name: "{{customer.name}}", coupon: "{{coupon.value_text}}" }
tencent:
  template_id: "2046123"
  params: ["{{customer.name}}", "{{coupon.value_text}}"]
"#;

const EMAIL: &str = r#"subject: "{{customer.name}}，您的{{coupon.value_text}}已到账"
html: |
  <!DOCTYPE html>
  <html lang="zh-CN"><body>
  <p>{{customer.name}}会员您好：</p>
  <p><a href="{{unsubscribe_url}}">退订</a></p>
  </body></html>
text: |
  {{customer.name}}会员您好：
  退订：{{unsubscribe_url}}
"#;

const WECHAT: &str = r#"kind: template
template_id: ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY
page: pages/coupon/index?code={{coupon.code}}
data:
  thing1: "{{coupon.value_text}}"
  character_string2: "{{coupon.code}}"
  time3: "{{coupon.expires_on_text}}"
"#;

// ---------------------------------------------------------------- loading

#[test]
fn each_file_kind_loads_and_renders() {
    let (_dir, set, errors) = load(&[
        ("birthday.sms.yaml", SMS),
        ("birthday.email.yaml", EMAIL),
        ("birthday.wechat.yaml", WECHAT),
        ("README.md", "# not a template"),
    ]);
    assert_eq!(errors, vec![]);
    assert_eq!(set.names(), vec!["birthday".to_owned()]);
    for c in CHANNELS {
        assert!(set.has("birthday", c));
        assert_eq!(set.check("birthday", c, true), vec![]);
        assert!(set.path_of("birthday", c).is_some());
    }
    assert!(!set.has("winback", Channel::Sms));
    let ctx = RenderContext::sample(true);

    let sms = set.render("birthday", Channel::Sms, &ctx).unwrap();
    assert_eq!(
        sms,
        Rendered::Sms {
            kind: SmsKind::Marketing,
            text: "王小明会员您好：10元代金券已到账，12月21日前到店使用。拒收请回复R".into(),
            aliyun: Some(AliyunSms {
                template_code: "SMS_468101234".into(),
                params: [("coupon", "10元代金券"), ("name", "王小明")]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            }),
            tencent: Some(TencentSms {
                template_id: "2046123".into(),
                params: vec!["王小明".into(), "10元代金券".into()],
            }),
        }
    );

    let Rendered::Email {
        subject,
        html,
        text,
    } = set.render("birthday", Channel::Email, &ctx).unwrap()
    else {
        panic!("not an email")
    };
    assert_eq!(subject, "王小明，您的10元代金券已到账");
    assert!(html.starts_with("<!DOCTYPE html>\n"), "{html}");
    assert!(html.contains("<p>王小明会员您好：</p>"), "{html}");
    assert!(
        html.contains(r#"<a href="https://shop.example.com/u/6f1c2a9e">"#),
        "{html}"
    );
    assert_eq!(
        text,
        "王小明会员您好：\n退订：https://shop.example.com/u/6f1c2a9e\n"
    );

    let wechat = set.render("birthday", Channel::Wechat, &ctx).unwrap();
    assert_eq!(
        wechat,
        Rendered::Wechat {
            kind: WechatKind::Template,
            template_id: "ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY".into(),
            page: Some("pages/coupon/index?code=BDAY7K3M9Q".into()),
            url: None,
            data: [
                ("character_string2", "BDAY7K3M9Q"),
                ("thing1", "10元代金券"),
                ("time3", "12月21日"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        }
    );
    assert_eq!(wechat.channel(), Channel::Wechat);
}

#[test]
fn file_names() {
    let (dir, set, errors) = load(&[
        ("birthday.mail.yaml", EMAIL),
        ("birthday.yaml", SMS),
        ("winback.sms.yaml", SMS),
        ("winback.sms.yml", SMS),
        (".hidden.sms.yaml", "junk: ["),
        ("winback.sms.yaml~", "junk: ["),
        ("winback.sms.yaml.swp", "junk: ["),
        ("x.sms.tmp", "junk: ["),
        ("notes.txt", "junk"),
    ]);
    let messages: Vec<(PathBuf, String)> =
        errors.into_iter().map(|e| (e.file, e.message)).collect();
    assert_eq!(
        messages,
        vec![
            (
                dir.path().join("birthday.mail.yaml"),
                "unknown channel `mail` in the file name birthday.mail.yaml: template files are named NAME.sms.yaml, NAME.email.yaml or NAME.wechat.yaml; did you mean birthday.email.yaml?".to_owned()
            ),
            (
                dir.path().join("birthday.yaml"),
                "birthday.yaml is not a template file name: template files are named NAME.sms.yaml, NAME.email.yaml or NAME.wechat.yaml, e.g. birthday.sms.yaml".to_owned()
            ),
            (
                dir.path().join("winback.sms.yml"),
                format!(
                    "template `winback` for sms is already defined by {}; keep one of the two files",
                    dir.path().join("winback.sms.yaml").display()
                )
            ),
        ]
    );
    assert_eq!(set.names(), vec!["winback".to_owned()]);
    assert_eq!(set.dir(), dir.path());
    assert_eq!(super::channel_alias("wehcat"), Some("wechat"));
    assert_eq!(super::channel_alias("weixin"), Some("wechat"));
    assert_eq!(super::channel_alias("letter"), None);
}

#[test]
fn a_missing_folder_is_one_error() {
    let (set, errors) = TemplateSet::load(Path::new("/nonexistent/templates"));
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .message
            .starts_with("cannot read the templates folder: "),
        "{:?}",
        errors[0]
    );
    assert!(set.names().is_empty());
    assert!(TemplateSet::empty().names().is_empty());
}

#[test]
fn unknown_keys_and_empty_files() {
    let e = load_error(
        "a.sms.yaml",
        "text: \"您好。拒收请回复R\"\nalyun:\n  template_code: SMS_1\n",
    );
    assert_eq!(at(&e), (2, 1));
    assert!(e.message.starts_with("unknown field `alyun`"), "{e}");

    let e = load_error("a.sms.yaml", "# nothing yet\n");
    assert_eq!(at(&e), (0, 0));
    assert_eq!(
        e.message,
        "the file is empty; a sms template needs `text:` (see templates/README.md)"
    );

    let e = load_error("a.sms.yaml", "kind: promo\ntext: 您好\n");
    assert_eq!(at(&e), (1, 7));
    assert!(e.message.contains("unknown variant `promo`"), "{e}");
}

#[test]
fn a_file_that_failed_reports_its_errors_at_check_time() {
    let (_dir, set, errors) = load(&[("a.sms.yaml", "# x\ntext: 您好\n")]);
    assert_eq!(errors.len(), 1);
    assert!(!set.has("a", Channel::Sms));
    assert!(set.path_of("a", Channel::Sms).is_some());
    assert_eq!(set.check("a", Channel::Sms, true), errors);
}

#[test]
fn check_of_a_missing_template_suggests_names() {
    let (dir, set, _) = load(&[("birthday.sms.yaml", SMS)]);
    let e = set.check("birthdy", Channel::Sms, true);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].file, dir.path().join("birthdy.sms.yaml"));
    assert_eq!(
        e[0].message,
        format!(
            "no sms template `birthdy`: {} does not exist; did you mean `birthday`?",
            dir.path().join("birthdy.sms.yaml").display()
        )
    );
    let e = set.check("birthday", Channel::Email, true);
    assert!(
        e[0].message.ends_with("; `birthday` has only sms"),
        "{:?}",
        e
    );
    let r = set.render("birthdy", Channel::Sms, &RenderContext::sample(true));
    assert_eq!(
        r.unwrap_err().to_string(),
        "no sms template named `birthdy` is loaded (expected a file birthdy.sms.yaml)"
    );
}

#[test]
fn a_broken_file_does_not_stop_the_others() {
    let (_d, set, errors) = load(&[
        (
            "a.sms.yaml",
            "text: \"{{customer.nmae}}会员您好。拒收请回复R\"\n",
        ),
        ("a.email.yaml", EMAIL),
        ("b.sms.yaml", SMS),
    ]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(!set.has("a", Channel::Sms));
    assert!(set.has("a", Channel::Email));
    assert!(set.has("b", Channel::Sms));
    assert_eq!(set.names(), ["a", "b"]);
}

#[test]
fn a_template_set_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<TemplateSet>();
}

// ---------------------------------------------------------------- SMS rules

#[test]
fn sms_text_is_required() {
    let e = load_error(
        "a.sms.yaml",
        "# comment\nkind: marketing\naliyun: { template_code: SMS_1 }\n",
    );
    assert_eq!(at(&e), (2, 1));
    assert_eq!(
        e.message,
        "`text` is missing: the full message text, used for previews and the `file` provider"
    );
}

#[test]
fn marketing_sms_must_end_with_the_opt_out_text() {
    let e = load_error(
        "a.sms.yaml",
        "text: \"{{customer.name}}会员您好，生日快乐！\"\n",
    );
    // Just after the last character of the text.
    assert_eq!(at(&e), (1, 35));
    assert_eq!(
        e.message,
        "a marketing SMS must end with exactly `拒收请回复R` (the opt-out text Aliyun and Tencent require); append it: `…您好，生日快乐！拒收请回复R` (or set `kind: notification` for a non-marketing text)"
    );

    let e = load_error("a.sms.yaml", "text: 会员您好，生日快乐！拒收请回复R。\n");
    assert_eq!(at(&e), (1, 17));
    assert_eq!(
        e.message,
        "a marketing SMS must end with exactly `拒收请回复R`, but `。` follows it; move `拒收请回复R` to the very end"
    );

    let e = load_error("a.sms.yaml", "text: 会员您好，生日快乐！回T退订\n");
    assert_eq!(at(&e), (1, 17));
    assert_eq!(
        e.message,
        "`回T退订` is the old opt-out text; Aliyun and Tencent now require marketing SMS to end with exactly `拒收请回复R`: replace it"
    );

    // Trailing whitespace of a block scalar does not count.
    let (_d, set, errors) = load(&[("a.sms.yaml", "text: |\n  会员您好。拒收请回复R\n\n")]);
    assert_eq!(errors, vec![]);
    let Rendered::Sms { text, .. } = set
        .render("a", Channel::Sms, &RenderContext::sample(true))
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(text, "会员您好。拒收请回复R");
}

#[test]
fn notification_sms_must_not_carry_the_opt_out_text() {
    let e = load_error(
        "a.sms.yaml",
        "kind: notification\ntext: 您的订单已备好，请到店取餐。拒收请回复R\n",
    );
    assert_eq!(at(&e), (2, 21));
    assert_eq!(
        e.message,
        "a notification SMS must not contain `拒收请回复R` (providers reject notification templates that carry the marketing opt-out text); remove it, or set `kind: marketing`"
    );
    let (_d, _set, errors) = load(&[(
        "a.sms.yaml",
        "kind: notification\ntext: 您的订单已备好，请到店取餐。\n",
    )]);
    assert_eq!(errors, vec![]);
}

#[test]
fn sms_must_not_carry_the_signature_brackets() {
    let e = load_error(
        "a.sms.yaml",
        "text: \"【老街豆浆】会员您好。拒收请回复R\"\n",
    );
    assert_eq!(at(&e), (1, 8));
    assert_eq!(
        e.message,
        "text must not contain 【 or 】: the shop's signature is passed to the provider as its sign name (shop.signature) and the provider adds 【…】 itself; remove `【老街豆浆】`"
    );
    let e = load_error(
        "a.sms.yaml",
        "text: 会员您好。拒收请回复R\naliyun:\n  template_code: SMS_1\n  params: { shop: \"【{{shop.name}}】\" }\n",
    );
    assert_eq!(at(&e), (4, 20));
    assert!(
        e.message
            .starts_with("aliyun.params.shop must not contain 【 or 】"),
        "{e}"
    );
}

#[test]
fn provider_codes_must_not_be_empty() {
    let e = load_error(
        "a.sms.yaml",
        "text: 会员您好。拒收请回复R\naliyun:\n  template_code: \"\"\n",
    );
    assert_eq!(at(&e), (3, 19));
    assert_eq!(
        e.message,
        "aliyun.template_code is empty; write the approved id, e.g. SMS_468101234"
    );
    let e = load_error(
        "a.sms.yaml",
        "text: 会员您好。拒收请回复R\ntencent:\n  template_id: \" \"\n  params: []\n",
    );
    assert_eq!(at(&e), (3, 17));
    assert!(e.message.starts_with("tencent.template_id is empty"), "{e}");
    let e = load_error(
        "a.sms.yaml",
        "text: 会员您好。拒收请回复R\ntencent:\n  params: []\n",
    );
    assert_eq!(e.line, 3);
    assert!(e.message.starts_with("missing field `template_id`"), "{e}");
}

#[test]
fn provider_params_are_templates() {
    let e = load_error(
        "a.sms.yaml",
        "text: 会员您好。拒收请回复R\ntencent:\n  template_id: \"1\"\n  params: [\"{{customer.name}}\", \"{{coupon.valu}}\"]\n",
    );
    assert_eq!(at(&e), (4, 34));
    assert_eq!(
        e.message,
        format!(
            "unknown variable `coupon.valu` in a.sms.yaml tencent.params {{2}}; did you mean `coupon.value`? Valid: {}",
            valid()
        )
    );
}

// ---------------------------------------------------------------- email rules

#[test]
fn email_parts_are_required() {
    let e = load_error("a.email.yaml", "subject: 您好\nhtml: <p>x</p>\n");
    assert_eq!(at(&e), (1, 1));
    assert_eq!(
        e.message,
        "`text` is missing: the plain-text body, for mail readers without HTML"
    );
}

#[test]
fn email_bodies_must_show_the_unsubscribe_link() {
    let (_d, _s, errors) = load(&[(
        "a.email.yaml",
        "subject: 您好\nhtml: |\n  <p>{{customer.name}}</p>\ntext: \"{{customer.name}} {{#if unsubscribe_url}}x{{/if}}\"\n",
    )]);
    let got: Vec<((u64, u64), String)> =
        errors.iter().map(|e| (at(e), e.message.clone())).collect();
    assert_eq!(
        got,
        vec![
            (
                (3, 3),
                "html must show an unsubscribe link with {{unsubscribe_url}}, e.g. <a href=\"{{unsubscribe_url}}\">退订</a>: bulk mail must carry a visible unsubscribe link".to_owned()
            ),
            (
                (4, 8),
                "text must show an unsubscribe link with {{unsubscribe_url}}, e.g. 退订：{{unsubscribe_url}}: bulk mail must carry a visible unsubscribe link".to_owned()
            ),
        ]
    );
}

#[test]
fn triple_braces_are_refused_in_email_html_only() {
    let e = load_error(
        "a.email.yaml",
        "subject: \"{{{customer.name}}}\"\nhtml: |\n  <p>{{{customer.name}}}</p>\n  <a href=\"{{unsubscribe_url}}\">退订</a>\ntext: \"{{{customer.name}}} {{unsubscribe_url}}\"\n",
    );
    assert_eq!(at(&e), (3, 6));
    assert_eq!(
        e.message,
        "`{{{customer.name}}}` in a.email.yaml html inserts the value without HTML escaping; write `{{customer.name}}` so that a customer named <b> shows as <b>"
    );
}

#[test]
fn subject_is_one_line() {
    let e = load_error(
        "a.email.yaml",
        "subject: \"您好\\n再见\"\nhtml: \"{{unsubscribe_url}}\"\ntext: \"{{unsubscribe_url}}\"\n",
    );
    assert_eq!(at(&e), (1, 13));
    assert_eq!(e.message, "subject must be a single line");
}

// ---------------------------------------------------------------- WeChat rules

#[test]
fn wechat_structure() {
    let e = load_error(
        "a.wechat.yaml",
        "kind: subscribe\ntemplate_id: abc\nurl: https://example.com\ndata: { thing1: x }\n",
    );
    assert_eq!(at(&e), (3, 6));
    assert_eq!(
        e.message,
        "url is only for official-account template messages (kind: template); a subscribe message opens its mini-program `page`"
    );
    let e = load_error(
        "a.wechat.yaml",
        "template_id: abc\ndata:\n  thing1: x\n  remark: 欢迎再次光临\n",
    );
    assert_eq!(at(&e), (4, 11));
    assert_eq!(
        e.message,
        "a.wechat.yaml data: data.remark: WeChat no longer shows the `first` and `remark` fields (since 2023-05-04); remove it"
    );
    let e = load_error("a.wechat.yaml", "template_id: abc\ndata: {}\n");
    assert_eq!(at(&e), (2, 7));
    assert!(e.message.starts_with("data is empty"), "{e}");
    let e = load_error("a.wechat.yaml", "template_id: abc\n");
    assert_eq!(at(&e), (1, 1));
    assert!(e.message.starts_with("`data` is missing"), "{e}");
    let e = load_error(
        "a.wechat.yaml",
        "template_id: abc\nurl: example.com/x\ndata: { thing1: x }\n",
    );
    assert_eq!(at(&e), (2, 6));
    assert!(e.message.starts_with("url must start with https://"), "{e}");
}

#[test]
fn wechat_limits_are_checked_on_the_sample_render() {
    let twenty = "一二三四五六七八九十一二三四五六七八九十";
    let (dir, set, errors) = load(&[
        (
            "ok.wechat.yaml",
            &format!("template_id: abc\ndata:\n  thing1: {twenty}\n"),
        ),
        (
            "long.wechat.yaml",
            &format!("template_id: abc\ndata:\n  thing1: {twenty}多\n"),
        ),
        (
            "code.wechat.yaml",
            "template_id: abc\ndata:\n  character_string2: \"券{{coupon.code}}\"\n",
        ),
    ]);
    assert_eq!(errors, vec![]);
    assert_eq!(set.check("ok", Channel::Wechat, true), vec![]);
    let e = set.check("long", Channel::Wechat, true);
    assert_eq!(
        e,
        vec![FileError {
            file: dir.path().join("long.wechat.yaml"),
            line: 3,
            column: 11,
            message: format!(
                "with the sample values (customer 王小明, shop 老街豆浆人民广场店): long.wechat.yaml data.thing1: \"{twenty}多\" is 21 characters; WeChat allows at most 20 in `thing` fields"
            ),
        }]
    );
    let e = set.check("code", Channel::Wechat, true);
    assert_eq!(e.len(), 1);
    assert_eq!(at(&e[0]), (3, 23));
    assert!(
        e[0].message.ends_with(
            "code.wechat.yaml data.character_string2: \"券BDAY7K3M9Q\" contains Chinese characters; `character_string` fields take only digits, letters and symbols"
        ),
        "{}",
        e[0]
    );
}

#[test]
fn a_line_break_in_a_wechat_value_is_a_render_error() {
    let (_d, set, errors) = load(&[(
        "a.wechat.yaml",
        WECHAT
            .replace("{{coupon.value_text}}", "{{customer.name}}")
            .as_str(),
    )]);
    assert_eq!(errors, vec![]);
    let mut ctx = RenderContext::sample(true);
    ctx.customer.name = "王\n小明".into();
    let e = set.render("a", Channel::Wechat, &ctx).unwrap_err();
    assert!(matches!(e, RenderError::Value { .. }), "{e:?}");
    assert_eq!(e.field(), Some("data.thing1"));
    assert_eq!(
        e.to_string(),
        "a.wechat.yaml data.thing1: \"王\\n小明\" contains a line break; WeChat shows no line breaks in template fields"
    );
}

// ---------------------------------------------------------------- variables and helpers

#[test]
fn unknown_variable_with_did_you_mean() {
    let e = load_error(
        "a.sms.yaml",
        "text: \"{{customer.nmae}}会员您好。拒收请回复R\"\n",
    );
    assert_eq!(at(&e), (1, 8));
    assert_eq!(
        e.message,
        format!(
            "unknown variable `customer.nmae` in a.sms.yaml text; did you mean `customer.name`? Valid: {}",
            valid()
        )
    );
    assert_eq!(
        e.to_string(),
        format!("{}:1:8: {}", e.file.display(), e.message)
    );
}

#[test]
fn unknown_variable_inside_if_is_caught() {
    let e = load_error(
        "a.sms.yaml",
        "text: \"会员您好{{#if customer.nmae}}，生日快乐{{else}}！{{/if}}拒收请回复R\"\n",
    );
    assert_eq!(at(&e), (1, 12));
    assert!(
        e.message.starts_with(
            "unknown variable `customer.nmae` in a.sms.yaml text; did you mean `customer.name`?"
        ),
        "{e}"
    );
    // …and in the else branch, in #unless, #each, #with, and in an else-if
    // chain.
    for text in [
        "{{#if coupon}}x{{else}}{{shop.nmae}}{{/if}}",
        "{{#unless shop.nmae}}x{{/unless}}",
        "{{#if coupon}}x{{else if shop.nmae}}y{{/if}}",
        "{{#each shop.nmae}}x{{/each}}",
        "{{#with shop.nmae}}x{{else}}y{{/with}}",
    ] {
        let e = load_error(
            "a.sms.yaml",
            &format!("text: \"{text}会员您好。拒收请回复R\"\n"),
        );
        assert!(
            e.message.starts_with(
                "unknown variable `shop.nmae` in a.sms.yaml text; did you mean `shop.name`?"
            ),
            "{text}: {e}"
        );
    }
}

#[test]
fn unknown_variable_in_helper_params_is_caught() {
    let e = load_error(
        "a.sms.yaml",
        "text: \"{{#if (eq customer.value_teir 'vip')}}贵宾{{/if}}会员您好。拒收请回复R\"\n",
    );
    assert_eq!(at(&e), (1, 8));
    assert!(
        e.message.starts_with(
            "unknown variable `customer.value_teir` in a.sms.yaml text; did you mean `customer.value_tier`?"
        ),
        "{e}"
    );
    let e = load_error(
        "a.sms.yaml",
        "text: \"{{lookup customer.tag 0}}会员您好。拒收请回复R\"\n",
    );
    assert!(e.message.contains("`customer.tags`"), "{e}");
}

#[test]
fn scopes_of_with_and_each() {
    let (_d, set, errors) = load(&[(
        "a.sms.yaml",
        "text: \"{{#with customer}}{{name}}{{/with}}{{#each customer.tags as |tag|}}{{@index}}{{this}}{{tag}}{{/each}}{{customer.tags.0}}{{#with shop}}{{../customer.name}}{{@root.campaign.name}}{{/with}}会员您好。拒收请回复R\"\n",
    )]);
    assert_eq!(errors, vec![]);
    let Rendered::Sms { text, .. } = set
        .render("a", Channel::Sms, &RenderContext::sample(true))
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        text,
        "王小明0早餐常客早餐常客1豆浆控豆浆控早餐常客王小明生日礼券会员您好。拒收请回复R"
    );

    let e = load_error(
        "a.sms.yaml",
        "text: \"{{#with customer}}{{nmae}}{{/with}}会员您好。拒收请回复R\"\n",
    );
    assert_eq!(at(&e), (1, 26));
    assert!(
        e.message.starts_with("unknown variable `customer.nmae`"),
        "{e}"
    );
    let e = load_error("a.sms.yaml", "text: \"{{@index}}会员您好。拒收请回复R\"\n");
    assert_eq!(
        e.message,
        "`@index` in a.sms.yaml text only exists inside {{#each}}…{{/each}}"
    );
    let e = load_error(
        "a.sms.yaml",
        "text: \"{{customer}}会员您好。拒收请回复R\"\n",
    );
    assert!(
        e.message
            .starts_with("`customer` in a.sms.yaml text is a group of variables, not a value; print one of customer.id, customer.name"),
        "{e}"
    );
    let e = load_error(
        "a.sms.yaml",
        "text: \"{{customer.tags}}会员您好。拒收请回复R\"\n",
    );
    assert!(e.message.contains("is a list"), "{e}");
}

#[test]
fn coupon_variables_need_a_coupon() {
    let (dir, set, errors) = load(&[("a.sms.yaml", SMS)]);
    assert_eq!(errors, vec![]);
    assert_eq!(set.check("a", Channel::Sms, true), vec![]);
    let e = set.check("a", Channel::Sms, false);
    let got: Vec<(u64, u64)> = e.iter().map(at).collect();
    // The first use in text, aliyun.params.coupon, tencent.params {2}
    assert_eq!(got, vec![(2, 30), (5, 49), (8, 34)]);
    assert_eq!(e[0].file, dir.path().join("a.sms.yaml"));
    assert_eq!(
        e[0].message,
        "`coupon.value_text` in a.sms.yaml text: the campaign has no coupon, so coupon.* is not set; add a `coupon:` to the campaign, or wrap this part in {{#if coupon}}…{{/if}} (2 uses of coupon.* here)"
    );
    assert_eq!(
        e[1].message,
        "`coupon.value_text` in a.sms.yaml aliyun.params.coupon: the campaign has no coupon, so coupon.* is not set; add a `coupon:` to the campaign, or wrap this part in {{#if coupon}}…{{/if}}"
    );
}

#[test]
fn coupon_variables_inside_if_coupon_are_fine_without_a_coupon() {
    let (_d, set, errors) = load(&[(
        "a.sms.yaml",
        "text: \"{{customer.name}}会员您好{{#if coupon}}，{{coupon.value_text}}已到账{{/if}}{{#unless coupon}}{{else}}！{{coupon.code}}{{/unless}}。拒收请回复R\"\n",
    )]);
    assert_eq!(errors, vec![]);
    assert_eq!(set.check("a", Channel::Sms, false), vec![]);
    let render = |has| {
        let Rendered::Sms { text, .. } = set
            .render("a", Channel::Sms, &RenderContext::sample(has))
            .unwrap()
        else {
            panic!()
        };
        text
    };
    assert_eq!(render(false), "王小明会员您好。拒收请回复R");
    assert_eq!(
        render(true),
        "王小明会员您好，10元代金券已到账！BDAY7K3M9Q。拒收请回复R"
    );
}

#[test]
fn unknown_helpers_are_errors() {
    let e = load_error(
        "a.sms.yaml",
        "text: \"会员您好，{{formatDate coupon.expires_on}}前使用。拒收请回复R\"\n",
    );
    assert_eq!(at(&e), (1, 13));
    assert_eq!(
        e.message,
        "unknown helper `formatDate` in a.sms.yaml text; Helpers: if, unless, each, with, lookup, eq, ne, gt, gte, lt, lte, and, or, not, len"
    );
    let e = load_error(
        "a.sms.yaml",
        "text: \"{{#iff coupon}}x{{/iff}}会员您好。拒收请回复R\"\n",
    );
    assert!(
        e.message
            .starts_with("unknown helper `iff` in a.sms.yaml text; did you mean `if`?"),
        "{e}"
    );
    let e = load_error(
        "a.sms.yaml",
        "text: \"{{log customer.name}}会员您好。拒收请回复R\"\n",
    );
    assert!(e.message.starts_with("unknown helper `log`"), "{e}");
    let e = load_error(
        "a.sms.yaml",
        "text: \"{{> footer}}会员您好。拒收请回复R\"\n",
    );
    assert!(e.message.starts_with("partials and decorators"), "{e}");
}

#[test]
fn syntax_errors_point_into_the_file() {
    let e = load_error(
        "a.sms.yaml",
        "text: \"{{customer.name}会员您好。拒收请回复R\"\n",
    );
    assert_eq!(at(&e), (1, 23));
    assert_eq!(
        e.message,
        "Handlebars syntax error in a.sms.yaml text: malformed `{{…}}` tag here: check the braces, the variable or helper name and its parameters"
    );
    let e = load_error(
        "a.email.yaml",
        "subject: 您好\nhtml: |\n  <p>您好</p>\n  <p>{{#if customer.name}}x{{/each}}</p>\n  {{unsubscribe_url}}\ntext: \"{{unsubscribe_url}}\"\n",
    );
    assert_eq!(at(&e), (4, 28));
    assert_eq!(
        e.message,
        "Handlebars syntax error in a.email.yaml html: `{{#if}}` is closed by `{{/each}}`; close it with `{{/if}}`"
    );
    let e = load_error(
        "a.sms.yaml",
        "text: \"{{#if coupon}}会员您好。拒收请回复R\"\n",
    );
    assert_eq!(at(&e), (1, 33));
    assert!(
        e.message
            .ends_with("a `{{#…}}` block is never closed with its `{{/…}}`"),
        "{e}"
    );
}

// ---------------------------------------------------------------- rendering

#[test]
fn values_are_inserted_literally_and_escaped_only_in_html() {
    let (_d, set, errors) = load(&[
        ("a.sms.yaml", SMS),
        ("a.email.yaml", EMAIL),
        (
            "a.wechat.yaml",
            &WECHAT.replace("{{coupon.value_text}}", "{{customer.name}}"),
        ),
    ]);
    assert_eq!(errors, vec![]);
    let mut ctx = RenderContext::sample(true);
    ctx.customer.name = "{{x}}<b>&".into();

    let Rendered::Sms { text, aliyun, .. } = set.render("a", Channel::Sms, &ctx).unwrap() else {
        panic!()
    };
    assert!(text.starts_with("{{x}}<b>&会员您好："), "{text}");
    assert_eq!(aliyun.unwrap().params["name"], "{{x}}<b>&");

    let Rendered::Email {
        subject,
        html,
        text,
    } = set.render("a", Channel::Email, &ctx).unwrap()
    else {
        panic!()
    };
    assert_eq!(subject, "{{x}}<b>&，您的10元代金券已到账");
    assert!(
        html.contains("<p>{{x}}&lt;b&gt;&amp;会员您好：</p>"),
        "{html}"
    );
    assert!(text.starts_with("{{x}}<b>&会员您好："), "{text}");

    let Rendered::Wechat { data, .. } = set.render("a", Channel::Wechat, &ctx).unwrap() else {
        panic!()
    };
    assert_eq!(data["thing1"], "{{x}}<b>&");
}

#[test]
fn rendered_round_trips_through_json() {
    let (_d, set, _) = load(&[
        ("a.sms.yaml", SMS),
        ("a.email.yaml", EMAIL),
        ("a.wechat.yaml", WECHAT),
    ]);
    for c in CHANNELS {
        let r = set.render("a", c, &RenderContext::sample(true)).unwrap();
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            json.starts_with(&format!("{{\"channel\":\"{c}\"")),
            "{json}"
        );
        let back: Rendered = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }
    let json = serde_json::to_value(
        set.render("a", Channel::Sms, &RenderContext::sample(true))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(json["kind"], "marketing");
    assert_eq!(json["tencent"]["params"][1], "10元代金券");
}

#[test]
fn a_missing_value_at_render_is_a_render_error() {
    // `customer.tags.5` is a known variable shape, but the sample has 2 tags.
    let (_d, set, errors) = load(&[(
        "a.sms.yaml",
        "text: \"{{customer.tags.5}}会员您好。拒收请回复R\"\n",
    )]);
    assert_eq!(errors, vec![]);
    let e = set.check("a", Channel::Sms, true);
    assert_eq!(e.len(), 1);
    assert_eq!(at(&e[0]), (1, 8));
    assert!(
        e[0].message
            .ends_with("a.sms.yaml text: variable `customer.tags.5` has no value"),
        "{}",
        e[0]
    );
}

// ---------------------------------------------------------------- shipped templates

#[test]
fn the_shipped_templates_pass_every_check() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let (set, errors) = TemplateSet::load(&dir);
    assert_eq!(errors, vec![]);
    assert_eq!(
        set.names(),
        [
            "at_risk",
            "birthday",
            "member_day",
            "second_visit",
            "winback"
        ]
    );
    for name in set.names() {
        for channel in CHANNELS {
            assert!(set.has(&name, channel), "{name} {channel}");
            assert_eq!(set.check(&name, channel, true), vec![], "{name} {channel}");
            let r = set
                .render(&name, channel, &RenderContext::sample(true))
                .unwrap();
            if let Rendered::Sms { kind, text, .. } = &r {
                assert_eq!(*kind, SmsKind::Marketing);
                assert!(text.contains("会员"), "{name}: {text}");
            }
            if let Rendered::Email { html, .. } = &r {
                assert!(html.starts_with("<!DOCTYPE html>"), "{name}");
                assert!(html.trim_end().ends_with("</html>"), "{name}");
            }
        }
    }
}
