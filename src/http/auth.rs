//! Who may read the ops page, the JSON API and `/metrics`.
//!
//! - With `http.token` configured, every request needs the token, either as
//!   `Authorization: Bearer <token>` or as the session cookie `POST /login`
//!   hands out after checking the token (the same on loopback).
//! - Without a token, a loopback listener is open to whoever can reach it
//!   (the machine itself); any other listener refuses everything (the
//!   daemon does not start that way, but a server built by hand must not
//!   be open either).
//!
//! Sessions are stateless: the cookie carries its expiry, a random nonce and
//! the name given at sign-in, under an HMAC keyed from the token (so every
//! process sharing the token accepts it, and changing the token signs
//! everyone out). It is `HttpOnly`, `SameSite=Strict`, and `Secure` when
//! `http.public_url` is https. Forms that change something carry a token
//! derived from the session's nonce; without a token configured, the page
//! hands out an anonymous session just for that.

use std::net::SocketAddr;

use axum::extract::{Form, Query, Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::Deserialize;
use sha2::Sha256;

use super::AppState;
use super::page::i18n::Lang;
use super::page::view;
use crate::dispatch::sign::constant_time_eq;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "outreach_session";
/// How long a sign-in lasts.
pub const SESSION_HOURS: i64 = 12;
/// Longest name kept from the sign-in form.
const MAX_LOGIN_CHARS: usize = 32;
/// Bytes of MAC kept in a cookie and in a form token.
const MAC_LEN: usize = 16;

/// How a request is allowed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// No token is configured and the listener is loopback.
    Open,
    /// `Authorization: Bearer <http.token>`.
    Bearer,
    /// A valid session cookie from `POST /login`.
    Session(Session),
    /// Nothing that lets it in.
    Denied,
}

impl Access {
    /// The actor recorded for changes made through the page.
    pub fn actor(&self, session: Option<&Session>) -> String {
        let login = match self {
            Access::Session(s) => Some(s.login.as_str()),
            _ => session.map(|s| s.login.as_str()),
        };
        match login {
            Some(l) if !l.is_empty() => format!("page:{l}"),
            _ => match self {
                Access::Bearer => "page:bearer".to_owned(),
                _ => "page".to_owned(),
            },
        }
    }
}

/// A verified session cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The name given at sign-in (may be empty): letters, digits and
    /// `. _ - @`, at most 32.
    pub login: String,
    /// Issued without the token (loopback without a token), only so that
    /// forms can be protected.
    pub anonymous: bool,
    pub expires: DateTime<Utc>,
    nonce: String,
}

/// The server's authentication settings: made once per server.
pub struct Gate {
    key: SecretBox<Vec<u8>>,
    token: Option<SecretString>,
    loopback: bool,
    secure: bool,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("token", &self.token.is_some())
            .field("loopback", &self.loopback)
            .field("secure", &self.secure)
            .finish_non_exhaustive()
    }
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
        mac.update(b"\n");
    }
    mac.finalize().into_bytes().to_vec()
}

impl Gate {
    /// `token`: `http.token`; `listener`: where the server listens;
    /// `public_url`: `http.public_url` (https makes cookies `Secure`).
    pub fn new(token: Option<&SecretString>, listener: SocketAddr, public_url: &str) -> Gate {
        let key = match token {
            Some(t) => hmac(
                t.expose_secret().as_bytes(),
                &[b"outreach ops session key v1"],
            ),
            None => rand::random::<[u8; 32]>().to_vec(),
        };
        Gate {
            key: SecretBox::new(Box::new(key)),
            token: token.cloned(),
            loopback: listener.ip().is_loopback(),
            secure: public_url
                .trim()
                .to_ascii_lowercase()
                .starts_with("https://"),
        }
    }

    /// Whether a token is configured (signing in means something).
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Whether `given` is the configured token (constant time).
    pub fn token_matches(&self, given: &str) -> bool {
        self.token
            .as_ref()
            .is_some_and(|t| constant_time_eq(given.as_bytes(), t.expose_secret().as_bytes()))
    }

    /// How `headers` let a request in at `now`.
    pub fn check(&self, headers: &HeaderMap, now: DateTime<Utc>) -> Access {
        if self.token.is_some() {
            if let Some(given) = bearer(headers) {
                return if self.token_matches(given) {
                    Access::Bearer
                } else {
                    Access::Denied
                };
            }
            return match self.session(headers, now) {
                Some(s) if !s.anonymous => Access::Session(s),
                _ => Access::Denied,
            };
        }
        if self.loopback {
            Access::Open
        } else {
            Access::Denied
        }
    }

