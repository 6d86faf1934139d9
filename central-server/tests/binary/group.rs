//! Several `central-server` processes sharing ingest through an MQTT v5 shared subscription
//! on one Mosquitto (with the files `broker-config` writes) and one PostgreSQL database: both
//! store, every event is stored once, each alert is recorded once; then one server is killed
//! with SIGKILL in the middle of the stream, and the other carries on: nothing is lost or
//! doubled, and no alert is said twice but one whose server died before settling it (sent
//! again under the same `alert_id`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use centinela_tests::Mosquitto;
use centinela_tests::live::{
    Feeder, Fleet, ServerProcess, assert_exactly_once, stored_ids, wait_for,
};
use centinela_tests::testdb::Backend;

use crate::BIN;

const FAC: &str = "group-prison";
const SENSORS: usize = 4;
const EVENTS: u32 = 1200;

/// A token that may read `/metrics`, made in the group's database.
async fn metrics_token(db: &central_server::db::Database) -> String {
    use central_server::auth::{Role, Scope, Users};
    let store = central_server::store::Store::open(db).await.expect("store");
    let users = Users::new(&store);
    users
        .add(
            "ops",
            Role::Admin,
            &[],
            &protocol::Secret::new("a long operator password"),
            "test",
        )
        .await
        .expect("user");
    let (_, t) = users
        .add_token("ops", "prometheus", Scope::Metrics, "test")
        .await
        .expect("token");
    store.pool().close().await;
    t.expose().to_string()
}

