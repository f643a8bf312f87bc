//! The customer attributes an expression may read: name, type, nullability,
//! SQL and a one-line description of each.

use std::fmt;

/// What kind of value an attribute holds, which decides the literals and
/// operators it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    /// A whole number (`order_count >= 2`).
    Int,
    /// A number of days (`recency_days > 30d`).
    Days,
    /// An amount of money, written in yuan, stored in fen (`total_spent >= 99.50`).
    Money,
    /// A calendar date, written `'YYYY-MM-DD'`, stored as a day number.
    Date,
    /// One of a fixed set of words (`lifecycle == 'at_risk'`).
    Enum(&'static [&'static str]),
    /// Free text (`store == 'SH-001'`).
    Text,
    /// A set of tags, tested with `contains`.
    Tags,
}

/// One customer attribute usable in an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attr {
    /// Days since the last order.
    RecencyDays,
    /// Number of orders ever.
    OrderCount,
    /// Total spent ever.
    TotalSpent,
    /// Average order value.
    AvgOrderValue,
    /// Orders in the last 90 days.
    OrderCount90d,
    /// Spent in the last 90 days.
    Spent90d,
    /// Spent in the last 365 days.
    Spent365d,
    /// Date of the first order.
    FirstOrderAt,
    /// Date of the last order.
    LastOrderAt,
    /// Days since the customer joined.
    DaysSinceJoined,
    /// Part of the day the customer orders most.
    FavoriteDaypart,
    /// RFM recency score.
    RScore,
    /// RFM frequency score.
    FScore,
    /// RFM monetary score.
    MScore,
    /// RFM code, e.g. `545`.
    Rfm,
    /// Lifecycle stage.
    Lifecycle,
    /// Value tier.
    ValueTier,
    /// Days until the next birthday.
    DaysToBirthday,
    /// The customer's tags.
    Tags,
    /// The customer's home store code.
    Store,
}

/// Values of `favorite_daypart`.
pub const DAYPARTS: &[&str] = &["morning", "noon", "afternoon", "evening"];
/// Values of `lifecycle`.
pub const LIFECYCLES: &[&str] = &["new", "active", "at_risk", "lapsed", "churned"];
/// Values of `value_tier`.
pub const VALUE_TIERS: &[&str] = &["vip", "core", "regular"];

/// Everything known about one attribute.
struct Info {
    name: &'static str,
    ty: AttrType,
    nullable: bool,
    today: bool,
    sql: &'static str,
    description: &'static str,
}

const fn info(
    name: &'static str,
    ty: AttrType,
    nullable: bool,
    today: bool,
    sql: &'static str,
    description: &'static str,
) -> Info {
    Info {
        name,
        ty,
        nullable,
        today,
        sql,
        description,
    }
}

/// SQL for `days_to_birthday`: a lookup in the caller's `seg_birthdays`.
const BIRTHDAY_SQL: &str = "(SELECT b.days FROM seg_birthdays b WHERE b.today = t.today \
     AND b.month = c.birth_month AND b.day = c.birth_day)";

/// SQL of a quintile score from 1 to 5 of column `a.$col`: one more for
/// each of the store's thresholds `t.${m}1` to `t.${m}4` the value reaches
/// (see `segments::thresholds`); none for a customer without orders, or of
/// a store not ranked yet. Scores are not stored: where a threshold moves,
/// every customer between its old and new place would otherwise be written
/// again (tens of thousands when a recency quintile moves by a day).
macro_rules! score_sql {
    ($col:literal, $m:literal) => {
        concat!(
            "(CASE WHEN a.order_count > 0 AND t.",
            $m,
            "1 IS NOT NULL THEN 1",
            " + CASE WHEN a.",
            $col,
            " >= t.",
            $m,
            "1 THEN 1 ELSE 0 END",
            " + CASE WHEN a.",
            $col,
            " >= t.",
            $m,
            "2 THEN 1 ELSE 0 END",
            " + CASE WHEN a.",
            $col,
            " >= t.",
            $m,
            "3 THEN 1 ELSE 0 END",
            " + CASE WHEN a.",
            $col,
            " >= t.",
            $m,
            "4 THEN 1 ELSE 0 END END)"
        )
    };
}

