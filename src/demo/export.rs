//! Streams generated customers and orders to CSV or JSON Lines files in the import format.
//!
//! Memory use is constant: rows are written as they arrive through large buffered writers.
//! Order times carry the offset implied by `Order::local_time` (the store's offset at that
//! instant); a customer's `joined_at` carries its home store's offset, looked up in the store
//! list (`demo_stores()` unless given), and `Z` (UTC) when the store is unknown or missing.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use chrono::{DateTime, Datelike, NaiveDateTime, Offset, SecondsFormat, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde::ser::Serializer;

use super::generate::demo_stores;
use crate::domain::{Consent, Customer, Money, Order, StoreInfo, Tags};

/// Header of `customers.csv`.
pub const CUSTOMERS_HEADER: &str = "id,name,phone,email,wechat_openid,birthday,store,tags,sms_opt_in,email_opt_in,wechat_opt_in,joined_at";
/// Header of `orders.csv`.
pub const ORDERS_HEADER: &str = "id,customer_id,store,amount,ordered_at,coupon_code";

const BUFFER: usize = 1 << 20;

/// Writes `customers.csv` and `orders.csv` into `dir` (created if missing); returns
/// `(customers, orders)` written. `joined_at` offsets come from [`demo_stores`].
pub fn write_csv(
    rows: impl Iterator<Item = (Customer, Vec<Order>)>,
    dir: &Path,
) -> io::Result<(u64, u64)> {
    write_csv_with_stores(rows, dir, &demo_stores())
}

/// [`write_csv`] with the store list used for `joined_at` offsets.
pub fn write_csv_with_stores(
    rows: impl Iterator<Item = (Customer, Vec<Order>)>,
    dir: &Path,
    stores: &[StoreInfo],
) -> io::Result<(u64, u64)> {
    std::fs::create_dir_all(dir)?;
    let mut cw = BufWriter::with_capacity(BUFFER, File::create(dir.join("customers.csv"))?);
    let mut ow = BufWriter::with_capacity(BUFFER, File::create(dir.join("orders.csv"))?);
    cw.write_all(CUSTOMERS_HEADER.as_bytes())?;
    cw.write_all(b"\n")?;
    ow.write_all(ORDERS_HEADER.as_bytes())?;
    ow.write_all(b"\n")?;
    let (mut customers, mut orders) = (0u64, 0u64);
    for (customer, customer_orders) in rows {
        write_customer_csv(&mut cw, &customer, stores)?;
        customers += 1;
        for order in &customer_orders {
            write_order_csv(&mut ow, order)?;
            orders += 1;
        }
    }
    finish(cw)?;
    finish(ow)?;
    Ok((customers, orders))
}

/// Writes `customers.jsonl` and `orders.jsonl` into `dir` (created if missing), one JSON object
/// per line with the CSV fields; opt-ins are `true`/`false`/`null`, tags an array, amounts
/// strings like `"12.50"`. Returns `(customers, orders)` written.
pub fn write_jsonl(
    rows: impl Iterator<Item = (Customer, Vec<Order>)>,
    dir: &Path,
) -> io::Result<(u64, u64)> {
    write_jsonl_with_stores(rows, dir, &demo_stores())
}

/// [`write_jsonl`] with the store list used for `joined_at` offsets.
pub fn write_jsonl_with_stores(
    rows: impl Iterator<Item = (Customer, Vec<Order>)>,
    dir: &Path,
    stores: &[StoreInfo],
) -> io::Result<(u64, u64)> {
    std::fs::create_dir_all(dir)?;
    let mut cw = BufWriter::with_capacity(BUFFER, File::create(dir.join("customers.jsonl"))?);
    let mut ow = BufWriter::with_capacity(BUFFER, File::create(dir.join("orders.jsonl"))?);
    let (mut customers, mut orders) = (0u64, 0u64);
    for (customer, customer_orders) in rows {
        let joined = customer
            .joined_at
            .map(|t| Timestamp::utc_in(t, store_zone(&customer, stores)));
        let birthday = customer.birthday.as_ref().map(ToString::to_string);
        let row = CustomerRow {
            id: customer.id.as_str(),
            name: customer.name.as_deref(),
            phone: customer.phone.as_ref().map(|p| p.as_str()),
            email: customer.email.as_ref().map(|e| e.as_str()),
            wechat_openid: customer.wechat_openid.as_ref().map(|w| w.as_str()),
            birthday: birthday.as_deref(),
            store: customer.store.as_ref().map(|s| s.as_str()),
            tags: TagList(&customer.tags),
            sms_opt_in: customer.sms_opt_in.to_db(),
            email_opt_in: customer.email_opt_in.to_db(),
            wechat_opt_in: customer.wechat_opt_in.to_db(),
            joined_at: joined.as_ref().map(Timestamp::as_str),
        };
        serde_json::to_writer(&mut cw, &row)?;
        cw.write_all(b"\n")?;
        customers += 1;
        for order in &customer_orders {
            let ts = Timestamp::of_order(order);
            let amount = AmountText::new(order.amount);
            let row = OrderRow {
                id: order.id.as_str(),
                customer_id: order.customer_id.as_str(),
                store: order.store.as_str(),
                amount: amount.as_str(),
                ordered_at: ts.as_str(),
                coupon_code: order.coupon_code.as_deref(),
            };
            serde_json::to_writer(&mut ow, &row)?;
            ow.write_all(b"\n")?;
            orders += 1;
        }
    }
    finish(cw)?;
    finish(ow)?;
    Ok((customers, orders))
}

