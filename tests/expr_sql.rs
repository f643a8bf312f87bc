//! The compiled SQL of an expression selects exactly the customers for whom
//! `Expr::eval` is true: random well-typed expressions over random customers
//! (with missing values, leap-day birthdays, odd tags and quotes), on SQLite
//! in memory and, when OUTREACH_TEST_DATABASE_URL is set, on PostgreSQL.

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate};
use outreach::expr::{
    Attr, AttrLookup, AttrType, BindParams, CheckContext, DAYPARTS, Dialect, Expr, LIFECYCLES,
    MAX_CHARS, Placeholders, SqlParam, VALUE_TIERS, Value, date_of_day_number, day_number,
};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;
use sqlx::{AssertSqlSafe, Connection};

const SEED: u64 = 0x5e9_2026;
const CUSTOMERS: usize = 300;
const RANDOM_EXPRESSIONS: usize = 600;
/// The hand-written ones in [`expressions`].
const FIXED_EXPRESSIONS: usize = 10;

const STORES: [&str; 4] = ["SH-001", "SH-002", "BJ-001", "x' OR 1=1 --"];
/// Includes tags that are part of others (`veg`, `menu`) and quotes.
const TAGS: [&str; 10] = [
    "vip",
    "spicy",
    "vegetarian",
    "veg",
    "素食",
    "it's",
    "a\\b",
    "kids menu",
    "menu",
    "say \"hi\"",
];
const RFMS: [&str; 4] = ["545", "111", "345", "555"];
/// Money values in fen, around the literals the generator writes.
const FEN: [i64; 9] = [0, 1, 9_949, 9_950, 9_951, 10_000, 12_350, -320, 50_000];

/// `today` of each store key: the day before, on and after a leap day, and a new year's eve.
fn todays() -> Vec<(i64, i64)> {
    ["2024-02-28", "2024-02-29", "2024-03-01", "2025-12-31"]
        .iter()
        .enumerate()
        .map(|(i, d)| (i as i64 + 1, day_number(date(d))))
        .collect()
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
}

// ---- customers ----

/// One customer as stored (day numbers, fen, `;`-joined tags).
#[derive(Debug, Clone)]
struct Row {
    id: i64,
    store_key: i64,
    birth: Option<(i64, i64)>,
    tags: String,
    store_code: Option<String>,
    last_order_day: Option<i64>,
    order_count: i64,
    total_spent_fen: i64,
    avg_order_fen: Option<i64>,
    order_count_90d: i64,
    spent_90d_fen: i64,
    spent_365d_fen: i64,
    first_order_day: Option<i64>,
    joined_day: Option<i64>,
    favorite_daypart: Option<String>,
    lifecycle: String,
    value_tier: String,
}

/// Missing one time in five.
fn maybe<T>(rng: &mut ChaCha8Rng, value: impl FnOnce(&mut ChaCha8Rng) -> T) -> Option<T> {
    let v = value(rng);
    (!rng.random_bool(0.2)).then_some(v)
}

fn pick(rng: &mut ChaCha8Rng, items: &[&str]) -> String {
    items.choose(rng).copied().unwrap_or_default().to_owned()
}

fn random_row(rng: &mut ChaCha8Rng, id: i64, today: &HashMap<i64, i64>) -> Row {
    let store_key = rng.random_range(1..=today.len() as i64);
    let now = today[&store_key];
    let tags: Vec<&str> = TAGS
        .iter()
        .copied()
        .filter(|_| rng.random_bool(0.3))
        .collect();
    Row {
        id,
        store_key,
        birth: random_birth(rng),
        tags: tags.join(";"),
        store_code: maybe(rng, |r| pick(r, &STORES)),
        last_order_day: maybe(rng, |r| now - r.random_range(0..400)),
        order_count: rng.random_range(0..20),
        total_spent_fen: *FEN.choose(rng).unwrap_or(&0),
        avg_order_fen: maybe(rng, |r| *FEN.choose(r).unwrap_or(&0)),
        order_count_90d: rng.random_range(0..12),
        spent_90d_fen: *FEN.choose(rng).unwrap_or(&0),
        spent_365d_fen: rng.random_range(-1_000..60_000),
        first_order_day: maybe(rng, random_day),
        joined_day: maybe(rng, |r| now - r.random_range(-2..800)),
        favorite_daypart: maybe(rng, |r| pick(r, DAYPARTS)),
        lifecycle: pick(rng, LIFECYCLES),
        value_tier: pick(rng, VALUE_TIERS),
    }
}

