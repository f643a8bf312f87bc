use std::path::{Path, PathBuf};

use super::*;
use crate::campaigns::spec::CouponKind;

fn templates() -> TemplateSet {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let (set, errors) = TemplateSet::load(&dir);
    assert!(errors.is_empty(), "{errors:?}");
    set
}

fn check(text: &str) -> Result<Campaign, Vec<FileError>> {
    let t = templates();
    let env = CheckEnv {
        stores: vec!["SH-001".into(), "SH-002".into(), "NY-001".into()],
        custom_segments: vec!["morning_regulars".into()],
        templates: &t,
    };
    check_source(
        &YamlSource {
            path: PathBuf::from("campaigns/birthday-treat.yaml"),
            text: text.into(),
        },
        &env,
    )
}

const GOOD: &str = r#"id: birthday-treat
name: 生日礼券
schedule: "0 10 * * *"
trigger:
  type: birthday
  days_before: 3
audience:
  segments: [vip, core]
  exclude_segments: [churned]
  stores: [SH-001]
  where: "order_count >= 2 and total_spent >= 100"
coupon:
  kind: amount_off
  value: 10
  min_spend: 30
  valid_days: 14
  code_prefix: BDAY
channels: [wechat, sms, email]
template: birthday
send_window: { start: "09:00", end: "20:00" }
priority: 10
"#;

fn errors_of(text: &str) -> Vec<FileError> {
    match check(text) {
        Ok(c) => panic!("expected errors, got {c:?}"),
        Err(e) => e,
    }
}

/// The single error of `text`, as `line:col: message`.
fn one_error(text: &str) -> String {
    let e = errors_of(text);
    assert_eq!(e.len(), 1, "{e:#?}");
    format!("{}:{}: {}", e[0].line, e[0].column, e[0].message)
}

#[test]
fn the_contract_example_is_valid() {
    let c = check(GOOD).unwrap();
    assert_eq!(c.id.as_str(), "birthday-treat");
    assert_eq!(c.name, "生日礼券");
    assert!(c.enabled);
    assert_eq!(c.trigger, Trigger::Birthday { days_before: 3 });
    assert_eq!(
        c.audience.segments,
        vec![SegmentRef::Tier("vip"), SegmentRef::Tier("core")]
    );
    assert_eq!(
        c.audience.exclude_segments,
        vec![SegmentRef::Stage("churned")]
    );
    assert_eq!(c.audience.stores.len(), 1);
    assert!(c.audience.filter.is_some());
    let coupon = c.coupon.unwrap();
    assert_eq!(coupon.kind, CouponKind::AmountOff);
    assert_eq!(coupon.value, 1000);
    assert_eq!(coupon.min_spend_fen, 3000);
    assert_eq!(coupon.valid_days, 14);
    assert_eq!(coupon.code_prefix, "BDAY");
    assert_eq!(
        c.channels,
        vec![Channel::Wechat, Channel::Sms, Channel::Email]
    );
    assert_eq!(c.priority, 10);
    assert_eq!(c.catch_up, chrono::Duration::days(1));
    assert_eq!(c.send_window.unwrap().describe(), "09:00–20:00");
}

#[test]
fn unknown_field_is_reported_at_its_place() {
    let text = GOOD.replace("priority: 10", "priorty: 10");
    let e = one_error(&text);
    assert!(e.starts_with("21:1: unknown field `priorty`"), "{e}");
}

#[test]
fn cron_with_four_fields() {
    let text = GOOD.replace("\"0 10 * * *\"", "\"0 10 * *\"");
    let e = one_error(&text);
    assert!(e.starts_with("3:11: schedule"), "{e}");
    assert!(e.contains("has 4 field(s)"), "{e}");
}

#[test]
fn six_field_cron_is_accepted() {
    let text = GOOD.replace("\"0 10 * * *\"", "\"0 0 10 * * *\"");
    assert!(check(&text).is_ok());
}

