//! The `central-server` binary as an operator runs it
//! (`cargo test -p central-server --test binary MODULE::`): killed mid-stream (`crash`), and
//! auditing a database copy (`audit`). One binary: each test binary links the crate graph.

mod audit;
mod crash;
mod group;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_central-server");
