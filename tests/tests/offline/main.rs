//! Checks against reference tools and recordings, no server
//! (`cargo test -p centinela-tests --test offline MODULE::`).
//! One binary: every file used to link the whole crate graph on its own.

mod fuzz;
mod json_schema_python;
mod nr_py3gpp;
mod sigmf_roundtrip;
mod sim_scenes;
