//! Deterministic, streaming generator of demo customers and their order histories.
//!
//! Every customer is produced from its own ChaCha8 stream keyed by `(seed, index)`, so a
//! customer's data depends only on the seed, its index, `now` and the store list: the first
//! 1,000 customers of a 2,000-customer run equal a 1,000-customer run, and customers can be
//! generated in any order or in parallel with [`Generator::customer`].

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc,
    Weekday,
};
use chrono_tz::Tz;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::names;
use crate::domain::{
    Birthday, Consent, Customer, CustomerId, Email, Money, Order, OrderId, Phone, StoreCode,
    StoreInfo, Tags, WeChatOpenId,
};

/// Tags handed out to some customers, in canonical order.
pub const DEMO_TAGS: [&str; 6] = [
    "vegetarian",
    "spicy",
    "student",
    "office",
    "family",
    "no_sugar",
];

/// Order histories reach back this many days before `now`.
pub const HISTORY_DAYS: i64 = 730;

/// Smallest order amount in fen (¥8.00).
pub const MIN_AMOUNT_FEN: i64 = 800;
/// Largest order amount in fen (¥80.00); family orders are ¥40–¥80.
pub const MAX_AMOUNT_FEN: i64 = 8_000;

/// The demo chain: two Shanghai shops, Beijing, Guangzhou and one Sydney shop (with DST).
pub fn demo_stores() -> Vec<StoreInfo> {
    const STORES: [(&str, &str, &str, Tz); 5] = [
        (
            "SH-001",
            "早安包子铺（静安寺店）",
            "早安包子铺",
            chrono_tz::Asia::Shanghai,
        ),
        (
            "SH-002",
            "茶语时光（徐家汇店）",
            "茶语时光",
            chrono_tz::Asia::Shanghai,
        ),
        (
            "BJ-001",
            "麦香烘焙坊（望京店）",
            "麦香烘焙坊",
            chrono_tz::Asia::Shanghai,
        ),
        (
            "GZ-001",
            "粤点茶餐厅（天河店）",
            "粤点茶餐厅",
            chrono_tz::Asia::Shanghai,
        ),
        (
            "SYD-001",
            "茶语时光（悉尼唐人街店）",
            "茶语时光",
            chrono_tz::Australia::Sydney,
        ),
    ];
    STORES
        .iter()
        .map(|&(code, name, sms_signature, timezone)| StoreInfo {
            // The codes above are constants made of [A-Z0-9-], valid store codes by construction.
            code: StoreCode::parse(code).expect("demo store codes are valid"),
            name: name.to_owned(),
            sms_signature: sms_signature.to_owned(),
            timezone,
        })
        .collect()
}

/// The behaviour behind a demo customer's order history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Persona {
    /// Breakfast 3–6 times a week (06:30–09:30 local), still coming.
    BreakfastRegular,
    /// Noon or afternoon milk tea 2–4 times a week, still coming.
    TeaRegular,
    /// A few visits a month or fewer.
    Occasional,
    /// Used to come; last order about 30 days ago.
    Lapsed30,
    /// Last order about 60 days ago.
    Lapsed60,
    /// Last order about 120 days ago.
    Lapsed120,
    /// Last order about 400 days ago.
    Lapsed400,
    /// Joined in the last 30 days, at most one order.
    NewSignup,
    /// Signed up but never ordered.
    NeverOrdered,
}

impl Persona {
    /// All personas with their weight per 1,000 customers.
    pub const MIX: [(Persona, u32); 9] = [
        (Persona::BreakfastRegular, 20),
        (Persona::TeaRegular, 15),
        (Persona::Occasional, 600),
        (Persona::Lapsed30, 40),
        (Persona::Lapsed60, 40),
        (Persona::Lapsed120, 40),
        (Persona::Lapsed400, 60),
        (Persona::NewSignup, 60),
        (Persona::NeverOrdered, 125),
    ];

    fn draw<R: Rng + ?Sized>(rng: &mut R) -> Persona {
        let mut pick = rng.random_range(0..1_000u32);
        for (persona, weight) in Self::MIX {
            if pick < weight {
                return persona;
            }
            pick -= weight;
        }
        Persona::Occasional
    }
}

/// Which part of the day a customer tends to visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Habit {
    Breakfast,
    Tea,
    Mixed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Daypart {
    Breakfast,
    Lunch,
    Afternoon,
    Evening,
    Family,
}

/// Per-store data precomputed once per generator.
#[derive(Debug, Clone)]
struct Store {
    info: StoreInfo,
    weight: u32,
    /// Local calendar date of `now` at this store, as days from CE.
    today: i32,
    australian: bool,
    /// Other stores in the same time zone (customers sometimes order there).
    siblings: Vec<usize>,
}

