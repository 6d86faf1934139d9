//! Decoding checks and the committed JSON Schemas.

use protocol::schema::{KINDS, file_name, json_schema, receipt_schema, signed_schema};
use protocol::{
    DecodeError, GAP_SCHEMA, Kind, Message, STATUS_SCHEMA, SensorHealth, SensorState, StatusEvent,
    decode, event_id,
};
use time::OffsetDateTime;

fn gap_json() -> serde_json::Value {
    serde_json::json!({
        "schema": GAP_SCHEMA,
        "event_id": "0199a0e4-6c00-7000-8000-000000000001",
        "facility_id": "la-picota", "sensor_id": "pab-a",
        "observed_at": "2026-11-26T10:00:00Z",
        "gap_key": "B28/lte/pci210/778.0MHz", "state": "open", "zone": "pabellon-a", "band": "B28",
        "technology": "lte", "center_hz": 778e6, "bandwidth_hz": 9e6,
        "cell": {"pci": 210, "earfcn": 9410},
        "power_dbfs": -60.0, "floor_dbfs": -58.0, "margin_db": 4.0,
        "severity": "high", "detector": "sync"
    })
}

const GAP_TOPIC: &str = "centinela/v1/la-picota/pab-a/gap";

#[test]
fn a_good_gap_decodes() {
    let m = decode(GAP_TOPIC, gap_json().to_string().as_bytes()).expect("decodes");
    let Message::Gap(g) = m else {
        panic!("not a gap: {m:?}")
    };
    assert_eq!(g.cell.and_then(|c| c.pci), Some(210));
    assert_eq!(g.margin_db, 4.0);
}

#[test]
fn each_kind_of_bad_message_is_rejected_with_its_reason() {
    let good = gap_json();
    let mut cases: Vec<(&str, String, &str)> = vec![
        ("centinela/v1/la-picota/gap", good.to_string(), "topic"),
        (GAP_TOPIC, "{not json".into(), "json"),
        (GAP_TOPIC, "[1,2]".into(), "json"),
        (GAP_TOPIC, "x".repeat(70_000), "too_large"),
    ];
    let mut v = good.clone();
    v["schema"] = "centinela.jammer/1".into();
    cases.push((GAP_TOPIC, v.to_string(), "schema"));
    let mut v = good.clone();
    v["schema"] = "centinela.gap/2".into();
    cases.push((GAP_TOPIC, v.to_string(), "schema"));
    let mut v = good.clone();
    v.as_object_mut().expect("object").remove("band");
    cases.push((GAP_TOPIC, v.to_string(), "fields"));
    let mut v = good.clone();
    v["severity"] = "apocalyptic".into();
    cases.push((GAP_TOPIC, v.to_string(), "fields"));
    let mut v = good.clone();
    v["facility_id"] = "other-prison".into();
    cases.push((GAP_TOPIC, v.to_string(), "mismatch"));
    let mut v = good.clone();
    v["sensor_id"] = "yard".into();
    cases.push((GAP_TOPIC, v.to_string(), "mismatch"));
    let mut v = good.clone();
    v["center_hz"] = (-5.0).into();
    cases.push((GAP_TOPIC, v.to_string(), "value"));
    let mut v = good.clone();
    v["cell"]["pci"] = 2000.into();
    cases.push((GAP_TOPIC, v.to_string(), "value"));
    let mut v = good.clone();
    v["observed_at"] = "1970-01-01T00:00:00Z".into();
    cases.push((GAP_TOPIC, v.to_string(), "value"));
    // Identifiers outside their vocabulary: markup, a key of another band, odd characters.
    for (field, bad) in [
        ("band", "<img src=x onerror=alert(1)>"),
        ("band", "B28 "),
        ("band", "28"),
        ("gap_key", "B28/<script>/1"),
        ("gap_key", "B7/lte/pci1/2655.0MHz"),
        ("gap_key", "B28/"),
        ("gap_key", "B28/lte/pci210/778.0MHz\u{202e}"),
    ] {
        let mut v = good.clone();
        v[field] = bad.into();
        cases.push((GAP_TOPIC, v.to_string(), "value"));
    }
    for (topic, payload, reason) in cases {
        let e = decode(topic, payload.as_bytes()).expect_err(&format!("{topic} {payload:.80}"));
        assert_eq!(e.reason(), reason, "{e}");
        let msg = e.to_string();
        if !matches!(e, DecodeError::Topic(_)) {
            assert!(msg.starts_with(GAP_TOPIC), "names the topic: {msg}");
        }
    }
}

#[test]
fn status_round_trips_through_decode() {
    let t = OffsetDateTime::from_unix_timestamp(1_790_000_000).expect("time");
    let s = StatusEvent {
        schema: STATUS_SCHEMA.into(),
        event_id: event_id(t, b"status"),
        facility_id: "f".into(),
        sensor_id: "s".into(),
        observed_at: t,
        state: SensorState::Online,
        connected_at: Some(t),
        zone: "yard".into(),
        position_m: Some([10.0, 20.0]),
        agent_version: "0.1.0".into(),
        heartbeat_s: 10.0,
        unreachable_bands: vec!["n78".into()],
        health: SensorHealth {
            sweeps: 3,
            queue_depth: 2,
            ..SensorHealth::default()
        },
        will_seq: Some(41),
    };
    let bytes = serde_json::to_vec(&s).expect("ser");
    let back = decode("centinela/v1/f/s/status", &bytes).expect("decode");
    assert_eq!(back, Message::Status(s));
    assert!(decode("centinela/v1/f/s/gap", &bytes).is_err());
}

