//! The SMTP provider against a real SMTP server in the test process
//! (mailcrab), and its failure classes against scripted servers.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use secrecy::SecretString;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use outreach::clock::{FixedClock, SharedClock};
use outreach::dispatch::providers::smtp::SmtpEmail;
use outreach::dispatch::settings::{SmtpSettings, SmtpTls};
use outreach::dispatch::{FailureClass, Outgoing, Provider, RateWait, SendError};
use outreach::templates::Rendered;

const SUBJECT: &str = "生日快乐！老王川菜馆送您一张 50 元优惠券";
const STORE: &str = "老王川菜馆（徐家汇店）";
const HTML: &str = "<p>亲爱的会员：</p><p>凭此邮件到店享受 <b>8 折</b> &amp; 免费甜品。</p>";
const TEXT: &str = "亲爱的会员：\n凭此邮件到店享受 8 折 & 免费甜品。";
const UNSUBSCRIBE: &str = "https://m.example.cn/u/AbC123-token";

fn clock() -> SharedClock {
    Arc::new(FixedClock(
        Utc.with_ymd_and_hms(2026, 3, 1, 2, 0, 0).unwrap(),
    ))
}

fn settings(port: u16) -> SmtpSettings {
    SmtpSettings {
        host: "127.0.0.1".to_owned(),
        port: Some(port),
        tls: SmtpTls::None,
        username: None,
        password: None,
        from: "会员中心 <club@example.cn>".to_owned(),
        reply_to: Some("service@example.cn".to_owned()),
        pool_size: Some(2),
        concurrency: None,
        rate_per_second: None,
        timeout_ms: Some(5_000),
    }
}

fn outgoing() -> Outgoing {
    Outgoing {
        message_id: 7,
        dedupe_key: "birthday/2026/customer-42/email".to_owned(),
        address: "li.lei@example.com".to_owned(),
        sign_name: None,
        store_name: Some(STORE.to_owned()),
        unsubscribe_url: Some(UNSUBSCRIBE.to_owned()),
        rendered: Rendered::Email {
            subject: SUBJECT.to_owned(),
            html: HTML.to_owned(),
            text: TEXT.to_owned(),
        },
        attempt: 1,
    }
}

/// A port nothing listens on (yet).
async fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

async fn wait_listening(port: u16) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("nothing listens on port {port}");
}

