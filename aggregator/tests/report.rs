//! `nines-aggregator report availability`, the real binary against a real aggregator on
//! loopback: exact numbers in json and csv, exit status 0/1 for met/missed targets, 2 for
//! everything that leaves no report (wrong token, open token file, bad period, nothing
//! listening, unknown service, an https server the client does not trust).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::util;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use nines_aggregator::http::token_hash;
use nines_aggregator::{Config, Server};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const READ: &str = "report-read-token";
const ADMIN: &str = "report-admin-token";
const MIN: i64 = 60_000;

struct Setup {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    ca: util::Ca,
    server: Server,
    /// `FROM..TO` of a whole past week.
    period: String,
    token_file: PathBuf,
}

fn private_file(path: &Path, text: &str, mode: u32) -> PathBuf {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.to_owned()
}

/// An aggregator with two 24x7 services and, in a week that is over, one full 60-minute
/// outage of `shop` (target 99.9) and a 60-minute outage of `api` (target 99.0) that hit a
/// tenth of its users and a fifth of their work.
async fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let ca = util::Ca::new("report test CA");
    let server_leaf = ca.server();
    std::fs::write(dir.join("ca.pem"), &ca.pem).unwrap();
    std::fs::write(dir.join("server.pem"), &server_leaf.cert).unwrap();
    std::fs::write(dir.join("server.key"), &server_leaf.key).unwrap();
    let config = dir.join("aggregator.toml");
    std::fs::write(
        &config,
        format!(
            "[ingest]\nlisten = \"127.0.0.1:0\"\nca = \"ca.pem\"\ncert = \"server.pem\"\nkey = \"server.key\"\n\
             [api]\nlisten = \"127.0.0.1:0\"\n\
             [[api.tokens]]\nname = \"cron\"\nsha256 = \"{}\"\n\
             [[api.tokens]]\nname = \"ops\"\nrole = \"admin\"\nsha256 = \"{}\"\n\
             [store]\npath = \"db/nines.redb\"\n\
             [[services]]\nname = \"shop\"\ntarget_percent = 99.9\n\
             [[services]]\nname = \"api\"\ntarget_percent = 99.0\n\
             [[services]]\nname = \"edge\"\ntarget_percent = 99.0\nmembers = [\"edge-1\"]\n",
            token_hash(READ),
            token_hash(ADMIN)
        ),
    )
    .unwrap();
    let server = Server::start(&Config::load(&config).unwrap())
        .await
        .unwrap();

    // The week before last, midnight to midnight UTC: 10,080 scheduled minutes each.
    let today = Timestamp::now().to_zoned(TimeZone::UTC).date();
    let day = |d: jiff::civil::Date| d.to_zoned(TimeZone::UTC).unwrap().timestamp();
    let to = day(today) - jiff::SignedDuration::from_hours(7 * 24);
    let from = to - jiff::SignedDuration::from_hours(7 * 24);
    let from_ms = from.as_millisecond();

    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    for incident in [
        json!({"service": "shop", "title": "checkout down", "start": from_ms + 3000 * MIN,
               "end": from_ms + 3060 * MIN}),
        json!({"service": "api", "title": "eu slow", "share": 0.1, "impact": 0.2,
               "start": from_ms + 5000 * MIN, "end": from_ms + 5060 * MIN}),
    ] {
        let resp = http
            .post(format!("http://{}/api/v1/incidents", server.api_addr))
            .bearer_auth(ADMIN)
            .json(&incident)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{:?}", resp.text().await);
    }
    // The api incident gets its root cause; shop's stays without one.
    let resp = http
        .patch(format!("http://{}/api/v1/incidents/m2", server.api_addr))
        .bearer_auth(ADMIN)
        .json(&json!({"root_cause": "disk full on eu-db-2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let token_file = private_file(&dir.join("token"), &format!("{READ}\n"), 0o600);
    Setup {
        period: format!("{from}..{to}"),
        _dir: tmp,
        dir,
        ca,
        server,
        token_file,
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn report(url: &str, token_file: &Path, args: &[&str]) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_nines-aggregator"))
        .args(["report", "availability", "--url", url, "--token-file"])
        .arg(token_file)
        .args(args)
        .output()
        .await
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn service<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == name)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_has_the_exact_numbers_and_exits_by_the_targets() {
    let s = setup().await;
    let url = format!("http://{}", s.server.api_addr);

    let r = report(
        &url,
        &s.token_file,
        &["--period", &s.period, "--format", "json"],
    )
    .await;
    assert_eq!(r.code, 1, "shop missed its target: {}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["period"], s.period.as_str());
    assert_eq!(v["met"], false);
    let shop = service(&v, "shop");
    assert_eq!(shop["scheduled_minutes"], 10080.0);
    assert_eq!(shop["downtime_minutes"], 60.0);
    assert_eq!(shop["availability_percent"], 99.404762);
    assert_eq!(shop["met"], false);
    assert_eq!(shop["error_budget_minutes_left"], -49.92);
    assert_eq!(shop["without_root_cause"], json!(["m1"]));
    let api = service(&v, "api");
    assert_eq!(api["scheduled_minutes"], 10080.0);
    assert_eq!(api["downtime_minutes"], 1.2);
    assert_eq!(api["availability_percent"], 99.988095);
    assert_eq!(api["met"], true);
    assert_eq!(api["error_budget_minutes_left"], 99.6);
    assert_eq!(api["incidents"][0]["lost_minutes"], 1.2);
    assert_eq!(api["incidents"][0]["root_cause"], "disk full on eu-db-2");
    // Minute-weighted: (20160 - 61.2) / 20160; serial: the product.
    assert_eq!(v["total"]["weighted_percent"], 99.696429);
    assert_eq!(v["total"]["serial_percent"], 99.392928);
    assert_eq!(v["total"]["met"], false);

    // One service that met its target: exit 0, one CSV row after the header.
    let r = report(
        &url,
        &s.token_file,
        &["--period", &s.period, "--format", "csv", "--service", "api"],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rows: Vec<Vec<&str>> = r
        .stdout
        .split_terminator("\r\n")
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 2, "{}", r.stdout);
    let col = |name: &str| rows[0].iter().position(|h| *h == name).unwrap();
    assert_eq!(rows[1][col("service")], "api");
    assert_eq!(rows[1][col("availability_percent")], "99.988095");
    assert_eq!(rows[1][col("downtime_minutes")], "1.2");
    assert_eq!(rows[1][col("scheduled_minutes")], "10080");
    assert_eq!(rows[1][col("met")], "true");
    assert_eq!(rows[1][col("incidents_without_root_cause")], "0");

    // The cron mail.
    let r = report(&url, &s.token_file, &["--period", &s.period]).await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stdout.contains("TARGET MISSED: shop"), "{}", r.stdout);
    for l in r.stdout.lines() {
        assert!(l.chars().count() <= 80, "{l}");
    }
    let shop_row = r.stdout.lines().find(|l| l.starts_with("shop ")).unwrap();
    assert_eq!(
        shop_row.split_whitespace().collect::<Vec<_>>(),
        ["shop", "99.4047", "99.9", "60.0", "-49.9", "1", "NO"]
    );

    // The page for auditors.
    let r = report(
        &url,
        &s.token_file,
        &["--period", &s.period, "--format", "html"],
    )
    .await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("<tr class=\"flag\"><td class=\"n\">60.0</td><td>shop</td>")
    );
    assert!(!r.stdout.contains("<script"));

    // A service whose member was never seen has nothing to judge: unknown, exit 3, never a
    // green 100 %.
    let r = report(
        &url,
        &s.token_file,
        &[
            "--period",
            &s.period,
            "--format",
            "json",
            "--service",
            "edge",
        ],
    )
    .await;
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let edge = service(&v, "edge");
    assert_eq!(edge["verdict"], "unknown");
    assert_eq!(edge["availability_percent"], Value::Null);
    assert_eq!(edge["scheduled_minutes"], 0.0);
    assert_eq!(edge["not_monitored_minutes"], 10080.0);
    assert_eq!(edge["monitored_since"], Value::Null);
    assert_eq!(v["total"]["verdict"], "unknown");
    let r = report(
        &url,
        &s.token_file,
        &["--period", &s.period, "--service", "edge"],
    )
    .await;
    assert_eq!(r.code, 3);
    assert!(
        r.stdout
            .contains("UNKNOWN: not monitored in the period: edge"),
        "{}",
        r.stdout
    );
    let edge_row = r.stdout.lines().find(|l| l.starts_with("edge ")).unwrap();
    assert_eq!(
        edge_row.split_whitespace().collect::<Vec<_>>(),
        ["edge", "n/a", "99", "0.0", "0.0", "0", "n/a"]
    );
    s.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_report_is_exit_2_with_the_reason_on_stderr() {
    let s = setup().await;
    let url = format!("http://{}", s.server.api_addr);
    let period = ["--period", s.period.as_str()];

    let wrong = private_file(&s.dir.join("wrong"), "not-a-token", 0o600);
    let r = report(&url, &wrong, &period).await;
    assert_eq!(r.code, 2);
    assert!(r.stdout.is_empty());
    assert!(r.stderr.contains("refused the token (401"), "{}", r.stderr);

    let open = private_file(&s.dir.join("open"), READ, 0o644);
    let r = report(&url, &open, &period).await;
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("chmod 600"), "{}", r.stderr);

    let r = report(&url, &s.dir.join("missing"), &period).await;
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("token file"), "{}", r.stderr);

    let r = report(&url, &s.token_file, &["--period", "2026-13"]).await;
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--period \"2026-13\""), "{}", r.stderr);

    let r = report(
        &url,
        &s.token_file,
        &["--period", &s.period, "--service", "nope"],
    )
    .await;
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("404"), "{}", r.stderr);

    let r = report(&url, &s.token_file, &["--format", "pdf"]).await;
    assert_eq!(r.code, 2, "clap's usage errors are 2 as well");

    // Nothing listening.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let r = report(&format!("http://{addr}"), &s.token_file, &period).await;
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("cannot reach the aggregator"),
        "{}",
        r.stderr
    );
    s.server.stop().await;
}

