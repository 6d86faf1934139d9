//! `central-server audit` on copies of a database an honest run filled: the copy passes; one
//! byte changed in one stored payload fails and names the event; an event deleted (its number
//! still recorded) fails; a deliberate gap in a sensor's numbers is listed as missing messages.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use centinela_tests::free_port;
use centinela_tests::live::{Feeder, Fleet, ServerProcess, count_in_db, wait_for};
use centinela_tests::testdb::{Backend, TestDb};

use crate::BIN;

const FAC: &str = "audit-prison";

centinela_tests::on_both_databases!(
    audit_passes_an_honest_copy_and_names_the_event_one_changed_byte_breaks
);

fn audit(db: &TestDb, config: &Path) -> (i32, String) {
    let out = Command::new(BIN)
        .args(["audit", "--db"])
        .arg(db.arg())
        .arg("--config")
        .arg(config)
        .output()
        .expect("run audit");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

async fn server_says_offline(db: &TestDb) -> bool {
    let pool = db.reader().await;
    let state: Option<String> =
        sqlx::query_scalar("SELECT state FROM sensors WHERE sensor_id = 'audited'")
            .fetch_optional(&pool)
            .await
            .ok()
            .flatten();
    pool.close().await;
    state.as_deref() == Some("offline")
}

async fn audit_passes_an_honest_copy_and_names_the_event_one_changed_byte_breaks(b: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(db) = b.open(dir.path()).await else {
        return;
    };
    let fleet = Fleet::new().with(FAC, &["audited"]);
    let config = dir.path().join("server.toml");
    std::fs::write(&config, fleet.toml()).expect("config");
    fleet.write_broker(&dir.path().join("broker"));
    let mqtt = free_port();
    let mut server = ServerProcess::start(
        Path::new(BIN),
        &[
            "--config".into(),
            config.display().to_string(),
            "--db".into(),
            db.arg(),
            "--data-dir".into(),
            dir.path().display().to_string(),
            "--mqtt".into(),
            format!("127.0.0.1:{mqtt}"),
        ],
        &dir.path().join("server.log"),
    );
    let mut feeder = Feeder::start(
        &dir.path().join("outbox"),
        mqtt,
        FAC,
        "audited",
        Duration::from_secs(3),
    );
    feeder.push_paced(0..20).await;
    // A deliberate gap: three numbers the sensor spends and never sends.
    let before = feeder.status.signer.last_seq();
    for _ in 0..3 {
        feeder
            .status
            .signer
            .seal("x", b"{}")
            .expect("spend a number");
    }
    let spent = format!("{}–{}", before + 1, before + 3);
    feeder.push_paced(20..30).await;
    wait_for("30 events stored", Duration::from_secs(30), || async {
        count_in_db(&db, "gap").await == 30
    })
    .await;
    let (_, sent) = feeder.finish().await;
    // The clean shutdown's offline status is stored before the server stops.
    wait_for("the sensor's goodbye", Duration::from_secs(10), || async {
        count_in_db(&db, "status").await >= 2 && server_says_offline(&db).await
    })
    .await;
    server.stop();
    // Its broker password was made on first start, private, and never logged.
    let secret_file = dir.path().join("broker").join("server.secret");
    let secret = std::fs::read_to_string(&secret_file).expect("the server's broker password");
    assert!(secret.trim().len() >= 24, "a real password");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&secret_file)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let log = server.log_text();
    assert!(
        !log.contains(secret.trim()),
        "the password is in the log:\n{log}"
    );

    let copy = db.copy("copy").await;
    let (code, report) = audit(&copy, &config);
    eprintln!("{report}");
    assert_eq!(code, 0, "an honest copy passes: {report}");
    assert!(report.contains("CORRECTO / PASS"), "{report}");
    assert!(
        report.lines().any(|l| l.contains("never arrived:")
            && l.rsplit(": ")
                .next()
                .is_some_and(|list| list.split(", ").any(|r| r == spent))),
        "the deliberate gap {spent}: {report}"
    );

    // One byte of one stored payload changed: a margin of 21 dB said to be 91.
    let victim = sent[5].to_string();
    let tampered = db.copy("tampered").await;
    let n = tampered
        .execute(
            "UPDATE events SET payload = replace(payload, '\"margin_db\":2', '\"margin_db\":9') WHERE event_id = $1",
            &victim,
        )
        .await;
    assert_eq!(n, 1, "one event changed");
    let (code, report) = audit(&tampered, &config);
    eprintln!("{report}");
    assert_eq!(code, 1, "a changed byte fails: {report}");
    assert!(report.contains("FALLA / FAIL: 1 problema"), "{report}");
    assert!(
        report
            .lines()
            .any(|l| l.contains(&victim) && l.contains("signature does not verify")),
        "the report names the event: {report}"
    );

    // An event deleted: its number is still recorded with its digest.
    let deleted = db.copy("deleted").await;
    let n = deleted
        .execute(
            "DELETE FROM events WHERE event_id = $1",
            &sent[7].to_string(),
        )
        .await;
    assert_eq!(n, 1, "one event deleted");
    let (code, report) = audit(&deleted, &config);
    assert_eq!(code, 1, "a deleted event fails: {report}");
    assert!(report.contains("no longer in the database"), "{report}");

    // A key the configuration does not register for the sensor fails too.
    let other = dir.path().join("other.toml");
    std::fs::write(&other, Fleet::new().with(FAC, &["someone-else"]).toml()).expect("config");
    let (code, report) = audit(&copy, &other);
    assert_eq!(code, 1, "{report}");
    assert!(
        report.contains("not the key the configuration registers"),
        "{report}"
    );
}
