//! Who may read what, tried over HTTP against a running server: every route without
//! credentials, as a supervisor of another facility, with a revoked token; roles' rights;
//! session cookies (flags, a new id at login, logout); login lockout; the security log; HTTPS
//! and the refusal of plain HTTP off loopback.

use std::time::Duration;

use centinela_tests::live::{self, Fleet, client_with};
use centinela_tests::testdb::Backend;
use central_server::Server;
use central_server::auth::{Role, Scope, Users};
use central_server::config::{ServerConfig, ServerSection};
use protocol::Secret;
use reqwest::StatusCode;
use serde_json::Value;

centinela_tests::on_both_databases!(every_route_is_private_and_scoped_to_the_users_facilities,);

const NORTE: &str = "norte";
const SUR: &str = "sur";

/// Every route of one facility.
const FACILITY_ROUTES: [&str; 11] = [
    "",
    "/aggregates",
    "/zones",
    "/sensors",
    "/gaps",
    "/gaps/history",
    "/jammers",
    "/spectrum",
    "/map.png",
    "/map.svg",
    "/map.geojson",
];

/// Routes that are not a facility's.
const OTHER_ROUTES: [&str; 6] = [
    "/api/facilities",
    "/api/overview",
    "/api/rejects",
    "/metrics",
    "/api/me",
    "/api/security-log",
];

fn plain() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A form body (`application/x-www-form-urlencoded`).
fn form(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn pw(s: &str) -> Secret {
    Secret::new(format!("{s}-long-password"))
}

/// Logs in; returns the status and the session cookie (`name=value`), if one was set, with
/// its whole `Set-Cookie` line.
async fn login(
    server: &Server,
    user: &str,
    password: &str,
    cookie: Option<&str>,
) -> (StatusCode, Option<(String, String)>) {
    login_via(plain(), server, user, password, cookie).await
}

/// A login from the loopback address `from` (127.0.0.N: another machine, as the server sees it).
async fn login_from(server: &Server, from: [u8; 4], user: &str, password: &str) -> StatusCode {
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(std::net::IpAddr::from(from))
        .build()
        .expect("client");
    login_via(c, server, user, password, None).await.0
}

async fn login_via(
    client: reqwest::Client,
    server: &Server,
    user: &str,
    password: &str,
    cookie: Option<&str>,
) -> (StatusCode, Option<(String, String)>) {
    let mut req = client
        .post(format!("{}login", server.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("user", user), ("password", password)]));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let r = req.send().await.expect("login");
    let set = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(central_server::auth::COOKIE))
        .map(|line| {
            let pair = line.split(';').next().unwrap_or_default().to_string();
            (pair, line.to_string())
        });
    (r.status(), set)
}

async fn get_json(c: &reqwest::Client, url: &str, cookie: &str) -> Value {
    c.get(url)
        .header("cookie", cookie)
        .send()
        .await
        .expect("http")
        .json()
        .await
        .expect("json")
}

async fn status(c: &reqwest::Client, url: &str, cookie: Option<&str>) -> StatusCode {
    let mut req = c.get(url);
    if let Some(k) = cookie {
        req = req.header("cookie", k);
    }
    req.send().await.expect("http").status()
}