/// TLS in front of the API, as a reverse proxy would put it.
async fn tls_front(ca: &util::Ca, upstream: std::net::SocketAddr) -> std::net::SocketAddr {
    let leaf = ca.server();
    let certs = nines_common::tls::parse_certs(leaf.cert.as_bytes(), "cert").unwrap();
    let key = nines_common::tls::parse_key(leaf.key.as_bytes(), "key").unwrap();
    let config = rustls::ServerConfig::builder_with_provider(nines_common::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await
                    && let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await
                {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_works_with_ca_and_an_untrusted_server_is_refused_without_it() {
    let s = setup().await;
    let front = tls_front(&s.ca, s.server.api_addr).await;
    let url = format!("https://localhost:{}", front.port());
    let ca = s.dir.join("ca.pem");
    let args = ["--period", s.period.as_str(), "--format", "json"];

    let r = report(
        &url,
        &s.token_file,
        &[&args[..], &["--ca", ca.to_str().unwrap()]].concat(),
    )
    .await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(service(&v, "shop")["downtime_minutes"], 60.0);

    // The test CA is not among the system's roots.
    let r = report(&url, &s.token_file, &args).await;
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("cannot reach the aggregator"),
        "{}",
        r.stderr
    );

    // Another CA's file does not vouch for this server either.
    let other = s.dir.join("other-ca.pem");
    std::fs::write(&other, util::Ca::new("someone else").pem).unwrap();
    let r = report(
        &url,
        &s.token_file,
        &[&args[..], &["--ca", other.to_str().unwrap()]].concat(),
    )
    .await;
    assert_eq!(r.code, 2, "{}", r.stdout);
    s.server.stop().await;
}