/// Streams `(Customer, Vec<Order>)` for customers `0..customers`; see the module docs.
#[derive(Debug, Clone)]
pub struct Generator {
    seed: u64,
    customers: u64,
    next: u64,
    now: DateTime<Utc>,
    stores: Vec<Store>,
    store_weight_total: u32,
}

impl Generator {
    /// A generator of `customers` customers with order histories ending at `now`.
    ///
    /// Shanghai stores (`SH…` codes in `Asia/Shanghai`) get three times the customers of the
    /// others. With an empty store list customers have no home store and no orders.
    pub fn new(seed: u64, customers: u64, now: DateTime<Utc>, stores: Vec<StoreInfo>) -> Self {
        let mut built: Vec<Store> = stores
            .into_iter()
            .map(|info| {
                let tz = info.timezone;
                let weight =
                    if tz == chrono_tz::Asia::Shanghai && info.code.as_str().starts_with("SH") {
                        3
                    } else {
                        1
                    };
                Store {
                    today: now.with_timezone(&tz).date_naive().num_days_from_ce(),
                    australian: tz.name().starts_with("Australia/"),
                    weight,
                    siblings: Vec::new(),
                    info,
                }
            })
            .collect();
        for i in 0..built.len() {
            let tz = built[i].info.timezone;
            built[i].siblings = (0..built.len())
                .filter(|&j| j != i && built[j].info.timezone == tz)
                .collect();
        }
        let store_weight_total = built.iter().map(|s| s.weight).sum();
        Generator {
            seed,
            customers,
            next: 0,
            now,
            stores: built,
            store_weight_total,
        }
    }

    /// The persona of customer `index` (cheap: draws only the persona).
    pub fn persona(seed: u64, index: u64) -> Persona {
        Persona::draw(&mut customer_rng(seed, index))
    }

    /// Generates customer `index` (0-based) and its orders, oldest first.
    pub fn customer(&self, index: u64) -> (Customer, Vec<Order>) {
        let mut rng = customer_rng(self.seed, index);
        let persona = Persona::draw(&mut rng);

        let primary = self.pick_store(&mut rng);
        let home = primary.filter(|_| rng.random_bool(0.97));
        let australian = primary.is_some_and(|s| self.stores[s].australian);

        let id = CustomerId::from_trusted(customer_id_text(index));
        let chinese = names::chinese_name(&mut rng);
        let name = if !rng.random_bool(0.95) {
            None
        } else if australian && rng.random_bool(0.35) {
            let given = names::english_given(&mut rng);
            let surname = names::capitalised(chinese.surname.pinyin);
            Some(if rng.random_bool(0.2) {
                format!("{surname}, {given}")
            } else {
                format!("{given} {surname}")
            })
        } else {
            Some(chinese.hanzi())
        };

        let phone = rng
            .random_bool(0.93)
            .then(|| Phone::from_trusted(self.phone_text(&mut rng, index, australian)));
        let email = rng
            .random_bool(0.35)
            .then(|| Email::from_trusted(names::email_for(&mut rng, &chinese)));
        let wechat_openid = rng
            .random_bool(0.55)
            .then(|| WeChatOpenId::from_trusted(openid_text(&mut rng)));

        let sms_opt_in = consent(&mut rng, phone.is_some(), 0.62, 0.13);
        let email_opt_in = consent(&mut rng, email.is_some(), 0.45, 0.20);
        let wechat_opt_in = consent(&mut rng, wechat_openid.is_some(), 0.68, 0.10);

        let tag_mask = draw_tags(&mut rng);
        let tags = Tags::from_list(
            DEMO_TAGS
                .iter()
                .enumerate()
                .filter(|(i, _)| tag_mask & (1 << i) != 0)
                .map(|(_, t)| (*t).to_owned()),
        )
        // At most two distinct short tags from DEMO_TAGS: always valid.
        .expect("demo tags are valid");
        let family = tag_mask & (1 << 4) != 0;

        let birthday = birthday(&mut rng, index);

        let (orders, joined_at) = match primary {
            Some(store) => {
                let mut book = OrderBook {
                    generator: self,
                    store,
                    today: self.stores[store].today,
                    customer_id: &id,
                    family,
                    orders: Vec::new(),
                };
                let joined_at = book.fill(&mut rng, persona);
                (book.orders, joined_at)
            }
            None => {
                let ago = rng.random_range(31 * 86_400..HISTORY_DAYS * 86_400);
                (Vec::new(), self.now_secs() - Duration::seconds(ago))
            }
        };

        let customer = Customer {
            id,
            name,
            phone,
            email,
            wechat_openid,
            birthday,
            store: home.map(|s| self.stores[s].info.code.clone()),
            tags,
            sms_opt_in,
            email_opt_in,
            wechat_opt_in,
            joined_at: Some(joined_at),
        };
        (customer, orders)
    }

