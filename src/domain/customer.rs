//! A customer of the chain.

use chrono::{DateTime, Utc};

use super::{Birthday, Consent, CustomerId, Email, Phone, StoreCode, Tags, WeChatOpenId};

/// A customer with checked contact details and per-channel consent.
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    /// The chain's own id for the customer.
    pub id: CustomerId,
    /// Display name, trimmed; `None` if empty.
    pub name: Option<String>,
    /// Mobile number for SMS.
    pub phone: Option<Phone>,
    /// Address for email campaigns.
    pub email: Option<Email>,
    /// OpenID for WeChat messages.
    pub wechat_openid: Option<WeChatOpenId>,
    /// Birthday, for birthday offers.
    pub birthday: Option<Birthday>,
    /// Home store, if known.
    pub store: Option<StoreCode>,
    /// Free-form segment tags.
    pub tags: Tags,
    /// Consent to marketing SMS.
    pub sms_opt_in: Consent,
    /// Consent to marketing email.
    pub email_opt_in: Consent,
    /// Consent to WeChat marketing messages.
    pub wechat_opt_in: Consent,
    /// When the customer joined the loyalty programme.
    pub joined_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn sample() -> Customer {
        Customer {
            id: CustomerId::parse("C10023").unwrap(),
            name: Some("张伟".into()),
            phone: Some(Phone::parse("138 0013 8000").unwrap()),
            email: Some(Email::parse("Zhang@Example.com").unwrap()),
            wechat_openid: Some(WeChatOpenId::parse("oAbCdEfGhIjKlMnOp").unwrap()),
            birthday: Some(Birthday::parse("02-29").unwrap()),
            store: Some(StoreCode::parse("BJ-001").unwrap()),
            tags: Tags::parse("vip;辣").unwrap(),
            sms_opt_in: Consent::Yes,
            email_opt_in: Consent::No,
            wechat_opt_in: Consent::Unknown,
            joined_at: Some(Utc.with_ymd_and_hms(2024, 5, 1, 4, 0, 0).unwrap()),
        }
    }

    #[test]
    fn fields_hold_canonical_values() {
        let c = sample();
        assert_eq!(c.phone.as_ref().unwrap().as_str(), "+8613800138000");
        assert_eq!(c.email.as_ref().unwrap().as_str(), "Zhang@example.com");
        assert_eq!(c.birthday.unwrap().to_string(), "02-29");
        assert_eq!(c.tags.to_db(), "vip;辣");
        assert_eq!(c.sms_opt_in.to_db(), Some(true));
    }

    #[test]
    fn clone_and_compare() {
        let a = sample();
        let mut b = a.clone();
        assert_eq!(a, b);
        b.email_opt_in = Consent::Yes;
        assert_ne!(a, b);
    }

    #[test]
    fn minimal_customer() {
        let c = Customer {
            id: CustomerId::parse("C1").unwrap(),
            name: None,
            phone: None,
            email: None,
            wechat_openid: None,
            birthday: None,
            store: None,
            tags: Tags::default(),
            sms_opt_in: Consent::default(),
            email_opt_in: Consent::default(),
            wechat_opt_in: Consent::default(),
            joined_at: None,
        };
        assert!(c.tags.is_empty());
        assert_eq!(c.sms_opt_in, Consent::Unknown);
    }
}
