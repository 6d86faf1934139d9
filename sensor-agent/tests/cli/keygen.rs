//! `keygen` as a technician runs it: a private key only its owner may read, the public key on
//! stdout, and both readable by OpenSSL (a PKCS#8 implementation we did not write).

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use centinela_tests::output_ok;

const BIN: &str = env!("CARGO_BIN_EXE_sensor-agent");

#[test]
fn keygen_writes_a_0600_key_that_openssl_reads_and_prints_its_public_half() {
    let dir = tempfile::tempdir().expect("tmp");
    let keys = dir.path().join("keys");
    let out = output_ok(
        Command::new(BIN).arg("keygen").arg("--out").arg(&keys),
        "sensor-agent keygen",
    );
    let printed = String::from_utf8(out.stdout).expect("utf8");
    let public: protocol::signed::PublicKey = printed.trim().parse().expect("a public key");
    let key_path = keys.join("sensor.key");
    let mode = std::fs::metadata(&key_path)
        .expect("key")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "the private key's mode");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let pem = std::fs::read_to_string(&key_path).expect("pem");
    let body = pem.lines().nth(1).expect("PEM body");
    assert!(
        !stderr.contains(body),
        "the secret must not be logged: {stderr}"
    );

    // OpenSSL derives the same public key from our file (SPKI DER: a 12-byte header, 32 bytes).
    let der = output_ok(
        Command::new("openssl")
            .args(["pkey", "-pubout", "-outform", "DER", "-in"])
            .arg(&key_path),
        "openssl pkey",
    )
    .stdout;
    assert_eq!(der.len(), 44, "Ed25519 SPKI");
    assert_eq!(der[12..], public.to_bytes());

    // A second keygen refuses, and the key stays.
    let again = Command::new(BIN)
        .arg("keygen")
        .arg("--out")
        .arg(&keys)
        .output()
        .expect("run");
    assert_eq!(again.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&key_path).expect("pem"), pem);

    // A key made by OpenSSL is read by ours.
    let theirs = dir.path().join("openssl.key");
    output_ok(
        Command::new("openssl")
            .args(["genpkey", "-algorithm", "ed25519", "-out"])
            .arg(&theirs),
        "openssl genpkey",
    );
    let text = std::fs::read_to_string(&theirs).expect("pem");
    protocol::signed::SensorKey::from_pkcs8_pem(&text).expect("an OpenSSL Ed25519 key");
}

/// `check-config` as a technician meets it: the key that is not there, the key others can read
/// and the receipt key left out are each named with its fix (exit 2); the right files pass.
#[test]
fn check_config_names_a_missing_or_open_key_and_a_missing_server_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let keys = dir.path().join("keys");
    output_ok(
        Command::new(BIN).arg("keygen").arg("--out").arg(&keys),
        "sensor-agent keygen",
    );
    let config = |key: &std::path::Path, server_key: bool| {
        let path = dir.path().join("agent.toml");
        std::fs::write(
            &path,
            format!(
                "[sensor]\nfacility = \"f\"\nid = \"s\"\nzone = \"z\"\nkey = \"{}\"\n[source]\nspec = \"sim\"\n[mqtt]\nbroker = \"mqtt://127.0.0.1:1883\"\n{}",
                key.display(),
                if server_key {
                    "server_key = \"ed25519:Ivwpd5Lwtv/Av8/bftsMCqFOAlo2XsDjQuhuOCnLdLY=\"\n"
                } else {
                    ""
                }
            ),
        )
        .expect("config");
        path
    };
    let check = |path: &std::path::Path| {
        let o = Command::new(BIN)
            .arg("check-config")
            .arg(path)
            .output()
            .expect("run");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let key = keys.join("sensor.key");
    let (code, err) = check(&config(&dir.path().join("nokey/sensor.key"), true));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("sensor.key") && err.contains("keygen"),
        "a missing key named with its fix: {err}"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (code, err) = check(&config(&key, true));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("chmod 600"), "an open key named: {err}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (code, err) = check(&config(&key, false));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("mqtt.server_key") && err.contains("receipt-key"),
        "the missing receipt key named: {err}"
    );
    let (code, err) = check(&config(&key, true));
    assert_eq!(code, Some(0), "the right files pass: {err}");
}
