//! `sensor-agent run`: the long-running agent. A scanning thread sweeps the plan with the radio
//! and feeds the trackers; their events go into the persistent [`outbox`], which the
//! [`publisher`] drains to the broker.

pub mod config;
pub mod outbox;
pub mod publisher;
mod run;
pub mod sequence;
pub mod session;
pub mod signer;

pub use run::{RunReport, run};
