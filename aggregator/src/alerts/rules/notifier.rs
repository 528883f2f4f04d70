//! The `[[notifiers]]` sections: where notifications go (webhook, command or email), with
//! their timeouts and attempts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// One `[[notifiers]]` entry: where notifications go. Exactly one of `webhook`, `command`,
/// `email`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NotifierConfig {
    /// Referred to by rules' `notify`.
    pub name: String,
    /// POST Alertmanager's version 4 JSON.
    pub webhook: Option<WebhookConfig>,
    /// Run a program with the notification as JSON on stdin.
    pub command: Option<CommandConfig>,
    /// Send a mail over SMTP.
    pub email: Option<EmailConfig>,
    /// Attempts per notification before it is given up (logged). Default 6.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

fn default_attempts() -> u32 {
    6
}

/// `webhook = { ... }`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Per request. Default 10s.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

/// `command = { ... }`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// Program and arguments (no shell).
    pub argv: Vec<String>,
    /// Killed after this long. Default 10s.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

/// How to talk to the SMTP server.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP (only for a relay on the same host).
    None,
    /// STARTTLS on the submission port.
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// `email = { ... }`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// SMTP server host name.
    pub smtp_host: String,
    /// Port. Default 587.
    #[serde(default = "default_smtp_port")]
    pub smtp_port: u16,
    /// Default `starttls`.
    #[serde(default = "default_smtp_tls")]
    pub tls: SmtpTls,
    /// Sender address.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// SMTP user, if the server wants one.
    pub username: Option<String>,
    /// File holding the SMTP password (kept out of this file).
    pub password_file: Option<PathBuf>,
    /// Per message. Default 10s.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_smtp_port() -> u16 {
    587
}
fn default_smtp_tls() -> SmtpTls {
    SmtpTls::Starttls
}
