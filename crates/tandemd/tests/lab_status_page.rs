//! The status page in a real browser: headless Chromium driven through chromedriver (W3C
//! WebDriver), both started inside the lab namespace of the client host, opens the Standby's
//! page of a lab pair, finds both nodes with their states, sees the Active killed with -9 and
//! the page show this node Active with the transition in its timeline within 5 s, and renders
//! hostile cluster and server labels as text. Needs root and the Debian packages `chromium`
//! and `chromium-driver`; saves `target/status-page.png`.
//!
//! The WebDriver client is the few W3C endpoints the test needs (new session, navigate,
//! execute script, screenshot, delete session) over a blocking HTTP/1.1 connection: the
//! calls must run on a thread that entered the client's namespace (where chromedriver
//! listens on its loopback), which a blocking client does simply, and it keeps an async
//! HTTP stack out of the build.

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tandem_lab::cluster::{ClusterLab, TandemNode, demo_config, join_pair, wait_ha_state};
use tandem_lab::serial;
use tandem_lab::{Host, LabProcess};

const HA_PORT: u16 = 20001;
const WEB_PORT: u16 = 9100;
const DRIVER_PORT: u16 = 9515;
const HOSTILE: &str = "<script>window.__pwned=1</script><b>x</b>";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// One HTTP/1.1 request to chromedriver (from inside the client's namespace); the JSON
/// `value` of the answer, or the WebDriver error.
fn webdriver(
    client: &Host,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let method = method.to_string();
    let path = path.to_string();
    client
        .in_ns(move || -> Result<Value, String> {
            let mut s =
                TcpStream::connect(("127.0.0.1", DRIVER_PORT)).map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_secs(60))).ok();
            let body = body.map(|b| b.to_string()).unwrap_or_default();
            let req = format!(
                "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{DRIVER_PORT}\r\n\
                 Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
            // Read the header, then exactly Content-Length bytes (chromedriver may keep the
            // connection open whatever `Connection: close` says).
            let mut answer = Vec::new();
            let mut buf = [0u8; 16384];
            let (head, mut rest) = loop {
                let n = s.read(&mut buf).map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("connection closed before the header ended".into());
                }
                answer.extend_from_slice(&buf[..n]);
                if let Some(i) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&answer[..i]).to_string();
                    break (head, answer[i + 4..].to_vec());
                }
            };
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .ok_or_else(|| format!("no Content-Length in {head}"))?;
            while rest.len() < length {
                let n = s.read(&mut buf).map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                rest.extend_from_slice(&buf[..n]);
            }
            let body = String::from_utf8_lossy(&rest).to_string();
            let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
            if !head.starts_with("HTTP/1.1 200") {
                return Err(format!("{head}\n{}", v["value"]));
            }
            Ok(v["value"].clone())
        })
        .map_err(|e| format!("{e:#}"))?
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0);
    for v in s.bytes().filter_map(val) {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// A browser session; quits the browser and removes its profile when dropped.
struct Browser<'a> {
    client: &'a Host,
    session: String,
    profile: PathBuf,
    _driver: LabProcess,
}

