//! The status page in a real browser: headless Chromium driven over WebDriver (chromedriver,
//! spoken to directly), against a live aggregator with a real agent. The login form keeps the
//! token in a cookie; the overview shows the host's tile and updates itself; the host page
//! shows SVG charts with the agent's data points and an alert rule's threshold. Screenshots
//! are saved as test artifacts.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use nines_tests::cluster::{Agent, Aggregator, Pki, free_addr, log_tail};
use nines_tests::{Proc, eventually};
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Browser {
    client: reqwest::Client,
    base: String,
    _driver: Proc,
}

impl Browser {
    async fn start() -> Self {
        let driver_bin = "/usr/bin/chromedriver";
        assert!(
            std::path::Path::new(driver_bin).exists(),
            "{driver_bin} missing: apt-get install chromium chromium-driver (.ci/run does)"
        );
        let port = free_addr().port();
        let driver = Proc::spawn(
            Command::new(driver_bin)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let client = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let up = eventually(Duration::from_secs(20), || async {
            let r = client.get(format!("{base}/status")).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await;
        assert!(up.is_some(), "chromedriver did not start");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu",
                         "--disable-background-networking", "--no-first-run",
                         "--window-size=412,915"]
            }
        }}});
        let r: Value = client
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_owned();
        Self {
            client,
            base: format!("{base}/session/{id}"),
            _driver: driver,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if !body.is_null() {
            req = req.json(&body);
        }
        let r: Value = req.send().await.unwrap().json().await.unwrap();
        assert!(r["value"]["error"].is_null(), "{path}: {r}");
        r["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    async fn js(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self
            .call(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        let png = base64_decode(b64.as_str().unwrap());
        assert_eq!(&png[1..4], b"PNG");
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
        std::fs::write(&path, png).unwrap();
        path
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            _ => 63,
        }
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let pad = chunk.iter().filter(|c| **c == b'=').count();
        let n = chunk
            .iter()
            .map(|c| if *c == b'=' { 0 } else { val(*c) })
            .fold(0u32, |acc, v| (acc << 6) | v);
        let three = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&three[..3 - pad]);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_and_host_page_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    let client = nines_tests::http_client();
    let rules = dir.path().join("alerts.toml");
    std::fs::write(
        &rules,
        "[[notifiers]]\nname = \"ops\"\nwebhook = { url = \"http://127.0.0.1:9/hook\" }\n\
         [[rules]]\nname = \"HighCpu\"\nmetric = \"cpu_usage_ratio\"\nlabels = { cpu = \"total\" }\n\
         op = \">\"\nthreshold = 0.95\nfor = \"1h\"\nseverity = \"warning\"\nnotify = [\"ops\"]\n\
         summary = \"CPU high on {{host}}\"\nrunbook = \"https://runbooks/cpu\"\n",
    )
    .unwrap();
    let mut agg = Aggregator::new(dir.path(), &pki);
    agg.add_config(&format!("\n[alerts]\nrules = \"{}\"\n", rules.display()));
    agg.start_ready(&client).await;
    let mut agent = Agent::new(dir.path(), &pki, "edge-1", agg.ingest, "");
    agent.start();
    let seen = eventually(Duration::from_secs(30), || async {
        let s = agg.last_seen_ms(&client, "edge-1").await?;
        // A few seconds of data, for lines with several points.
        (nines_common::model::now_ms() - s < 5_000).then_some(())
    })
    .await;
    assert!(seen.is_some(), "no data:\n{}", log_tail(&agent.log, 20));
    tokio::time::sleep(Duration::from_secs(4)).await;

    // Without the cookie: the login form. The page's weight, as served.
    let r = client
        .get(format!("{}/status", agg.url))
        .send()
        .await
        .unwrap();
    assert!(r.url().path().ends_with("/status/login"), "{}", r.url());

    let b = Browser::start().await;
    b.go(&format!("{}/status", agg.url)).await;
    let input = b.element("input[name=token]").await;
    b.call(
        reqwest::Method::POST,
        &format!("/element/{input}/value"),
        json!({ "text": agg.token }),
    )
    .await;
    let button = b.element("button[type=submit]").await;
    b.call(
        reqwest::Method::POST,
        &format!("/element/{button}/click"),
        json!({}),
    )
    .await;
    let tile = eventually(Duration::from_secs(10), || async {
        let t = b
            .js("const a=[...document.querySelectorAll('.tiles a')].find(x=>x.textContent.includes('edge-1'));\
                 return a?[a.className,a.textContent,getComputedStyle(a).backgroundColor]:null")
            .await;
        (!t.is_null()).then_some(t)
    })
    .await
    .expect("the overview shows edge-1's tile");
    assert_eq!(tile[0], "g", "{tile}");
    assert!(tile[1].as_str().unwrap().contains("✔ edge-1"), "{tile}");
    assert!(tile[1].as_str().unwrap().contains("ok"), "{tile}");
    assert_eq!(tile[2], "rgb(187, 247, 208)", "green");
    let shot = b.screenshot("status-overview.png").await;
    println!("screenshot: {}", shot.display());

    // It updates itself: the "updated" time changes without a reload.
    let before = b
        .js("return document.querySelector('#live p').dataset.updated")
        .await;
    b.js("window.marker = 1; return 0").await;
    let changed = eventually(Duration::from_secs(25), || async {
        let now = b
            .js("return document.querySelector('#live p').dataset.updated")
            .await;
        (now != before).then_some(())
    })
    .await;
    assert!(changed.is_some(), "no live update");
    assert_eq!(b.js("return window.marker").await, 1, "not reloaded");

    // The host page: SVG charts with data points and the rule's threshold line.
    b.go(&format!("{}/status/host/edge-1?range=1h", agg.url))
        .await;
    let charts = b
        .js("return [...document.querySelectorAll('figure')].map(f=>[f.querySelector('figcaption').textContent,\
             f.querySelectorAll('path.line').length,\
             (f.querySelector('path.line')?.getAttribute('d')||'').split('L').length,\
             f.querySelectorAll('path.th').length])")
        .await;
    let cpu = charts
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c[0] == "CPU")
        .unwrap_or_else(|| panic!("no CPU chart: {charts}"));
    assert_eq!(cpu[1], 1, "{charts}");
    assert!(cpu[2].as_u64().unwrap() >= 3, "several points: {charts}");
    assert_eq!(cpu[3], 1, "the HighCpu threshold: {charts}");
    let memory = charts
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c[0] == "Memory used")
        .unwrap();
    assert_eq!(memory[1], 1, "{charts}");
    let shot = b.screenshot("status-host.png").await;
    println!("screenshot: {}", shot.display());
    // Usable on a phone-sized window (Chromium's smallest): nothing scrolls sideways.
    let width = b
        .js("return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        .await;
    assert!(width[1].as_u64().unwrap() <= 500, "{width}");
    assert!(
        width[0].as_u64() <= width[1].as_u64(),
        "scrolls sideways: {width}"
    );
    b.call(reqwest::Method::DELETE, "", Value::Null).await;

    // Page weights as served (with the cookie), all well under 100 KB.
    let cookie = format!("nines_token={}", agg.token);
    for path in ["/status", "/status/host/edge-1?range=24h"] {
        let body = client
            .get(format!("{}{path}", agg.url))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert!(body.len() < 100_000, "{path}: {} bytes", body.len());
        assert!(body.len() > 1000, "{path}: {} bytes", body.len());
    }
    agent.stop();
    agg.stop();
}