#[derive(Serialize)]
struct CustomerRow<'a> {
    id: &'a str,
    name: Option<&'a str>,
    phone: Option<&'a str>,
    email: Option<&'a str>,
    wechat_openid: Option<&'a str>,
    birthday: Option<&'a str>,
    store: Option<&'a str>,
    tags: TagList<'a>,
    sms_opt_in: Option<bool>,
    email_opt_in: Option<bool>,
    wechat_opt_in: Option<bool>,
    joined_at: Option<&'a str>,
}

#[derive(Serialize)]
struct OrderRow<'a> {
    id: &'a str,
    customer_id: &'a str,
    store: &'a str,
    amount: &'a str,
    ordered_at: &'a str,
    coupon_code: Option<&'a str>,
}

struct TagList<'a>(&'a Tags);

impl Serialize for TagList<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter())
    }
}

/// Flushes the buffer, reporting a failed final write instead of losing it on drop.
fn finish(w: BufWriter<File>) -> io::Result<()> {
    w.into_inner().map_err(io::IntoInnerError::into_error)?;
    Ok(())
}

fn store_zone(customer: &Customer, stores: &[StoreInfo]) -> Option<Tz> {
    let code = customer.store.as_ref()?;
    stores.iter().find(|s| s.code == *code).map(|s| s.timezone)
}

fn write_customer_csv<W: Write>(w: &mut W, c: &Customer, stores: &[StoreInfo]) -> io::Result<()> {
    write_field(w, c.id.as_str())?;
    w.write_all(b",")?;
    write_field(w, c.name.as_deref().unwrap_or(""))?;
    w.write_all(b",")?;
    write_field(w, c.phone.as_ref().map_or("", |p| p.as_str()))?;
    w.write_all(b",")?;
    write_field(w, c.email.as_ref().map_or("", |e| e.as_str()))?;
    w.write_all(b",")?;
    write_field(w, c.wechat_openid.as_ref().map_or("", |o| o.as_str()))?;
    w.write_all(b",")?;
    if let Some(b) = &c.birthday {
        write_field(w, &b.to_string())?;
    }
    w.write_all(b",")?;
    write_field(w, c.store.as_ref().map_or("", |s| s.as_str()))?;
    w.write_all(b",")?;
    if !c.tags.is_empty() {
        write_field(w, &c.tags.to_db())?;
    }
    for consent in [&c.sms_opt_in, &c.email_opt_in, &c.wechat_opt_in] {
        w.write_all(b",")?;
        w.write_all(consent_text(consent).as_bytes())?;
    }
    w.write_all(b",")?;
    if let Some(t) = c.joined_at {
        w.write_all(
            Timestamp::utc_in(t, store_zone(c, stores))
                .as_str()
                .as_bytes(),
        )?;
    }
    w.write_all(b"\n")
}

fn write_order_csv<W: Write>(w: &mut W, o: &Order) -> io::Result<()> {
    write_field(w, o.id.as_str())?;
    w.write_all(b",")?;
    write_field(w, o.customer_id.as_str())?;
    w.write_all(b",")?;
    write_field(w, o.store.as_str())?;
    w.write_all(b",")?;
    w.write_all(AmountText::new(o.amount).as_str().as_bytes())?;
    w.write_all(b",")?;
    w.write_all(Timestamp::of_order(o).as_str().as_bytes())?;
    w.write_all(b",")?;
    if let Some(code) = &o.coupon_code {
        write_field(w, code)?;
    }
    w.write_all(b"\n")
}

fn consent_text(c: &Consent) -> &'static str {
    match c.to_db() {
        Some(true) => "true",
        Some(false) => "false",
        None => "",
    }
}

