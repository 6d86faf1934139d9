//! Shared helpers for the end-to-end scenarios: where the shared recordings are, how to run the
//! `sensor-agent` binary, and small fixture writers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod browser;
pub mod disk;
pub mod fuzz;
pub mod live;
pub mod pg;
pub mod testdb;

/// The folder of shared test data: `CENTINELA_TESTDATA`, else `../shared/data` beside the
/// checkout. `None` (with a message on stderr) when absent, unless `CENTINELA_REQUIRE_TESTDATA`
/// is set, in which case it panics: CI must have the data.
#[must_use]
pub fn testdata() -> Option<PathBuf> {
    let dir = std::env::var_os("CENTINELA_TESTDATA").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"),
        PathBuf::from,
    );
    if dir.join("iq/INDEX.md").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CENTINELA_REQUIRE_TESTDATA").is_none(),
        "shared test data required but not found at {}",
        dir.display()
    );
    eprintln!(
        "SKIP: shared test data not found at {} (set CENTINELA_TESTDATA)",
        dir.display()
    );
    None
}

/// One row of `iq/INDEX.md`.
#[derive(Debug, Clone)]
pub struct IndexRow {
    /// Path relative to `iq/`, without extension.
    pub recording: String,
    /// `lte`, `nr` or `none`.
    pub tech: String,
    /// SigMF datatype.
    pub datatype: String,
    /// Sample rate.
    pub rate: f64,
    /// Centre frequency, if stated.
    pub center_hz: Option<f64>,
    /// Expected PCIs.
    pub pcis: Vec<u16>,
    /// Soft PCIs.
    pub soft_pcis: Vec<u16>,
    /// A, B or N.
    pub grade: String,
}

fn pci_list(s: &str) -> Vec<u16> {
    s.trim()
        .trim_matches(['[', ']'])
        .split(',')
        .filter_map(|x| x.trim().parse().ok())
        .collect()
}

/// Parses the recordings table of `iq/INDEX.md`.
///
/// # Panics
/// When the index cannot be read.
#[must_use]
pub fn index(data: &Path) -> Vec<IndexRow> {
    let text = std::fs::read_to_string(data.join("iq/INDEX.md")).expect("read INDEX.md");
    text.lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("| recording") && !l.starts_with("|---"))
        .filter_map(|l| {
            let c: Vec<&str> = l.split('|').map(str::trim).collect();
            if c.len() < 10 {
                return None;
            }
            Some(IndexRow {
                recording: c[1].to_string(),
                tech: c[2].to_string(),
                datatype: c[3].to_string(),
                rate: c[4].parse().ok()?,
                center_hz: c[5].parse().ok(),
                pcis: pci_list(c[6]),
                soft_pcis: pci_list(c[7]),
                grade: c[8].to_string(),
            })
        })
        .collect()
}

/// Runs `sensor-agent` with arguments.
///
/// # Panics
/// When the binary cannot be started.
#[must_use]
pub fn run_agent(bin: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env("CENTINELA_LOG", "warn")
        .output()
        .expect("start sensor-agent")
}

