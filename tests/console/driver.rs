//! Starts `chromedriver` on a free port for one test and kills it on drop, and opens
//! headless Chromium sessions on it through fantoccini (WebDriver over plain HTTP).
//!
//! Without Chromium or chromedriver installed, [`Tools::find`] says why on stderr and the
//! test skips itself; CI installs both (`.ci/run`).

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Map, Value};

/// Where the browser and its driver are.
pub struct Tools {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
}

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).chain([PathBuf::from("/usr/bin")]) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

impl Tools {
    /// The installed tools, or `None` after printing why the test `test` skips.
    pub fn find(test: &str) -> Option<Tools> {
        let chromium = on_path(&["chromium", "chromium-browser", "google-chrome"]);
        let chromedriver = on_path(&["chromedriver"]);
        match (chromium, chromedriver) {
            (Some(chromium), Some(chromedriver)) => Some(Tools {
                chromium,
                chromedriver,
            }),
            (chromium, chromedriver) => {
                eprintln!(
                    "SKIPPED {test}: needs Chromium and chromedriver (Debian: apt-get install -y chromium chromium-driver); found chromium: {}, chromedriver: {}",
                    chromium.map_or("no".into(), |p| p.display().to_string()),
                    chromedriver.map_or("no".into(), |p| p.display().to_string()),
                );
                None
            }
        }
    }
}

/// A running chromedriver; killed (and reaped) on drop.
pub struct Driver {
    child: Child,
    url: String,
    chromium: PathBuf,
    profiles: tempfile::TempDir,
}

impl Drop for Driver {
    /// Kills chromedriver's process group (it and the browsers it started), then reaps it.
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill has no memory preconditions; -pid is the group we created.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

impl Driver {
    /// Starts chromedriver on a free port and waits (at most 30 s) until it is ready.
    pub async fn start(tools: &Tools) -> Driver {
        let port = free_port();
        let child = Command::new(&tools.chromedriver)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", tools.chromedriver.display()));
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            chromium: tools.chromium.clone(),
            profiles: tempfile::tempdir().expect("profile directory"),
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = client
                .get(format!("{}/status", driver.url))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success());
            if let Some(r) = ready {
                let body: Value = r.json().await.unwrap_or(Value::Null);
                if body["value"]["ready"] == true {
                    return driver;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready on {}",
                driver.url
            );
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new headless browser session of its own profile (so its own cookies); with
    /// `javascript: false` the browser runs no page script at all.
    pub async fn browser(&self, name: &str, javascript: bool) -> Client {
        let profile = self.profiles.path().join(name);
        let mut args = vec![
            "--headless=new".to_string(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1280,1000".into(),
            "--hide-scrollbars".into(),
            format!("--user-data-dir={}", profile.display()),
        ];
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            args.push("--no-sandbox".into()); // Chromium refuses to run as root otherwise
        }
        let mut options = json!({"binary": path_str(&self.chromium), "args": args});
        if !javascript {
            options["prefs"] = json!({"profile.managed_default_content_settings.javascript": 2});
        }
        let mut caps = Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), options);
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot open a Chromium session on {}: {e}", self.url))
    }
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}