#[test]
fn unknown_time_zone_suggests_one() {
    let text = GOOD.replace("priority: 10", "priority: 10\ntimezone: Asia/Shanghia");
    let e = one_error(&text);
    assert!(e.starts_with("22:11: unknown time zone"), "{e}");
    assert!(e.contains("Asia/Shanghai"), "{e}");
}

#[test]
fn unknown_segment_lists_the_valid_ones() {
    let text = GOOD.replace("[vip, core]", "[vip, loyal]");
    let e = one_error(&text);
    assert!(e.starts_with("8:19: unknown segment \"loyal\""), "{e}");
    assert!(e.contains("morning_regulars"), "{e}");
    assert!(e.contains("at_risk"), "{e}");
}

#[test]
fn unknown_template_channel_and_store() {
    let e = one_error(&GOOD.replace("template: birthday", "template: birthdya"));
    assert!(
        e.starts_with("19:11: template birthdya does not exist"),
        "{e}"
    );
    assert!(e.contains("did you mean template: birthday?"), "{e}");
    let e = one_error(&GOOD.replace("[wechat, sms, email]", "[wechat, sms, mail]"));
    assert!(e.starts_with("18:25: unknown channel \"mail\""), "{e}");
    assert!(e.contains("did you mean \"email\""), "{e}");
    let e = one_error(&GOOD.replace("stores: [SH-001]", "stores: [SH-009]"));
    assert!(e.starts_with("10:12: unknown store \"SH-009\""), "{e}");
}

#[test]
fn invalid_where_points_into_the_expression() {
    let e = one_error(&GOOD.replace("total_spent >= 100", "total_spnet >= 100"));
    // The expression starts at column 11; the attribute is its 22nd character.
    assert!(e.starts_with("11:32: where: unknown attribute"), "{e}");
    assert!(e.contains("total_spent"), "{e}");
}

#[test]
fn negative_coupon_value() {
    let e = one_error(&GOOD.replace("value: 10", "value: -10"));
    assert!(e.starts_with("14:10: coupon value -10 is negative"), "{e}");
}

#[test]
fn coupon_rules() {
    let e = one_error(&GOOD.replace("value: 10\n", "value: 10.555\n"));
    assert!(e.contains("at most two decimals"), "{e}");
    let e = one_error(
        &GOOD
            .replace("kind: amount_off", "kind: percent_off")
            .replace("value: 10\n", "value: 150\n"),
    );
    assert!(e.contains("whole percent from 1 to 99"), "{e}");
    let e = one_error(&GOOD.replace("kind: amount_off", "kind: free_item"));
    assert!(e.contains("needs item"), "{e}");
    let e = one_error(&GOOD.replace("kind: amount_off", "kind: amount"));
    assert!(e.contains("unknown coupon kind \"amount\""), "{e}");
    assert!(e.contains("amount_off"), "{e}");
    let e = one_error(&GOOD.replace("min_spend: 30", "min_spend: 5"));
    assert!(e.contains("more than its min_spend"), "{e}");
    let e = one_error(&GOOD.replace("code_prefix: BDAY", "code_prefix: bday"));
    assert!(e.contains("capital letters"), "{e}");
    let free = GOOD
        .replace("kind: amount_off", "kind: free_item\n  item: 豆浆")
        .replace("  value: 10\n", "");
    let c = check(&free).unwrap();
    assert_eq!(c.coupon.unwrap().value_text(), "免费豆浆券");
}

#[test]
fn template_using_a_coupon_variable_needs_a_coupon() {
    let text =
        GOOD.split("coupon:").next().unwrap().to_owned() + "channels: [sms]\ntemplate: birthday\n";
    let errors = errors_of(&text);
    assert!(
        errors
            .iter()
            .any(|e| e.message.contains("coupon") && e.file.ends_with("birthday.sms.yaml")),
        "{errors:#?}"
    );
}