    /// The valid session cookie of `headers`, if any.
    pub fn session(&self, headers: &HeaderMap, now: DateTime<Utc>) -> Option<Session> {
        cookie(headers, SESSION_COOKIE).and_then(|v| self.verify(v, now))
    }

    /// A new session for `login` (empty: no name); returns the cookie value.
    pub fn issue(&self, login: &str, anonymous: bool, now: DateTime<Utc>) -> (String, Session) {
        let nonce = hex::encode(rand::random::<[u8; 16]>());
        let expires = now + Duration::hours(SESSION_HOURS);
        // The characters an audited actor may have (`page:<login>`).
        let login: String = login
            .trim()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
            .take(MAX_LOGIN_CHARS)
            .collect();
        let flag = if anonymous { "a" } else { "u" };
        let payload = format!(
            "{}.{nonce}.{flag}.{}",
            expires.timestamp(),
            URL_SAFE_NO_PAD.encode(login.as_bytes())
        );
        let mac = hmac(self.key.expose_secret(), &[b"session", payload.as_bytes()]);
        let value = format!("{payload}.{}", URL_SAFE_NO_PAD.encode(&mac[..MAC_LEN]));
        (
            value,
            Session {
                login,
                anonymous,
                expires,
                nonce,
            },
        )
    }

    fn verify(&self, value: &str, now: DateTime<Utc>) -> Option<Session> {
        let (payload, mac) = value.rsplit_once('.')?;
        let given = URL_SAFE_NO_PAD.decode(mac).ok()?;
        let expected = hmac(self.key.expose_secret(), &[b"session", payload.as_bytes()]);
        if !constant_time_eq(&given, &expected[..MAC_LEN]) {
            return None;
        }
        let mut parts = payload.split('.');
        let expires = DateTime::from_timestamp(parts.next()?.parse().ok()?, 0)?;
        let nonce = parts.next()?.to_owned();
        let anonymous = match parts.next()? {
            "a" => true,
            "u" => false,
            _ => return None,
        };
        let login = String::from_utf8(URL_SAFE_NO_PAD.decode(parts.next()?).ok()?).ok()?;
        if parts.next().is_some() || expires <= now {
            return None;
        }
        Some(Session {
            login,
            anonymous,
            expires,
            nonce,
        })
    }

    /// The form token of `session`.
    pub fn form_token(&self, session: &Session) -> String {
        let mac = hmac(
            self.key.expose_secret(),
            &[b"form", session.nonce.as_bytes()],
        );
        URL_SAFE_NO_PAD.encode(&mac[..MAC_LEN])
    }

    /// Whether `given` is the form token of `session`.
    pub fn form_token_matches(&self, session: &Session, given: &str) -> bool {
        constant_time_eq(given.as_bytes(), self.form_token(session).as_bytes())
    }

    /// `Set-Cookie` for a session cookie `value` valid until `expires`.
    pub fn set_cookie(&self, value: &str, now: DateTime<Utc>, expires: DateTime<Utc>) -> String {
        let max_age = (expires - now).num_seconds().max(0);
        format!(
            "{SESSION_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
            if self.secure { "; Secure" } else { "" }
        )
    }

    /// `Set-Cookie` that removes the session cookie.
    pub fn clear_cookie(&self) -> String {
        format!(
            "{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{}",
            if self.secure { "; Secure" } else { "" }
        )
    }
}

/// The bearer token of `headers`, if one is given.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The value of cookie `name` in `headers`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A state-changing form comes from this site: an `Origin` header, when
/// the browser sends one, names the host the request was sent to.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let Some(host) = headers.get(HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let origin_host = origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .trim_end_matches('/');
    origin_host.eq_ignore_ascii_case(host)
}

/// The 401 answer of the JSON API and `/metrics`.
pub fn unauthorized_json() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(serde_json::json!({
            "error": "a bearer token is required: Authorization: Bearer <http.token> (or a session from signing in at /login)"
        })),
    )
        .into_response()
}