/// Writes one CSV field, quoted (inner quotes doubled) when it contains `,`, `"`, CR or LF.
pub fn write_field<W: Write>(w: &mut W, s: &str) -> io::Result<()> {
    if !s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        return w.write_all(s.as_bytes());
    }
    w.write_all(b"\"")?;
    for (i, part) in s.split('"').enumerate() {
        if i > 0 {
            w.write_all(b"\"\"")?;
        }
        w.write_all(part.as_bytes())?;
    }
    w.write_all(b"\"")
}

/// An amount in yuan with two decimals (`12.50`, `-0.05`), formatted without allocating.
struct AmountText {
    buf: [u8; 24],
    start: usize,
}

impl AmountText {
    fn new(amount: Money) -> Self {
        let fen = amount.fen();
        let mut buf = [0u8; 24];
        let mut pos = buf.len();
        let mut n = fen.unsigned_abs();
        for i in 0.. {
            if i == 2 {
                pos -= 1;
                buf[pos] = b'.';
            }
            pos -= 1;
            buf[pos] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 && i >= 2 {
                break;
            }
        }
        if fen < 0 {
            pos -= 1;
            buf[pos] = b'-';
        }
        AmountText { buf, start: pos }
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits, '.' and '-' were written.
        std::str::from_utf8(&self.buf[self.start..]).unwrap_or("")
    }
}

/// An RFC 3339 timestamp with whole seconds, e.g. `2026-03-01T07:45:12+08:00`.
enum Timestamp {
    Fast { buf: [u8; 25], len: usize },
    Slow(String),
}

