//! A campaign's cron schedule in words, in Chinese and English: "every day
//! at 10:00 Asia/Shanghai", "每月 8 日 10:00". The common shapes are put
//! in words; anything else (names of days, `L`, `#`, steps inside ranges)
//! falls back to the cron text itself.

use super::i18n::Lang;

/// One cron field, as far as words go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    /// `*` (or `?`)
    Any,
    /// `*/n`
    Every(u32),
    /// `a` or `a,b,c`
    List(Vec<u32>),
    /// `a-b`
    Range(u32, u32),
}

fn parse_field(s: &str) -> Option<Field> {
    if s == "*" || s == "?" {
        return Some(Field::Any);
    }
    if let Some(n) = s.strip_prefix("*/") {
        let n: u32 = n.parse().ok()?;
        return (n > 0).then_some(Field::Every(n));
    }
    if let Some((a, b)) = s.split_once('-') {
        let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
        return (a < b).then_some(Field::Range(a, b));
    }
    let mut values = s
        .split(',')
        .map(|v| v.parse::<u32>().ok())
        .collect::<Option<Vec<u32>>>()?;
    values.sort_unstable();
    values.dedup();
    (!values.is_empty()).then_some(Field::List(values))
}

/// `schedule` (5 fields, or 6 with seconds first) in words, with the zone.
pub fn describe(schedule: &str, zone: &str, lang: Lang) -> String {
    match words(schedule, lang) {
        Some(w) => match lang {
            Lang::En => format!("{w} {zone}"),
            Lang::Zh => format!("{zone} 时间{w}"),
        },
        None => match lang {
            Lang::En => format!("cron “{}” ({zone})", schedule.trim()),
            Lang::Zh => format!("cron 表达式 “{}”（{zone}）", schedule.trim()),
        },
    }
}

fn words(schedule: &str, lang: Lang) -> Option<String> {
    let parts: Vec<&str> = schedule.split_whitespace().collect();
    let (sec, rest) = match parts.len() {
        5 => (Field::List(vec![0]), &parts[..]),
        6 => (parse_field(parts[0])?, &parts[1..]),
        _ => return None,
    };
    let min = parse_field(rest[0])?;
    let hour = parse_field(rest[1])?;
    let dom = parse_field(rest[2])?;
    let mon = parse_field(rest[3])?;
    let dow = parse_field(rest[4])?;
    let second = match sec {
        Field::List(v) if v.len() == 1 && v[0] < 60 => v[0],
        _ => return None,
    };
    let days = days(&dom, &mon, &dow, lang)?;
    let time = time(&min, &hour, second, lang)?;
    Some(match (lang, time) {
        (Lang::En, Time::At(t)) => format!("{days} at {t}"),
        (Lang::Zh, Time::At(t)) => format!("{days} {t}"),
        (Lang::En, Time::Repeating(t)) if days == "every day" => t,
        (Lang::Zh, Time::Repeating(t)) if days == "每天" => t,
        (Lang::En, Time::Repeating(t)) => format!("{t}, {days}"),
        (Lang::Zh, Time::Repeating(t)) => format!("{days}{t}"),
    })
}

enum Time {
    /// Fixed clock times: "10:00", "09:00 and 18:00".
    At(String),
    /// Repeating through the day: "every 15 minutes".
    Repeating(String),
}

fn join(items: &[String], lang: Lang) -> String {
    match (lang, items) {
        (_, [one]) => one.clone(),
        (Lang::En, [rest @ .., last]) => format!("{} and {last}", rest.join(", ")),
        (Lang::Zh, _) => items.join("、"),
        (Lang::En, []) => String::new(),
    }
}

