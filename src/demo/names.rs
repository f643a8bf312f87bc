//! Chinese personal names and matching e-mail addresses for demo customers.

use rand::Rng;

/// A surname or given-name character with its pinyin (no tones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syllable {
    /// The Chinese characters.
    pub hanzi: &'static str,
    /// Lower-case pinyin without tone marks.
    pub pinyin: &'static str,
}

const fn syl(hanzi: &'static str, pinyin: &'static str) -> Syllable {
    Syllable { hanzi, pinyin }
}

/// Common surnames with a rough relative frequency (per mille of the population).
pub const SURNAMES: &[(Syllable, u32)] = &[
    (syl("王", "wang"), 72),
    (syl("李", "li"), 71),
    (syl("张", "zhang"), 68),
    (syl("刘", "liu"), 53),
    (syl("陈", "chen"), 46),
    (syl("杨", "yang"), 31),
    (syl("黄", "huang"), 24),
    (syl("赵", "zhao"), 22),
    (syl("吴", "wu"), 20),
    (syl("周", "zhou"), 19),
    (syl("徐", "xu"), 14),
    (syl("孙", "sun"), 13),
    (syl("马", "ma"), 12),
    (syl("朱", "zhu"), 11),
    (syl("胡", "hu"), 11),
    (syl("郭", "guo"), 10),
    (syl("何", "he"), 9),
    (syl("高", "gao"), 9),
    (syl("林", "lin"), 9),
    (syl("罗", "luo"), 8),
    (syl("郑", "zheng"), 8),
    (syl("梁", "liang"), 8),
    (syl("谢", "xie"), 6),
    (syl("宋", "song"), 6),
    (syl("唐", "tang"), 6),
    (syl("许", "xu"), 5),
    (syl("韩", "han"), 5),
    (syl("冯", "feng"), 5),
    (syl("邓", "deng"), 5),
    (syl("曹", "cao"), 5),
    (syl("彭", "peng"), 4),
    (syl("曾", "zeng"), 4),
    (syl("肖", "xiao"), 4),
    (syl("田", "tian"), 4),
    (syl("董", "dong"), 4),
    (syl("袁", "yuan"), 4),
    (syl("潘", "pan"), 4),
    (syl("于", "yu"), 4),
    (syl("蒋", "jiang"), 4),
    (syl("蔡", "cai"), 4),
    (syl("余", "yu"), 3),
    (syl("杜", "du"), 3),
    (syl("叶", "ye"), 3),
    (syl("程", "cheng"), 3),
    (syl("苏", "su"), 3),
    (syl("魏", "wei"), 3),
    (syl("吕", "lv"), 3),
    (syl("丁", "ding"), 3),
    (syl("任", "ren"), 3),
    (syl("沈", "shen"), 3),
    (syl("姚", "yao"), 3),
    (syl("卢", "lu"), 3),
    (syl("姜", "jiang"), 3),
    (syl("崔", "cui"), 3),
    (syl("钟", "zhong"), 3),
    (syl("谭", "tan"), 3),
    (syl("陆", "lu"), 3),
    (syl("汪", "wang"), 3),
    (syl("范", "fan"), 2),
    (syl("金", "jin"), 2),
    (syl("石", "shi"), 2),
    (syl("廖", "liao"), 2),
    (syl("贾", "jia"), 2),
    (syl("夏", "xia"), 2),
    (syl("韦", "wei"), 2),
    (syl("付", "fu"), 2),
    (syl("方", "fang"), 2),
    (syl("白", "bai"), 2),
    (syl("邹", "zou"), 2),
    (syl("孟", "meng"), 2),
    (syl("熊", "xiong"), 2),
    (syl("秦", "qin"), 2),
    (syl("邱", "qiu"), 2),
    (syl("江", "jiang"), 2),
    (syl("尹", "yin"), 2),
    (syl("薛", "xue"), 2),
    (syl("闫", "yan"), 2),
    (syl("段", "duan"), 2),
    (syl("雷", "lei"), 2),
    (syl("侯", "hou"), 2),
    (syl("龙", "long"), 2),
    (syl("史", "shi"), 2),
    (syl("陶", "tao"), 2),
    (syl("黎", "li"), 2),
    (syl("贺", "he"), 2),
    (syl("顾", "gu"), 2),
    (syl("毛", "mao"), 2),
    (syl("郝", "hao"), 2),
    (syl("龚", "gong"), 2),
    (syl("邵", "shao"), 2),
    (syl("万", "wan"), 1),
    (syl("钱", "qian"), 1),
    (syl("严", "yan"), 1),
    (syl("武", "wu"), 1),
    (syl("戴", "dai"), 1),
    (syl("莫", "mo"), 1),
    (syl("孔", "kong"), 1),
    (syl("向", "xiang"), 1),
    (syl("汤", "tang"), 1),
    (syl("欧阳", "ouyang"), 1),
    (syl("司马", "sima"), 1),
    (syl("诸葛", "zhuge"), 1),
    (syl("上官", "shangguan"), 1),
];