/// Often a leap day or a day near "today"; sometimes unknown or impossible (Feb 30).
fn random_birth(rng: &mut ChaCha8Rng) -> Option<(i64, i64)> {
    match rng.random_range(0..10) {
        0 => None,
        1 => Some((2, 29)),
        2 => Some((2, 30)),
        3 => Some((*[2, 3].choose(rng).unwrap_or(&2), rng.random_range(25..=29))),
        4 => Some((12, 31)),
        5 => Some((1, 1)),
        _ => Some((rng.random_range(1..=12), rng.random_range(1..=28))),
    }
}

/// A day number around the test dates (2023-2025).
fn random_day(rng: &mut ChaCha8Rng) -> i64 {
    day_number(date("2024-02-29")) + rng.random_range(-400..700)
}

/// Days from `today` to the next (month, day); Feb 29 falls on Mar 1 in other years.
fn days_to_birthday(today: i64, month: u32, day: u32) -> i64 {
    let now = date_of_day_number(today).expect("valid day");
    (now.year()..=now.year() + 1)
        .map(|y| {
            NaiveDate::from_ymd_opt(y, month, day)
                .or_else(|| NaiveDate::from_ymd_opt(y, 3, 1))
                .expect("valid date")
        })
        .map(day_number)
        .find(|d| *d >= today)
        .expect("a birthday within a year")
        - today
}

/// Every (today, month, day) → days, for all 366 month-days.
fn birthday_table(todays: &[(i64, i64)]) -> HashMap<(i64, i64, i64), i64> {
    let mut table = HashMap::new();
    for (_, today) in todays {
        let mut d = date("2024-01-01");
        while d.year() == 2024 {
            let days = days_to_birthday(*today, d.month(), d.day());
            table.insert((*today, i64::from(d.month()), i64::from(d.day())), days);
            d = d.succ_opt().expect("next day");
        }
    }
    table
}

/// A store key's score thresholds: four each for recency (days), frequency
/// and money, as the segments job leaves them in `segment_run_state`.
type Thresholds = [[i64; 4]; 3];

/// No value reaches it (as `segments::thresholds::UNREACHABLE`).
const UNREACHABLE: i64 = 1 << 62;

/// Thresholds for the store keys but the last (not ranked yet: no scores):
/// around the rows' values, ascending, with ties and unreachable ones.
fn random_thresholds(rng: &mut ChaCha8Rng, today: &HashMap<i64, i64>) -> HashMap<i64, Thresholds> {
    let sorted = |rng: &mut ChaCha8Rng, pool: &dyn Fn(&mut ChaCha8Rng) -> i64| {
        let mut t = [0; 4].map(|_| pool(rng));
        t.sort_unstable();
        t
    };
    (1..today.len() as i64)
        .map(|key| {
            let now = today[&key];
            let r = sorted(rng, &|r| now - r.random_range(0..400));
            let f = sorted(rng, &|r| match r.random_range(0..6) {
                0 => UNREACHABLE,
                _ => r.random_range(1..=20),
            });
            let m = sorted(rng, &|r| match r.random_range(0..10) {
                0 => UNREACHABLE,
                _ => *FEN.choose(r).unwrap_or(&0),
            });
            (key, [r, f, m])
        })
        .collect()
}

/// A row as `Expr::eval` sees it.
struct Customer<'a> {
    row: &'a Row,
    today: i64,
    thresholds: Option<&'a Thresholds>,
    birthdays: &'a HashMap<(i64, i64, i64), i64>,
}

