//! The sensor-agent command line, run as a user would
//! (`cargo test -p sensor-agent --test cli MODULE::`).
//! One binary: every file used to link the whole crate graph on its own.

mod bad_input;
mod cells;
mod clips;
mod held;
mod keygen;
mod missed;
mod record;
mod recordings;
