//! What we know about a store.

use super::StoreCode;

/// A store: its code, name, SMS signature and time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreInfo {
    /// The store's code, as used in import files.
    pub code: StoreCode,
    /// Human-readable name, e.g. "朝阳大悦城店".
    pub name: String,
    /// The signature SMS from this store carry, e.g. "【老北京涮肉】".
    pub sms_signature: String,
    /// The store's time zone, for local dates and dayparts.
    pub timezone: chrono_tz::Tz,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_values() {
        let s = StoreInfo {
            code: StoreCode::parse("BJ-001").unwrap(),
            name: "朝阳大悦城店".into(),
            sms_signature: "【老北京涮肉】".into(),
            timezone: "Asia/Shanghai".parse().unwrap(),
        };
        assert_eq!(s.code.as_str(), "BJ-001");
        assert_eq!(s.timezone, chrono_tz::Asia::Shanghai);
        assert_eq!(s.clone(), s);
    }
}
