//! Forgeries against the signed ingest, over the embedded broker and Mosquitto: a client that
//! speaks for a registered sensor without its key (unsigned, signed by another key, a signature
//! that no longer fits the bytes), for a sensor nobody registered, for a revoked sensor, and a
//! replay of a used sequence number. Each is refused, counted by reason, listed, and the
//! sensors it named raise one `tamper` alert each; the honest sensor's gap stays as it said.
//! A deliberate gap in the honest sensor's numbers shows as missing messages.

use std::time::Duration;

use centinela_tests::Mosquitto;
use centinela_tests::live::{self, Fleet, Sealer, counter, gap, get, test_key, wait_for};
use protocol::GapState;
use protocol::signed::SensorKey;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, MqttOptions};

const FAC: &str = "trust-prison";

fn topic(sensor: &str) -> String {
    format!("centinela/v1/{FAC}/{sensor}/gap")
}

fn json(g: &protocol::GapEvent) -> Vec<u8> {
    serde_json::to_vec(g).expect("json")
}

async fn forgeries(broker_port: Option<u16>) {
    let dir = tempfile::tempdir().expect("dir");
    let fleet = Fleet::new().with(FAC, &["honest"]).revoked(FAC, "stolen");
    let server =
        live::start_server(broker_port, &dir.path().join("c.db"), "srv-trust", &fleet).await;
    let port = broker_port.unwrap_or(server.broker.1);
    let mut o = MqttOptions::new("forger", "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(10));
    let (client, mut el) = AsyncClient::new(o, 64);
    tokio::spawn(async move { while el.poll().await.is_ok() {} });
    let send = |t: String, p: Vec<u8>| {
        let c = client.clone();
        async move {
            c.publish(t, QoS::AtLeastOnce, false, p)
                .await
                .expect("publish");
        }
    };
    // The honest sensor opens a gap (a real leak), signed with its key.
    let honest = Sealer::default();
    let open = gap(FAC, "honest", 0);
    let open_bytes = honest.seal(&topic("honest"), &json(&open));
    send(topic("honest"), open_bytes.clone()).await;
    wait_for("the honest gap", Duration::from_secs(10), || async {
        live::stored_count(&server, "gap").await == 1
    })
    .await;

    // Forgeries: each tries to close the honest sensor's gap (the all-clear an insider wants).
    let mut closed = open.clone();
    closed.state = GapState::Closed;
    closed.observed_at = time::OffsetDateTime::now_utc();
    closed.event_id = protocol::event_id(closed.observed_at, b"forged all-clear");
    let forger = SensorKey::from_seed(&[0x66; 32]);
    // 1. unsigned;
    send(topic("honest"), json(&closed)).await;
    // 2. signed with the forger's own key;
    send(
        topic("honest"),
        forger
            .seal(&topic("honest"), 99, &json(&closed))
            .expect("seal"),
    )
    .await;
    // 3. the honest envelope of the open gap, its message edited to say closed;
    let edited = String::from_utf8(open_bytes.clone())
        .expect("utf8")
        .replace("\"state\":\"open\"", "\"state\":\"closed\"");
    assert_ne!(
        edited.as_bytes(),
        &open_bytes[..],
        "the edit changed the bytes"
    );
    send(topic("honest"), edited.into_bytes()).await;
    // 4. a sensor no one registered;
    let ghost = gap(FAC, "ghost", 0);
    send(
        topic("ghost"),
        test_key(FAC, "ghost")
            .seal(&topic("ghost"), 1, &json(&ghost))
            .expect("seal"),
    )
    .await;
    // 5. a revoked sensor, with its (stolen) key;
    let stolen = gap(FAC, "stolen", 0);
    send(
        topic("stolen"),
        test_key(FAC, "stolen")
            .seal(&topic("stolen"), 1, &json(&stolen))
            .expect("seal"),
    )
    .await;
    // 6. a replay: the honest key's number 1 (already used by the open gap) on other bytes —
    //    what a sensor whose counter was restored from an old backup, or a clone, would send.
    send(
        topic("honest"),
        test_key(FAC, "honest")
            .seal(&topic("honest"), 1, &json(&closed))
            .expect("seal"),
    )
    .await;
    // 7. and the honest bytes again (a resend): a duplicate, not an attack.
    send(topic("honest"), open_bytes.clone()).await;
    wait_for("six refusals", Duration::from_secs(10), || async {
        server.metrics.rejected_total() == 6
    })
    .await;
    let m = server.metrics.render();
    for reason in [
        "unsigned",
        "wrong_key",
        "bad_signature",
        "unknown_sensor",
        "revoked",
        "replayed",
    ] {
        assert_eq!(
            counter(
                &m,
                &format!("centinela_messages_rejected_total{{reason=\"{reason}\"}}")
            ),
            1,
            "{reason}: {m}"
        );
    }
    assert_eq!(counter(&m, "centinela_events_duplicate_total"), 1, "{m}");
    // One tamper alert per named registered sensor (honest: four refusals; stolen: one), none
    // for the ghost.
    wait_for("the tamper alerts", Duration::from_secs(5), || async {
        counter(
            &server.metrics.render(),
            "centinela_alerts_total{kind=\"tamper\"}",
        ) == 2
    })
    .await;
    let rejects = get(&server, "/api/rejects").await;
    let reasons: Vec<&str> = rejects["latest"]
        .as_array()
        .expect("latest")
        .iter()
        .filter_map(|r| r["reason"].as_str())
        .collect();
    for want in [
        "unsigned",
        "wrong_key",
        "bad_signature",
        "unknown_sensor",
        "revoked",
        "replayed",
    ] {
        assert!(reasons.contains(&want), "{want} listed: {rejects}");
    }
    let gaps = get(&server, &format!("/api/facilities/{FAC}/gaps")).await;
    let rows = gaps.as_array().expect("gaps");
    assert_eq!(rows.len(), 1, "the leak is still shown: {gaps}");
    assert_eq!(rows[0]["state"], "open", "{gaps}");
    assert_eq!(rows[0]["sensor_id"], "honest", "{gaps}");

    // A deliberate gap: the honest sensor's numbers 2–6 never sent, 7 sent.
    honest.skip(FAC, "honest", 5);
    let next = gap(FAC, "honest", 8);
    send(topic("honest"), honest.seal(&topic("honest"), &json(&next))).await;
    let now = time::OffsetDateTime::now_utc();
    let status = protocol::StatusEvent {
        schema: protocol::STATUS_SCHEMA.into(),
        event_id: protocol::event_id(now, b"honest hello"),
        facility_id: FAC.into(),
        sensor_id: "honest".into(),
        observed_at: now,
        state: protocol::SensorState::Online,
        connected_at: Some(now),
        zone: "patio".into(),
        position_m: None,
        agent_version: "test".into(),
        heartbeat_s: 10.0,
        unreachable_bands: vec![],
        health: protocol::SensorHealth::default(),
    };
    let st = format!("centinela/v1/{FAC}/honest/status");
    send(
        st.clone(),
        honest.seal(&st, &serde_json::to_vec(&status).expect("json")),
    )
    .await;
    let sensors_path = format!("/api/facilities/{FAC}/sensors");
    wait_for("the sensor listed", Duration::from_secs(10), || async {
        get(&server, &sensors_path)
            .await
            .as_array()
            .is_some_and(|a| !a.is_empty())
    })
    .await;
    let sensors = get(&server, &sensors_path).await;
    assert_eq!(sensors[0]["last_seq"], 8, "{sensors}");
    assert_eq!(
        sensors[0]["missing_messages"], 5,
        "numbers 2–6 never came: {sensors}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgeries_are_refused_counted_and_alerted_on_the_embedded_broker() {
    forgeries(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgeries_are_refused_counted_and_alerted_through_mosquitto() {
    let Some(mq) = Mosquitto::start() else {
        return;
    };
    forgeries(Some(mq.port)).await;
}