impl Timestamp {
    /// The order's instant with the offset implied by its local wall time.
    fn of_order(o: &Order) -> Self {
        let offset = (o.local_time - o.ordered_at.naive_utc()).num_seconds();
        match i32::try_from(offset) {
            Ok(off) if o.ordered_at.nanosecond() == 0 && off % 60 == 0 && off.abs() < 86_400 => {
                Self::format(o.local_time, Some(off))
            }
            _ => Self::Slow(o.ordered_at.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        }
    }

    /// `t` in zone `tz`, or in UTC with `Z` when the zone is unknown.
    fn utc_in(t: DateTime<Utc>, tz: Option<Tz>) -> Self {
        if t.nanosecond() != 0 {
            return Self::Slow(match tz {
                Some(tz) => t
                    .with_timezone(&tz)
                    .to_rfc3339_opts(SecondsFormat::AutoSi, true),
                None => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            });
        }
        match tz {
            Some(tz) => {
                let off = tz
                    .offset_from_utc_datetime(&t.naive_utc())
                    .fix()
                    .local_minus_utc();
                if off % 60 != 0 {
                    return Self::Slow(t.with_timezone(&tz).to_rfc3339());
                }
                let local = t.naive_utc() + chrono::Duration::seconds(i64::from(off));
                Self::format(local, Some(off))
            }
            None => Self::format(t.naive_utc(), None),
        }
    }

    /// Formats `local` followed by `+HH:MM` (or `Z` without an offset).
    fn format(local: NaiveDateTime, offset: Option<i32>) -> Self {
        let year = local.year();
        if !(0..=9999).contains(&year) {
            let utc = local - chrono::Duration::seconds(i64::from(offset.unwrap_or(0)));
            return Self::Slow(utc.and_utc().to_rfc3339_opts(SecondsFormat::Secs, true));
        }
        let mut buf = [0u8; 25];
        // Casts: every value below is in 0..=9999 (year) or 0..=99, so fits the digit writer.
        put_digits(&mut buf[0..4], year as u32);
        buf[4] = b'-';
        put_digits(&mut buf[5..7], local.month());
        buf[7] = b'-';
        put_digits(&mut buf[8..10], local.day());
        buf[10] = b'T';
        put_digits(&mut buf[11..13], local.hour());
        buf[13] = b':';
        put_digits(&mut buf[14..16], local.minute());
        buf[16] = b':';
        put_digits(&mut buf[17..19], local.second());
        let len = match offset {
            None => {
                buf[19] = b'Z';
                20
            }
            Some(off) => {
                buf[19] = if off < 0 { b'-' } else { b'+' };
                let minutes = off.unsigned_abs() / 60;
                put_digits(&mut buf[20..22], minutes / 60);
                buf[22] = b':';
                put_digits(&mut buf[23..25], minutes % 60);
                25
            }
        };
        Self::Fast { buf, len }
    }

    fn as_str(&self) -> &str {
        match self {
            // Only ASCII digits and separators were written.
            Self::Fast { buf, len } => std::str::from_utf8(&buf[..*len]).unwrap_or(""),
            Self::Slow(s) => s,
        }
    }
}

/// Writes `n` zero-padded into `out` (as many digits as `out` is long).
fn put_digits(out: &mut [u8], mut n: u32) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::generate::Generator;
    use crate::domain::{Birthday, Phone};
    use chrono::DateTime;
    use std::collections::HashMap;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T02:00:00Z")
            .expect("constant timestamp")
            .with_timezone(&Utc)
    }

    /// A small RFC 4180 reader: quoted fields, doubled quotes, newlines inside quotes.
    fn parse_csv(text: &str) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        let mut row = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut chars = text.chars().peekable();
        while let Some(ch) = chars.next() {
            match (quoted, ch) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                (true, '"') => quoted = false,
                (true, c) => field.push(c),
                (false, '"') if field.is_empty() => quoted = true,
                (false, ',') => row.push(std::mem::take(&mut field)),
                (false, '\n') => {
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                }
                (false, c) => field.push(c),
            }
        }
        assert!(
            field.is_empty() && row.is_empty(),
            "file must end with a newline"
        );
        rows
    }

    fn parse_time(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .with_timezone(&Utc)
    }

    #[test]
    fn amounts_have_two_decimals() {
        for (fen, text) in [(0, "0.00"), (5, "0.05"), (-5, "-0.05"), (1250, "12.50")] {
            assert_eq!(AmountText::new(Money::from_fen(fen)).as_str(), text);
        }
        assert_eq!(
            AmountText::new(Money::from_fen(-1_234_567)).as_str(),
            "-12345.67"
        );
    }

    #[test]
    fn fields_with_commas_quotes_or_newlines_are_quoted() {
        let mut out = Vec::new();
        for s in ["plain", "Zhang, \"Amy\"", "two\nlines", ""] {
            write_field(&mut out, s).expect("writing to a Vec cannot fail");
            out.push(b'|');
        }
        assert_eq!(
            String::from_utf8(out).expect("ASCII"),
            "plain|\"Zhang, \"\"Amy\"\"\"|\"two\nlines\"||"
        );
    }

    #[test]
    fn csv_round_trips() {
        let dir = tempfile::tempdir().expect("temp dir");
        let stores = demo_stores();
        let zones: HashMap<&str, Tz> = stores
            .iter()
            .map(|s| (s.code.as_str(), s.timezone))
            .collect();
        let mut all: Vec<(Customer, Vec<Order>)> =
            Generator::new(3, 400, now(), demo_stores()).collect();
        all[0].0.name = Some("Zhang, \"Amy\"\nSydney".to_owned());
        let (c, o) = write_csv(all.clone().into_iter(), dir.path()).expect("write csv");
        assert_eq!(c, 400);
        assert_eq!(o, all.iter().map(|(_, v)| v.len() as u64).sum::<u64>());

        let text = std::fs::read_to_string(dir.path().join("customers.csv")).expect("read");
        assert!(text.contains("\"Zhang, \"\"Amy\"\"\nSydney\""));
        let rows = parse_csv(&text);
        assert_eq!(rows[0].join(","), CUSTOMERS_HEADER);
        assert_eq!(rows.len(), 401);
        for (row, (cust, _)) in rows[1..].iter().zip(&all) {
            assert_eq!(row.len(), 12);
            assert_eq!(row[0], cust.id.as_str());
            assert_eq!(
                Some(row[1].as_str()).filter(|s| !s.is_empty()),
                cust.name.as_deref()
            );
            if let Some(p) = &cust.phone {
                assert_eq!(Phone::parse(&row[2]).as_ref(), Ok(p));
            } else {
                assert!(row[2].is_empty());
            }
            assert_eq!(row[3], cust.email.as_ref().map_or("", |e| e.as_str()));
            assert_eq!(
                row[4],
                cust.wechat_openid.as_ref().map_or("", |w| w.as_str())
            );
            match &cust.birthday {
                Some(b) => assert_eq!(Birthday::parse(&row[5]).as_ref(), Ok(b)),
                None => assert!(row[5].is_empty()),
            }
            assert_eq!(row[6], cust.store.as_ref().map_or("", |s| s.as_str()));
            assert_eq!(Tags::parse(&row[7]).as_ref(), Ok(&cust.tags));
            for (text, consent) in
                row[8..11]
                    .iter()
                    .zip([cust.sms_opt_in, cust.email_opt_in, cust.wechat_opt_in])
            {
                assert_eq!(Consent::parse(text).as_ref(), Ok(&consent));
            }
            let joined = cust.joined_at.expect("generated customers have joined_at");
            assert_eq!(parse_time(&row[11]), joined);
            match cust.store.as_ref().map(|s| zones[s.as_str()]) {
                Some(tz) => {
                    let local = joined.with_timezone(&tz).to_rfc3339();
                    assert_eq!(row[11], local);
                }
                None => assert!(row[11].ends_with('Z'), "{}", row[11]),
            }
        }

        let text = std::fs::read_to_string(dir.path().join("orders.csv")).expect("read");
        let rows = parse_csv(&text);
        assert_eq!(rows[0].join(","), ORDERS_HEADER);
        let orders: Vec<&Order> = all.iter().flat_map(|(_, v)| v).collect();
        assert_eq!(rows.len(), orders.len() + 1);
        for (row, order) in rows[1..].iter().zip(orders) {
            assert_eq!(row.len(), 6);
            assert_eq!(row[0], order.id.as_str());
            assert_eq!(row[1], order.customer_id.as_str());
            assert_eq!(row[2], order.store.as_str());
            assert_eq!(Money::parse_yuan(&row[3]), Ok(order.amount));
            let tz = zones[order.store.as_str()];
            assert_eq!(row[4], order.ordered_at.with_timezone(&tz).to_rfc3339());
            assert_eq!(parse_time(&row[4]), order.ordered_at);
            assert!(row[5].is_empty());
        }
    }

    #[test]
    fn jsonl_has_the_same_fields() {
        let dir = tempfile::tempdir().expect("temp dir");
        let all: Vec<(Customer, Vec<Order>)> =
            Generator::new(4, 200, now(), demo_stores()).collect();
        let (c, o) = write_jsonl(all.clone().into_iter(), dir.path()).expect("write jsonl");
        assert_eq!(c, 200);
        let text = std::fs::read_to_string(dir.path().join("customers.jsonl")).expect("read");
        let keys: Vec<&str> = CUSTOMERS_HEADER.split(',').collect();
        for (line, (cust, _)) in text.lines().zip(&all) {
            let v: serde_json::Value = serde_json::from_str(line).expect("valid JSON");
            let obj = v.as_object().expect("object");
            assert_eq!(obj.keys().count(), keys.len());
            assert!(keys.iter().all(|k| obj.contains_key(*k)));
            assert_eq!(v["id"], cust.id.as_str());
            let tags: Vec<&str> = v["tags"]
                .as_array()
                .expect("tags array")
                .iter()
                .filter_map(|t| t.as_str())
                .collect();
            assert_eq!(tags, cust.tags.iter().collect::<Vec<_>>());
            assert_eq!(v["sms_opt_in"].as_bool(), cust.sms_opt_in.to_db());
            assert_eq!(v["email_opt_in"].as_bool(), cust.email_opt_in.to_db());
            let joined = v["joined_at"].as_str().expect("joined_at string");
            assert_eq!(Some(parse_time(joined)), cust.joined_at);
        }
        let text = std::fs::read_to_string(dir.path().join("orders.jsonl")).expect("read");
        assert_eq!(text.lines().count() as u64, o);
        let orders: Vec<&Order> = all.iter().flat_map(|(_, v)| v).collect();
        for (line, order) in text.lines().zip(orders) {
            let v: serde_json::Value = serde_json::from_str(line).expect("valid JSON");
            assert_eq!(v["id"], order.id.as_str());
            let amount = v["amount"].as_str().expect("amount string");
            assert_eq!(Money::parse_yuan(amount), Ok(order.amount));
            let at = v["ordered_at"].as_str().expect("ordered_at string");
            assert_eq!(parse_time(at), order.ordered_at);
            assert!(v["coupon_code"].is_null());
        }
    }

    /// Times generating and writing 100,000 customers; run with `--ignored --nocapture`.
    #[test]
    #[ignore]
    fn time_100k_csv() {
        let dir = tempfile::tempdir().expect("temp dir");
        let start = std::time::Instant::now();
        let (c, o) = write_csv(
            Generator::new(2026, 100_000, now(), demo_stores()),
            dir.path(),
        )
        .expect("csv");
        let csv = start.elapsed();
        let start = std::time::Instant::now();
        let gen_only: usize = Generator::new(2026, 100_000, now(), demo_stores())
            .map(|(_, v)| v.len())
            .sum();
        let generate = start.elapsed();
        let start = std::time::Instant::now();
        write_jsonl(
            Generator::new(2026, 100_000, now(), demo_stores()),
            dir.path(),
        )
        .expect("jsonl");
        let jsonl = start.elapsed();
        println!(
            "{c} customers, {o} orders: generate {generate:?}, generate+CSV {csv:?}, generate+JSONL {jsonl:?}"
        );
        assert_eq!(gen_only as u64, o);
    }
}