    /// `now` truncated to whole seconds.
    fn now_secs(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.now.timestamp(), 0).unwrap_or(self.now)
    }

    fn pick_store(&self, rng: &mut ChaCha8Rng) -> Option<usize> {
        if self.stores.is_empty() {
            return None;
        }
        let mut pick = rng.random_range(0..self.store_weight_total);
        for (i, s) in self.stores.iter().enumerate() {
            if pick < s.weight {
                return Some(i);
            }
            pick -= s.weight;
        }
        Some(0)
    }

    /// A mobile number in E.164, unique per customer index (below 10^8 customers): the last
    /// eight digits are an affine permutation of the index.
    fn phone_text(&self, rng: &mut ChaCha8Rng, index: u64, australian: bool) -> String {
        const PREFIXES: [u16; 38] = [
            130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 145, 147, 150, 151, 152, 153, 155,
            156, 157, 158, 159, 166, 170, 173, 175, 176, 177, 178, 180, 181, 182, 183, 185, 186,
            187, 188, 189, 199,
        ];
        const MODULUS: u64 = 100_000_000;
        let offset = splitmix(self.seed) % MODULUS;
        let tail = ((index % MODULUS) * 73_939_133 + offset) % MODULUS;
        if australian && rng.random_bool(0.75) {
            format!("+614{tail:08}")
        } else {
            let prefix = PREFIXES[rng.random_range(0..PREFIXES.len())];
            format!("+86{prefix}{tail:08}")
        }
    }
}

impl Iterator for Generator {
    type Item = (Customer, Vec<Order>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.customers {
            return None;
        }
        let item = self.customer(self.next);
        self.next += 1;
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.customers - self.next).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Generator {}

impl std::iter::FusedIterator for Generator {}

/// The ChaCha8 stream of one customer: key = seed, index and a fixed label.
fn customer_rng(seed: u64, index: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&index.to_le_bytes());
    key[16..].copy_from_slice(b"outreach-demo-v1");
    ChaCha8Rng::from_seed(key)
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `C0000001` for index 0.
fn customer_id_text(index: u64) -> String {
    format!("C{:07}", index + 1)
}

fn openid_text(rng: &mut ChaCha8Rng) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut s = String::with_capacity(28);
    s.push_str("oQ3kT");
    let mut bits = 0u64;
    for i in 0..23 {
        if i % 10 == 0 {
            bits = rng.random();
        }
        s.push(char::from(ALPHABET[(bits & 63) as usize]));
        bits >>= 6;
    }
    s
}

/// Yes/no/unknown; customers without an address mostly stay unknown, but a few say yes
/// (so sends hit the `no_address` path).
fn consent(rng: &mut ChaCha8Rng, has_address: bool, yes: f64, no: f64) -> Consent {
    let (yes, no) = if has_address { (yes, no) } else { (0.04, 0.08) };
    let x: f64 = rng.random();
    if x < yes {
        Consent::Yes
    } else if x < yes + no {
        Consent::No
    } else {
        Consent::Unknown
    }
}

/// A bit mask over [`DEMO_TAGS`]: 40 % of customers get one or two tags.
fn draw_tags(rng: &mut ChaCha8Rng) -> u8 {
    if !rng.random_bool(0.4) {
        return 0;
    }
    let mut mask = 1u8 << rng.random_range(0..DEMO_TAGS.len());
    if rng.random_bool(0.3) {
        mask |= 1 << rng.random_range(0..DEMO_TAGS.len());
    }
    // "student" and "office" exclude each other.
    if mask & 0b1100 == 0b1100 {
        mask &= !0b1000;
    }
    mask
}