async fn every_route_is_private_and_scoped_to_the_users_facilities(b: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(db) = b.open(dir.path()).await else {
        return;
    };
    let fleet = Fleet::new().with(NORTE, &["s1"]).with(SUR, &["s2"]);
    let server = live::start_server(None, &db, "srv-access", &fleet).await;
    let users = Users::new(&server.store);
    let add = |name: &'static str, role: Role, f: &'static [&'static str]| {
        let users = users.clone();
        async move {
            let f: Vec<String> = f.iter().map(|s| (*s).to_string()).collect();
            users
                .add(name, role, &f, &pw(name), "test")
                .await
                .expect("user");
        }
    };
    add("ana", Role::Supervisor, &[NORTE]).await;
    add("tec", Role::Technician, &[NORTE]).await;
    add("aud", Role::Auditor, &[]).await;
    add("leo", Role::Supervisor, &[NORTE]).await;
    let base = server.url();
    let fac = |id: &str, r: &str| format!("{base}api/facilities/{id}{r}");
    let metrics = server.metrics.clone();

    // No credentials: 401 from every API route, the login page for the dashboard.
    let anon = plain();
    for r in FACILITY_ROUTES {
        for f in [NORTE, SUR] {
            assert_eq!(status(&anon, &fac(f, r), None).await, 401, "{f}{r}");
        }
    }
    for r in OTHER_ROUTES {
        assert_eq!(
            status(&anon, &format!("{base}{}", &r[1..]), None).await,
            401,
            "{r}"
        );
    }
    let page = anon.get(&base).send().await.expect("page");
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()["location"], "/login");
    assert_eq!(status(&anon, &format!("{base}api/health"), None).await, 200);
    let anonymous = metrics.http_refused_count("no_credentials");
    assert_eq!(anonymous, 2 * 11 + 6, "each refusal counted");

    // A supervisor of `norte`, signed in: everything of norte, nothing of sur (404, as for a
    // facility that does not exist), nothing global.
    let (st, cookie) = login(&server, "ana", pw("ana").expose(), None).await;
    assert_eq!(st, 303, "signed in");
    let (cookie, line) = cookie.expect("a session cookie");
    assert!(line.contains("HttpOnly"), "{line}");
    assert!(line.contains("SameSite=Strict"), "{line}");
    assert!(!line.contains("Secure"), "plain HTTP on loopback: {line}");
    for r in FACILITY_ROUTES {
        assert_eq!(
            status(&anon, &fac(NORTE, r), Some(&cookie)).await,
            200,
            "norte{r}"
        );
        assert_eq!(
            status(&anon, &fac(SUR, r), Some(&cookie)).await,
            404,
            "sur{r}"
        );
        assert_eq!(
            status(&anon, &fac("nowhere", r), Some(&cookie)).await,
            404,
            "nowhere{r}"
        );
    }
    let body: Value = get_json(&anon, &fac(SUR, "/gaps"), &cookie).await;
    let nowhere: Value = get_json(&anon, &fac("nowhere", "/gaps"), &cookie).await;
    assert_eq!(
        body["error"].as_str().map(|s| s.replace(SUR, "X")),
        nowhere["error"].as_str().map(|s| s.replace("nowhere", "X")),
        "another facility's answer is that of one that does not exist"
    );
    let list: Value = get_json(&anon, &format!("{base}api/facilities"), &cookie).await;
    let ids: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|f| f["id"].as_str())
        .collect();
    assert_eq!(ids, [NORTE], "only her facility is listed");
    for r in ["/api/rejects", "/metrics", "/api/security-log"] {
        assert_eq!(
            status(&anon, &format!("{base}{}", &r[1..]), Some(&cookie)).await,
            403,
            "{r}"
        );
    }
    let scoped = metrics.http_refused_count("out_of_scope");
    assert_eq!(
        scoped, 24,
        "each route of sur and of a facility that does not exist (11 each, and the two gaps \
         read for their error) refused and counted"
    );

    // Her token: the same scope; revoked, 401.
    let (tid, token) = users
        .add_token("ana", "script", Scope::Read, "test")
        .await
        .expect("token");
    let tc = client_with(token.expose());
    assert_eq!(status(&tc, &fac(NORTE, "/gaps"), None).await, 200);
    assert_eq!(status(&tc, &fac(SUR, "/map.geojson"), None).await, 404);
    users
        .revoke_token("ana", tid, "test")
        .await
        .expect("revoke");
    for r in FACILITY_ROUTES {
        assert_eq!(
            status(&tc, &fac(NORTE, r), None).await,
            401,
            "revoked: norte{r}"
        );
    }
    assert_eq!(metrics.http_refused_count("revoked_token"), 11);
    let forged = client_with("cnt_not-a-token");
    assert_eq!(status(&forged, &fac(NORTE, "/gaps"), None).await, 401);

    // A technician: no history export. A metrics token: /metrics only.
    let (_, tec) = login(&server, "tec", pw("tec").expose(), None).await;
    let tec = tec.expect("cookie").0;
    assert_eq!(status(&anon, &fac(NORTE, "/gaps"), Some(&tec)).await, 200);
    assert_eq!(
        status(&anon, &fac(NORTE, "/gaps/history"), Some(&tec)).await,
        403
    );
    let (_, prom) = users
        .add_token("aud", "prometheus", Scope::Metrics, "test")
        .await
        .expect("token");
    let prom = client_with(prom.expose());
    assert_eq!(status(&prom, &format!("{base}metrics"), None).await, 200);
    assert_eq!(status(&prom, &fac(NORTE, "/gaps"), None).await, 403);

    // A new session id at every login; the old one stops working; logout ends the session.
    let (_, again) = login(&server, "ana", pw("ana").expose(), Some(&cookie)).await;
    let again = again.expect("cookie").0;
    assert_ne!(again, cookie, "a new session id at login");
    assert_eq!(
        status(&anon, &fac(NORTE, "/gaps"), Some(&cookie)).await,
        401
    );
    assert_eq!(status(&anon, &fac(NORTE, "/gaps"), Some(&again)).await, 200);
    let out = plain()
        .post(format!("{base}logout"))
        .header("cookie", &again)
        .send()
        .await
        .expect("logout");
    assert_eq!(out.status(), 303);
    assert_eq!(status(&anon, &fac(NORTE, "/gaps"), Some(&again)).await, 401);

    // The throttle stops the guesser, not everyone: five wrong passwords for leo from one
    // address shut that address out of leo's account (even with the right password), while
    // another user signs in from the same address (a site behind one NAT) and leo from his own.
    let guesser = [127, 0, 0, 1];
    for _ in 0..central_server::auth::PAIR_THROTTLE_AFTER {
        assert_eq!(
            login_from(&server, guesser, "leo", "not-his-password").await,
            401
        );
    }
    assert_eq!(
        login_from(&server, guesser, "leo", pw("leo").expose()).await,
        429,
        "the guessing address is throttled on leo"
    );
    assert_eq!(metrics.http_refused_count("login_throttled"), 1);
    assert_eq!(
        login_from(&server, guesser, "tec", pw("tec").expose()).await,
        303,
        "another user behind the same address still signs in"
    );
    assert_eq!(
        login_from(&server, [127, 0, 0, 2], "leo", pw("leo").expose()).await,
        303,
        "leo signs in from his own address"
    );
    // Guessing spread over several addresses locks the account itself.
    let per = i64::from(central_server::auth::PAIR_THROTTLE_AFTER);
    let mut from = 3u8;
    let mut tried = 0;
    while tried < central_server::auth::LOCK_AFTER {
        for _ in 0..per.min(central_server::auth::LOCK_AFTER - tried) {
            assert_eq!(
                login_from(&server, [127, 0, 0, from], "leo", "not-his-password").await,
                401
            );
            tried += 1;
        }
        from += 1;
    }
    assert_eq!(
        login_from(&server, [127, 0, 0, 200], "leo", pw("leo").expose()).await,
        401,
        "locked"
    );
    assert_eq!(metrics.http_refused_count("login_locked"), 1);
    assert!(metrics.http_refused_count("login_failed") >= 25);
    users
        .set_password("leo", &pw("leo2"), "test")
        .await
        .expect("passwd");
    assert_eq!(
        login_from(&server, [127, 0, 0, 2], "leo", pw("leo2").expose()).await,
        303,
        "a new password unlocks"
    );

    // A disabled user's session ends.
    let (_, ana) = login(&server, "ana", pw("ana").expose(), None).await;
    let ana = ana.expect("cookie").0;
    assert_eq!(status(&anon, &fac(NORTE, "/gaps"), Some(&ana)).await, 200);
    users
        .set_disabled("ana", true, "test")
        .await
        .expect("disable");
    assert_eq!(status(&anon, &fac(NORTE, "/gaps"), Some(&ana)).await, 401);
    let (st, _) = login(&server, "ana", pw("ana").expose(), None).await;
    assert_eq!(st, 401, "a disabled user cannot sign in");

    // A cross-site login form is refused.
    let r = plain()
        .post(format!("{base}login"))
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("user", "tec"), ("password", pw("tec").expose())]))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 403);
    assert_eq!(metrics.http_refused_count("bad_origin"), 1);
    // So is a cross-site logout, and a request for a name this server does not answer to.
    let r = plain()
        .post(format!("{base}logout"))
        .header("origin", "https://evil.example")
        .header("cookie", &tec)
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), 403, "a cross-site logout");
    assert_eq!(metrics.http_refused_count("bad_origin"), 2);
    assert_eq!(
        status(&anon, &fac(NORTE, "/gaps"), Some(&tec)).await,
        200,
        "the cross-site logout did not end the session"
    );
    let r = plain()
        .get(format!("{base}api/overview"))
        .header("host", "evil.example")
        .send()
        .await
        .expect("host");
    assert_eq!(r.status(), 421, "a Host this server does not answer to");
    assert_eq!(metrics.http_refused_count("bad_host"), 1);

    // The security log, read by the auditor.
    let (_, aud) = login(&server, "aud", pw("aud").expose(), None).await;
    let aud = aud.expect("cookie").0;
    let log: Value = get_json(&anon, &format!("{base}api/security-log?limit=1000"), &aud).await;
    let actions: Vec<(String, String)> = log
        .as_array()
        .expect("log")
        .iter()
        .map(|l| {
            (
                l["action"].as_str().unwrap_or_default().to_string(),
                l["target"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    for (action, target) in [
        ("user_add", "ana"),
        ("login", "ana"),
        ("logout", "ana"),
        ("denied", SUR),
        ("token_add", "ana"),
        ("token_revoke", "ana"),
        ("export", NORTE),
        ("login_failed", "leo"),
        ("lockout", "leo"),
        ("user_passwd", "leo"),
        ("user_disable", "ana"),
    ] {
        assert!(
            actions.iter().any(|(a, t)| a == action && t == target),
            "{action} {target} in the security log: {actions:?}"
        );
    }
    assert!(
        !log.to_string().contains(pw("ana").expose()) && !log.to_string().contains(token.expose()),
        "no password or token in the log"
    );
    server.stop().await;
}

/// HTTPS with a configured certificate: the session cookie is `Secure`; plain HTTP off
/// loopback and a key others can read are refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_secure_cookies_and_plain_http_stays_on_loopback() {
    let dir = tempfile::tempdir().expect("dir");
    centinela_tests::test_certificates(dir.path());
    let cfg = |http: std::net::SocketAddr, tls: bool, db: &str| ServerConfig {
        server: ServerSection {
            embedded_broker: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            db: central_server::db::Database::Sqlite(dir.path().join(db)),
            http,
            tls_cert: tls.then(|| dir.path().join("server.pem")),
            tls_key: tls.then(|| dir.path().join("server.key")),
            hostnames: vec!["localhost".into(), "127.0.0.1".into()],
            ..ServerSection::default()
        },
        facilities: Fleet::new().facilities(),
    };
    let any = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
    let e = Server::start(cfg(any, false, "a.db"))
        .await
        .expect_err("plain HTTP on every address is refused");
    assert!(e.to_string().contains("HTTPS"), "{e}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let key = dir.path().join("server.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = Server::start(cfg(any, true, "b.db"))
            .await
            .expect_err("a readable key is refused");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let server = Server::start(cfg(loopback, true, "c.db"))
        .await
        .expect("HTTPS server");
    assert!(server.url().starts_with("https://"));
    Users::new(&server.store)
        .add("ana", Role::Admin, &[], &pw("ana"), "test")
        .await
        .expect("user");
    // Plain HTTP to the HTTPS port gets no answer with data.
    let plain_http = format!("http://{}/api/facilities", server.http_addr);
    assert!(
        !reqwest::get(&plain_http)
            .await
            .is_ok_and(|r| r.status().is_success()),
        "plain HTTP to the HTTPS port"
    );
    // curl, trusting the test CA: a login sets a Secure, HttpOnly, SameSite=Strict cookie.
    let out = std::process::Command::new("curl")
        .args(["-s", "-i", "--cacert"])
        .arg(dir.path().join("ca.pem"))
        .args(["--data-urlencode", "user=ana", "--data-urlencode"])
        .arg(format!("password={}", pw("ana").expose()))
        .arg(format!(
            "https://localhost:{}/login",
            server.http_addr.port()
        ))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: centinela_session=")
        })
        .unwrap_or_else(|| panic!("a session cookie over HTTPS: {text}"));
    for flag in ["Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(line.contains(flag), "{flag}: {line}");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.stop().await;
}