/// Characters commonly used in given names.
pub const GIVEN_CHARS: &[Syllable] = &[
    syl("伟", "wei"),
    syl("芳", "fang"),
    syl("娜", "na"),
    syl("敏", "min"),
    syl("静", "jing"),
    syl("丽", "li"),
    syl("强", "qiang"),
    syl("磊", "lei"),
    syl("军", "jun"),
    syl("洋", "yang"),
    syl("勇", "yong"),
    syl("艳", "yan"),
    syl("杰", "jie"),
    syl("娟", "juan"),
    syl("涛", "tao"),
    syl("明", "ming"),
    syl("超", "chao"),
    syl("秀", "xiu"),
    syl("霞", "xia"),
    syl("平", "ping"),
    syl("刚", "gang"),
    syl("英", "ying"),
    syl("华", "hua"),
    syl("文", "wen"),
    syl("建", "jian"),
    syl("玲", "ling"),
    syl("婷", "ting"),
    syl("欣", "xin"),
    syl("浩", "hao"),
    syl("宇", "yu"),
    syl("轩", "xuan"),
    syl("梓", "zi"),
    syl("涵", "han"),
    syl("子", "zi"),
    syl("怡", "yi"),
    syl("晨", "chen"),
    syl("博", "bo"),
    syl("雨", "yu"),
    syl("佳", "jia"),
    syl("思", "si"),
    syl("嘉", "jia"),
    syl("琪", "qi"),
    syl("萱", "xuan"),
    syl("俊", "jun"),
    syl("鑫", "xin"),
    syl("昊", "hao"),
    syl("然", "ran"),
    syl("睿", "rui"),
    syl("雪", "xue"),
    syl("慧", "hui"),
    syl("颖", "ying"),
    syl("鹏", "peng"),
    syl("辉", "hui"),
    syl("飞", "fei"),
    syl("斌", "bin"),
    syl("宁", "ning"),
    syl("凯", "kai"),
    syl("一", "yi"),
    syl("诗", "shi"),
    syl("可", "ke"),
    syl("晓", "xiao"),
    syl("梦", "meng"),
    syl("志", "zhi"),
    syl("海", "hai"),
    syl("春", "chun"),
    syl("红", "hong"),
    syl("云", "yun"),
    syl("丹", "dan"),
    syl("彤", "tong"),
    syl("泽", "ze"),
    syl("阳", "yang"),
    syl("悦", "yue"),
    syl("瑶", "yao"),
    syl("琳", "lin"),
    syl("亮", "liang"),
    syl("帆", "fan"),
    syl("天", "tian"),
    syl("安", "an"),
];

/// English given names used by some overseas customers.
pub const ENGLISH_GIVEN: &[&str] = &[
    "Amy", "Emily", "Grace", "Jessica", "Lily", "Olivia", "Chloe", "Sophie", "Kevin", "Jason",
    "David", "Daniel", "Eric", "Michael", "Ryan", "Tony", "Vincent", "Jack",
];

/// E-mail providers with rough relative popularity.
pub const EMAIL_DOMAINS: &[(&str, u32)] = &[
    ("qq.com", 34),
    ("163.com", 24),
    ("126.com", 10),
    ("foxmail.com", 7),
    ("gmail.com", 8),
    ("sina.com", 5),
    ("outlook.com", 5),
    ("hotmail.com", 3),
    ("139.com", 4),
];

const SURNAME_TOTAL: u32 = {
    let mut total = 0;
    let mut i = 0;
    while i < SURNAMES.len() {
        total += SURNAMES[i].1;
        i += 1;
    }
    total
};

const DOMAIN_TOTAL: u32 = {
    let mut total = 0;
    let mut i = 0;
    while i < EMAIL_DOMAINS.len() {
        total += EMAIL_DOMAINS[i].1;
        i += 1;
    }
    total
};

/// A generated person name: the Chinese surname, one or two given-name characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChineseName {
    /// Family name (one or two characters).
    pub surname: Syllable,
    /// First given-name character.
    pub given1: Syllable,
    /// Optional second given-name character (three-character names).
    pub given2: Option<Syllable>,
}

impl ChineseName {
    /// The name in Chinese order, e.g. `张伟` or `王梓涵`.
    pub fn hanzi(&self) -> String {
        let mut s = String::with_capacity(12);
        s.push_str(self.surname.hanzi);
        s.push_str(self.given1.hanzi);
        if let Some(g) = self.given2 {
            s.push_str(g.hanzi);
        }
        s
    }

