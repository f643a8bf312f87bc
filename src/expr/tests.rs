//! Tests of the whole pipeline: parse, check, SQL, evaluation and messages.

use std::collections::HashMap;

use super::*;

fn parse(src: &str) -> Expr {
    Expr::parse(src, &CheckContext::default()).unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn err(src: &str) -> ExprError {
    err_with(src, &CheckContext::default())
}

fn err_with(src: &str, ctx: &CheckContext) -> ExprError {
    match Expr::parse(src, ctx) {
        Ok(e) => panic!("{src}: parsed as {e:?}"),
        Err(e) => e,
    }
}

/// Column, length and Display of the error for `src`.
fn at(src: &str) -> (usize, usize, String) {
    let e = err(src);
    (e.column(), e.len(), e.to_string())
}

fn sqlite(src: &str) -> (String, Vec<SqlParam>) {
    let mut ph = Placeholders::new();
    let sql = parse(src).to_sql(Dialect::Sqlite, &mut ph);
    (sql, ph.into_params())
}

fn params(src: &str) -> Vec<SqlParam> {
    sqlite(src).1
}

fn stores() -> CheckContext {
    CheckContext {
        stores: Some(vec!["SH-001".into(), "SH-002".into(), "BJ-001".into()]),
    }
}

// ---- errors, with exact columns ----

#[test]
fn unknown_attribute_suggests_and_lists() {
    let (col, len, msg) = at("order_count_90d >= 8 and order_cnt > 2");
    assert_eq!((col, len), (26, 9));
    assert!(
        msg.starts_with(
            "col 26: unknown attribute 'order_cnt'; did you mean 'order_count'? \
             valid attributes: recency_days, order_count, total_spent,"
        ),
        "{msg}"
    );
    assert!(msg.ends_with("days_to_birthday, tags, store"), "{msg}");
    let e = err("zzz == 1");
    assert_eq!(
        e.hint().map(|h| h.starts_with("valid attributes: ")),
        Some(true)
    );
}

#[test]
fn type_mismatch_messages() {
    let (col, len, msg) = at("total_spent >= 'abc'");
    assert_eq!((col, len), (16, 5));
    assert_eq!(
        msg,
        "col 16: total_spent is an amount in yuan; compare it with a number such as 100 \
         or 99.50, not 'abc'"
    );
    let (col, _, msg) = at("order_count >= 2.5");
    assert_eq!(col, 16);
    assert!(msg.contains("order_count is a whole number"), "{msg}");
    assert!(at("order_count >= 30d").2.ends_with(
        "durations such as 30d are for recency_days, days_since_joined and days_to_birthday"
    ));
    assert!(at("total_spent >= 30d").2.contains("an amount in yuan"));
    assert!(at("recency_days > 1.5").2.contains("a number of days"));
    assert!(at("recency_days > '30'").2.ends_with("remove the quotes"));
    let msg = at("first_order_at < 30d").2;
    assert!(msg.contains("first_order_at is a date; compare it with a date in quotes"));
    assert!(msg.contains("use recency_days"), "{msg}");
    let msg = at("lifecycle == 3").2;
    assert!(msg.contains("lifecycle is a category; compare it with one of 'new', 'active'"));
    assert!(msg.ends_with("put it in quotes: '3'"), "{msg}");
    let msg = at("rfm == 545").2;
    assert!(msg.contains("rfm is an RFM code"), "{msg}");
    let msg = at("tags contains 5").2;
    assert!(msg.contains("tags contains needs a tag in quotes"), "{msg}");
}

#[test]
fn unknown_enum_value_lists_values() {
    let e = err("lifecycle == 'atrisk'");
    assert_eq!((e.column(), e.len()), (14, 8));
    assert_eq!(
        e.to_string(),
        "col 14: 'atrisk' is not a valid lifecycle value; did you mean 'at_risk'? \
         valid values: 'new', 'active', 'at_risk', 'lapsed', 'churned'"
    );
    let e = err("favorite_daypart in ['morning', 'night']");
    assert_eq!(e.column(), 33);
    assert!(
        e.to_string()
            .contains("'morning', 'noon', 'afternoon', 'evening'")
    );
    let e = err("lifecycle == 'Active'");
    assert!(e.to_string().contains("did you mean 'active'?"), "{e}");
}

#[test]
fn money_with_three_decimals() {
    let (col, len, msg) = at("total_spent >= 1.234");
    assert_eq!((col, len), (16, 5));
    assert_eq!(
        msg,
        "col 16: 1.234 has 3 decimal places; amounts in yuan have at most 2 (fen); \
         round it to the fen, e.g. 12.35"
    );
    assert!(matches!(
        err("spent_90d > 1000000000").kind(),
        ErrorKind::NumberTooLarge { .. }
    ));
}

#[test]
fn bad_dates() {
    for (src, col) in [
        ("first_order_at < '2024-02-30'", 18),
        ("first_order_at < '2023-02-29'", 18),
        ("last_order_at >= '2024-3-1'", 18),
        ("last_order_at in ['2024-03-01', 'yesterday']", 33),
    ] {
        let e = err(src);
        assert!(matches!(e.kind(), ErrorKind::BadDate { .. }), "{src}: {e}");
        assert_eq!(e.column(), col, "{src}");
        assert!(e.to_string().contains("'YYYY-MM-DD'"), "{e}");
    }
}

#[test]
fn syntax_errors() {
    let cases: &[(&str, usize, usize, &str)] = &[
        (
            "order_count >= 2 total_spent > 5",
            18,
            11,
            "unexpected 'total_spent' after a complete condition; join conditions with 'and' or 'or'",
        ),
        (
            "store == 'SH-001",
            10,
            1,
            "the text starting here is not closed; add the closing '",
        ),
        (
            "(order_count >= 2 and m_score >= 4",
            1,
            1,
            "'(' is never closed; add the missing ')'",
        ),
        (
            "store in ['SH-001', 'SH-002'",
            10,
            1,
            "'[' is never closed; add the missing ']'",
        ),
        (
            "order_count >=",
            13,
            2,
            "missing value after '>='; put a value after it, e.g. order_count >= 2",
        ),
        (
            "order_count >= and m_score > 1",
            13,
            2,
            "missing value after '>='",
        ),
        (
            "tags contains",
            6,
            8,
            "missing value after 'contains'; put a value after it, e.g. tags contains 'vip'",
        ),
        ("store not in", 7, 6, "missing value after 'not in'"),
        (
            "order_count >= 2 && m_score >= 4",
            18,
            2,
            "'&&' is not an operator here; write 'and'",
        ),
        (
            "order_count >= 2 || m_score >= 4",
            18,
            2,
            "'||' is not an operator here; write 'or'",
        ),
        ("! order_count >= 2", 1, 1, "write 'not'"),
        (
            "8 <= order_count",
            1,
            1,
            "the attribute must come first and the value after the operator; write it as: order_count >= 8",
        ),
        (
            "'active' == lifecycle",
            1,
            8,
            "write it as: lifecycle == 'active'",
        ),
        ("order_count > 2)", 16, 1, "')' has no matching '('"),
        (
            "order_count",
            12,
            1,
            "expected a comparison after 'order_count', found the end of the expression",
        ),
        (
            "order_count 2",
            13,
            1,
            "expected a comparison after 'order_count', found '2'",
        ),
        (
            "lifecycle == at_risk",
            14,
            7,
            "expected a value, found 'at_risk'; write text in quotes: 'at_risk'",
        ),
        (
            "order_count > total_spent",
            15,
            11,
            "comparing two attributes is not supported",
        ),
        ("not", 4, 1, "a condition is missing after 'not'"),
        (
            "order_count > 1 and",
            20,
            1,
            "a condition is missing after 'and'",
        ),
        (
            "and order_count > 1",
            1,
            3,
            "a condition is missing before 'and'",
        ),
        ("()", 2, 1, "the parentheses are empty"),
        ("> 2", 1, 1, "put the attribute name before the operator"),
        (
            "store == ['a']",
            10,
            1,
            "to test several values write: store in [...]",
        ),
        ("store in 'a'", 10, 3, "expected '[' after 'in', found 'a'"),
        (
            "store in ['a' 'b']",
            15,
            3,
            "expected ',' or ']', found 'b'",
        ),
        ("store in [['a']]", 11, 1, "lists cannot be nested"),
        ("store in []", 10, 2, "the list is empty"),
        (
            "(order_count > 1 m_score > 2)",
            18,
            7,
            "expected 'and', 'or' or ')'",
        ),
        (
            "store not == 'a'",
            11,
            2,
            "expected 'in' or 'contains' after 'not'",
        ),
        ("store == 'a\\nb'", 12, 2, "unknown escape '\\n' in text"),
        ("order_count >= 8x", 16, 2, "8x is not a number"),
        (
            "order_count >= .5",
            16,
            1,
            "put a 0 before the decimal point",
        ),
        ("store == ‘SH-001’", 10, 1, "use straight quotes"),
    ];
    for (src, col, len, text) in cases {
        let e = err(src);
        assert_eq!((e.column(), e.len()), (*col, *len), "{src}: {e}");
        assert!(e.to_string().contains(text), "{src}: {e}");
    }
}

#[test]
fn empty_expression() {
    for src in ["", "   ", "\n\t"] {
        let e = err(src);
        assert_eq!(*e.kind(), ErrorKind::Empty);
        assert_eq!(e.column(), 1);
        assert_eq!(
            e.to_string(),
            "col 1: the expression is empty; write a condition such as order_count >= 2"
        );
    }
}

#[test]
fn operators_not_allowed() {
    let e = err("lifecycle < 'active'");
    assert_eq!((e.column(), e.len()), (11, 1));
    assert_eq!(
        e.to_string(),
        "col 11: '<' cannot be used with lifecycle, which is a category; \
         lifecycle has no order; use == or != (or in [...])"
    );
    let e = err("tags == 'vip'");
    assert_eq!(e.column(), 6);
    assert!(e.to_string().contains("tags contains 'vegetarian'"), "{e}");
    let e = err("tags in ['a']");
    assert!(
        e.to_string()
            .contains("(tags contains 'a' or tags contains 'b')")
    );
    let e = err("store contains 'SH'");
    assert_eq!((e.column(), e.len()), (7, 8));
    assert!(
        e.to_string().contains("'contains' only works with tags"),
        "{e}"
    );
    assert!(
        err("store >= 'SH'")
            .to_string()
            .contains("which is a store code")
    );
    assert!(
        err("rfm > '111'")
            .to_string()
            .contains("which is an RFM code")
    );
}

#[test]
fn ranges_tags_rfm() {
    let e = err("m_score >= 6");
    assert_eq!(e.column(), 12);
    assert_eq!(
        e.to_string(),
        "col 12: 6 is out of range: m_score is between 1 and 5"
    );
    assert!(matches!(
        err("r_score in [1, 0]").kind(),
        ErrorKind::OutOfRange { .. }
    ));
    for (src, reason) in [
        ("tags contains ''", "tags are never empty"),
        ("tags contains 'a;b'", "tags never contain ';'"),
        ("tags contains ' vip'", "never start or end with spaces"),
    ] {
        let e = err(src);
        assert_eq!(e.column(), 15, "{src}");
        assert!(e.to_string().contains(reason), "{src}: {e}");
    }
    let e = err("rfm == '546'");
    assert_eq!(e.column(), 8);
    assert!(e.to_string().contains("three digits from 1 to 5"), "{e}");
}

#[test]
fn unknown_store_lists_known() {
    let e = err_with("store in ['SH-001', 'SH-003']", &stores());
    assert_eq!((e.column(), e.len()), (21, 8));
    assert_eq!(
        e.to_string(),
        "col 21: unknown store 'SH-003'; known stores: SH-001, SH-002, BJ-001"
    );
    let e = err_with("store == 'sh-002'", &stores());
    assert!(e.to_string().contains("did you mean 'SH-002'?"), "{e}");
    let e = err_with("store == 'XX'", &stores());
    assert_eq!(e.hint(), Some("known stores: SH-001, SH-002, BJ-001"));
    let many = CheckContext {
        stores: Some((0..40).map(|i| format!("S{i:03}")).collect()),
    };
    let e = err_with("store == 'X'", &many);
    assert!(e.to_string().ends_with("S029, … (10 more)"), "{e}");
    assert!(Expr::parse("store == 'SH-002'", &stores()).is_ok());
    assert!(Expr::parse("store == 'anything'", &CheckContext::default()).is_ok());
}

#[test]
fn columns_count_characters_not_bytes() {
    let e = err("tags contains '素食' and 订单 > 1");
    assert_eq!((e.column(), e.len()), (24, 2));
    let e = err("store == '上海' and\n  order_cnt > 1");
    assert_eq!(e.column(), 21);
    assert_eq!(
        e.line_column("store == '上海' and\n  order_cnt > 1"),
        (2, 3)
    );
}

#[test]
fn render_shows_caret() {
    let src = "order_count_90d >= 8 and order_cnt > 2";
    let r = err(src).render(src);
    let lines: Vec<&str> = r.lines().collect();
    assert!(lines[0].starts_with("col 26: unknown attribute 'order_cnt'"));
    assert_eq!(lines[1], format!("    {src}"));
    assert_eq!(lines[2], format!("    {}^^^^^^^^^", " ".repeat(25)));
}

#[test]
fn nesting_limit() {
    let ok = format!("{}order_count > 1{}", "(".repeat(64), ")".repeat(64));
    assert!(Expr::parse(&ok, &CheckContext::default()).is_ok());
    let deep = format!("{}order_count > 1{}", "(".repeat(65), ")".repeat(65));
    let e = err(&deep);
    assert_eq!(*e.kind(), ErrorKind::TooDeep { max: 64 });
    assert_eq!(e.column(), 65);
    let nots = format!("{}order_count > 1", "not ".repeat(65));
    assert_eq!(err(&nots).column(), 257);
    // Deeper than the limit but short enough to lex: refused, not a stack overflow.
    let e = err(&"(".repeat(3_999));
    assert_eq!(*e.kind(), ErrorKind::TooDeep { max: 64 });
    let e = err(&"not ".repeat(999));
    assert_eq!(*e.kind(), ErrorKind::TooDeep { max: 64 });
}

#[test]
fn length_limit() {
    let long = format!("order_count > 1{}", " or order_count > 1".repeat(250));
    assert!(long.chars().count() > MAX_CHARS);
    let e = err(&long);
    assert_eq!(e.column(), 4_001);
    assert!(matches!(e.kind(), ErrorKind::TooLong { max: 4_000, .. }));
    let e = err(&"(".repeat(100_000));
    assert!(matches!(
        e.kind(),
        ErrorKind::TooLong { chars: 100_000, .. }
    ));
    let fits = format!("order_count > 1{}", " or order_count > 1".repeat(200));
    assert!(Expr::parse(&fits, &CheckContext::default()).is_ok());
}

// ---- conversion ----

#[test]
fn money_in_fen() {
    assert_eq!(params("total_spent >= 100"), [SqlParam::Int(10_000)]);
    assert_eq!(params("avg_order_value < 99.5"), [SqlParam::Int(9_950)]);
    assert_eq!(params("spent_90d > 0.05"), [SqlParam::Int(5)]);
    assert_eq!(params("spent_365d >= -3.20"), [SqlParam::Int(-320)]);
}

#[test]
fn days_and_durations() {
    assert_eq!(params("recency_days > 30d"), [SqlParam::Int(30)]);
    assert_eq!(params("recency_days > 30"), [SqlParam::Int(30)]);
    assert_eq!(params("days_since_joined >= 4w"), [SqlParam::Int(28)]);
    assert_eq!(params("days_to_birthday <= 0d"), [SqlParam::Int(0)]);
    assert_eq!(
        params("days_to_birthday in [7, 1w, -1]"),
        [7, 7, -1].map(SqlParam::Int)
    );
}

#[test]
fn dates_as_day_numbers() {
    assert_eq!(params("first_order_at >= '1970-01-02'"), [SqlParam::Int(1)]);
    assert_eq!(
        params("last_order_at < \"2024-02-29\""),
        [SqlParam::Int(19_782)]
    );
    assert_eq!(params("last_order_at < '1969-12-31'"), [SqlParam::Int(-1)]);
}

#[test]
fn enums_text_and_scores() {
    assert_eq!(
        params("lifecycle == 'at_risk' and m_score >= 4"),
        [SqlParam::Text("at_risk".into()), SqlParam::Int(4)]
    );
    assert_eq!(
        params("value_tier not in ['vip', 'core'] or rfm = '545'"),
        ["vip", "core", "545"].map(|s| SqlParam::Text(s.into()))
    );
}

// ---- SQL ----

#[test]
fn sql_shapes_sqlite() {
    let (sql, p) = sqlite("order_count_90d >= 8 and favorite_daypart == 'morning'");
    assert_eq!(
        sql,
        "((a.order_count_90d >= ?) AND (a.favorite_daypart IS NOT NULL AND a.favorite_daypart = ?))"
    );
    assert_eq!(p, [SqlParam::Int(8), SqlParam::Text("morning".into())]);
    let (sql, _) = sqlite("tags contains 'vegetarian'");
    assert_eq!(sql, "(instr(';' || c.tags || ';', ';' || ? || ';') > 0)");
    let (sql, _) = sqlite("tags not contains 'x'");
    assert_eq!(sql, "(instr(';' || c.tags || ';', ';' || ? || ';') = 0)");
    let (sql, _) = sqlite("store not in ['SH-001','SH-002']");
    assert_eq!(
        sql,
        "(c.store_code IS NOT NULL AND c.store_code NOT IN (?, ?))"
    );
    let (sql, _) =
        sqlite("recency_days > 30d and not (value_tier == 'regular') or lifecycle != 'new'");
    assert_eq!(
        sql,
        "((((t.today - a.last_order_day) IS NOT NULL AND (t.today - a.last_order_day) > ?) \
         AND (NOT (a.value_tier = ?))) OR (a.lifecycle <> ?))"
    );
}

#[test]
fn sql_shapes_postgres_numbering() {
    let expr = parse("tags contains 'vip' and store in ['A', 'B'] or order_count >= 2");
    let mut ph = Placeholders::starting_at(3);
    let sql = expr.to_sql(Dialect::Postgres, &mut ph);
    assert_eq!(
        sql,
        "(((strpos(';' || c.tags || ';', ';' || $3 || ';') > 0) AND \
         (c.store_code IS NOT NULL AND c.store_code IN ($4, $5))) OR (a.order_count >= $6))"
    );
    assert_eq!(ph.next_index(), 7);
    assert_eq!(ph.params().len(), 4);
    let taken = ph.take_params();
    assert_eq!(taken[0], SqlParam::Text("vip".into()));
    assert_eq!(ph.next_index(), 7);
    assert!(ph.params().is_empty());
}

#[test]
fn birthday_sql_uses_seg_birthdays() {
    let (sql, _) = sqlite("days_to_birthday <= 7");
    // One lookup per customer, false where there is no birthday.
    assert!(
        sql.starts_with("COALESCE((SELECT b.days FROM seg_birthdays b WHERE b.today = t.today")
    );
    assert_eq!(sql.matches("seg_birthdays").count(), 1, "{sql}");
    assert!(sql.ends_with(" <= ?, FALSE)"), "{sql}");
}

#[test]
fn injection_stays_a_parameter() {
    let src = r"store == 'x\' OR 1=1 --' or tags contains 'a''); DROP TABLE customers; --'";
    let err = Expr::parse(src, &CheckContext::default());
    // `'a''` closes and reopens a string: a syntax error, never SQL.
    assert!(err.is_err());
    let src = r#"store == 'x\' OR 1=1 --' or tags contains "') OR 1=1 --" or store in ["'); DROP TABLE customers; --"]"#;
    for dialect in [Dialect::Sqlite, Dialect::Postgres] {
        let mut ph = Placeholders::new();
        let sql = parse(src).to_sql(dialect, &mut ph);
        assert!(!sql.contains("1=1") && !sql.contains("DROP"), "{sql}");
        assert!(!sql.contains("--"), "{sql}");
        assert_eq!(
            ph.into_params(),
            [
                SqlParam::Text("x' OR 1=1 --".into()),
                SqlParam::Text("') OR 1=1 --".into()),
                SqlParam::Text("'); DROP TABLE customers; --".into())
            ]
        );
    }
}

// ---- evaluation and explanation ----

fn customer() -> HashMap<Attr, Value> {
    HashMap::from([
        (Attr::OrderCount90d, Value::Int(12)),
        (Attr::OrderCount, Value::Int(30)),
        (Attr::TotalSpent, Value::Int(12_350)),
        (Attr::FavoriteDaypart, Value::Text("morning".into())),
        (Attr::Lifecycle, Value::Text("active".into())),
        (Attr::ValueTier, Value::Text("core".into())),
        (Attr::RecencyDays, Value::Int(45)),
        (Attr::FirstOrderAt, Value::Int(19_782)),
        (Attr::Tags, Value::tags_from_db("vip;spicy")),
        (Attr::Store, Value::Text("SH-001".into())),
        (Attr::MScore, Value::Null),
    ])
}

fn eval(src: &str) -> bool {
    parse(src).eval(&customer())
}

#[test]
fn eval_basic() {
    assert!(eval(
        "order_count_90d >= 8 and favorite_daypart == 'morning'"
    ));
    assert!(!eval(
        "order_count_90d >= 8 and favorite_daypart == 'evening'"
    ));
    assert!(eval("tags contains 'vip'"));
    assert!(!eval("tags contains 'vi'"));
    assert!(eval("tags not contains 'vegetarian'"));
    assert!(eval("store in ['SH-001','SH-002']"));
    assert!(!eval("store not in ['SH-001','SH-002']"));
    assert!(eval("order_count >= 2 and total_spent >= 100"));
    assert!(!eval("total_spent >= 123.51"));
    assert!(eval("total_spent == 123.5"));
    assert!(eval("recency_days > 30d and not (value_tier == 'regular')"));
    assert!(eval("first_order_at == '2024-02-29'"));
    assert!(eval("order_count < 2 or order_count > 29"));
}

#[test]
fn null_comparisons_are_false_and_not_makes_them_true() {
    for op in ["==", "!=", "<", "<=", ">", ">="] {
        assert!(!eval(&format!("m_score {op} 3")), "{op}");
        assert!(eval(&format!("not m_score {op} 3")), "{op}");
    }
    assert!(!eval("m_score in [1, 2]"));
    assert!(!eval("m_score not in [1, 2]"));
    assert!(eval("not (m_score not in [1, 2])"));
    assert!(!eval("rfm != '555'"));
}

#[test]
fn explain_reports_each_leaf() {
    let expr = parse(
        "order_count_90d >= 8 and (total_spent > 200 or not m_score >= 4) \
         and first_order_at < '2025-01-01' and recency_days > 30d and tags contains 'vip' \
         and store in ['SH-001'] and lifecycle = 'active'",
    );
    let clauses = expr.explain(&customer());
    let got: Vec<(&str, &str, bool)> = clauses
        .iter()
        .map(|c| (c.text.as_str(), c.actual.as_str(), c.held))
        .collect();
    assert_eq!(
        got,
        [
            ("order_count_90d >= 8", "12", true),
            ("total_spent > ¥200.00", "¥123.50", false),
            ("m_score >= 4", "none", false),
            ("first_order_at < 2025-01-01", "2024-02-29", true),
            ("recency_days > 30 days", "45 days", true),
            ("tags contains 'vip'", "vip, spicy", true),
            ("store in ['SH-001']", "SH-001", true),
            ("lifecycle == 'active'", "active", true),
        ]
    );
    assert!(expr.eval(&customer()));
}

#[test]
fn attributes_in_order_of_first_use() {
    let expr =
        parse("recency_days > 3 and (order_count > 1 or recency_days < 9) and tags contains 'x'");
    let attrs: Vec<Attr> = expr.attributes().collect();
    assert_eq!(attrs, [Attr::RecencyDays, Attr::OrderCount, Attr::Tags]);
    assert!(expr.depends_on_today());
    assert!(!parse("spent_90d > 1 and lifecycle == 'new'").depends_on_today());
    assert!(parse("days_to_birthday <= 7").depends_on_today());
}

#[test]
fn source_and_keywords() {
    let src = "Order_count_90d >= 8";
    assert!(Expr::parse(src, &CheckContext::default()).is_err());
    let expr = parse("order_count >= 2 AND NOT (store IN ['a'] OR tags CONTAINS 'b')");
    assert_eq!(
        expr.source(),
        "order_count >= 2 AND NOT (store IN ['a'] OR tags CONTAINS 'b')"
    );
    assert_eq!(expr.to_string(), expr.source());
}