/// Customers 0..366 get every month-day of a leap year in turn (Feb 29 included); the rest
/// get a random birthday (78 %), about a third of them with a year.
fn birthday(rng: &mut ChaCha8Rng, index: u64) -> Option<Birthday> {
    let (date, keep_year) = if index < 366 {
        // 2000 is a leap year, so ordinals 1..=366 are all valid; index < 366 fits in u32.
        let date = NaiveDate::from_yo_opt(2000, index as u32 + 1)?;
        // Feb 29 only with a leap year: 1960, 1964, …, 2008.
        let year = if date.month() == 2 && date.day() == 29 {
            1960 + 4 * rng.random_range(0..13)
        } else {
            rng.random_range(1958..2009)
        };
        (date.with_year(year)?, rng.random_bool(0.3))
    } else {
        if !rng.random_bool(0.78) {
            return None;
        }
        let year = rng.random_range(1958..2009);
        let days = if year % 4 == 0 { 366 } else { 365 };
        let date = NaiveDate::from_yo_opt(year, rng.random_range(1..=days))?;
        (date, rng.random_bool(0.35))
    };
    // Month and day come from a real calendar date and the year (if kept) is that date's
    // own, so this always succeeds; the `first_366` test would catch a regression.
    Birthday::new(
        date.month() as u8,
        date.day() as u8,
        keep_year.then_some(date.year()),
    )
    .ok()
}

/// Converts a store-local wall time to UTC. Wall times inside a DST gap move forward in
/// 30-minute steps to the first valid one; ambiguous times take the earlier instant.
/// Returns the instant and its local wall time.
pub(crate) fn local_to_utc(tz: Tz, local: NaiveDateTime) -> (DateTime<Utc>, NaiveDateTime) {
    let mut wall = local;
    for _ in 0..8 {
        match tz.from_local_datetime(&wall) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => {
                return (t.with_timezone(&Utc), wall);
            }
            LocalResult::None => wall += Duration::minutes(30),
        }
    }
    // No zone has a gap longer than four hours; treat the wall time as UTC if one ever does.
    let utc = local.and_utc();
    (utc, Order::local_time_in(utc, tz))
}

/// Builds one customer's orders, oldest first.
struct OrderBook<'a> {
    generator: &'a Generator,
    store: usize,
    today: i32,
    customer_id: &'a CustomerId,
    family: bool,
    orders: Vec<Order>,
}

