//! The committed JSON Schemas checked by an implementation we did not write: Python's
//! `jsonschema` (draft 2020-12) validates real messages and rejects broken ones.

use std::process::Command;

use centinela_tests::{output_ok, python_with};
use protocol::{
    GAP_SCHEMA, GapEvent, GapState, JAMMER_SCHEMA, JammerEvent, JammerStateWire, STATUS_SCHEMA,
    SensorHealth, SensorState, Severity, StatusEvent, Technology, event_id,
};
use time::OffsetDateTime;

const SCRIPT: &str = r#"
import json, sys, pathlib
from jsonschema import Draft202012Validator
schemas = pathlib.Path(sys.argv[1])
cases = json.load(open(sys.argv[2]))
out = []
for kind, msg in cases:
    schema = json.load(open(schemas / f"{kind}.schema.json"))
    Draft202012Validator.check_schema(schema)
    errors = sorted(e.message for e in Draft202012Validator(schema).iter_errors(msg))
    out.append(errors)
print(json.dumps(out))
"#;

#[test]
fn python_jsonschema_accepts_real_messages_and_rejects_broken_ones() {
    let Some(python) = python_with("jsonschema", "CENTINELA_REQUIRE_JSONSCHEMA") else {
        return;
    };
    let t = OffsetDateTime::from_unix_timestamp(1_790_000_000).expect("t");
    let gap = serde_json::to_value(GapEvent {
        schema: GAP_SCHEMA.into(),
        event_id: event_id(t, b"g"),
        facility_id: "f".into(),
        sensor_id: "s".into(),
        observed_at: t,
        gap_key: "n78/nr/3500.0MHz".into(),
        state: GapState::Open,
        zone: "z".into(),
        band: "n78".into(),
        technology: Technology::Nr,
        center_hz: 3.5e9,
        bandwidth_hz: 38e6,
        cell: None,
        power_dbm: None,
        floor_dbm: None,
        power_dbfs: -40.0,
        floor_dbfs: -70.0,
        margin_db: 25.0,
        severity: Severity::Critical,
        detector: protocol::Detector::Energy,
        evidence: None,
    })
    .expect("json");
    let jammer = serde_json::to_value(JammerEvent {
        schema: JAMMER_SCHEMA.into(),
        event_id: event_id(t, b"j"),
        facility_id: "f".into(),
        sensor_id: "s".into(),
        observed_at: t,
        zone: "z".into(),
        band: "B5".into(),
        state: JammerStateWire::Down,
        noise_rise_db: 0.5,
        floor_dbm_per_hz: -167.5,
        covered_fraction: 0.0,
    })
    .expect("json");
    let status = serde_json::to_value(StatusEvent {
        schema: STATUS_SCHEMA.into(),
        event_id: event_id(t, b"s"),
        facility_id: "f".into(),
        sensor_id: "s".into(),
        observed_at: t,
        state: SensorState::Offline,
        connected_at: None,
        zone: "z".into(),
        position_m: None,
        agent_version: "0.1.0".into(),
        heartbeat_s: 10.0,
        unreachable_bands: vec![],
        health: SensorHealth::default(),
        will_seq: None,
    })
    .expect("json");
    let mut no_band = gap.clone();
    no_band.as_object_mut().expect("o").remove("band");
    let mut bad_severity = gap.clone();
    bad_severity["severity"] = "apocalyptic".into();
    let mut wrong_schema = jammer.clone();
    wrong_schema["schema"] = GAP_SCHEMA.into();
    let key = protocol::signed::SensorKey::generate().expect("key");
    let sealed = key
        .seal(
            "centinela/v1/f/s/gap",
            1,
            &serde_json::to_vec(&gap).expect("json"),
        )
        .expect("seal");
    let signed: serde_json::Value = serde_json::from_slice(&sealed).expect("json");
    let mut short_sig = signed.clone();
    short_sig["sig"] = "AAAA".into();
    let cases = serde_json::json!([
        ["gap", gap],
        ["jammer", jammer],
        ["status", status],
        ["gap", no_band],
        ["gap", bad_severity],
        ["jammer", wrong_schema],
        ["signed", signed],
        ["signed", short_sig],
    ]);
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("cases.json");
    std::fs::write(&file, cases.to_string()).expect("write");
    let schemas = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../protocol/schemas");
    let out = output_ok(
        Command::new(python)
            .arg("-c")
            .arg(SCRIPT)
            .arg(&schemas)
            .arg(&file),
        "python jsonschema",
    );
    let errors: Vec<Vec<String>> = serde_json::from_slice(&out.stdout).expect("json");
    for (i, name) in ["gap", "jammer", "status"].iter().enumerate() {
        assert!(errors[i].is_empty(), "{name} is valid: {:?}", errors[i]);
    }
    assert!(
        errors[3].iter().any(|e| e.contains("band")),
        "{:?}",
        errors[3]
    );
    assert!(
        errors[4].iter().any(|e| e.contains("apocalyptic")),
        "{:?}",
        errors[4]
    );
    assert!(
        !errors[5].is_empty(),
        "a jammer event cannot claim the gap schema"
    );
    assert!(
        errors[6].is_empty(),
        "a sealed envelope is valid: {:?}",
        errors[6]
    );
    assert!(
        errors[7].iter().any(|e| e.contains("does not match")),
        "a cut signature is not: {:?}",
        errors[7]
    );
}
