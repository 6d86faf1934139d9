//! With the `soapy` feature, builds the SigMF-playback SoapySDR module (C++) so that tests and
//! engineers can feed recordings through the real libSoapySDR.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=soapy-sigmf/sigmf_device.cpp");
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_SOAPY").is_none() {
        return;
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("soapy-modules");
    std::fs::create_dir_all(&out).expect("create module dir");
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", "SoapySDR"])
        .output()
        .expect("pkg-config must be installed (apt-get install pkg-config libsoapysdr-dev)");
    assert!(
        flags.status.success(),
        "pkg-config cannot find SoapySDR: apt-get install libsoapysdr-dev"
    );
    let flags = String::from_utf8_lossy(&flags.stdout).to_string();
    let lib = out.join("libcentinelaSigmf.so");
    let status = Command::new("g++")
        .args([
            "-std=c++17",
            "-O2",
            "-shared",
            "-fPIC",
            "-Wall",
            "-Wextra",
            "-o",
        ])
        .arg(&lib)
        .arg("soapy-sigmf/sigmf_device.cpp")
        .args(flags.split_whitespace())
        .status()
        .expect("g++ must be installed");
    assert!(
        status.success(),
        "building the SigMF SoapySDR module failed"
    );
    println!(
        "cargo:rustc-env=CENTINELA_SOAPY_SIGMF_MODULE_DIR={}",
        out.display()
    );
}