#[test]
fn triggers() {
    let lapsed = GOOD.replace(
        "type: birthday\n  days_before: 3",
        "type: lapsed\n  inactive_days: 30\n  max_inactive_days: 90",
    );
    assert_eq!(
        check(&lapsed).unwrap().trigger,
        Trigger::Lapsed {
            inactive_days: 30,
            max_inactive_days: Some(90)
        }
    );
    let e = one_error(&GOOD.replace("type: birthday\n  days_before: 3", "type: lapsed"));
    assert!(e.contains("a lapsed trigger needs inactive_days"), "{e}");
    let e = one_error(&GOOD.replace(
        "type: birthday\n  days_before: 3",
        "type: lapsed\n  inactive_days: 60\n  max_inactive_days: 30",
    ));
    assert!(e.contains("nobody would ever qualify"), "{e}");
    let e = one_error(&GOOD.replace(
        "type: birthday\n  days_before: 3",
        "type: birthday\n  inactive_days: 3",
    ));
    assert!(
        e.contains("inactive_days belongs to a lapsed trigger, not birthday"),
        "{e}"
    );
    let e = one_error(&GOOD.replace("type: birthday", "type: birthdy"));
    assert!(
        e.starts_with("5:9: unknown trigger type \"birthdy\"; did you mean \"birthday\""),
        "{e}"
    );
    let seg = GOOD.replace(
        "type: birthday\n  days_before: 3",
        "type: segment_entered\n  segment: at_risk",
    );
    assert_eq!(
        check(&seg).unwrap().trigger,
        Trigger::SegmentEntered {
            segment: SegmentRef::Stage("at_risk")
        }
    );
    let e = one_error(&GOOD.replace(
        "type: birthday\n  days_before: 3",
        "type: segment_entered\n  segment: at_rsk",
    ));
    assert!(e.contains("did you mean \"at_risk\""), "{e}");
    let b = GOOD.replace(
        "type: birthday\n  days_before: 3",
        "type: broadcast\n  at: 2026-12-24T10:00:00",
    );
    match check(&b).unwrap().trigger {
        Trigger::Broadcast { at, absolute } => {
            assert_eq!(at.unwrap().to_string(), "2026-12-24 10:00:00");
            assert_eq!(absolute, None);
        }
        t => panic!("{t:?}"),
    }
    let e = one_error(&GOOD.replace(
        "type: birthday\n  days_before: 3",
        "type: broadcast\n  at: christmas",
    ));
    assert!(e.contains("is not a time"), "{e}");
    let e = one_error(&GOOD.replace("days_before: 3", "days_before: -1"));
    assert!(
        e.contains("days_before must be a whole number from 0 to 60"),
        "{e}"
    );
}

#[test]
fn schedule_is_required_except_for_broadcasts() {
    let e = one_error(&GOOD.replace("schedule: \"0 10 * * *\"\n", ""));
    assert!(e.contains("schedule is missing"), "{e}");
    let b = GOOD.replace("schedule: \"0 10 * * *\"\n", "").replace(
        "type: birthday\n  days_before: 3",
        "type: broadcast\n  at: 2026-12-24T10:00:00+08:00",
    );
    let c = check(&b).unwrap();
    assert!(c.schedule.is_none());
    let e = one_error(
        &GOOD
            .replace("schedule: \"0 10 * * *\"\n", "")
            .replace("type: birthday\n  days_before: 3", "type: broadcast"),
    );
    assert!(e.contains("a broadcast needs at"), "{e}");
    let monthly = GOOD
        .replace("\"0 10 * * *\"", "\"0 10 8 * *\"")
        .replace("type: birthday\n  days_before: 3", "type: broadcast");
    assert_eq!(
        check(&monthly).unwrap().trigger,
        Trigger::Broadcast {
            at: None,
            absolute: None
        }
    );
}

#[test]
fn send_window_and_catch_up() {
    let e = one_error(&GOOD.replace("end: \"20:00\"", "end: \"08:00\""));
    assert!(e.contains("the start must come first"), "{e}");
    let e = one_error(&GOOD.replace("end: \"20:00\"", "end: \"8pm\""));
    assert!(e.contains("not a time of day"), "{e}");
    let c = check(&GOOD.replace("priority: 10", "priority: 10\ncatch_up: 6h")).unwrap();
    assert_eq!(c.catch_up, chrono::Duration::hours(6));
    let e = one_error(&GOOD.replace("priority: 10", "priority: 10\ncatch_up: soon"));
    assert!(e.contains("catch_up"), "{e}");
}