/// Logs in through the form with `token` and waits for the overview.
async fn login(b: &Browser, url: &str, token: &str) {
    b.go(&format!("{url}/status")).await;
    let input = b.element("input[name=token]").await;
    b.call(
        reqwest::Method::POST,
        &format!("/element/{input}/value"),
        json!({ "text": token }),
    )
    .await;
    let button = b.element("button[type=submit]").await;
    b.call(
        reqwest::Method::POST,
        &format!("/element/{button}/click"),
        json!({}),
    )
    .await;
    let shown = eventually(Duration::from_secs(10), || async {
        let n = b
            .js("return document.querySelectorAll('#live').length")
            .await;
        (n == 1).then_some(())
    })
    .await;
    assert!(shown.is_some(), "no overview after logging in");
}

/// The worst light on the page (`r` > `a` > `n` > `g`) outside the per-day history bars,
/// with the text of the element that has it.
const WORST_ON_PAGE: &str = "const rank={g:0,n:1,a:2,r:3};let w=null;\
for(const e of document.querySelectorAll('main .g, main .n, main .a, main .r')){\
if(e.closest('.bar'))continue;const c=['r','a','n','g'].find(k=>e.classList.contains(k));\
if(!w||rank[c]>rank[w[0]])w=[c,e.textContent];}return w";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_colours_each_tile_the_worst_of_its_own_page() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(&dir.path().join("pki"));
    let client = nines_tests::http_client();
    let mut agg = Aggregator::new(dir.path(), &pki);
    // "edge" needs only its host; "edge-daemon" also needs the daemon that does not run.
    agg.add_config(
        "\n[[services]]\nname = \"edge\"\ntarget_percent = 99.9\nmembers = [\"edge-2\"]\n\
         \n[[services]]\nname = \"edge-daemon\"\ntarget_percent = 99.9\nmembers = [\"edge-2\"]\n\
         processes = [\"no-such-daemon\"]\n",
    );
    agg.start_ready(&client).await;
    // The host is up (its agent delivers every second) but a watched process does not run.
    let mut agent = Agent::new(
        dir.path(),
        &pki,
        "edge-2",
        agg.ingest,
        "\n[collect.process]\nwatch = [\"nines-agent\", \"no-such-daemon\"]\n",
    );
    agent.start();
    let seen = eventually(Duration::from_secs(30), || async {
        agg.last_seen_ms(&client, "edge-2").await
    })
    .await;
    assert!(seen.is_some(), "no data:\n{}", log_tail(&agent.log, 20));
    let down = eventually(Duration::from_secs(30), || async {
        let now = nines_common::model::now_ms();
        let q = agg
            .query(
                &client,
                "edge-2",
                "process_up",
                Some("process=no-such-daemon"),
                now - 60_000,
                now,
            )
            .await;
        let last = q.first()?.points.last()?.1;
        (last == 0.0).then_some(())
    })
    .await;
    assert!(
        down.is_some(),
        "no process_up=0:\n{}",
        log_tail(&agent.log, 20)
    );
    let up = agg.last_seen_ms(&client, "edge-2").await.unwrap();
    assert!(
        nines_common::model::now_ms() - up < 3_000,
        "the host itself is up"
    );

    let b = Browser::start().await;
    login(&b, &agg.url, &agg.token).await;
    let tiles = b
        .js("return [...document.querySelectorAll('.tiles a')].map(a=>[a.firstChild.textContent.trim().split(' ').slice(1).join(' ')+' · '+a.querySelector('small').textContent,a.className,a.getAttribute('href')])")
        .await;
    let tiles = tiles.as_array().unwrap().clone();
    let headline = b
        .js("return document.querySelector('#live p').textContent")
        .await;
    assert!(
        !headline.as_str().unwrap().contains("everything is green"),
        "{headline}"
    );
    let tile = |name: &str| {
        tiles
            .iter()
            .find(|t| {
                let text = t[0].as_str().unwrap();
                text.split(" · ").next() == Some(name)
            })
            .unwrap_or_else(|| panic!("no tile {name}: {tiles:?}"))
            .clone()
    };
    let host = tile("edge-2");
    assert_eq!(host[1], "r", "{host}");
    assert!(
        host[0].as_str().unwrap().contains("no-such-daemon down"),
        "the tile says why: {host}"
    );
    let edge = tile("edge");
    assert_eq!(edge[1], "a", "a member is red, the service runs: {edge}");
    assert!(
        edge[0].as_str().unwrap().contains("no-such-daemon down"),
        "{edge}"
    );
    let daemon = tile("edge-daemon");
    assert_eq!(daemon[1], "r", "its required process is down: {daemon}");
    assert!(
        daemon[0]
            .as_str()
            .unwrap()
            .contains("no-such-daemon not running on edge-2"),
        "{daemon}"
    );
    b.screenshot("status-one-rule-overview.png").await;

    // Each detail page, drawn from the same state: its worst colour is the tile's colour.
    for t in [&host, &edge, &daemon] {
        let href = t[2].as_str().unwrap();
        b.go(&format!("{}{href}", agg.url)).await;
        let worst = b.js(WORST_ON_PAGE).await;
        assert_eq!(
            worst[0], t[1],
            "{href}: worst on the page {worst}, tile {t}"
        );
        let now = b
            .js("return document.querySelector('section.now').textContent")
            .await;
        assert!(
            now.as_str().unwrap().contains("no-such-daemon"),
            "{href} says why: {now}"
        );
    }
    b.go(&format!("{}/status/host/edge-2?range=1h", agg.url))
        .await;
    let legend = b
        .js("return [...document.querySelectorAll('.legend li')].map(l=>l.textContent).join('|')")
        .await;
    assert!(
        legend.as_str().unwrap().contains("no-such-daemon down"),
        "the chart says it too: {legend}"
    );
    b.screenshot("status-one-rule-host.png").await;
    b.call(reqwest::Method::DELETE, "", Value::Null).await;
    agent.stop();
    agg.stop();
}