/// The header block of a raw message, unfolded.
fn header(raw: &str, name: &str) -> Option<String> {
    let head = raw.split("\r\n\r\n").next()?;
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded.split("\r\n").find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

fn crlf_to_lf(s: &str) -> String {
    s.replace("\r\n", "\n").trim_end().to_owned()
}

#[tokio::test]
async fn a_chinese_message_arrives_intact() {
    let port = free_port().await;
    let mut server = mailcrab::development_mail_server([127, 0, 0, 1], port).await;
    wait_listening(port).await;
    let smtp = SmtpEmail::new(&settings(port), clock()).unwrap();

    let accepted = smtp.send(&outgoing()).await.unwrap();

    let got = tokio::time::timeout(Duration::from_secs(10), server.rx.recv())
        .await
        .expect("the message arrives")
        .unwrap();
    let raw = String::from_utf8(got.raw_bytes().unwrap()).unwrap();
    let parsed = serde_json::to_value(&got).unwrap();

    // Envelope and headers.
    assert_eq!(got.envelope_from, "club@example.cn");
    assert_eq!(got.envelope_recipients, vec!["li.lei@example.com"]);
    assert_eq!(parsed["subject"], SUBJECT);
    assert_eq!(parsed["from"]["name"], STORE);
    assert_eq!(parsed["from"]["email"], "club@example.cn");
    assert_eq!(parsed["to"][0]["email"], "li.lei@example.com");
    assert!(header(&raw, "Subject").unwrap().starts_with("=?utf-8?"));
    assert_eq!(
        header(&raw, "Reply-To").as_deref(),
        Some("service@example.cn")
    );
    let message_id = header(&raw, "Message-ID").unwrap();
    assert!(message_id.starts_with("<outreach.7."));
    assert!(message_id.ends_with("@example.cn>"));
    assert_eq!(
        accepted.provider_message_id.as_deref(),
        Some(message_id.trim_matches(['<', '>']))
    );
    assert_eq!(
        header(&raw, "List-Unsubscribe").as_deref(),
        Some(format!("<{UNSUBSCRIBE}>").as_str())
    );
    assert_eq!(
        header(&raw, "List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    assert!(
        header(&raw, "Date")
            .unwrap()
            .contains("1 Mar 2026 02:00:00")
    );

    // Both parts, their types, and their decoded contents.
    assert!(
        header(&raw, "Content-Type")
            .unwrap()
            .starts_with("multipart/alternative")
    );
    assert!(raw.contains("Content-Type: text/plain; charset=utf-8\r\n"));
    assert!(raw.contains("Content-Type: text/html; charset=utf-8\r\n"));
    let plain_at = raw.find("Content-Type: text/plain").unwrap();
    let html_at = raw.find("Content-Type: text/html").unwrap();
    assert!(plain_at < html_at, "the preferred HTML part comes last");
    assert_eq!(crlf_to_lf(parsed["text"].as_str().unwrap()), TEXT);
    let html = parsed["html"].as_str().unwrap();
    assert_eq!(crlf_to_lf(html), HTML);
    assert!(!html.contains("&amp;amp;") && !html.contains("&lt;p&gt;"));
    assert!(raw.is_ascii(), "8-bit text is transfer-encoded");

    server.token.cancel();
}

#[tokio::test]
async fn several_sends_reuse_the_pool() {
    let port = free_port().await;
    let mut server = mailcrab::development_mail_server([127, 0, 0, 1], port).await;
    wait_listening(port).await;
    let smtp = SmtpEmail::new(&settings(port), clock()).unwrap();
    for i in 0..3 {
        let mut m = outgoing();
        m.message_id = 100 + i;
        m.dedupe_key = format!("k{i}");
        smtp.send(&m).await.unwrap();
    }
    for _ in 0..3 {
        tokio::time::timeout(Duration::from_secs(10), server.rx.recv())
            .await
            .unwrap()
            .unwrap();
    }
    server.token.cancel();
}

/// How one connection of the scripted server behaves.
#[derive(Clone, Copy, Debug)]
enum Script {
    /// Answers everything well.
    Accept,
    /// `RCPT TO` gets this reply.
    RejectRcpt(&'static str),
    /// Offers AUTH and refuses the credentials.
    RejectAuth,
    /// Greets with `421` and hangs up.
    Busy,
    /// Takes the message text and never answers the final dot.
    StallAfterData,
}

/// A scripted SMTP server: connection `n` follows `scripts[n]` (the last
/// script for every later connection).
async fn scripted(scripts: Vec<Script>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((socket, _)) = listener.accept().await {
            let script = scripts[n.min(scripts.len() - 1)];
            n += 1;
            tokio::spawn(serve(socket, script));
        }
    });
    port
}

async fn serve(socket: tokio::net::TcpStream, script: Script) {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    if let Script::Busy = script {
        let _ = write
            .write_all(b"421 4.7.0 Too many connections, try again later\r\n")
            .await;
        return;
    }
    let _ = write.write_all(b"220 test.local ESMTP\r\n").await;
    let mut in_data = false;
    while let Ok(Some(line)) = lines.next_line().await {
        if in_data {
            if line == "." {
                in_data = false;
                if let Script::StallAfterData = script {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    return;
                }
                let _ = write.write_all(b"250 2.0.0 Ok: queued as ABC123\r\n").await;
            }
            continue;
        }
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: &str = match (verb.as_str(), script) {
            ("EHLO", Script::RejectAuth) => "250-test.local\r\n250 AUTH PLAIN LOGIN\r\n",
            ("EHLO", _) => "250-test.local\r\n250 8BITMIME\r\n",
            ("AUTH", _) => "535 5.7.8 Authentication credentials invalid\r\n",
            ("RCPT", Script::RejectRcpt(r)) => r,
            ("DATA", _) => {
                in_data = true;
                "354 End data with <CR><LF>.<CR><LF>\r\n"
            }
            ("QUIT", _) => {
                let _ = write.write_all(b"221 Bye\r\n").await;
                return;
            }
            _ => "250 OK\r\n",
        };
        if write.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn send_to(port: u16, edit: impl FnOnce(&mut SmtpSettings)) -> Result<(), SendError> {
    let mut s = settings(port);
    edit(&mut s);
    let smtp = SmtpEmail::new(&s, clock()).unwrap();
    smtp.send(&outgoing()).await.map(|_| ())
}

#[tokio::test]
async fn unknown_recipient_is_permanent_and_suppressed() {
    let port = scripted(vec![Script::RejectRcpt(
        "550 5.1.1 <li.lei@example.com>: Recipient address rejected: User unknown\r\n",
    )])
    .await;
    let e = send_to(port, |_| {}).await.unwrap_err();
    assert_eq!(
        e.class,
        FailureClass::Permanent {
            suppress_address: true
        }
    );
    assert_eq!(e.code, "550");
    assert!(
        !e.message.contains("li.lei@example.com"),
        "the address is masked: {}",
        e.message
    );
}

#[tokio::test]
async fn policy_rejection_is_permanent_without_suppression() {
    let port = scripted(vec![Script::RejectRcpt("550 5.7.1 Relaying denied\r\n")]).await;
    let e = send_to(port, |_| {}).await.unwrap_err();
    assert_eq!(
        e.class,
        FailureClass::Permanent {
            suppress_address: false
        }
    );
}

#[tokio::test]
async fn mailbox_busy_is_transient() {
    let port = scripted(vec![Script::RejectRcpt(
        "450 4.2.1 Mailbox busy, try later\r\n",
    )])
    .await;
    let e = send_to(port, |_| {}).await.unwrap_err();
    assert_eq!(
        e.class,
        FailureClass::Transient {
            outcome_unknown: false
        }
    );
    assert_eq!(e.code, "450");
}

#[tokio::test]
async fn refused_credentials_take_the_provider_down() {
    let port = scripted(vec![Script::RejectAuth]).await;
    let e = send_to(port, |s| {
        s.username = Some("club".to_owned());
        s.password = Some(SecretString::from("wrong"));
    })
    .await
    .unwrap_err();
    assert_eq!(e.class, FailureClass::ProviderDown);
    assert_eq!(e.code, "535");
}

#[tokio::test]
async fn busy_greeting_is_rate_limiting() {
    let port = scripted(vec![Script::Busy]).await;
    let e = send_to(port, |_| {}).await.unwrap_err();
    assert_eq!(e.class, FailureClass::RateLimited(RateWait::Unspecified));
    assert_eq!(e.code, "421");
}

#[tokio::test]
async fn refused_connection_takes_the_provider_down() {
    let port = free_port().await;
    let e = send_to(port, |_| {}).await.unwrap_err();
    assert_eq!(e.class, FailureClass::ProviderDown);
    assert_eq!(e.code, "connect");
}

#[tokio::test]
async fn silence_after_data_is_an_unknown_outcome_and_the_pool_recovers() {
    let port = scripted(vec![Script::StallAfterData, Script::Accept]).await;
    let mut s = settings(port);
    s.timeout_ms = Some(400);
    let smtp = SmtpEmail::new(&s, clock()).unwrap();

    let started = std::time::Instant::now();
    let e = smtp.send(&outgoing()).await.unwrap_err();
    assert_eq!(
        e.class,
        FailureClass::Transient {
            outcome_unknown: true
        }
    );
    assert_eq!(e.code, "timeout");
    assert!(started.elapsed() < Duration::from_secs(5));

    // The stalled connection is not reused (lettre would park it once the
    // abandoned send is dropped): the next send opens a new one.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let accepted = smtp.send(&outgoing()).await.unwrap();
    assert!(accepted.provider_message_id.is_some());
}

#[tokio::test]
async fn incomplete_credentials_are_refused_at_start() {
    let mut s = settings(2525);
    s.username = Some("club".to_owned());
    assert!(SmtpEmail::new(&s, clock()).is_err());
    let mut s = settings(2525);
    s.from = "not a mailbox".to_owned();
    assert!(SmtpEmail::new(&s, clock()).is_err());
}