#[test]
fn id_defaults_to_the_file_name_and_is_checked() {
    let c = check(&GOOD.replace("id: birthday-treat\n", "")).unwrap();
    assert_eq!(c.id.as_str(), "birthday-treat");
    let e = one_error(&GOOD.replace("id: birthday-treat", "id: Birthday Treat"));
    assert!(e.starts_with("1:5: campaign id"), "{e}");
}

#[test]
fn several_errors_are_all_reported() {
    let text = GOOD
        .replace("[vip, core]", "[vip, loyal]")
        .replace("value: 10", "value: -10")
        .replace("[wechat, sms, email]", "[wechat, sms, mail]");
    assert_eq!(errors_of(&text).len(), 3);
}

#[test]
fn empty_and_broken_files() {
    let e = one_error("");
    assert!(e.contains("the file is empty"), "{e}");
    let e = one_error("id: [unclosed\n");
    assert!(!e.is_empty());
}

#[test]
fn the_shipped_campaigns_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("campaigns");
    let t = templates();
    let env = CheckEnv {
        stores: crate::demo::generate::demo_stores()
            .iter()
            .map(|s| s.code.as_str().to_owned())
            .collect(),
        custom_segments: crate::segments::file::SegmentsFile::load(
            &dir,
            &crate::expr::CheckContext { stores: None },
        )
        .unwrap()
        .custom
        .iter()
        .map(|c| c.name.clone())
        .collect(),
        templates: &t,
    };
    let (campaigns, errors, files) = crate::campaigns::set::check_dir(&dir, &env);
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(campaigns.len(), files.len());
    assert!(campaigns.len() >= 5, "{}", campaigns.len());
}

#[test]
fn a_template_file_with_errors_is_not_called_missing() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    std::fs::copy(
        shipped.join("birthday.email.yaml"),
        dir.path().join("birthday.email.yaml"),
    )
    .unwrap();
    // No opt-out text: the SMS template fails to load.
    std::fs::write(
        dir.path().join("birthday.sms.yaml"),
        "kind: marketing\ntext: \"{{customer.name}}生日快乐\"\n",
    )
    .unwrap();
    let (t, load_errors) = TemplateSet::load(dir.path());
    assert!(!load_errors.is_empty());
    let env = CheckEnv {
        stores: vec!["SH-001".into()],
        custom_segments: vec![],
        templates: &t,
    };
    let check = |channels: &str| {
        let text = GOOD.replace("channels: [wechat, sms, email]", channels);
        let e = check_source(
            &YamlSource {
                path: PathBuf::from("campaigns/birthday-treat.yaml"),
                text,
            },
            &env,
        )
        .unwrap_err();
        assert_eq!(e.len(), 1, "{e:#?}");
        e[0].message.clone()
    };
    let only_sms = check("channels: [sms]");
    assert!(
        only_sms.starts_with("channel sms needs ") && only_sms.contains("which has errors"),
        "{only_sms}"
    );
    let email_loaded = check("channels: [sms, email]");
    assert!(
        email_loaded.contains("birthday.sms.yaml, which has errors"),
        "{email_loaded}"
    );
    // Only the broken file exists for this name.
    std::fs::remove_file(dir.path().join("birthday.email.yaml")).unwrap();
    let (t, _) = TemplateSet::load(dir.path());
    let env = CheckEnv {
        templates: &t,
        ..env
    };
    let text = GOOD.replace("channels: [wechat, sms, email]", "channels: [sms]");
    let e = check_source(
        &YamlSource {
            path: PathBuf::from("campaigns/birthday-treat.yaml"),
            text,
        },
        &env,
    )
    .unwrap_err();
    assert!(
        e[0].message
            .starts_with("template birthday could not be loaded: ")
            && e[0].message.contains("birthday.sms.yaml has errors"),
        "{e:#?}"
    );
}