impl OrderBook<'_> {
    /// Fills the history for `persona` and returns `joined_at`.
    fn fill(&mut self, rng: &mut ChaCha8Rng, persona: Persona) -> DateTime<Utc> {
        let now = self.generator.now_secs();
        match persona {
            Persona::BreakfastRegular | Persona::TeaRegular => {
                let since = rng.random_range(45..=400i64);
                let before = rng.random_range(0..=150i64);
                self.occasional(rng, since + before, since + 1, 0.04, Habit::Mixed);
                if persona == Persona::BreakfastRegular {
                    let p = rng.random_range(0.55..0.9);
                    self.daily(rng, since, 0, p, 0.45, Habit::Breakfast);
                } else {
                    let p = rng.random_range(0.33..0.55);
                    self.daily(rng, since, 0, p, 1.2, Habit::Tea);
                }
            }
            Persona::Occasional => {
                let start = rng.random_range(20..HISTORY_DAYS);
                let per_month = log_uniform(rng, 0.05, 1.1);
                let habit = random_habit(rng);
                self.occasional(rng, start, 0, per_month / 30.4, habit);
            }
            Persona::Lapsed30 | Persona::Lapsed60 | Persona::Lapsed120 | Persona::Lapsed400 => {
                let days = match persona {
                    Persona::Lapsed30 => 30,
                    Persona::Lapsed60 => 60,
                    Persona::Lapsed120 => 120,
                    _ => 400,
                };
                let stop = days + rng.random_range(-2..=2i64);
                let habit = random_habit(rng);
                if rng.random_bool(0.15) {
                    let start = (stop + rng.random_range(20..=120i64)).min(HISTORY_DAYS - 1);
                    let p = rng.random_range(0.4..0.8);
                    self.daily(rng, start, stop + 1, p, 0.6, habit);
                } else {
                    let start = (stop + rng.random_range(20..=240i64)).min(HISTORY_DAYS - 1);
                    let per_month = log_uniform(rng, 0.4, 5.0);
                    self.occasional(rng, start, stop + 1, per_month / 30.4, habit);
                }
                self.order_on(rng, stop, habit);
            }
            Persona::NewSignup => {
                if rng.random_bool(0.5) {
                    let mut ago = rng.random_range(0..=25i64);
                    let habit = random_habit(rng);
                    while !self.order_on(rng, ago, habit) && ago < 26 {
                        ago += 1;
                    }
                    if let Some(first) = self.orders.first() {
                        let before = rng.random_range(60..2 * 86_400);
                        return first.ordered_at - Duration::seconds(before);
                    }
                }
                return now - Duration::seconds(rng.random_range(0..30 * 86_400));
            }
            Persona::NeverOrdered => {}
        }
        match self.orders.first() {
            Some(first) => {
                let before = if rng.random_bool(0.45) {
                    rng.random_range(30..20 * 60)
                } else {
                    rng.random_range(3_600..60 * 86_400)
                };
                first.ordered_at - Duration::seconds(before)
            }
            None => now - Duration::seconds(rng.random_range(31 * 86_400..HISTORY_DAYS * 86_400)),
        }
    }

    /// Orders with geometric gaps at `rate` per day: the first on `start_ago` days ago, then
    /// onwards while still at least `end_ago` days ago.
    fn occasional(
        &mut self,
        rng: &mut ChaCha8Rng,
        start_ago: i64,
        end_ago: i64,
        rate: f64,
        habit: Habit,
    ) {
        if start_ago < end_ago {
            return;
        }
        let log_miss = (1.0 - rate.clamp(1e-6, 0.95)).ln();
        let mut ago = start_ago;
        loop {
            self.order_on(rng, ago, habit);
            let u: f64 = rng.random();
            // Days until the next visit, geometric with success probability `rate`.
            let gap = 1.0 + ((1.0 - u).ln() / log_miss).floor();
            if gap >= (ago - end_ago + 1) as f64 {
                break;
            }
            ago -= gap as i64;
        }
    }

    /// A visit on each day from `start_ago` down to `end_ago` with probability `p`
    /// (times `weekend` on Saturdays and Sundays).
    fn daily(
        &mut self,
        rng: &mut ChaCha8Rng,
        start_ago: i64,
        end_ago: i64,
        p: f64,
        weekend: f64,
        habit: Habit,
    ) {
        let p_weekend = (p * weekend).clamp(0.0, 1.0);
        for ago in (end_ago..=start_ago).rev() {
            let Some(date) = self.date(ago) else { continue };
            let prob = if is_weekend(date) { p_weekend } else { p };
            if rng.random_bool(prob) {
                self.order_on(rng, ago, habit);
            }
        }
    }

    fn date(&self, ago: i64) -> Option<NaiveDate> {
        let days = i64::from(self.today) - ago;
        NaiveDate::from_num_days_from_ce_opt(i32::try_from(days).ok()?)
    }

    /// Adds an order `ago` local days before today; false if it would fall after `now`.
    fn order_on(&mut self, rng: &mut ChaCha8Rng, ago: i64, habit: Habit) -> bool {
        let Some(date) = self.date(ago) else {
            return false;
        };
        let generator = self.generator;
        let home = &generator.stores[self.store];
        let store = if !home.siblings.is_empty() && rng.random_bool(0.12) {
            &generator.stores[home.siblings[rng.random_range(0..home.siblings.len())]]
        } else {
            home
        };
        let weekend = is_weekend(date);
        let part = daypart(rng, habit, weekend, self.family);
        let (minute, fen) = minute_and_amount(rng, part);
        let second = rng.random_range(0..60u32);
        let time = NaiveTime::from_num_seconds_from_midnight_opt(minute * 60 + second, 0)
            .unwrap_or(NaiveTime::MIN);
        let (ordered_at, local_time) = local_to_utc(store.info.timezone, date.and_time(time));
        if ordered_at > generator.now {
            return false;
        }
        let seq = self.orders.len() + 1;
        self.orders.push(Order {
            id: OrderId::from_trusted(order_id_text(self.customer_id.as_str(), seq)),
            customer_id: self.customer_id.clone(),
            store: store.info.code.clone(),
            amount: Money::from_fen(fen),
            ordered_at,
            local_time,
            coupon_code: None,
        });
        true
    }
}

fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// `C0000001-0001`: the customer id, a dash and the sequence number (at least 4 digits).
fn order_id_text(customer_id: &str, seq: usize) -> String {
    let mut s = String::with_capacity(customer_id.len() + 6);
    s.push_str(customer_id);
    s.push('-');
    if seq < 10_000 {
        // Four zero-padded digits without going through the formatter.
        for div in [1_000, 100, 10, 1] {
            s.push(char::from(b'0' + ((seq / div) % 10) as u8));
        }
    } else {
        s.push_str(&seq.to_string());
    }
    s
}

fn log_uniform(rng: &mut ChaCha8Rng, low: f64, high: f64) -> f64 {
    (rng.random_range(low.ln()..high.ln())).exp()
}

fn random_habit(rng: &mut ChaCha8Rng) -> Habit {
    match rng.random_range(0..20u8) {
        0..9 => Habit::Breakfast,
        9..16 => Habit::Tea,
        _ => Habit::Mixed,
    }
}