/// How many events a server stored, from its metrics.
async fn stored_by(s: &ServerProcess, token: &str) -> u64 {
    let Ok(r) = reqwest::Client::new()
        .get(format!("http://{}/metrics", s.http))
        .bearer_auth(token)
        .send()
        .await
    else {
        return 0;
    };
    let body = r.text().await.unwrap_or_default();
    body.lines()
        .filter(|l| l.starts_with("centinela_events_stored_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_shares_ingest_and_survives_the_sigkill_of_a_member() {
    let dir = tempfile::tempdir().expect("dir");
    let Some(db) = Backend::Postgres.open(dir.path()).await else {
        return;
    };
    let names: Vec<String> = (0..SENSORS).map(|i| format!("g{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let fleet = Fleet::new().with(FAC, &refs);
    let broker_dir = dir.path().join("broker");
    // The sensors' broker users with their test passwords; broker-config keeps them and adds
    // the server's user, the ACL and the Mosquitto fragment.
    fleet.write_broker(&broker_dir);
    let (hook, alerts) = centinela_tests::live::webhook().await;
    let mut cfg: central_server::config::ServerConfig =
        toml::from_str(&fleet.toml()).expect("configuration");
    cfg.server.db = db.db.clone();
    cfg.server.data_dir = Some(dir.path().to_path_buf());
    cfg.server.shared_group = Some("centinela".into());
    cfg.server.webhook = Some(hook);
    // Each member logs in as its own broker user (Mosquitto gives each login its user name as
    // client id): made before the broker starts.
    central_server::credentials::broker_config_with(
        &cfg,
        &broker_dir,
        &central_server::credentials::BrokerOptions {
            instances: vec!["a".into(), "b".into()],
            group: None,
        },
    )
    .expect("broker-config");
    let fragment = std::fs::read_to_string(broker_dir.join(central_server::credentials::CONF_FILE))
        .expect("fragment");
    let Some(mq) = Mosquitto::start_with(&fragment) else {
        return;
    };
    cfg.server.broker = Some(format!("mqtt://127.0.0.1:{}", mq.port));
    let config = dir.path().join("server.toml");
    std::fs::write(&config, toml::to_string(&cfg).expect("toml")).expect("config");
    let args = |instance: &str| {
        vec![
            "--config".to_string(),
            config.display().to_string(),
            "--instance".to_string(),
            instance.to_string(),
        ]
    };
    let mut a = ServerProcess::start(Path::new(BIN), &args("a"), &dir.path().join("a.log"));
    let token = metrics_token(&db.db).await;
    let mut b = ServerProcess::start(Path::new(BIN), &args("b"), &dir.path().join("b.log"));
    let mut feeders: Vec<Feeder> = names
        .iter()
        .map(|s| Feeder::start(&dir.path().join(s), mq.port, FAC, s, Duration::from_secs(3)))
        .collect();
    let stored = || async { stored_ids(&db, "gap").await.len() };
    // A third of the stream with both servers up: both store.
    for n in 0..EVENTS / 3 {
        for f in &mut feeders {
            f.push(n);
        }
        if n % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let third = SENSORS * (EVENTS as usize / 3);
    wait_for("a third stored", Duration::from_secs(60), || async {
        stored().await >= third
    })
    .await;
    let (by_a, by_b) = (stored_by(&a, &token).await, stored_by(&b, &token).await);
    assert!(
        by_a > 0 && by_b > 0,
        "both members of the group store: a {by_a}, b {by_b}"
    );
    // The rest, and server `a` killed while it flows.
    for n in EVENTS / 3..EVENTS {
        for f in &mut feeders {
            f.push(n);
        }
        if n == EVENTS / 2 {
            a.kill();
        }
        if n % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    wait_for(
        "every outbox emptied by b's receipts",
        Duration::from_secs(120),
        || async { feeders.iter().all(|f| f.outbox.is_empty()) },
    )
    .await;
    let after_kill = stored_by(&b, &token).await;
    assert!(after_kill > by_b, "b carries on: {by_b} → {after_kill}");
    let mut sent = Vec::new();
    for f in feeders {
        sent.extend(f.finish().await.1);
    }
    let ids = stored_ids(&db, "gap").await;
    assert_exactly_once(&ids, &sent, "a group with a member killed");
    // Alerts: each sensor's seven gaps open critical once, and each sensor says goodbye once.
    let pool = db.reader().await;
    wait_for(
        "every sensor's goodbye",
        Duration::from_secs(20),
        || async {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sensors WHERE state = 'offline'")
                .fetch_one(&pool)
                .await
                .expect("count");
            n == SENSORS as i64
        },
    )
    .await;
    let recorded: Vec<(i64, String, String, String, Option<String>, i64)> = sqlx::query_as(
        "SELECT id, kind, sensor_id, coalesce(claimed_by, ''), outcome, attempts FROM alerts ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .expect("alerts");
    let mut per: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (_, kind, sensor, ..) in &recorded {
        *per.entry((kind.clone(), sensor.clone())).or_default() += 1;
    }
    for s in &names {
        assert_eq!(
            per.get(&("critical_gap".into(), s.clone())),
            Some(&7),
            "{s}: seven gaps, one alert each: {per:?}"
        );
        assert_eq!(
            per.get(&("sensor_offline".into(), s.clone())),
            Some(&1),
            "{s}: one goodbye: {per:?}"
        );
    }
    wait_for(
        "every alert said (the dead server's claims run out in 30 s)",
        Duration::from_secs(60),
        || async {
            let unsettled: i64 =
                sqlx::query_scalar("SELECT count(*) FROM alerts WHERE outcome IS NULL")
                    .fetch_one(&pool)
                    .await
                    .expect("count");
            unsettled == 0
        },
    )
    .await;
    let posted: Vec<i64> = alerts
        .lock()
        .expect("lock")
        .iter()
        .filter_map(|v| v["alert_id"].as_i64())
        .collect();
    let mut distinct = posted.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct,
        recorded.iter().map(|r| r.0).collect::<Vec<_>>(),
        "every recorded alert reached the webhook"
    );
    // An alert posted twice is one whose first server died before settling it.
    for id in &distinct {
        let times = posted.iter().filter(|p| *p == id).count();
        if times > 1 {
            let r = recorded.iter().find(|r| r.0 == *id).expect("recorded");
            assert!(
                r.5 >= 2,
                "alert {id} was posted {times} times without a second attempt: {r:?}"
            );
        }
    }
    eprintln!(
        "group: a stored {by_a} before its SIGKILL window, b {after_kill} in all; {} alerts recorded, {} posts",
        recorded.len(),
        posted.len()
    );
    pool.close().await;
    b.stop();
}