impl Customer<'_> {
    /// One more for each threshold of `metric` (0 recency, 1 frequency, 2
    /// money) the value reaches; none without orders or thresholds.
    fn score(&self, metric: usize, value: Option<i64>) -> Option<i64> {
        let thresholds = self.thresholds?;
        if self.row.order_count <= 0 {
            return None;
        }
        let reached = thresholds[metric]
            .iter()
            .filter(|t| value.is_some_and(|v| v >= **t))
            .count();
        Some(1 + reached as i64)
    }

    fn scores(&self) -> [Option<i64>; 3] {
        let r = self.row;
        [
            self.score(0, r.last_order_day),
            self.score(1, Some(r.order_count)),
            self.score(2, Some(r.total_spent_fen)),
        ]
    }
}

impl AttrLookup for Customer<'_> {
    fn get(&self, attr: Attr) -> Value {
        let r = self.row;
        let int = Value::Int;
        let opt = Value::from_opt_int;
        let text = |s: &Option<String>| Value::from_opt_text(s.as_deref());
        match attr {
            Attr::RecencyDays => opt(r.last_order_day.map(|d| self.today - d)),
            Attr::OrderCount => int(r.order_count),
            Attr::TotalSpent => int(r.total_spent_fen),
            Attr::AvgOrderValue => opt(r.avg_order_fen),
            Attr::OrderCount90d => int(r.order_count_90d),
            Attr::Spent90d => int(r.spent_90d_fen),
            Attr::Spent365d => int(r.spent_365d_fen),
            Attr::FirstOrderAt => opt(r.first_order_day),
            Attr::LastOrderAt => opt(r.last_order_day),
            Attr::DaysSinceJoined => opt(r.joined_day.map(|d| self.today - d)),
            Attr::FavoriteDaypart => text(&r.favorite_daypart),
            Attr::RScore => opt(self.scores()[0]),
            Attr::FScore => opt(self.scores()[1]),
            Attr::MScore => opt(self.scores()[2]),
            Attr::Rfm => match self.scores() {
                [Some(r), Some(f), Some(m)] => Value::Text(format!("{r}{f}{m}")),
                _ => Value::Null,
            },
            Attr::Lifecycle => Value::Text(r.lifecycle.clone()),
            Attr::ValueTier => Value::Text(r.value_tier.clone()),
            Attr::DaysToBirthday => opt(r
                .birth
                .and_then(|(m, d)| self.birthdays.get(&(self.today, m, d)).copied())),
            Attr::Tags => Value::tags_from_db(&r.tags),
            Attr::Store => text(&r.store_code),
        }
    }
}

// ---- random expressions ----

fn keyword(rng: &mut ChaCha8Rng, word: &str) -> String {
    match rng.random_range(0..4) {
        0 => word.to_uppercase(),
        1 => {
            let mut c = word.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        }
        _ => word.to_owned(),
    }
}

/// Text in single or double quotes, escaped.
fn quoted(rng: &mut ChaCha8Rng, s: &str) -> String {
    let q = if rng.random_bool(0.5) { '\'' } else { '"' };
    let escaped = s.replace('\\', "\\\\").replace(q, &format!("\\{q}"));
    format!("{q}{escaped}{q}")
}

fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let (y, f) = (fen.abs() / 100, fen.abs() % 100);
    match f {
        0 => format!("{sign}{y}"),
        f if f % 10 == 0 => format!("{sign}{y}.{}", f / 10),
        f => format!("{sign}{y}.{f:02}"),
    }
}

fn days_literal(rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..4) {
        0 => format!("{}w", rng.random_range(0..60)),
        1 => format!("{}d", rng.random_range(-3..420)),
        _ => rng.random_range(-3..420).to_string(),
    }
}

/// A literal of the attribute's type.
fn literal(rng: &mut ChaCha8Rng, attr: Attr) -> String {
    match attr.ty() {
        AttrType::Int => match attr.int_range() {
            Some((lo, hi)) => rng.random_range(lo..=hi).to_string(),
            None => rng.random_range(-1..21).to_string(),
        },
        AttrType::Days => days_literal(rng),
        AttrType::Money => {
            let fen = *FEN.choose(rng).unwrap_or(&0) + rng.random_range(-1..=1);
            yuan(fen)
        }
        AttrType::Date => {
            let d = date_of_day_number(random_day(rng)).expect("valid day");
            quoted(rng, &d.to_string())
        }
        AttrType::Enum(values) => {
            let v = pick(rng, values);
            quoted(rng, &v)
        }
        AttrType::Text if attr == Attr::Rfm => {
            let v = pick(rng, &RFMS);
            quoted(rng, &v)
        }
        AttrType::Text | AttrType::Tags => {
            let pool: &[&str] = if attr == Attr::Tags { &TAGS } else { &STORES };
            let v = pick(rng, pool);
            quoted(rng, &v)
        }
    }
}

