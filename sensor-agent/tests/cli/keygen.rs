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