/// The committed schemas equal the generated ones. `CENTINELA_BLESS=1` rewrites them.
#[test]
fn committed_schemas_are_current() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let bless = std::env::var_os("CENTINELA_BLESS").is_some();
    let all = KINDS
        .iter()
        .map(|k| (file_name(*k), json_schema(*k)))
        .chain([
            ("receipt.schema.json".to_string(), receipt_schema()),
            ("signed.schema.json".to_string(), signed_schema()),
        ]);
    for (name, schema) in all {
        let path = dir.join(name);
        let generated = serde_json::to_string_pretty(&schema).expect("json") + "\n";
        if bless {
            std::fs::write(&path, &generated).expect("write schema");
        }
        let committed =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            committed,
            generated,
            "{} is stale: run with CENTINELA_BLESS=1",
            path.display()
        );
    }
}

#[test]
fn schemas_pin_the_schema_name_and_require_the_envelope() {
    for kind in KINDS {
        let s = json_schema(kind);
        let name = protocol::schema_name(kind);
        assert_eq!(s["properties"]["schema"]["const"], name, "{kind:?}");
        let required: Vec<&str> = s["required"]
            .as_array()
            .expect("required")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        for f in [
            "schema",
            "event_id",
            "facility_id",
            "sensor_id",
            "observed_at",
        ] {
            assert!(required.contains(&f), "{kind:?} requires {f}");
        }
        assert_eq!(
            s["properties"]["observed_at"]["format"], "date-time",
            "{kind:?}"
        );
    }
    assert_eq!(Kind::Gap.as_str(), "gap");
}

/// A message's time cannot run ahead of the receiver's clock (a `closed` gap dated 2199 once hid
/// a real leak for good) nor be absurdly old; a Last Will may be old.
#[test]
fn observed_at_is_bounded_by_the_receivers_clock() {
    let now = OffsetDateTime::parse(
        "2026-11-26T10:00:00Z",
        &time::format_description::well_known::Rfc3339,
    )
    .expect("time");
    let b = protocol::TimeBounds {
        now,
        max_skew: time::Duration::minutes(5),
        max_age: time::Duration::days(90),
    };
    let at = |v: &str| {
        let mut g = gap_json();
        g["observed_at"] = v.into();
        decode(GAP_TOPIC, g.to_string().as_bytes()).expect("decodes")
    };
    assert!(at("2026-11-26T10:00:00Z").check_time(GAP_TOPIC, &b).is_ok());
    assert!(at("2026-11-26T10:04:59Z").check_time(GAP_TOPIC, &b).is_ok());
    let e = at("2199-01-01T00:00:00Z")
        .check_time(GAP_TOPIC, &b)
        .expect_err("future");
    assert_eq!(e.reason(), "future");
    assert!(e.is_transient());
    assert!(e.to_string().contains("ahead"), "{e}");
    let e = at("2026-11-26T10:05:01Z")
        .check_time(GAP_TOPIC, &b)
        .expect_err("just past the skew");
    assert_eq!(e.reason(), "future");
    let e = at("2026-01-01T00:00:00Z")
        .check_time(GAP_TOPIC, &b)
        .expect_err("old");
    assert_eq!(e.reason(), "too_old");
    assert!(!e.is_transient());
    // A Last Will carries the start of its connection, which may be months ago.
    let t = now - time::Duration::days(200);
    let will = StatusEvent {
        schema: STATUS_SCHEMA.into(),
        event_id: event_id(t, b"will"),
        facility_id: "f".into(),
        sensor_id: "s".into(),
        observed_at: t,
        state: SensorState::Offline,
        connected_at: Some(t),
        zone: "yard".into(),
        position_m: None,
        agent_version: "0.1.0".into(),
        heartbeat_s: 10.0,
        unreachable_bands: vec![],
        health: SensorHealth::default(),
        will_seq: None,
    };
    let m = Message::Status(will.clone());
    assert!(m.check_time("centinela/v1/f/s/status", &b).is_ok());
    let mut online = will;
    online.state = SensorState::Online;
    assert_eq!(
        Message::Status(online)
            .check_time("centinela/v1/f/s/status", &b)
            .map_err(|e| e.reason()),
        Err("too_old")
    );
    for reason in DecodeError::REASONS {
        assert!(!reason.is_empty());
    }
}

/// A status cannot announce a heartbeat that would keep a stopped sensor "online" for a day.
#[test]
fn heartbeat_periods_are_bounded() {
    let t = OffsetDateTime::from_unix_timestamp(1_790_000_000).expect("time");
    let mut s = StatusEvent {
        schema: STATUS_SCHEMA.into(),
        event_id: event_id(t, b"hb"),
        facility_id: "f".into(),
        sensor_id: "s".into(),
        observed_at: t,
        state: SensorState::Online,
        connected_at: Some(t),
        zone: "yard".into(),
        position_m: None,
        agent_version: "0.1.0".into(),
        heartbeat_s: 86_400.0,
        unreachable_bands: vec![],
        health: SensorHealth::default(),
        will_seq: None,
    };
    let topic = "centinela/v1/f/s/status";
    let e = decode(topic, &serde_json::to_vec(&s).expect("json")).expect_err("a day");
    assert_eq!(e.reason(), "value");
    assert!(e.to_string().contains("heartbeat_s"), "{e}");
    s.heartbeat_s = protocol::MAX_HEARTBEAT_S;
    assert!(decode(topic, &serde_json::to_vec(&s).expect("json")).is_ok());
    s.heartbeat_s = 0.1;
    assert!(decode(topic, &serde_json::to_vec(&s).expect("json")).is_err());
    s.heartbeat_s = 10.0;
    s.connected_at = Some(t + time::Duration::seconds(1));
    assert!(decode(topic, &serde_json::to_vec(&s).expect("json")).is_err());
}