/// Middleware of the ops page: lets the request in (with its [`Access`] in
/// the request's extensions) or sends the browser to `/login`.
pub async fn require_page_login(
    State(state): State<AppState>,
    axum::Extension(gate): axum::Extension<std::sync::Arc<Gate>>,
    mut req: Request,
    next: Next,
) -> Response {
    let access = gate.check(req.headers(), state.clock.now());
    if access == Access::Denied {
        let next_url = req
            .uri()
            .path_and_query()
            .map_or("/".to_owned(), |p| p.as_str().to_owned());
        let target = format!("/login?next={}", urlencode(&next_url));
        return Redirect::to(&target).into_response();
    }
    req.extensions_mut().insert(access);
    next.run(req).await
}

/// Percent-encode a query value.
pub fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A `next=` target that stays on this site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}

/// `GET /login` and its form's query.
#[derive(Debug, Deserialize, Default)]
pub struct LoginQuery {
    pub next: Option<String>,
    pub lang: Option<String>,
    /// Set after `POST /logout`.
    pub out: Option<String>,
}

/// `GET /login`
pub async fn login_form(
    State(state): State<AppState>,
    axum::Extension(gate): axum::Extension<std::sync::Arc<Gate>>,
    Query(q): Query<LoginQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = Lang::pick(q.lang.as_deref(), &headers);
    if !gate.has_token() && gate.check(&headers, state.clock.now()) == Access::Open {
        return Redirect::to(&safe_next(q.next.as_deref())).into_response();
    }
    let notice = q.out.is_some().then(|| lang.text().logged_out.to_owned());
    Html(view::login(
        lang,
        &safe_next(q.next.as_deref()),
        None,
        notice,
        gate.has_token(),
    ))
    .into_response()
}

/// Body of `POST /login`.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    pub token: String,
    #[serde(default)]
    pub name: String,
    pub next: Option<String>,
    pub lang: Option<String>,
}

/// `POST /login`: checks the token, sets the session cookie.
pub async fn login(
    State(state): State<AppState>,
    axum::Extension(gate): axum::Extension<std::sync::Arc<Gate>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let lang = Lang::pick(form.lang.as_deref(), &headers);
    let next = safe_next(form.next.as_deref());
    if !gate.token_matches(form.token.trim()) {
        tracing::warn!("ops page: a sign-in with a wrong token");
        // A pause makes guessing slow.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let error = Some(if gate.has_token() {
            lang.text().login_wrong.to_owned()
        } else {
            lang.text().login_not_needed.to_owned()
        });
        return (
            StatusCode::UNAUTHORIZED,
            Html(view::login(lang, &next, error, None, gate.has_token())),
        )
            .into_response();
    }
    let now = state.clock.now();
    let (value, session) = gate.issue(&form.name, false, now);
    tracing::info!(login = %session.login, "ops page: signed in");
    let mut resp = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&gate.set_cookie(&value, now, session.expires)) {
        resp.headers_mut().insert(SET_COOKIE, v);
    }
    resp
}

