//! Headless Chromium driven through ChromeDriver (W3C WebDriver over HTTP, Debian's
//! `chromium-driver`): a test can type into a page, click, and read the page and its cookies
//! (with their `HttpOnly`, `Secure` and `SameSite` flags) as the browser holds them.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A browser session.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    base: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium (certificate errors accepted: tests use
    /// their own CA), or `None` (with a message) when either is missing and
    /// `CENTINELA_REQUIRE_CHROMIUM` is not set.
    ///
    /// # Panics
    /// When they are required and missing, or do not start.
    pub async fn start() -> Option<Self> {
        let chrome = crate::chromium()?;
        let driver_bin = std::path::Path::new("/usr/bin/chromedriver");
        if !driver_bin.exists() {
            assert!(
                std::env::var_os("CENTINELA_REQUIRE_CHROMIUM").is_none(),
                "CENTINELA_REQUIRE_CHROMIUM is set but chromedriver is not installed"
            );
            eprintln!("skipped: chromedriver is not installed (apt install chromium-driver)");
            return None;
        }
        let port = crate::free_port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let t0 = Instant::now();
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "chromedriver answers"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().expect("profile");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": chrome,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                         "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         format!("--user-data-dir={}", profile.path().display())]
            }
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("json");
        let id = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {r}"))
            .to_string();
        Some(Self {
            driver,
            base: format!("{base}/session/{id}"),
            http,
            _profile: profile,
        })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r: Value = req
            .send()
            .await
            .expect("webdriver")
            .json()
            .await
            .expect("json");
        assert!(
            r["value"].get("error").is_none(),
            "WebDriver {path}: {}",
            r["value"]
        );
        r["value"].clone()
    }

    /// Opens `url`.
    pub async fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// The page's address now.
    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The page's DOM as HTML.
    pub async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT].as_str().expect("element").to_string()
    }

    /// Types `text` into the element `css`.
    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Clicks the element `css`.
    pub async fn click(&self, css: &str) {
        let e = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// The cookies the browser holds for the page (name, value, httpOnly, secure, sameSite).
    pub async fn cookies(&self) -> Vec<Value> {
        self.call(reqwest::Method::GET, "/cookie", None)
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until the page's DOM holds every one of `needles`; returns the DOM.
    ///
    /// # Panics
    /// After `timeout`, with the DOM.
    pub async fn wait_for_all(&self, needles: &[&str], timeout: Duration) -> String {
        let t0 = Instant::now();
        loop {
            let dom = self.source().await;
            if needles.iter().all(|n| dom.contains(n)) {
                return dom;
            }
            assert!(
                t0.elapsed() < timeout,
                "the page never held all of {needles:?}: {}",
                &dom[..dom.len().min(3000)]
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Browser {
    /// Ends the browser session (Chromium exits), then ChromeDriver.
    pub async fn close(self) {
        let _ = self.http.delete(&self.base).send().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
