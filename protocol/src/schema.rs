//! JSON Schemas (draft 2020-12) of the message kinds, generated from the serde types so that
//! they cannot drift. The committed copies under `protocol/schemas/` are what other tools read;
//! a test checks they equal what this module generates.

use schemars::{JsonSchema, generate::SchemaSettings};

use crate::{GapEvent, JammerEvent, Kind, SpectrumSummary, StatusEvent};

fn generate<T: JsonSchema>(id: &str) -> serde_json::Value {
    let mut g = SchemaSettings::draft2020_12().into_generator();
    let mut v = g.root_schema_for::<T>().to_value();
    if let Some(o) = v.as_object_mut() {
        o.insert("$id".into(), serde_json::Value::String(id.to_string()));
    }
    v
}

/// The JSON Schema of a message kind.
#[must_use]
pub fn json_schema(kind: Kind) -> serde_json::Value {
    let id = format!(
        "https://centinela.invalid/schemas/{}.schema.json",
        kind.as_str()
    );
    match kind {
        Kind::Gap => generate::<GapEvent>(&id),
        Kind::Jammer => generate::<JammerEvent>(&id),
        Kind::Status => generate::<StatusEvent>(&id),
        Kind::Spectrum => generate::<SpectrumSummary>(&id),
    }
}

/// File name of a kind's committed schema, under `protocol/schemas/`.
#[must_use]
pub fn file_name(kind: Kind) -> String {
    format!("{}.schema.json", kind.as_str())
}

/// The JSON Schema of commit receipts (`receipt.schema.json`).
#[must_use]
pub fn receipt_schema() -> serde_json::Value {
    generate::<crate::Receipt>("https://centinela.invalid/schemas/receipt.schema.json")
}

/// The JSON Schema of the signed envelope around every message (`signed.schema.json`).
#[must_use]
pub fn signed_schema() -> serde_json::Value {
    generate::<crate::signed::EnvelopeSchema>(
        "https://centinela.invalid/schemas/signed.schema.json",
    )
}

/// Every message kind.
pub const KINDS: [Kind; 4] = [Kind::Gap, Kind::Jammer, Kind::Status, Kind::Spectrum];