/// `POST /logout`: removes the session cookie.
pub async fn logout(
    axum::Extension(gate): axum::Extension<std::sync::Arc<Gate>>,
    headers: HeaderMap,
) -> Response {
    let lang = Lang::pick(None, &headers);
    let mut resp = Redirect::to(&format!("/login?out=1&lang={}", lang.code())).into_response();
    if let Ok(v) = HeaderValue::from_str(&gate.clear_cookie()) {
        resp.headers_mut().insert(SET_COOKIE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn gate(token: Option<&str>, addr: &str) -> Gate {
        let token = token.map(|t| SecretString::from(t.to_owned()));
        Gate::new(
            token.as_ref(),
            addr.parse().unwrap(),
            "http://127.0.0.1:8080",
        )
    }

    fn with(header: axum::http::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn loopback_without_a_token_is_open_anything_else_needs_the_token() {
        let now = t("2026-03-10T10:00:00Z");
        let none = HeaderMap::new();
        assert_eq!(gate(None, "127.0.0.1:8080").check(&none, now), Access::Open);
        assert_eq!(gate(None, "[::1]:8080").check(&none, now), Access::Open);
        assert_eq!(gate(None, "0.0.0.0:8080").check(&none, now), Access::Denied);
        let g = gate(Some("s3cret-token"), "127.0.0.1:8080");
        assert_eq!(g.check(&none, now), Access::Denied);
        let ok = with(AUTHORIZATION, "Bearer s3cret-token");
        assert_eq!(g.check(&ok, now), Access::Bearer);
        let wrong = with(AUTHORIZATION, "Bearer s3cret-tokeN");
        assert_eq!(g.check(&wrong, now), Access::Denied);
        let remote = gate(Some("s3cret-token"), "10.0.0.5:8080");
        assert_eq!(remote.check(&ok, now), Access::Bearer);
    }

    #[test]
    fn sessions_are_signed_expire_and_carry_the_name() {
        let now = t("2026-03-10T10:00:00Z");
        let g = gate(Some("s3cret-token"), "0.0.0.0:8080");
        let (value, s) = g.issue("  王小明\n<>", false, now);
        assert_eq!(s.login, "王小明");
        let h = with(COOKIE, &format!("lang=zh; {SESSION_COOKIE}={value}"));
        match g.check(&h, now + Duration::hours(1)) {
            Access::Session(got) => assert_eq!(got.login, "王小明"),
            other => panic!("{other:?}"),
        }
        // Expired.
        assert_eq!(
            g.check(&h, now + Duration::hours(SESSION_HOURS)),
            Access::Denied
        );
        // Altered: another name under the same MAC.
        let forged = value.replacen(
            &URL_SAFE_NO_PAD.encode("王小明".as_bytes()),
            &URL_SAFE_NO_PAD.encode("admin".as_bytes()),
            1,
        );
        assert_ne!(forged, value);
        let h = with(COOKIE, &format!("{SESSION_COOKIE}={forged}"));
        assert_eq!(g.check(&h, now), Access::Denied);
        // Another token's session (the token changed): refused.
        let other = gate(Some("another-token"), "0.0.0.0:8080");
        let h = with(COOKIE, &format!("{SESSION_COOKIE}={value}"));
        assert_eq!(other.check(&h, now), Access::Denied);
        // Sessions survive a restart with the same token.
        let again = gate(Some("s3cret-token"), "0.0.0.0:8080");
        assert!(matches!(again.check(&h, now), Access::Session(_)));
    }

    #[test]
    fn anonymous_sessions_only_protect_forms() {
        let now = t("2026-03-10T10:00:00Z");
        let g = gate(Some("s3cret-token"), "127.0.0.1:8080");
        let (value, _) = g.issue("", true, now);
        let h = with(COOKIE, &format!("{SESSION_COOKIE}={value}"));
        assert_eq!(g.check(&h, now), Access::Denied);
        assert!(g.session(&h, now).is_some());
    }

    #[test]
    fn form_tokens_belong_to_one_session() {
        let now = t("2026-03-10T10:00:00Z");
        let g = gate(Some("s3cret-token"), "127.0.0.1:8080");
        let (_, a) = g.issue("a", false, now);
        let (_, b) = g.issue("a", false, now);
        let ta = g.form_token(&a);
        assert!(g.form_token_matches(&a, &ta));
        assert!(!g.form_token_matches(&b, &ta));
        assert!(!g.form_token_matches(&a, ""));
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_over_https() {
        let now = t("2026-03-10T10:00:00Z");
        let token = SecretString::from("tok".to_owned());
        let plain = Gate::new(Some(&token), "127.0.0.1:1".parse().unwrap(), "http://x");
        let c = plain.set_cookie("v", now, now + Duration::hours(1));
        assert_eq!(
            c,
            "outreach_session=v; Path=/; Max-Age=3600; HttpOnly; SameSite=Strict"
        );
        let tls = Gate::new(
            Some(&token),
            "127.0.0.1:1".parse().unwrap(),
            "https://m.example.cn",
        );
        assert!(
            tls.set_cookie("v", now, now + Duration::hours(1))
                .ends_with("; Secure")
        );
        assert!(tls.clear_cookie().contains("Max-Age=0"));
    }

    #[test]
    fn actors_name_the_person() {
        let now = t("2026-03-10T10:00:00Z");
        let g = gate(Some("tok"), "127.0.0.1:1");
        let (_, s) = g.issue("li", false, now);
        assert_eq!(Access::Session(s.clone()).actor(None), "page:li");
        assert_eq!(Access::Open.actor(None), "page");
        assert_eq!(Access::Bearer.actor(None), "page:bearer");
        let (_, anon) = g.issue("", true, now);
        assert_eq!(Access::Open.actor(Some(&anon)), "page");
    }

    #[test]
    fn origin_must_match_the_host_when_given() {
        let mut h = with(HOST, "127.0.0.1:8080");
        assert!(same_origin(&h));
        h.insert(ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(same_origin(&h));
        h.insert(ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!same_origin(&h));
    }

    #[test]
    fn next_stays_on_the_site() {
        assert_eq!(safe_next(Some("/?status=dead")), "/?status=dead");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
