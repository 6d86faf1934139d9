//! Evidence survives a full disk and a power cut. The server's database on a small filesystem
//! that fills up while an agent reports, then gets its space back: nothing may be acknowledged
//! (a `stored` receipt, which makes the agent delete the event) that is not committed, the store
//! must recover once space returns, and health must say the truth meanwhile. The server's
//! SQLite file on a disk whose power is cut right after the last receipt: every event a receipt
//! named is on the disk. Needs root to mount a tmpfs and a loop device (CI runs as root);
//! skipped with a message otherwise.

use std::time::Duration;

use centinela_tests::disk::{PowerCutDisk, SmallDisk};
use centinela_tests::live::{self, Feeder, Fleet, wait_for};
use centinela_tests::testdb::{Backend, TestDb};
use central_server::db::Database;

centinela_tests::on_both_databases!(a_full_disk_acknowledges_nothing_uncommitted_and_recovers);

const FAC: &str = "test-prison";

/// The database of `b` on `disk`: a SQLite file there, or a PostgreSQL database in a
/// tablespace there.
async fn database_on(b: Backend, disk: &SmallDisk, dir: &std::path::Path) -> Option<TestDb> {
    let db = match b {
        Backend::Sqlite => Database::Sqlite(disk.path.join("c.db")),
        Backend::Postgres => {
            let cluster = centinela_tests::pg::test_cluster()?;
            let ts = disk.path.join("pg");
            std::fs::create_dir_all(&ts).expect("tablespace dir");
            disk.give_to("postgres");
            let _ = std::process::Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&ts)
                .status();
            Database::Postgres(
                cluster
                    .create_database_in(&ts)
                    .await
                    .unwrap_or_else(|e| panic!("{e}")),
            )
        }
    };
    Some(TestDb {
        backend: b,
        db,
        dir: dir.to_path_buf(),
    })
}

async fn health(server: &central_server::Server) -> serde_json::Value {
    let url = format!("http://{}/api/health", server.http_addr);
    reqwest::get(&url)
        .await
        .expect("health")
        .json()
        .await
        .expect("health json")
}

async fn a_full_disk_acknowledges_nothing_uncommitted_and_recovers(b: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(disk) = SmallDisk::mount(&dir.path().join("small"), 24) else {
        return;
    };
    let Some(db) = database_on(b, &disk, dir.path()).await else {
        return;
    };
    // Declared after the disk: dropped before it.
    let _drop_db = DropOnDisk(match &db.db {
        Database::Postgres(url) => Some(url.clone()),
        Database::Sqlite(_) => None,
    });
    let fleet = Fleet::new().with(FAC, &["disk-1"]);
    let server = live::start_server(None, &db, "srv-disk", &fleet).await;
    let port = server.broker.1;
    let mut feeder = Feeder::start(
        &dir.path().join("outbox"),
        port,
        FAC,
        "disk-1",
        Duration::from_secs(2),
    );
    feeder.push_paced(0..100).await;
    wait_for("the first 100 events", Duration::from_secs(20), || async {
        feeder.outbox.is_empty()
    })
    .await;
    assert!(
        health(&server).await["database"]["writable"] == true,
        "{}",
        health(&server).await
    );

    // The disk fills while the agent goes on reporting.
    let filled = disk.fill();
    assert!(disk.available() < 64 * 1024, "filled {filled} bytes");
    feeder.push_paced(100..300).await;
    wait_for(
        "health to say the database cannot be written",
        Duration::from_secs(20),
        || async { health(&server).await["database"]["writable"] == false },
    )
    .await;
    let h = health(&server).await;
    assert_eq!(h["status"], "degraded", "{h}");
    let during = server.metrics.render();
    assert!(
        live::counter(&during, "centinela_store_errors_total") > 0,
        "the failing store is counted: {during}"
    );

    // Space comes back: the store recovers by itself, every event is stored once.
    disk.free();
    feeder.push_paced(300..350).await;
    wait_for(
        "every event stored after the disk has space again",
        Duration::from_secs(60),
        || async { feeder.outbox.is_empty() },
    )
    .await;
    wait_for(
        "health to say the database can be written again",
        Duration::from_secs(20),
        || async { health(&server).await["database"]["writable"] == true },
    )
    .await;
    let (stats, ids) = feeder.finish().await;
    server.stop().await;
    // Read with a connection of our own, after the server closed its own: only what was
    // committed is there.
    let stored = live::stored_ids(&db, "gap").await;
    live::assert_exactly_once(&stored, &ids, "a full disk");
    assert!(
        stats.confirmed >= 350,
        "every event confirmed by a receipt: {stats:?}"
    );
}

/// Drops the test's PostgreSQL database and its tablespace before the small disk goes away, even
/// when the test fails: the shared cluster would otherwise fail on the vanished files at every
/// checkpoint, and every other test on it with them.
struct DropOnDisk(Option<String>);