fn list(rng: &mut ChaCha8Rng, attr: Attr) -> String {
    let n = rng.random_range(1..=3);
    let items: Vec<String> = (0..n).map(|_| literal(rng, attr)).collect();
    format!("[{}]", items.join(", "))
}

fn condition(rng: &mut ChaCha8Rng) -> String {
    let attr = *Attr::ALL.choose(rng).expect("attributes");
    let name = attr.name();
    if attr == Attr::Tags {
        let not = if rng.random_bool(0.3) { "not " } else { "" };
        return format!(
            "{name} {not}{} {}",
            keyword(rng, "contains"),
            literal(rng, attr)
        );
    }
    let ordered = matches!(
        attr.ty(),
        AttrType::Int | AttrType::Days | AttrType::Money | AttrType::Date
    );
    let ops: &[&str] = if ordered {
        &["==", "=", "!=", "<", "<=", ">", ">=", "in", "not in"]
    } else {
        &["==", "=", "!=", "in", "not in"]
    };
    let op = ops.choose(rng).copied().unwrap_or("==");
    if op.ends_with("in") {
        let kw = keyword(rng, op);
        return format!("{name} {kw} {}", list(rng, attr));
    }
    let space = if rng.random_bool(0.8) { " " } else { "" };
    format!("{name}{space}{op}{space}{}", literal(rng, attr))
}

fn expression(rng: &mut ChaCha8Rng, depth: u32) -> String {
    if depth == 0 || rng.random_bool(0.35) {
        return condition(rng);
    }
    match rng.random_range(0..5) {
        0 => format!("{} {}", keyword(rng, "not"), expression(rng, depth - 1)),
        1 => format!("({})", expression(rng, depth - 1)),
        n => {
            let join = keyword(rng, if n == 2 { "or" } else { "and" });
            let parts: Vec<String> = (0..rng.random_range(2..=3))
                .map(|_| expression(rng, depth - 1))
                .collect();
            parts.join(&format!(" {join} "))
        }
    }
}

/// The language's own examples, an injection attempt, then random expressions.
fn expressions(rng: &mut ChaCha8Rng) -> Vec<String> {
    let mut all: Vec<String> = [
        "order_count_90d >= 8 and favorite_daypart == 'morning'",
        "lifecycle == 'at_risk' and m_score >= 4",
        "tags contains 'vegetarian'",
        "tags contains '素食' or tags contains \"it's\"",
        "store in ['SH-001','SH-002']",
        "order_count >= 2 and total_spent >= 100",
        "recency_days > 30d and not (value_tier == 'regular')",
        "days_to_birthday <= 7 and not days_to_birthday < 0",
        "not (store != 'SH-001') or not rfm in ['545']",
        "store == 'x\\' OR 1=1 --'",
    ]
    .map(str::to_owned)
    .to_vec();
    while all.len() < FIXED_EXPRESSIONS + RANDOM_EXPRESSIONS {
        let src = expression(rng, 4);
        if src.chars().count() <= MAX_CHARS {
            all.push(src);
        }
    }
    all
}

// ---- backends ----

/// A database the comparison runs on.
trait Backend {
    fn dialect(&self) -> Dialect;
    async fn execute(&mut self, sql: &str, cells: &[Cell]) -> Result<(), String>;
    /// Customer ids matched by `fragment`, with `$1`/the first `?` bound to `min_id`.
    async fn ids(
        &mut self,
        sql: &str,
        min_id: i64,
        params: &[SqlParam],
    ) -> Result<Vec<i64>, String>;
}

/// One bound value of an INSERT.
enum Cell {
    Int(Option<i64>),
    Text(Option<String>),
}

struct Sqlite(SqliteConnection);
struct Postgres(PgConnection);

