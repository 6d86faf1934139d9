//! Rebuild when the migrations directory changes (`store.rs` embeds its files; a test checks the
//! list against the directory).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
