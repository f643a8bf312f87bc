//! Local stand-ins for providers, for the dispatch benchmark.
//!
//! - `fake_provider http PORT [DELAY_MS]`: answers every POST the way
//!   Aliyun's SendSms answers a success, after an optional delay.
//! - `fake_provider smtp PORT`: an accept-all SMTP server (mailcrab) that
//!   counts what arrives.
//!
//! Each prints `listening on 127.0.0.1:PORT` once it accepts connections.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::post;

static SERIAL: AtomicU64 = AtomicU64::new(1);

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "http".into());
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(18080);
    if mode == "smtp" {
        let mut server = mailcrab::development_mail_server([127, 0, 0, 1], port).await;
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!("listening on 127.0.0.1:{port}");
        loop {
            match server.rx.recv().await {
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                _ => continue,
            }
        }
        return Ok(());
    }
    let delay = Duration::from_millis(args.next().and_then(|d| d.parse().ok()).unwrap_or(0));
    let app = Router::new().route(
        "/",
        post(move || async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let n = SERIAL.fetch_add(1, Ordering::Relaxed);
            (
                [("content-type", "application/json")],
                format!(r#"{{"Code":"OK","Message":"OK","BizId":"{n}^0","RequestId":"R-{n}"}}"#),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}