impl Backend for Sqlite {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn execute(&mut self, sql: &str, cells: &[Cell]) -> Result<(), String> {
        let mut q = sqlx::query(AssertSqlSafe(sql.to_owned()));
        for cell in cells {
            q = match cell {
                Cell::Int(v) => q.bind(*v),
                Cell::Text(v) => q.bind(v.clone()),
            };
        }
        q.execute(&mut self.0)
            .await
            .map(drop)
            .map_err(|e| format!("{sql}: {e}"))
    }

    async fn ids(
        &mut self,
        sql: &str,
        min_id: i64,
        params: &[SqlParam],
    ) -> Result<Vec<i64>, String> {
        sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
            .bind(min_id)
            .bind_params(params)
            .fetch_all(&mut self.0)
            .await
            .map_err(|e| format!("{sql}: {e}"))
    }
}

impl Backend for Postgres {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn execute(&mut self, sql: &str, cells: &[Cell]) -> Result<(), String> {
        let mut q = sqlx::query(AssertSqlSafe(sql.to_owned()));
        for cell in cells {
            q = match cell {
                Cell::Int(v) => q.bind(*v),
                Cell::Text(v) => q.bind(v.clone()),
            };
        }
        q.execute(&mut self.0)
            .await
            .map(drop)
            .map_err(|e| format!("{sql}: {e}"))
    }

    async fn ids(
        &mut self,
        sql: &str,
        min_id: i64,
        params: &[SqlParam],
    ) -> Result<Vec<i64>, String> {
        sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
            .bind(min_id)
            .bind_params(params)
            .fetch_all(&mut self.0)
            .await
            .map_err(|e| format!("{sql}: {e}"))
    }
}

const SCHEMA: [&str; 4] = [
    "CREATE TABLE customers (id BIGINT PRIMARY KEY, birth_month INTEGER, birth_day INTEGER,
        tags TEXT NOT NULL, store_code TEXT)",
    "CREATE TABLE customer_attributes (id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL,
        store_key BIGINT NOT NULL, last_order_day INTEGER, order_count INTEGER NOT NULL,
        total_spent_fen BIGINT NOT NULL, avg_order_fen BIGINT, order_count_90d INTEGER NOT NULL,
        spent_90d_fen BIGINT NOT NULL, spent_365d_fen BIGINT NOT NULL, first_order_day INTEGER,
        joined_day INTEGER, favorite_daypart TEXT, lifecycle TEXT NOT NULL,
        value_tier TEXT NOT NULL)",
    "CREATE TABLE seg_today (store_key BIGINT PRIMARY KEY, today INTEGER NOT NULL,
        r1 BIGINT, r2 BIGINT, r3 BIGINT, r4 BIGINT, f1 BIGINT, f2 BIGINT, f3 BIGINT, f4 BIGINT,
        m1 BIGINT, m2 BIGINT, m3 BIGINT, m4 BIGINT)",
    "CREATE TABLE seg_birthdays (today INTEGER NOT NULL, month INTEGER NOT NULL,
        day INTEGER NOT NULL, days INTEGER NOT NULL, PRIMARY KEY (today, month, day))",
];

/// `?, ?, ?` or `$1, $2, $3`.
fn placeholders(dialect: Dialect, n: usize) -> String {
    let one = |i: usize| match dialect {
        Dialect::Sqlite => "?".to_owned(),
        Dialect::Postgres => format!("${i}"),
    };
    (1..=n).map(one).collect::<Vec<_>>().join(", ")
}

async fn insert(
    db: &mut impl Backend,
    table: &str,
    cols: &str,
    cells: &[Cell],
) -> Result<(), String> {
    let sql = format!(
        "INSERT INTO {table} ({cols}) VALUES ({})",
        placeholders(db.dialect(), cells.len())
    );
    db.execute(&sql, cells).await
}

fn int(v: i64) -> Cell {
    Cell::Int(Some(v))
}

fn text(v: &str) -> Cell {
    Cell::Text(Some(v.to_owned()))
}

