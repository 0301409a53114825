//! Sans-IO logic of Tandem.
//!
//! Nothing in this crate opens a socket, reads the clock or sleeps: time comes in as a
//! `now: Instant` argument and effects go out as return values. That is what lets the
//! selection, tables and (later) the HA machine be tested deterministically.
#![forbid(unsafe_code)]

pub mod admin;
pub mod advisor;
pub mod codec;
pub mod config;
pub mod flow;
pub mod forward;
pub mod ha;
pub mod health;
pub mod manager;
pub mod replication;
pub mod sasp;
pub mod select;
pub mod sync;