/// Runs `sensor-agent` with arguments, killing it after `limit`.
///
/// # Panics
/// When the binary cannot be started, or when it runs past `limit` (a hang is a failure).
#[must_use]
pub fn run_agent_within(bin: &Path, args: &[&str], limit: std::time::Duration) -> Output {
    let mut child = Command::new(bin)
        .args(args)
        .env("CENTINELA_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start sensor-agent");
    let t0 = std::time::Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "sensor-agent {args:?} ran past {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Writes a SigMF pair from raw parts (for bad-input fixtures).
///
/// # Panics
/// On I/O errors.
pub fn write_recording(dir: &Path, name: &str, meta: &str, data: &[u8]) -> PathBuf {
    let base = dir.join(name);
    std::fs::write(base.with_extension("sigmf-meta"), meta).expect("write meta");
    std::fs::write(base.with_extension("sigmf-data"), data).expect("write data");
    base.with_extension("sigmf-meta")
}

/// A Python interpreter that can import `module`: the `CENTINELA_PYTHON` variable, the project's
/// `.venv`, or `python3`. `None` (with a message) when none can, unless the environment variable
/// `require_var` is set, in which case it panics: CI must have it.
#[must_use]
pub fn python_with(module: &str, require_var: &str) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let candidates: Vec<PathBuf> = std::env::var_os("CENTINELA_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([root.join(".venv/bin/python"), PathBuf::from("python3")])
        .collect();
    let found = candidates.into_iter().find(|py| {
        Command::new(py)
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if found.is_none() {
        assert!(
            std::env::var_os(require_var).is_none(),
            "the Python {module} package is required but no interpreter has it"
        );
        eprintln!("SKIP: no Python with the {module} package (set CENTINELA_PYTHON)");
    }
    found
}

/// A Python with the reference SigMF library (`CENTINELA_REQUIRE_PYSIGMF` makes it required).
#[must_use]
pub fn python_with_sigmf() -> Option<PathBuf> {
    python_with("sigmf", "CENTINELA_REQUIRE_PYSIGMF")
}

/// Loads a recording with the reference Python library (which validates it against the SigMF
/// schema) and returns what it read: sample count, capture frequencies and starts, and the first
/// samples, as JSON.
///
/// # Panics
/// When Python fails: the recording is not valid SigMF.
#[must_use]
pub fn sigmf_python_read(python: &Path, meta: &Path) -> serde_json::Value {
    const SCRIPT: &str = r#"
import json, sys
from sigmf import sigmffile
sf = sigmffile.fromfile(sys.argv[1])
sf.validate()
x = sf.read_samples()
caps = sf.get_captures()
print(json.dumps({
    "count": int(len(x)),
    "datatype": sf.get_global_field("core:datatype"),
    "sample_rate": sf.get_global_field("core:sample_rate"),
    "frequencies": [c.get("core:frequency") for c in caps],
    "starts": [c.get("core:sample_start") for c in caps],
    "head": [[float(v.real), float(v.imag)] for v in x[:8]],
}))
"#;
    let out = Command::new(python)
        .args(["-c", SCRIPT])
        .arg(meta)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python sigmf rejected {}: {}",
        meta.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python JSON")
}

/// A Python with py3gpp, for cross-checks against an implementation we did not write
/// (`CENTINELA_REQUIRE_PY3GPP` makes it required).
#[must_use]
pub fn python_with_py3gpp() -> Option<PathBuf> {
    python_with("py3gpp", "CENTINELA_REQUIRE_PY3GPP")
}

/// A free TCP port on loopback (bound, then released).
///
/// # Panics
/// When no port can be bound.
#[must_use]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A Mosquitto broker started by a test on a loopback port, with persistence in its own
/// directory so that sessions and queued messages survive a restart.
#[derive(Debug)]
pub struct Mosquitto {
    /// Port.
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
    /// The user it runs as when started as root (`None`: this process's own user).
    as_user: Option<String>,
}

impl Mosquitto {
    /// Starts Mosquitto, or returns `None` (with a message) when it is not installed and
    /// `CENTINELA_REQUIRE_MOSQUITTO` is not set.
    ///
    /// # Panics
    /// When it is required and missing, or does not start.
    #[must_use]
    pub fn start() -> Option<Self> {
        let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let Some(_) = bin else {
            assert!(
                std::env::var_os("CENTINELA_REQUIRE_MOSQUITTO").is_none(),
                "CENTINELA_REQUIRE_MOSQUITTO is set but mosquitto is not installed"
            );
            eprintln!("skipped: mosquitto is not installed (apt install mosquitto)");
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let mut m = Self {
            port: free_port(),
            dir,
            child: None,
            as_user: None,
        };
        m.write_conf("");
        m.restart();
        Some(m)
    }

    fn write_conf(&self, extra: &str) {
        // Run as the test's own user, so that Mosquitto can write its persistence file and read
        // the TLS files in the test's private directory (as root it would switch to `mosquitto`).
        let user = self.as_user.clone().unwrap_or_else(|| {
            Command::new("id")
                .arg("-un")
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| "root".into())
        });
        // The settings Centinela ships for Mosquitto, then this test's listener and directory
        // (and `CENTINELA_MOSQUITTO_EXTRA`, for benchmarks that weigh a setting: later lines win).
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../central-server/mosquitto/centinela.conf");
        let shipped = std::fs::read_to_string(&shipped)
            .unwrap_or_else(|e| panic!("{}: {e}", shipped.display()));
        std::fs::write(
            self.dir.path().join("mosquitto.conf"),
            format!(
                "{shipped}\nuser {user}\nlistener {} 127.0.0.1\nallow_anonymous true\npersistence_location {}/\n{extra}\n{}\n",
                self.port,
                self.dir.path().display(),
                std::env::var("CENTINELA_MOSQUITTO_EXTRA").unwrap_or_default()
            ),
        )
        .expect("conf");
    }

    /// Starts Mosquitto with a second, TLS listener whose certificate (for `127.0.0.1` and
    /// `localhost`) is signed by a CA made here with `openssl`. Returns the broker, the TLS port
    /// and the CA's PEM file.
    ///
    /// # Panics
    /// When openssl fails.
    #[must_use]
    pub fn start_with_tls() -> Option<(Self, u16, PathBuf)> {
        let mut m = Self::start()?;
        m.stop();
        let d = m.dir.path().to_path_buf();
        test_certificates(&d);
        let tls_port = free_port();
        m.write_conf(&format!(
            "listener {tls_port} 127.0.0.1\ncafile {0}/ca.pem\ncertfile {0}/server.pem\nkeyfile {0}/server.key\n",
            d.display()
        ));
        m.restart();
        Some((m, tls_port, d.join("ca.pem")))
    }

    /// Starts (again) on the same port and waits until it accepts connections.
    ///
    /// # Panics
    /// When it does not come up within 10 s.
    pub fn restart(&mut self) {
        let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("mosquitto");
        let log = std::fs::File::create(self.dir.path().join("mosquitto.log")).expect("log");
        let child = Command::new(bin)
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn mosquitto");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!(
            "mosquitto did not start on port {}: {}",
            self.port,
            std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
        );
    }

    /// What Mosquitto logged.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// Starts Mosquitto with `extra` configuration lines after the shipped settings (later lines
    /// win), or `None` as [`Mosquitto::start`].
    ///
    /// # Panics
    /// As [`Mosquitto::start`].
    #[must_use]
    pub fn start_with(extra: &str) -> Option<Self> {
        let mut m = Self::start()?;
        m.stop();
        m.write_conf(extra);
        m.restart();
        Some(m)
    }

    /// Starts Mosquitto as Debian's service does: started as root, it drops to the `mosquitto`
    /// user before it reads its password and ACL files (`extra` configuration lines after the
    /// shipped settings). `None` as [`Mosquitto::start`], or when this process is not root
    /// (with a message).
    ///
    /// # Panics
    /// As [`Mosquitto::start`].
    #[must_use]
    pub fn start_as_its_user(extra: &str) -> Option<Self> {
        let mut m = Self::start()?;
        m.stop();
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        if !root {
            eprintln!("SKIP: starting Mosquitto so that it drops to its own user needs root");
            return None;
        }
        m.as_user = Some("mosquitto".into());
        let ok = Command::new("chown")
            .arg("mosquitto")
            .arg(m.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "chown mosquitto {}", m.dir.path().display());
        m.write_conf(extra);
        m.restart();
        Some(m)
    }

    /// Kills it with SIGKILL (no last save) and waits.
    pub fn kill(&mut self) {
        end_child(&mut self.child, false);
    }

    /// Stops it with SIGTERM (it saves its persistence file) and waits.
    pub fn stop(&mut self) {
        end_child(&mut self.child, true);
    }
}

/// Ends a child process, by SIGTERM (`clean`) or SIGKILL, and waits for it.
pub fn end_child(child: &mut Option<std::process::Child>, clean: bool) {
    if let Some(mut c) = child.take() {
        if clean {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
        } else {
            let _ = c.kill();
        }
        let _ = c.wait();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Makes, in `d`, a CA (`ca.pem`) and a server certificate for `127.0.0.1` and `localhost`
/// signed by it (`server.pem`, key `server.key` with mode 0600), with `openssl`.
///
/// # Panics
/// When openssl fails.
pub fn test_certificates(d: &Path) {
    let run = |args: &[&str]| {
        output_ok(
            Command::new("openssl").args(args).current_dir(d),
            &format!("openssl {args:?}"),
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Centinela test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(d.join("server.key"), std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
    }
}

/// Headless Chromium, or `None` (with a message) when it is not installed and
/// `CENTINELA_REQUIRE_CHROMIUM` is not set.
///
/// # Panics
/// When it is required and missing.
#[must_use]
pub fn chromium() -> Option<PathBuf> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CENTINELA_REQUIRE_CHROMIUM").is_none(),
            "CENTINELA_REQUIRE_CHROMIUM is set but chromium is not installed"
        );
        eprintln!("skipped: chromium is not installed (apt install chromium)");
    }
    found
}

/// Runs `cmd` and returns its output, failing the test (with `what` and the command's stderr)
/// when it cannot start or exits unsuccessfully.
pub fn output_ok(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A TCP link between two ports on loopback that a test can cut (every connection through it
/// dropped, new ones refused) and restore: a facility's link to the centre.
#[derive(Debug)]
pub struct LinkProxy {
    /// The port to connect to.
    pub port: u16,
    target: std::sync::Arc<std::sync::atomic::AtomicU16>,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl LinkProxy {
    /// Listens on a free loopback port; connections wait for [`LinkProxy::connect_to`].
    ///
    /// # Panics
    /// When no port can be bound.
    pub async fn start() -> Self {
        use std::sync::atomic::Ordering;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        let target = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(0));
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> =
            std::sync::Arc::default();
        let (t, c, k) = (target.clone(), cut.clone(), conns.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = l.accept().await {
                let to = t.load(Ordering::SeqCst);
                if c.load(Ordering::SeqCst) || to == 0 {
                    drop(inbound);
                    continue;
                }
                let h = tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                k.lock().expect("conns").push(h);
            }
        });
        Self {
            port,
            target,
            cut,
            conns,
            task,
        }
    }

    /// Where the link leads.
    pub fn connect_to(&self, port: u16) {
        self.target.store(port, std::sync::atomic::Ordering::SeqCst);
    }

    /// Cuts the link: every connection through it dropped, new ones refused.
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for h in self.conns.lock().expect("conns").drain(..) {
            h.abort();
        }
    }

    /// Restores the link.
    pub fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}