async fn insert_row(db: &mut impl Backend, r: &Row) -> Result<(), String> {
    let customer = [
        int(r.id),
        Cell::Int(r.birth.map(|b| b.0)),
        Cell::Int(r.birth.map(|b| b.1)),
        text(&r.tags),
        Cell::Text(r.store_code.clone()),
    ];
    let cols = "id, birth_month, birth_day, tags, store_code";
    insert(db, "customers", cols, &customer).await?;
    let attributes = [
        int(r.id + 1_000),
        int(r.id),
        int(r.store_key),
        Cell::Int(r.last_order_day),
        int(r.order_count),
        int(r.total_spent_fen),
        Cell::Int(r.avg_order_fen),
        int(r.order_count_90d),
        int(r.spent_90d_fen),
        int(r.spent_365d_fen),
        Cell::Int(r.first_order_day),
        Cell::Int(r.joined_day),
        Cell::Text(r.favorite_daypart.clone()),
        text(&r.lifecycle),
        text(&r.value_tier),
    ];
    let cols = "id, customer_id, store_key, last_order_day, order_count, total_spent_fen, \
        avg_order_fen, order_count_90d, spent_90d_fen, spent_365d_fen, first_order_day, \
        joined_day, favorite_daypart, lifecycle, value_tier";
    insert(db, "customer_attributes", cols, &attributes).await
}

/// Tables and rows for the comparison.
struct Fixture {
    rows: Vec<Row>,
    today: HashMap<i64, i64>,
    thresholds: HashMap<i64, Thresholds>,
    birthdays: HashMap<(i64, i64, i64), i64>,
}

impl Fixture {
    fn new(rng: &mut ChaCha8Rng) -> Fixture {
        let todays = todays();
        let today: HashMap<i64, i64> = todays.iter().copied().collect();
        let rows = (1..=CUSTOMERS as i64)
            .map(|id| random_row(rng, id, &today))
            .collect();
        Fixture {
            rows,
            thresholds: random_thresholds(rng, &today),
            birthdays: birthday_table(&todays),
            today,
        }
    }

    async fn load(&self, db: &mut impl Backend) -> Result<(), String> {
        for ddl in SCHEMA {
            db.execute(ddl, &[]).await?;
        }
        for (key, today) in &self.today {
            let mut cells = vec![int(*key), int(*today)];
            let thresholds = self.thresholds.get(key);
            for k in 0..12 {
                cells.push(Cell::Int(thresholds.map(|t| t[k / 4][k % 4])));
            }
            let cols = "store_key, today, r1, r2, r3, r4, f1, f2, f3, f4, m1, m2, m3, m4";
            insert(db, "seg_today", cols, &cells).await?;
        }
        for ((today, m, d), days) in &self.birthdays {
            let cells = [int(*today), int(*m), int(*d), int(*days)];
            insert(db, "seg_birthdays", "today, month, day, days", &cells).await?;
        }
        for row in &self.rows {
            insert_row(db, row).await?;
        }
        Ok(())
    }

    fn customer<'a>(&'a self, row: &'a Row) -> Customer<'a> {
        Customer {
            row,
            today: self.today[&row.store_key],
            thresholds: self.thresholds.get(&row.store_key),
            birthdays: &self.birthdays,
        }
    }

    /// Ids above `min_id` for which `eval` is true.
    fn expected(&self, expr: &Expr, min_id: i64) -> Vec<i64> {
        self.rows
            .iter()
            .filter(|r| r.id > min_id && expr.eval(&self.customer(r)))
            .map(|r| r.id)
            .collect()
    }

    /// Why the first differing customer differs.
    fn explain_difference(&self, expr: &Expr, got: &[i64], want: &[i64]) -> String {
        let Some(id) = got
            .iter()
            .chain(want)
            .copied()
            .find(|id| got.contains(id) != want.contains(id))
        else {
            return String::new();
        };
        let row = &self.rows[(id - 1) as usize];
        let clauses = expr.explain(&self.customer(row));
        format!(
            "customer {id}: SQL {}, eval {}; {clauses:#?}; {row:#?}",
            got.contains(&id),
            want.contains(&id)
        )
    }
}

