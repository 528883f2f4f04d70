//! Delivering notifications: a webhook POST of Alertmanager's version 4 JSON, a command with
//! the same JSON on stdin, or a mail over SMTP. One attempt per call; the caller retries with
//! [`backoff`] and logs every attempt.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::engine::Notification;
use super::rules::{CommandConfig, EmailConfig, NotifierConfig, SmtpTls, WebhookConfig};

/// How an attempt failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// What went wrong.
    pub message: String,
    /// Worth trying again (network errors, 5xx, 429, timeouts, a failing command); a 4xx
    /// answer is not.
    pub retry: bool,
}

fn retryable(message: String) -> Failure {
    Failure {
        message,
        retry: true,
    }
}

/// Wait before attempt `attempt + 1` (attempt counts from 1): 1 s, 2 s, 4 s, ... at most 5 min.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(8)).min(Duration::from_secs(300))
}

/// Delivers `n` once through `notifier`.
pub async fn deliver(notifier: &NotifierConfig, n: &Notification) -> Result<(), Failure> {
    if let Some(w) = &notifier.webhook {
        webhook(w, n).await
    } else if let Some(c) = &notifier.command {
        command(c, n).await
    } else if let Some(e) = &notifier.email {
        email(e, n).await
    } else {
        Err(Failure {
            message: "notifier has no kind".into(),
            retry: false,
        })
    }
}

async fn webhook(w: &WebhookConfig, n: &Notification) -> Result<(), Failure> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(w.timeout)
        .user_agent(concat!("nines-aggregator/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| retryable(format!("webhook client: {e}")))?;
    let mut req = client.post(&w.url).json(&n.payload);
    for (k, v) in &w.headers {
        req = req.header(k, v);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| retryable(format!("webhook {}: {e}", w.url)))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body: String = resp
        .text()
        .await
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    Err(Failure {
        message: format!("webhook {} answered {status}: {body}", w.url),
        retry: status.is_server_error() || status.as_u16() == 429,
    })
}

async fn command(c: &CommandConfig, n: &Notification) -> Result<(), Failure> {
    let mut child = tokio::process::Command::new(&c.argv[0])
        .args(&c.argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0)
        .spawn()
        .map_err(|e| retryable(format!("command {:?}: {e}", c.argv[0])))?;
    let body = serde_json::to_vec(&n.payload).unwrap_or_default();
    let pid = child.id();
    let run = async {
        if let Some(mut stdin) = child.stdin.take() {
            // A program that does not read its input still gets to run.
            let _ = stdin.write_all(&body).await;
        }
        child.wait_with_output().await
    };
    match tokio::time::timeout(c.timeout, run).await {
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => {
            let err = String::from_utf8_lossy(&out.stderr);
            Err(retryable(format!(
                "command {:?} exited with {}: {}",
                c.argv[0],
                out.status,
                err.trim().chars().take(200).collect::<String>()
            )))
        }
        Ok(Err(e)) => Err(retryable(format!("command {:?}: {e}", c.argv[0]))),
        Err(_) => {
            // The future owning the child is gone, which kills it (kill_on_drop); its
            // children share its process group and go too.
            if let Some(pid) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            Err(retryable(format!(
                "command {:?} timed out after {}",
                c.argv[0],
                humantime::format_duration(c.timeout)
            )))
        }
    }
}

/// The mail's subject and plain-text body.
pub fn mail_text(n: &Notification) -> (String, String) {
    let p = &n.payload;
    let alerts = p["alerts"].as_array().cloned().unwrap_or_default();
    let firing = alerts.iter().filter(|a| a["status"] == "firing").count();
    let name = p["groupLabels"]["alertname"]
        .as_str()
        .or_else(|| p["commonLabels"]["alertname"].as_str())
        .unwrap_or("alerts");
    let subject = if firing > 0 {
        format!("[FIRING:{firing}] {name}")
    } else {
        format!("[RESOLVED] {name}")
    };
    let mut body = String::new();
    for a in &alerts {
        let ann = &a["annotations"];
        body.push_str(&format!(
            "{} {}\n  since {}\n  {}\n  runbook: {}\n  labels: {}\n\n",
            a["status"].as_str().unwrap_or("").to_uppercase(),
            a["labels"]["alertname"].as_str().unwrap_or(""),
            a["startsAt"].as_str().unwrap_or(""),
            ann["summary"].as_str().unwrap_or(""),
            ann["runbook_url"].as_str().unwrap_or(""),
            a["labels"],
        ));
    }
    (subject, body)
}

async fn email(e: &EmailConfig, n: &Notification) -> Result<(), Failure> {
    use lettre::message::header::ContentType;
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Tls, TlsParameters};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

    let permanent = |message: String| Failure {
        message,
        retry: false,
    };
    let (subject, body) = mail_text(n);
    let mut m = Message::builder()
        .from(
            e.from
                .parse()
                .map_err(|x| permanent(format!("from: {x}")))?,
        )
        .subject(subject);
    for to in &e.to {
        m = m.to(to.parse().map_err(|x| permanent(format!("to {to}: {x}")))?);
    }
    let msg = m
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|x| permanent(format!("mail: {x}")))?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = match e.tls {
        SmtpTls::None => Tls::None,
        SmtpTls::Starttls | SmtpTls::Tls => {
            let params = TlsParameters::new_rustls(e.smtp_host.clone())
                .map_err(|x| permanent(format!("smtp tls: {x}")))?;
            if e.tls == SmtpTls::Tls {
                Tls::Wrapper(params)
            } else {
                Tls::Required(params)
            }
        }
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&e.smtp_host)
        .port(e.smtp_port)
        .tls(tls)
        .timeout(Some(e.timeout));
    if let Some(user) = &e.username {
        let password = match &e.password_file {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|x| retryable(format!("smtp password_file {}: {x}", p.display())))?
                .trim_end()
                .to_owned(),
            None => String::new(),
        };
        b = b.credentials(Credentials::new(user.clone(), password));
    }
    let transport = b.build();
    transport.send(msg).await.map(|_| ()).map_err(|x| Failure {
        retry: !x.is_permanent(),
        message: format!("smtp {}:{}: {x}", e.smtp_host, e.smtp_port),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(30), Duration::from_secs(256));
    }
}