    /// Pinyin of the given name run together, e.g. `zihan`.
    pub fn given_pinyin(&self) -> String {
        let mut s = String::with_capacity(12);
        s.push_str(self.given1.pinyin);
        if let Some(g) = self.given2 {
            s.push_str(g.pinyin);
        }
        s
    }
}

/// Picks a surname weighted by its rough frequency.
pub fn surname<R: Rng + ?Sized>(rng: &mut R) -> Syllable {
    let mut pick = rng.random_range(0..SURNAME_TOTAL);
    for &(s, w) in SURNAMES {
        if pick < w {
            return s;
        }
        pick -= w;
    }
    SURNAMES[0].0
}

/// Picks a given-name character uniformly.
pub fn given_char<R: Rng + ?Sized>(rng: &mut R) -> Syllable {
    GIVEN_CHARS[rng.random_range(0..GIVEN_CHARS.len())]
}

/// Makes a 2–3 character Chinese name (about 60 % have two given characters).
pub fn chinese_name<R: Rng + ?Sized>(rng: &mut R) -> ChineseName {
    let surname = surname(rng);
    let given1 = given_char(rng);
    let given2 = if rng.random_bool(0.6) {
        let mut g = given_char(rng);
        if g == given1 && rng.random_bool(0.7) {
            g = given_char(rng);
        }
        Some(g)
    } else {
        None
    };
    ChineseName {
        surname,
        given1,
        given2,
    }
}

/// Picks an English given name (for overseas customers).
pub fn english_given<R: Rng + ?Sized>(rng: &mut R) -> &'static str {
    ENGLISH_GIVEN[rng.random_range(0..ENGLISH_GIVEN.len())]
}

/// Capitalises an ASCII pinyin syllable: `zhang` → `Zhang`.
pub fn capitalised(pinyin: &str) -> String {
    let mut out = String::with_capacity(pinyin.len());
    let mut chars = pinyin.chars();
    if let Some(first) = chars.next() {
        out.push(first.to_ascii_uppercase());
        out.extend(chars);
    }
    out
}

fn email_domain<R: Rng + ?Sized>(rng: &mut R) -> &'static str {
    let mut pick = rng.random_range(0..DOMAIN_TOTAL);
    for &(d, w) in EMAIL_DOMAINS {
        if pick < w {
            return d;
        }
        pick -= w;
    }
    EMAIL_DOMAINS[0].0
}

/// Makes a plausible address for `name`, e.g. `zhangwei88@163.com`, `wei.zhang@gmail.com`
/// or a numeric QQ mailbox like `284716395@qq.com`. Lower-case ASCII only.
pub fn email_for<R: Rng + ?Sized>(rng: &mut R, name: &ChineseName) -> String {
    use std::fmt::Write as _;

    let domain = email_domain(rng);
    let sur = name.surname.pinyin;
    let given = name.given_pinyin();
    let mut s = String::with_capacity(32);
    // `write!` into a String cannot fail; the results are ignored for that reason.
    if domain == "qq.com" && rng.random_bool(0.7) {
        let _ = write!(s, "{}", rng.random_range(10_000_000u64..3_999_999_999));
    } else {
        match rng.random_range(0..6u8) {
            0 => {
                let _ = write!(s, "{sur}{given}{}", rng.random_range(1..100u32));
            }
            1 => {
                let _ = write!(s, "{given}.{sur}");
            }
            2 => {
                let _ = write!(s, "{sur}_{given}{}", rng.random_range(1970..2009u32));
            }
            3 => {
                let _ = write!(s, "{sur}{given}{}", rng.random_range(100..10_000u32));
            }
            4 => {
                let _ = write!(
                    s,
                    "{}{}{sur}{}",
                    &given[..1],
                    name.given2.map_or("", |g| &g.pinyin[..1]),
                    rng.random_range(1..1000u32)
                );
            }
            _ => {
                let _ = write!(s, "{sur}.{given}{}", rng.random_range(1..100u32));
            }
        }
    }
    s.push('@');
    s.push_str(domain);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn names_have_one_or_two_given_characters() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..2_000 {
            let n = chinese_name(&mut rng);
            let given = n.hanzi().chars().count() - n.surname.hanzi.chars().count();
            assert!((1..=2).contains(&given), "{}", n.hanzi());
        }
    }

    #[test]
    fn emails_are_lower_case_ascii_with_a_dotted_domain() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        for _ in 0..2_000 {
            let n = chinese_name(&mut rng);
            let e = email_for(&mut rng, &n);
            let (local, domain) = e.split_once('@').expect("generated address has an @");
            assert!(!local.is_empty() && domain.contains('.'), "{e}");
            assert!(
                e.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._@".contains(&b)),
                "{e}"
            );
        }
    }

    #[test]
    fn common_surnames_dominate() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let wang = (0..10_000)
            .filter(|_| surname(&mut rng).hanzi == "王")
            .count();
        assert!((500..1_100).contains(&wang), "王 drawn {wang} times");
    }
}
