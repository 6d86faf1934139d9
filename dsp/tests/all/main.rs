//! The dsp crate's integration tests (`cargo test -p dsp --test all MODULE::`).
//! One binary: every file used to link the whole crate graph on its own.

mod bandplan_3gpp;
mod carriers;
mod lte_deep;
mod lte_search_sinr;
mod nr_bursts;
mod psd_physics;