impl<'a> Browser<'a> {
    fn start(client: &'a Host, profile: PathBuf) -> Browser<'a> {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: apt-get install -y -qq chromium chromium-driver \
                 (Debian package {package}; .ci/run installs it)"
            );
        }
        let driver = client
            .spawn([
                CHROMEDRIVER.to_string(),
                format!("--port={DRIVER_PORT}"),
                "--allowed-ips=127.0.0.1".to_string(),
            ])
            .expect("chromedriver");
        tandem_lab::wait_until(Duration::from_secs(20), "chromedriver to listen", || {
            webdriver(client, "GET", "/status", None).is_ok_and(|v| v["ready"] == json!(true))
        })
        .unwrap();
        std::fs::create_dir_all(&profile).unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,1600",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect::<Vec<_>>();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let v = webdriver(client, "POST", "/session", Some(caps)).expect("new WebDriver session");
        let session = v["sessionId"].as_str().expect("sessionId").to_string();
        Browser {
            client,
            session,
            profile,
            _driver: driver,
        }
    }

    fn call(&self, method: &str, what: &str, body: Option<Value>) -> Result<Value, String> {
        let path = format!("/session/{}{what}", self.session);
        webdriver(self.client, method, &path, body)
    }

    fn open(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })))
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// Runs `script` (a function body) in the page and returns its value.
    fn js(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .unwrap_or_else(|e| panic!("script {script}: {e}"))
    }

    fn text(&self, selector: &str) -> String {
        let sel = serde_json::to_string(selector).unwrap();
        self.js(&format!(
            "const e = document.querySelector({sel}); return e ? e.textContent : null;"
        ))
        .as_str()
        .unwrap_or("")
        .to_string()
    }

    /// Waits until `f` holds, polling every 200 ms; panics after `limit` with what it saw.
    fn wait(&self, limit: Duration, what: &str, f: impl Fn(&Browser) -> bool) -> Duration {
        let start = Instant::now();
        loop {
            if f(self) {
                return start.elapsed();
            }
            if start.elapsed() > limit {
                panic!(
                    "{what}: not within {limit:?}; page: self {:?}, partner {:?}, banner {:?}, \
                     timeline {:?}",
                    self.text("#node-self .state"),
                    self.text("#node-partner .state"),
                    self.text("#banner"),
                    self.text("#timeline"),
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn screenshot(&self, path: &Path) {
        let v = self.call("GET", "/screenshot", None).expect("screenshot");
        let png = base64_decode(v.as_str().expect("base64 PNG"));
        assert!(png.starts_with(b"\x89PNG"), "screenshot is not a PNG");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
        println!("status page screenshot: {}", path.display());
    }
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        let _ = self.call("DELETE", "", None);
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn node(lab: &ClusterLab, n: usize) -> TandemNode {
    let config = format!(
        "{}\nexecutor set metrics {}:{WEB_PORT}\n",
        demo_config(n),
        tandem_lab::cluster::lb_ip(n)
    );
    TandemNode::start(&lab.lab, &lab.lbs[n - 1], &config, &[]).expect("tandemd")
}

fn target_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../target"))
}

#[test]
fn lab_status_page_follows_a_takeover_in_chromium_and_renders_labels_as_text() {
    let _g = serial();
    let lab = ClusterLab::new("page", 2, 3).expect("lab (needs root)");
    let mut lb1 = node(&lab, 1);
    let lb2 = node(&lab, 2);
    join_pair(&lb1, 1, "manual", HA_PORT).unwrap();
    join_pair(&lb2, 2, "manual", HA_PORT).unwrap();
    wait_ha_state(&lb1, "Active", true, Duration::from_secs(20)).unwrap();
    wait_ha_state(&lb2, "Standby", true, Duration::from_secs(20)).unwrap();

    // Operator text with markup, on the Active; configuration sync brings it to the Standby.
    let cluster = "192.0.2.100";
    let server = lab.servers[0].ip().to_string();
    let quoted = format!("\"{HOSTILE}\"");
    lb1.ctl(&["cluster", "set", cluster, "label", &quoted])
        .unwrap();
    lb1.ctl(&[
        "server",
        "set",
        &format!("{cluster}@80@{server}"),
        "label",
        &quoted,
    ])
    .unwrap();
    tandem_lab::wait_until(
        Duration::from_secs(10),
        "the labels to reach the Standby",
        || {
            lb2.ctl_json(&["server", "report", "@@"]).is_ok_and(|v| {
                v.as_array()
                    .is_some_and(|rows| rows.iter().any(|r| r["label"] == json!(HOSTILE)))
            })
        },
    )
    .unwrap();
    // The reports show them, text and JSON.
    let report = lb2.ctl(&["cluster", "report", cluster]).unwrap();
    assert!(
        report.contains("Label") && report.contains(HOSTILE),
        "{report}"
    );
    let clusters = lb2.ctl_json(&["cluster", "report", cluster]).unwrap();
    assert_eq!(clusters[0]["label"], json!(HOSTILE), "{clusters}");
    let report = lb2
        .ctl(&["server", "report", &format!("{cluster}@80@{server}")])
        .unwrap();
    assert!(report.contains(HOSTILE), "{report}");

    let profile = lab.lab.log_dir().join("chromium-profile");
    let browser = Browser::start(&lab.client, profile);
    browser.open(&format!("http://192.0.2.3:{WEB_PORT}/"));
    browser.wait(
        Duration::from_secs(15),
        "both nodes with their states",
        |b| b.text("#node-self .state") == "Standby" && b.text("#node-partner .state") == "Active",
    );
    assert_eq!(browser.text("#node-self .addr"), "192.0.2.3");
    assert_eq!(browser.text("#node-partner .addr"), "192.0.2.2");

    // The labels are text: present literally, the script never ran, no <b> element came of it.
    let seen = browser.js(&format!(
        "const h = {};
         const cells = [...document.querySelectorAll('#clusters td.label, #servers td.label')];
         return {{
           literal: cells.filter(td => td.textContent === h).length,
           pwned: typeof window.__pwned,
           bold: document.querySelectorAll('main b, main script').length,
         }};",
        serde_json::to_string(HOSTILE).unwrap()
    ));
    assert_eq!(
        seen["literal"],
        json!(2),
        "cluster and server label as text: {seen}"
    );
    assert_eq!(seen["pwned"], json!("undefined"), "{seen}");
    assert_eq!(seen["bold"], json!(0), "{seen}");
    let body = browser.text("body");
    assert!(body.contains(HOSTILE), "the label text is on the page");

    // The Active dies; within 5 s the Standby's page shows itself Active and the transition.
    lb1.kill().unwrap();
    let took = browser.wait(
        Duration::from_secs(5),
        "this node Active with the transition",
        |b| {
            b.text("#node-self .state") == "Active"
                && b.js("return document.querySelectorAll(\
                 '#timeline li[data-from=\"Standby\"][data-to=\"Active\"]').length > 0")
                    == json!(true)
        },
    );
    println!("page showed the takeover {took:?} after kill -9");
    assert!(
        !browser.text("#node-partner .state").starts_with("Active")
            || browser.text("#node-partner .state").contains("contact"),
        "the dead partner is not shown as a live Active"
    );
    browser.screenshot(&target_dir().join("status-page.png"));
}