fn time(min: &Field, hour: &Field, second: u32, lang: Lang) -> Option<Time> {
    let hhmm = |h: u32, m: u32| {
        if second == 0 {
            format!("{h:02}:{m:02}")
        } else {
            format!("{h:02}:{m:02}:{second:02}")
        }
    };
    match (min, hour) {
        (Field::List(ms), Field::List(hs)) => {
            if ms.iter().any(|m| *m > 59) || hs.iter().any(|h| *h > 23) || ms.len() * hs.len() > 6 {
                return None;
            }
            let times: Vec<String> = hs
                .iter()
                .flat_map(|h| ms.iter().map(move |m| hhmm(*h, *m)))
                .collect();
            Some(Time::At(join(&times, lang)))
        }
        (Field::List(ms), Field::Any) if ms.len() == 1 && ms[0] < 60 && second == 0 => {
            Some(Time::Repeating(match lang {
                Lang::En => format!("every hour at :{:02}", ms[0]),
                Lang::Zh => format!("每小时第 {} 分", ms[0]),
            }))
        }
        (Field::List(ms), Field::Every(n)) if ms.len() == 1 && ms[0] < 60 && second == 0 => {
            Some(Time::Repeating(match lang {
                Lang::En => format!("every {n} hours at :{:02}", ms[0]),
                Lang::Zh => format!("每 {n} 小时的第 {} 分", ms[0]),
            }))
        }
        (Field::List(ms), Field::Range(a, b))
            if ms.len() == 1 && ms[0] < 60 && *b < 24 && second == 0 =>
        {
            Some(Time::Repeating(match lang {
                Lang::En => format!("every hour from {} to {}", hhmm(*a, ms[0]), hhmm(*b, ms[0])),
                Lang::Zh => format!("{}–{} 每小时一次", hhmm(*a, ms[0]), hhmm(*b, ms[0])),
            }))
        }
        (Field::Every(n), Field::Any) if second == 0 => Some(Time::Repeating(match lang {
            Lang::En => format!("every {n} minutes"),
            Lang::Zh => format!("每 {n} 分钟"),
        })),
        (Field::Any, Field::Any) if second == 0 => Some(Time::Repeating(match lang {
            Lang::En => "every minute".to_owned(),
            Lang::Zh => "每分钟".to_owned(),
        })),
        _ => None,
    }
}

const WEEKDAYS_EN: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const WEEKDAYS_ZH: [&str; 7] = ["周日", "周一", "周二", "周三", "周四", "周五", "周六"];
const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn weekday(d: u32, lang: Lang) -> Option<&'static str> {
    // 7 is Sunday too.
    let i = usize::try_from(d % 7).ok()?;
    (d <= 7).then(|| match lang {
        Lang::En => WEEKDAYS_EN[i],
        Lang::Zh => WEEKDAYS_ZH[i],
    })
}

fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (1, 11) | (2, 12) | (3, 13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

fn days(dom: &Field, mon: &Field, dow: &Field, lang: Lang) -> Option<String> {
    let valid_days = |ds: &[u32]| ds.iter().all(|d| (1..=31).contains(d));
    let valid_months = |ms: &[u32]| ms.iter().all(|m| (1..=12).contains(m));
    match (dom, mon, dow) {
        (Field::Any, Field::Any, Field::Any) => Some(match lang {
            Lang::En => "every day".to_owned(),
            Lang::Zh => "每天".to_owned(),
        }),
        (Field::Any, Field::Any, Field::List(ds)) => {
            let names = ds
                .iter()
                .map(|d| weekday(*d, lang).map(str::to_owned))
                .collect::<Option<Vec<String>>>()?;
            Some(match lang {
                Lang::En => format!("every {}", join(&names, lang)),
                Lang::Zh => format!("每{}", join(&names, lang)),
            })
        }
        (Field::Any, Field::Any, Field::Range(a, b)) => {
            let (a, b) = (weekday(*a, lang)?, weekday(*b, lang)?);
            Some(match lang {
                Lang::En => format!("{a} to {b}"),
                Lang::Zh => format!("每{a}至{b}"),
            })
        }
        (Field::List(ds), Field::Any, Field::Any) if valid_days(ds) => Some(match lang {
            Lang::En => {
                let list: Vec<String> = ds.iter().map(|d| ordinal(*d)).collect();
                format!("on the {} of every month", join(&list, lang))
            }
            Lang::Zh => {
                let list: Vec<String> = ds.iter().map(|d| format!("{d} 日")).collect();
                format!("每月 {}", join(&list, lang))
            }
        }),
        (Field::List(ds), Field::List(ms), Field::Any)
            if valid_days(ds) && valid_months(ms) && ds.len() * ms.len() <= 4 =>
        {
            let dates: Vec<String> = ms
                .iter()
                .flat_map(|m| {
                    ds.iter().map(move |d| match lang {
                        Lang::En => format!("{} {d}", MONTHS_EN[(*m - 1) as usize]),
                        Lang::Zh => format!("{m} 月 {d} 日"),
                    })
                })
                .collect();
            Some(match lang {
                Lang::En => format!("every year on {}", join(&dates, lang)),
                Lang::Zh => format!("每年 {}", join(&dates, lang)),
            })
        }
        (Field::Any, Field::List(ms), Field::Any) if valid_months(ms) => {
            let months: Vec<String> = ms
                .iter()
                .map(|m| match lang {
                    Lang::En => MONTHS_EN[(*m - 1) as usize].to_owned(),
                    Lang::Zh => format!("{m} 月"),
                })
                .collect();
            Some(match lang {
                Lang::En => format!("every day in {}", join(&months, lang)),
                Lang::Zh => format!("{}每天", join(&months, lang)),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SH: &str = "Asia/Shanghai";

    fn en(s: &str) -> String {
        describe(s, SH, Lang::En)
    }
    fn zh(s: &str) -> String {
        describe(s, SH, Lang::Zh)
    }

    #[test]
    fn every_day() {
        assert_eq!(en("0 10 * * *"), "every day at 10:00 Asia/Shanghai");
        assert_eq!(zh("0 10 * * *"), "Asia/Shanghai 时间每天 10:00");
        assert_eq!(en("0 0 10 * * *"), "every day at 10:00 Asia/Shanghai");
        assert_eq!(en("30 0 10 * * *"), "every day at 10:00:30 Asia/Shanghai");
        assert_eq!(
            en("0 9,18 * * *"),
            "every day at 09:00 and 18:00 Asia/Shanghai"
        );
        assert_eq!(zh("0 9,18 * * *"), "Asia/Shanghai 时间每天 09:00、18:00");
    }

    #[test]
    fn weekdays_and_days_of_the_month() {
        assert_eq!(en("0 10 * * 1"), "every Monday at 10:00 Asia/Shanghai");
        assert_eq!(
            en("15 8 * * 1,5"),
            "every Monday and Friday at 08:15 Asia/Shanghai"
        );
        assert_eq!(zh("15 8 * * 1,5"), "Asia/Shanghai 时间每周一、周五 08:15");
        assert_eq!(en("0 9 * * 1-5"), "Monday to Friday at 09:00 Asia/Shanghai");
        assert_eq!(zh("0 9 * * 1-5"), "Asia/Shanghai 时间每周一至周五 09:00");
        assert_eq!(en("0 10 * * 0"), "every Sunday at 10:00 Asia/Shanghai");
        assert_eq!(en("0 10 * * 7"), "every Sunday at 10:00 Asia/Shanghai");
        assert_eq!(
            en("0 10 8 * *"),
            "on the 8th of every month at 10:00 Asia/Shanghai"
        );
        assert_eq!(zh("0 10 8 * *"), "Asia/Shanghai 时间每月 8 日 10:00");
        assert_eq!(
            en("0 10 1,21,22,23 * *"),
            "on the 1st, 21st, 22nd and 23rd of every month at 10:00 Asia/Shanghai"
        );
        assert_eq!(
            en("0 10 8 3 *"),
            "every year on March 8 at 10:00 Asia/Shanghai"
        );
        assert_eq!(zh("0 10 8 3 *"), "Asia/Shanghai 时间每年 3 月 8 日 10:00");
        assert_eq!(
            en("0 10 * 12 *"),
            "every day in December at 10:00 Asia/Shanghai"
        );
    }

    #[test]
    fn repeating_through_the_day() {
        assert_eq!(en("*/15 * * * *"), "every 15 minutes Asia/Shanghai");
        assert_eq!(zh("*/15 * * * *"), "Asia/Shanghai 时间每 15 分钟");
        assert_eq!(en("5 * * * *"), "every hour at :05 Asia/Shanghai");
        assert_eq!(zh("5 * * * *"), "Asia/Shanghai 时间每小时第 5 分");
        assert_eq!(en("0 */2 * * *"), "every 2 hours at :00 Asia/Shanghai");
        assert_eq!(
            en("0 9-17 * * 1-5"),
            "every hour from 09:00 to 17:00, Monday to Friday Asia/Shanghai"
        );
        assert_eq!(en("* * * * *"), "every minute Asia/Shanghai");
        assert_eq!(
            en("*/10 * * * 6"),
            "every 10 minutes, every Saturday Asia/Shanghai"
        );
    }

    #[test]
    fn anything_else_is_shown_as_written() {
        for s in [
            "0 10 * * MON",
            "0 10 L * *",
            "0 10 * * 1#2",
            "0 10 1 * 1",
            "0 10-12/2 * * *",
            "0 25 * * *",
            "0 10 32 * *",
            "0 10 * 13 *",
            "*/5 0 10 * * *",
            "0 10 * *",
        ] {
            assert_eq!(en(s), format!("cron “{s}” (Asia/Shanghai)"), "{s}");
            assert_eq!(zh(s), format!("cron 表达式 “{s}”（Asia/Shanghai）"), "{s}");
        }
    }
}