impl Drop for DropOnDisk {
    fn drop(&mut self) {
        let (Some(url), Some(cluster)) = (self.0.take(), centinela_tests::pg::test_cluster())
        else {
            return;
        };
        let Some(name) = url.rsplit('/').next() else {
            return;
        };
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("DROP TABLESPACE IF EXISTS ts_{name}"),
        ] {
            let ok = std::process::Command::new("psql")
                .arg(cluster.url("postgres"))
                .args(["-q", "-c", &sql])
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                eprintln!("{sql} failed");
            }
        }
    }
}

/// A receipt tells the agent to delete its copy, so the commit behind it must survive the
/// machine losing power at once. The database sits on an ext4 image whose unsynced writes stay
/// in memory; after the last receipt the image is copied as the device holds it (the power
/// cut) and opened: every event a receipt named must be there. With SQLite's
/// `synchronous = NORMAL` in WAL mode (the setting before this test) they were not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_with_a_receipt_survives_a_power_cut() {
    let dir = tempfile::tempdir().expect("dir");
    let Some(disk) =
        PowerCutDisk::mount(&dir.path().join("disk.img"), &dir.path().join("disk"), 64)
    else {
        return;
    };
    let db = TestDb {
        backend: Backend::Sqlite,
        db: Database::Sqlite(disk.path.join("c.db")),
        dir: dir.path().to_path_buf(),
    };
    let fleet = Fleet::new().with(FAC, &["cut-1"]);
    let server = live::start_server(None, &db, "srv-cut", &fleet).await;
    let mut feeder = Feeder::start(
        &dir.path().join("outbox"),
        server.broker.1,
        FAC,
        "cut-1",
        Duration::from_secs(2),
    );
    feeder.push_paced(0..200).await;
    wait_for(
        "a receipt for every event",
        Duration::from_secs(30),
        || async { feeder.outbox.is_empty() },
    )
    .await;
    // The power goes: whatever the kernel had not been told to write is gone.
    let after = disk.cut(&dir.path().join("cut.img"), &dir.path().join("cut"));
    let copy = TestDb {
        backend: Backend::Sqlite,
        db: Database::Sqlite(after.path.join("c.db")),
        dir: dir.path().to_path_buf(),
    };
    let stored = live::stored_ids(&copy, "gap").await;
    let ids = feeder.ids.clone();
    live::assert_exactly_once(&stored, &ids, "after a power cut");
    let _ = feeder.finish().await;
    server.stop().await;
}

/// An agent whose disk fills up (its outbox and its message counter on one small filesystem)
/// keeps reporting: events it cannot write are held in memory and delivered with their
/// receipts, none dropped while the link is up; with nowhere to hold them either, what it drops
/// is counted; and once space returns what waits in memory goes to disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_with_a_full_disk_loses_nothing_while_its_link_is_up() {
    use sensor_agent::daemon::outbox::{Entry, Outbox};
    let dir = tempfile::tempdir().expect("dir");
    let Some(disk) = SmallDisk::mount(&dir.path().join("agent"), 4) else {
        return;
    };
    std::fs::create_dir_all(disk.path.join("offline")).expect("offline outbox");
    let Some(db) = Backend::Sqlite.open(dir.path()).await else {
        return;
    };
    let fleet = Fleet::new().with(FAC, &["full-1"]);
    let server = live::start_server(None, &db, "srv-agent-disk", &fleet).await;
    let mut feeder = Feeder::start(
        &disk.path.join("outbox"),
        server.broker.1,
        FAC,
        "full-1",
        Duration::from_secs(2),
    );
    feeder.push_paced(0..20).await;
    wait_for("the first events", Duration::from_secs(20), || async {
        feeder.outbox.is_empty()
    })
    .await;
    disk.fill();
    feeder.push_paced(20..220).await;
    wait_for(
        "every event delivered from memory",
        Duration::from_secs(60),
        || async { feeder.outbox.is_empty() },
    )
    .await;
    let h = feeder.status.status(protocol::SensorState::Online).health;
    assert!(
        h.outbox_unwritten >= 150,
        "the full disk was felt (events held in memory): {h:?}"
    );
    assert_eq!(
        h.outbox_dropped, 0,
        "nothing dropped while the link is up: {h:?}"
    );
    assert_eq!(h.outbox_in_memory, 0, "{h:?}");
    let (_, ids) = feeder.finish().await;
    server.stop().await;
    let stored = live::stored_ids(&db, "gap").await;
    live::assert_exactly_once(&stored, &ids, "an agent with a full disk");

    // No link and no room: held up to the memory's limit, the rest dropped and counted; once
    // the disk has room again, what waits in memory goes to disk.
    let ob = Outbox::open(&disk.path.join("offline"), 1_000)
        .map(|o| o.with_memory_limit(5))
        .expect("outbox");
    let e = Entry {
        topic: "centinela/v1/test-prison/full-1/gap".into(),
        payload: "{}".into(),
    };
    let accepted = (0..20).filter(|_| ob.push(&e, false).is_ok()).count();
    assert_eq!(accepted, 5, "held in memory up to its limit");
    assert_eq!(ob.dropped(), 15, "the rest dropped, and counted");
    assert_eq!(ob.in_memory(), 5);
    disk.free();
    ob.push(&e, false).expect("room again");
    assert_eq!(ob.in_memory(), 0, "what waited in memory is on disk now");
    assert_eq!(ob.len(), 6);
}