fn daypart(rng: &mut ChaCha8Rng, habit: Habit, weekend: bool, family: bool) -> Daypart {
    if family && rng.random_bool(if weekend { 0.35 } else { 0.05 }) {
        return Daypart::Family;
    }
    let x = rng.random_range(0..100u8);
    match habit {
        Habit::Breakfast => match x {
            0..85 => Daypart::Breakfast,
            85..95 => Daypart::Afternoon,
            _ => Daypart::Evening,
        },
        Habit::Tea => match x {
            0..45 => Daypart::Lunch,
            45..90 => Daypart::Afternoon,
            _ => Daypart::Evening,
        },
        Habit::Mixed => match x {
            0..40 => Daypart::Breakfast,
            40..60 => Daypart::Lunch,
            60..85 => Daypart::Afternoon,
            _ => Daypart::Evening,
        },
    }
}

/// Local minute of day and amount in fen for a visit in `part`.
/// Breakfast ¥8–25 in ¥0.5 steps; tea ¥12–35; bakery evening ¥8–45; family ¥40–80.
fn minute_and_amount(rng: &mut ChaCha8Rng, part: Daypart) -> (u32, i64) {
    // The smaller of two uniform draws: cheap orders are more common than big ones.
    fn low(rng: &mut ChaCha8Rng, max: i64) -> i64 {
        rng.random_range(0..=max).min(rng.random_range(0..=max))
    }
    match part {
        Daypart::Breakfast => {
            let minute = 6 * 60 + 30 + rng.random_range(0..=90) + rng.random_range(0..90);
            (minute, 800 + 50 * low(rng, 34))
        }
        Daypart::Lunch | Daypart::Afternoon => {
            let minute = if part == Daypart::Lunch {
                11 * 60 + 30 + rng.random_range(0..=60) + rng.random_range(0..60)
            } else {
                14 * 60 + rng.random_range(0..240)
            };
            let mut fen = 1_200 + 100 * low(rng, 23);
            if fen < 3_500 && rng.random_bool(0.2) {
                fen += 50;
            }
            (minute, fen)
        }
        Daypart::Evening => (18 * 60 + rng.random_range(0..180), 800 + 50 * low(rng, 74)),
        Daypart::Family => {
            let minute = if rng.random_bool(0.5) {
                10 * 60 + rng.random_range(0..180)
            } else {
                17 * 60 + 30 + rng.random_range(0..150)
            };
            (minute, 4_000 + 50 * rng.random_range(0..=80))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Email, OrderId, Phone, WeChatOpenId};
    use chrono::Timelike;
    use std::collections::{HashMap, HashSet};

    /// 2026-11-23 10:00 in Shanghai (early Monday breakfast-to-lunch), summer time in Sydney.
    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T02:00:00Z")
            .expect("constant timestamp")
            .with_timezone(&Utc)
    }

    fn generator(seed: u64, customers: u64) -> Generator {
        Generator::new(seed, customers, now(), demo_stores())
    }

    fn zones() -> HashMap<String, Tz> {
        demo_stores()
            .into_iter()
            .map(|s| (s.code.as_str().to_owned(), s.timezone))
            .collect()
    }

    #[test]
    fn same_inputs_same_output_and_prefix_property() {
        let a: Vec<_> = generator(42, 1_000).collect();
        let b: Vec<_> = generator(42, 1_000).collect();
        assert_eq!(a, b);
        let longer: Vec<_> = generator(42, 2_000).take(1_000).collect();
        assert_eq!(a, longer);
        let g = generator(42, 2_000);
        assert_eq!(g.customer(777), a[777]);
        let other: Vec<_> = generator(43, 1_000).collect();
        assert_ne!(a, other);
        assert_eq!(a[0].0.id.as_str(), "C0000001");
        assert_eq!(generator(42, 1_000).len(), 1_000);
    }

    #[test]
    fn first_366_customers_cover_every_month_day() {
        let days: HashSet<(u8, u8)> = generator(1, 366)
            .filter_map(|(c, _)| c.birthday.map(|b| (b.month(), b.day())))
            .collect();
        assert_eq!(days.len(), 366);
        assert!(days.contains(&(2, 29)));
        let later: Vec<Birthday> = generator(1, 3_000)
            .skip(366)
            .filter_map(|(c, _)| c.birthday)
            .collect();
        assert!(later.iter().any(|b| b.year().is_some()));
        assert!(later.iter().any(|b| b.year().is_none()));
        assert!(
            later.len() > 2_000 && later.len() < 2_400,
            "{}",
            later.len()
        );
    }

    #[test]
    fn contact_details_parse_back_to_themselves() {
        let mut phones = HashSet::new();
        let (mut emails, mut openids, mut australian) = (0, 0, 0);
        for (c, _) in generator(5, 5_000) {
            assert_eq!(CustomerId::parse(c.id.as_str()).as_ref(), Ok(&c.id));
            if let Some(p) = &c.phone {
                assert_eq!(Phone::parse(p.as_str()).as_ref(), Ok(p), "{}", p.as_str());
                assert!(
                    phones.insert(p.as_str().to_owned()),
                    "duplicate {}",
                    p.as_str()
                );
                australian += usize::from(p.as_str().starts_with("+614"));
            }
            if let Some(e) = &c.email {
                assert_eq!(Email::parse(e.as_str()).as_ref(), Ok(e), "{}", e.as_str());
                emails += 1;
            }
            if let Some(w) = &c.wechat_openid {
                assert_eq!(w.as_str().len(), 28);
                assert_eq!(WeChatOpenId::parse(w.as_str()).as_ref(), Ok(w));
                openids += 1;
            }
        }
        assert!(phones.len() > 4_500, "{}", phones.len());
        assert!((1_600..1_900).contains(&emails), "{emails}");
        assert!((2_600..2_900).contains(&openids), "{openids}");
        assert!(australian > 100, "{australian}");
    }

    #[test]
    fn consent_mix_includes_yes_without_address() {
        let mut sms = HashMap::new();
        let mut yes_without_address = 0;
        for (c, _) in generator(6, 3_000) {
            *sms.entry(format!("{:?}", c.sms_opt_in)).or_insert(0) += 1;
            if c.phone.is_none() && c.sms_opt_in == Consent::Yes
                || c.email.is_none() && c.email_opt_in == Consent::Yes
                || c.wechat_openid.is_none() && c.wechat_opt_in == Consent::Yes
            {
                yes_without_address += 1;
            }
        }
        assert_eq!(sms.len(), 3, "{sms:?}");
        assert!(yes_without_address > 30, "{yes_without_address}");
    }

    #[test]
    fn orders_are_well_formed() {
        let zones = zones();
        let now = now();
        let window = now - Duration::days(HISTORY_DAYS + 1);
        for (c, orders) in generator(7, 3_000) {
            let mut last = None;
            if let (Some(first), Some(joined)) = (orders.first(), c.joined_at) {
                assert!(joined < first.ordered_at, "{} joined after ordering", c.id);
            }
            for (i, o) in orders.iter().enumerate() {
                assert_eq!(o.id.as_str(), format!("{}-{:04}", c.id, i + 1));
                assert_eq!(OrderId::parse(o.id.as_str()).as_ref(), Ok(&o.id));
                assert_eq!(o.customer_id, c.id);
                assert!(o.ordered_at <= now, "{} after now", o.id);
                assert!(o.ordered_at > window, "{} too old", o.id);
                assert!(
                    last.is_none_or(|t| t < o.ordered_at),
                    "{} out of order",
                    o.id
                );
                last = Some(o.ordered_at);
                let tz = zones[o.store.as_str()];
                assert_eq!(o.local_time, Order::local_time_in(o.ordered_at, tz));
                let minute = o.local_time.hour() * 60 + o.local_time.minute();
                assert!((6 * 60 + 30..21 * 60).contains(&minute), "{}", o.local_time);
                let fen = o.amount.fen();
                assert!((MIN_AMOUNT_FEN..=MAX_AMOUNT_FEN).contains(&fen), "{fen}");
                assert_eq!(fen % 50, 0);
                assert!(o.coupon_code.is_none());
            }
        }
    }

    #[test]
    fn every_persona_shows_up_in_2000_customers() {
        let now = now();
        let mut lapsed: HashMap<i64, usize> = HashMap::new();
        let (mut new, mut never, mut regulars, mut tea, mut recent_occasional) = (0, 0, 0, 0, 0);
        for (c, orders) in generator(8, 2_000) {
            let joined = c.joined_at.expect("demo customers have joined_at");
            let Some(last) = orders.last() else {
                never += 1;
                if now - joined <= Duration::days(30) {
                    new += 1;
                }
                continue;
            };
            let ago = (now - last.ordered_at).num_days();
            for target in [30, 60, 120, 400] {
                if (ago - target).abs() <= 3 {
                    *lapsed.entry(target).or_default() += 1;
                }
            }
            if orders.len() == 1 && now - joined <= Duration::days(30) {
                new += 1;
            }
            let month: Vec<&Order> = orders
                .iter()
                .filter(|o| now - o.ordered_at <= Duration::days(28))
                .collect();
            if month.len() >= 12 {
                regulars += 1;
                let teas = month.iter().filter(|o| o.local_time.hour() >= 11).count();
                if teas * 2 > month.len() {
                    tea += 1;
                }
            }
            let half_year = orders
                .iter()
                .filter(|o| now - o.ordered_at <= Duration::days(180))
                .count();
            if ago <= 30 && (1..=6).contains(&half_year) {
                recent_occasional += 1;
            }
        }
        for target in [30, 60, 120, 400] {
            let n = lapsed.get(&target).copied().unwrap_or(0);
            assert!(
                n >= 20,
                "only {n} customers last ordered ~{target} days ago"
            );
        }
        assert!(new >= 30, "{new} new sign-ups");
        assert!(never >= 100, "{never} never ordered");
        assert!(regulars >= 25, "{regulars} regulars");
        assert!(tea >= 5, "{tea} tea regulars");
        assert!(recent_occasional >= 50, "{recent_occasional} occasional");
    }

    #[test]
    fn average_orders_per_customer_is_about_ten() {
        let (customers, orders) =
            generator(9, 5_000).fold((0u64, 0u64), |(c, o), (_, v)| (c + 1, o + v.len() as u64));
        let avg = orders as f64 / customers as f64;
        assert!((8.0..12.0).contains(&avg), "average {avg}");
    }

    #[test]
    fn most_customers_belong_to_shanghai_stores() {
        let mut by_store: HashMap<String, usize> = HashMap::new();
        for (c, _) in generator(10, 3_000) {
            let code = c.store.map_or_else(String::new, |s| s.as_str().to_owned());
            *by_store.entry(code).or_default() += 1;
        }
        let sh = by_store.get("SH-001").unwrap_or(&0) + by_store.get("SH-002").unwrap_or(&0);
        assert!(sh > 1_800, "{by_store:?}");
        assert!(
            by_store.get("SYD-001").is_some_and(|&n| n > 200),
            "{by_store:?}"
        );
        assert!(by_store.get("").is_some_and(|&n| n > 30), "{by_store:?}");
    }

    #[test]
    fn no_stores_means_no_orders() {
        let all: Vec<_> = Generator::new(1, 200, now(), Vec::new()).collect();
        assert_eq!(all.len(), 200);
        assert!(all.iter().all(|(c, o)| c.store.is_none() && o.is_empty()));
    }

    #[test]
    fn dst_gap_moves_forward_and_overlap_takes_earlier() {
        let sydney = chrono_tz::Australia::Sydney;
        let wall = |s: &str| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").expect("constant wall time")
        };
        // Clocks jump from 02:00 to 03:00 on 2026-10-04.
        let (utc, local) = local_to_utc(sydney, wall("2026-10-04 02:30"));
        assert_eq!(local, wall("2026-10-04 03:00"));
        assert_eq!(utc.to_rfc3339(), "2026-10-03T16:00:00+00:00");
        assert_eq!(Order::local_time_in(utc, sydney), local);
        // 02:30 happens twice on 2026-04-05; the first one is still +11:00.
        let (utc, local) = local_to_utc(sydney, wall("2026-04-05 02:30"));
        assert_eq!(local, wall("2026-04-05 02:30"));
        assert_eq!(utc.to_rfc3339(), "2026-04-04T15:30:00+00:00");
    }

    #[test]
    fn order_ids_are_padded() {
        assert_eq!(order_id_text("C0000001", 1), "C0000001-0001");
        assert_eq!(order_id_text("C0000001", 9_999), "C0000001-9999");
        assert_eq!(order_id_text("C0000001", 12_345), "C0000001-12345");
        assert_eq!(customer_id_text(9_999_999), "C10000000");
    }

    /// Prints the persona mix and averages; run with `--ignored --nocapture`.
    #[test]
    #[ignore]
    fn print_stats() {
        let n = 100_000u64;
        let mut per: HashMap<Persona, (u64, u64)> = HashMap::new();
        let g = generator(2026, n);
        let mut total = 0u64;
        let mut fen = 0i64;
        for i in 0..n {
            let (_, orders) = g.customer(i);
            let e = per.entry(Generator::persona(2026, i)).or_default();
            e.0 += 1;
            e.1 += orders.len() as u64;
            total += orders.len() as u64;
            fen += orders.iter().map(|o| o.amount.fen()).sum::<i64>();
        }
        for (p, _) in Persona::MIX {
            let (c, o) = per.get(&p).copied().unwrap_or_default();
            println!(
                "{p:?}: {:.1}% of customers, {:.1} orders each",
                100.0 * c as f64 / n as f64,
                o as f64 / c.max(1) as f64
            );
        }
        println!(
            "average {:.2} orders per customer, average order ¥{:.2}",
            total as f64 / n as f64,
            fen as f64 / total as f64 / 100.0
        );
    }
}