/// Compile, run and compare one expression.
async fn compare(
    db: &mut impl Backend,
    fixture: &Fixture,
    src: &str,
    min_id: i64,
) -> Result<usize, String> {
    let ctx = CheckContext {
        stores: Some(STORES.map(str::to_owned).to_vec()),
    };
    let expr = Expr::parse(src, &ctx).map_err(|e| format!("generated {src:?}: {e}"))?;
    let (mut ph, outer) = match db.dialect() {
        Dialect::Sqlite => (Placeholders::new(), "?"),
        Dialect::Postgres => (Placeholders::starting_at(2), "$1"),
    };
    let fragment = expr.to_sql(db.dialect(), &mut ph);
    let sql = format!(
        "SELECT c.id FROM customers c \
         JOIN customer_attributes a ON a.customer_id = c.id \
         JOIN seg_today t ON t.store_key = a.store_key \
         WHERE c.id > {outer} AND {fragment} ORDER BY c.id"
    );
    let got = db.ids(&sql, min_id, ph.params()).await?;
    let want = fixture.expected(&expr, min_id);
    if got != want {
        return Err(format!(
            "{src}\n{sql}\n{:?}\n{}",
            ph.params(),
            fixture.explain_difference(&expr, &got, &want)
        ));
    }
    Ok(got.len())
}

/// Load the fixture and compare every expression; returns how many matched nothing / everything.
async fn run(db: &mut impl Backend) -> Result<(usize, usize), String> {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let fixture = Fixture::new(&mut rng);
    fixture.load(db).await?;
    let (mut none, mut all) = (0, 0);
    for (i, src) in expressions(&mut rng).iter().enumerate() {
        let min_id = if i % 3 == 0 { 10 } else { 0 };
        let n = compare(db, &fixture, src, min_id).await?;
        none += usize::from(n == 0);
        all += usize::from(n == CUSTOMERS - min_id as usize);
    }
    injection_matches_only_its_row(db, &fixture).await?;
    Ok((none, all))
}

/// A literal that looks like SQL is compared as text: it matches exactly the
/// customers whose store code is that text.
async fn injection_matches_only_its_row(db: &mut impl Backend, f: &Fixture) -> Result<(), String> {
    let src = r"store == 'x\' OR 1=1 --'";
    let n = compare(db, f, src, 0).await?;
    let want = f
        .rows
        .iter()
        .filter(|r| r.store_code.as_deref() == Some(STORES[3]))
        .count();
    if n != want || n == 0 || n == CUSTOMERS {
        return Err(format!("{src} matched {n} customers, want {want}"));
    }
    Ok(())
}

/// Most expressions must select some customers but not all, or the test proves little.
fn assert_discriminating((none, all): (usize, usize)) {
    let total = FIXED_EXPRESSIONS + RANDOM_EXPRESSIONS;
    eprintln!("{total} expressions: {none} matched nobody, {all} everybody");
    assert!(
        none < total / 3,
        "{none} of {total} expressions matched nobody"
    );
    assert!(
        all < total / 3,
        "{all} of {total} expressions matched everybody"
    );
}

#[tokio::test]
async fn sql_agrees_with_eval_on_sqlite() {
    let conn = SqliteConnection::connect("sqlite::memory:")
        .await
        .expect("in-memory SQLite");
    let mut db = Sqlite(conn);
    let counts = run(&mut db).await.unwrap_or_else(|e| panic!("{e}"));
    assert_discriminating(counts);
}

#[tokio::test]
async fn sql_agrees_with_eval_on_postgres() {
    let Some(url) = std::env::var("OUTREACH_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    else {
        eprintln!("skipped: OUTREACH_TEST_DATABASE_URL is not set, PostgreSQL part not tested");
        return;
    };
    let mut conn = PgConnection::connect(&url)
        .await
        .expect("connect to PostgreSQL");
    let schema = format!(
        "expr_test_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    );
    for sql in [
        format!("CREATE SCHEMA {schema}"),
        format!("SET search_path TO {schema}"),
    ] {
        sqlx::query(AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .expect("schema");
    }
    let mut db = Postgres(conn);
    let result = run(&mut db).await;
    let drop = format!("DROP SCHEMA {schema} CASCADE");
    sqlx::query(AssertSqlSafe(drop))
        .execute(&mut db.0)
        .await
        .expect("drop test schema");
    assert_discriminating(result.unwrap_or_else(|e| panic!("{e}")));
}
