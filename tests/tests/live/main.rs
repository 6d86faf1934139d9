//! The whole system over real brokers and servers
//! (`cargo test -p centinela-tests --test live MODULE::`).
//! One binary: every file used to link the whole crate graph on its own.

mod access;
mod durability;
mod hostile;
mod national;
mod system;
mod trust;