/// SQL of `r_score`, from the last order's day.
const R_SCORE_SQL: &str = score_sql!("last_order_day", "r");
/// SQL of `f_score`, from the number of orders.
const F_SCORE_SQL: &str = score_sql!("order_count", "f");
/// SQL of `m_score`, from the total spent.
const M_SCORE_SQL: &str = score_sql!("total_spent_fen", "m");
/// SQL of `rfm`: the three scores as text (none without scores).
const RFM_SQL: &str = concat!(
    "(CAST(",
    score_sql!("last_order_day", "r"),
    " AS TEXT) || CAST(",
    score_sql!("order_count", "f"),
    " AS TEXT) || CAST(",
    score_sql!("total_spent_fen", "m"),
    " AS TEXT))"
);

/// Indexed by `Attr as usize`; the order matches [`Attr::ALL`].
#[rustfmt::skip]
const INFO: [Info; 20] = [
    info("recency_days", AttrType::Days, true, true, "(t.today - a.last_order_day)",
        "days since the last order (none if the customer never ordered)"),
    info("order_count", AttrType::Int, false, false, "a.order_count",
        "number of orders ever placed"),
    info("total_spent", AttrType::Money, false, false, "a.total_spent_fen",
        "total amount spent ever, in yuan"),
    info("avg_order_value", AttrType::Money, true, false, "a.avg_order_fen",
        "average order amount in yuan (none if no orders)"),
    info("order_count_90d", AttrType::Int, false, false, "a.order_count_90d",
        "number of orders in the last 90 days"),
    info("spent_90d", AttrType::Money, false, false, "a.spent_90d_fen",
        "amount spent in the last 90 days, in yuan"),
    info("spent_365d", AttrType::Money, false, false, "a.spent_365d_fen",
        "amount spent in the last 365 days, in yuan"),
    info("first_order_at", AttrType::Date, true, false, "a.first_order_day",
        "date of the first order, e.g. '2024-03-15' (none if no orders)"),
    info("last_order_at", AttrType::Date, true, false, "a.last_order_day",
        "date of the last order, e.g. '2024-03-15' (none if no orders)"),
    info("days_since_joined", AttrType::Days, true, true, "(t.today - a.joined_day)",
        "days since the customer joined (none if unknown)"),
    info("favorite_daypart", AttrType::Enum(DAYPARTS), true, false, "a.favorite_daypart",
        "part of the day the customer orders most: morning, noon, afternoon or evening"),
    info("r_score", AttrType::Int, true, false, R_SCORE_SQL,
        "RFM recency score from 1 (long ago) to 5 (recent)"),
    info("f_score", AttrType::Int, true, false, F_SCORE_SQL,
        "RFM frequency score from 1 (rarely) to 5 (often)"),
    info("m_score", AttrType::Int, true, false, M_SCORE_SQL,
        "RFM monetary score from 1 (spends little) to 5 (spends most)"),
    info("rfm", AttrType::Text, true, false, RFM_SQL,
        "the three RFM scores as a code in quotes, e.g. '545'"),
    info("lifecycle", AttrType::Enum(LIFECYCLES), false, false, "a.lifecycle",
        "lifecycle stage: new, active, at_risk, lapsed or churned"),
    info("value_tier", AttrType::Enum(VALUE_TIERS), false, false, "a.value_tier",
        "value tier: vip, core or regular"),
    info("days_to_birthday", AttrType::Days, true, true, BIRTHDAY_SQL,
        "days until the next birthday, 0 on the day (none if the birthday is unknown)"),
    info("tags", AttrType::Tags, false, false, "c.tags",
        "the customer's tags; test with: tags contains 'vegetarian'"),
    info("store", AttrType::Text, true, false, "c.store_code",
        "code of the customer's home store, e.g. 'SH-001'"),
];

