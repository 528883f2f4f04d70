//! Debian's monitoring-plugins run unchanged as nines checks, against servers on loopback.
//! Needs the `monitoring-plugins-basic` package (`.ci/run` installs it).

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use nines_agent::checks::{CheckConfig, Outcome, Status, run_once};

const PLUGINS: &str = "/usr/lib/nagios/plugins";

/// The path of a plugin; fails the test, saying what to install, when it is missing.
fn plugin(name: &str) -> String {
    let path = Path::new(PLUGINS).join(name);
    assert!(
        path.exists(),
        "{} is missing: install Debian's monitoring plugins \
         (apt-get install monitoring-plugins-basic) to run this test",
        path.display()
    );
    path.display().to_string()
}

async fn run(argv: &[&str]) -> Outcome {
    let check = CheckConfig {
        name: "t".into(),
        command: Some(argv.iter().map(|s| (*s).to_owned()).collect()),
        tcp: None,
        http: None,
        interval: Duration::from_secs(60),
        timeout: Duration::from_secs(10),
    };
    run_once(&check).await.unwrap()
}

/// An HTTP server on 127.0.0.1 in a thread: 200 for `/`, 404 for anything else, for `n`
/// connections.
fn http_server(n: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(n) {
            let Ok(mut stream) = stream else { continue };
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 65536 {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let root = request.starts_with(b"GET / ");
            let response: &[u8] = if root {
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            } else {
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            };
            let _ = stream.write_all(response);
        }
    });
    port
}

#[tokio::test]
async fn check_tcp_against_a_loopback_listener_and_a_closed_port() {
    let check_tcp = plugin("check_tcp");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let up = run(&[&check_tcp, "-H", "127.0.0.1", "-p", &port]).await;
    assert_eq!(up.status, Status::Ok, "{up:?}");
    assert!(up.summary.starts_with("TCP OK"), "{up:?}");
    let time = up.perfdata.iter().find(|p| p.label == "time").unwrap();
    assert_eq!(time.uom, "s");
    assert_eq!(time.max, Some(10.0));
    drop(listener);
    // A port bound but not listening refuses connections, and no other test (they share this
    // process) can be given it meanwhile, as it could a port just closed.
    let closed = tokio::net::TcpSocket::new_v4().unwrap();
    closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = closed.local_addr().unwrap().port().to_string();
    let down = run(&[&check_tcp, "-H", "127.0.0.1", "-p", &port]).await;
    assert_eq!(down.status, Status::Critical, "{down:?}");
    assert!(down.summary.contains("Connection refused"), "{down:?}");
}

#[tokio::test]
async fn check_http_against_a_loopback_server() {
    let check_http = plugin("check_http");
    let port = http_server(2).to_string();
    let ok = run(&[&check_http, "-H", "127.0.0.1", "-p", &port, "-u", "/"]).await;
    assert_eq!(ok.status, Status::Ok, "{ok:?}");
    assert!(ok.summary.starts_with("HTTP OK"), "{ok:?}");
    let labels: Vec<(&str, &str)> = ok
        .perfdata
        .iter()
        .map(|p| (p.label.as_str(), p.uom.as_str()))
        .collect();
    assert_eq!(labels, [("time", "s"), ("size", "B")], "{ok:?}");
    // check_http calls a 4xx a warning.
    let missing = run(&[&check_http, "-H", "127.0.0.1", "-p", &port, "-u", "/gone"]).await;
    assert_eq!(missing.status, Status::Warning, "{missing:?}");
    assert!(missing.summary.contains("404"), "{missing:?}");
}

#[tokio::test]
async fn check_dummy_gives_every_state_and_check_disk_its_perfdata() {
    let check_dummy = plugin("check_dummy");
    for (code, status) in [
        ("0", Status::Ok),
        ("1", Status::Warning),
        ("2", Status::Critical),
        ("3", Status::Unknown),
    ] {
        let outcome = run(&[&check_dummy, code, "said so"]).await;
        assert_eq!(outcome.status, status, "{outcome:?}");
        assert!(outcome.summary.ends_with("said so"), "{outcome:?}");
    }
    let check_disk = plugin("check_disk");
    let disk = run(&[&check_disk, "-w", "0%", "-c", "0%", "-p", "/"]).await;
    assert_ne!(disk.status, Status::Unknown, "{disk:?}");
    let root = disk.perfdata.iter().find(|p| p.label == "/").unwrap();
    // Bytes in monitoring-plugins 2.3.4 and later, megabytes before: kept as written.
    assert!(["B", "MB"].contains(&root.uom.as_str()), "{disk:?}");
    assert!(root.value >= 0.0 && root.max.unwrap() > 0.0, "{disk:?}");
}