impl Attr {
    /// Every attribute, in catalog order.
    pub const ALL: [Attr; 20] = [
        Attr::RecencyDays,
        Attr::OrderCount,
        Attr::TotalSpent,
        Attr::AvgOrderValue,
        Attr::OrderCount90d,
        Attr::Spent90d,
        Attr::Spent365d,
        Attr::FirstOrderAt,
        Attr::LastOrderAt,
        Attr::DaysSinceJoined,
        Attr::FavoriteDaypart,
        Attr::RScore,
        Attr::FScore,
        Attr::MScore,
        Attr::Rfm,
        Attr::Lifecycle,
        Attr::ValueTier,
        Attr::DaysToBirthday,
        Attr::Tags,
        Attr::Store,
    ];

    fn info(self) -> &'static Info {
        &INFO[self as usize]
    }

    /// The attribute called `name` in expressions (exact, case-sensitive).
    pub fn from_name(name: &str) -> Option<Attr> {
        Attr::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Its name in expressions, e.g. `order_count_90d`.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Its value type.
    pub fn ty(self) -> AttrType {
        self.info().ty
    }

    /// Whether a customer may have no value (e.g. `recency_days` before the first order).
    pub fn nullable(self) -> bool {
        self.info().nullable
    }

    /// Whether the value changes with today's date without any new data, so a
    /// segment using it must be re-evaluated every day.
    pub fn depends_on_today(self) -> bool {
        self.info().today
    }

    /// The SQL expression for it, in terms of the aliases `c` (customers),
    /// `a` (customer_attributes), `t` (seg_today, or for the scores alone any
    /// table with the thresholds' columns, such as `segment_run_state`) and
    /// the `seg_birthdays` table.
    pub fn sql(self) -> &'static str {
        self.info().sql
    }

    /// Whether the SQL is a lookup (a subquery) or a computation over
    /// several columns (the scores), not a column or a difference of two:
    /// no index serves it, and each mention evaluates it again.
    pub fn looked_up(self) -> bool {
        self == Attr::DaysToBirthday || self.is_score()
    }

    /// Whether the SQL reads the customer record (`c.`), not only the
    /// computed attributes (`a.`, `t.`): queries may then skip that join.
    pub fn reads_customer_record(self) -> bool {
        matches!(self, Attr::Tags | Attr::Store | Attr::DaysToBirthday)
    }

    /// Whether it is one of the RFM scores or their code, read from the
    /// store's thresholds rather than stored.
    pub fn is_score(self) -> bool {
        matches!(self, Attr::RScore | Attr::FScore | Attr::MScore | Attr::Rfm)
    }

    /// One line of English for help and error output.
    pub fn description(self) -> &'static str {
        self.info().description
    }

    /// The smallest and largest value a whole-number attribute can take, when limited.
    pub fn int_range(self) -> Option<(i64, i64)> {
        match self {
            Attr::RScore | Attr::FScore | Attr::MScore => Some((1, 5)),
            _ => None,
        }
    }
}

impl fmt::Display for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// All attribute names, comma-separated, for error messages.
pub(crate) fn all_names() -> String {
    Attr::ALL.map(Attr::name).join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_enum_order() {
        for (i, a) in Attr::ALL.into_iter().enumerate() {
            assert_eq!(a as usize, i);
            assert_eq!(Attr::from_name(a.name()), Some(a));
            assert!(!a.description().is_empty());
        }
        assert_eq!(Attr::from_name("Order_Count"), None);
    }

    #[test]
    fn date_dependence() {
        let today: Vec<_> = Attr::ALL
            .into_iter()
            .filter(|a| a.depends_on_today())
            .collect();
        assert_eq!(
            today,
            [
                Attr::RecencyDays,
                Attr::DaysSinceJoined,
                Attr::DaysToBirthday
            ]
        );
    }

    #[test]
    fn nullability() {
        let not_null: Vec<_> = Attr::ALL.into_iter().filter(|a| !a.nullable()).collect();
        assert_eq!(
            not_null,
            [
                Attr::OrderCount,
                Attr::TotalSpent,
                Attr::OrderCount90d,
                Attr::Spent90d,
                Attr::Spent365d,
                Attr::Lifecycle,
                Attr::ValueTier,
                Attr::Tags,
            ]
        );
    }
}
