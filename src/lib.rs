//! EterneCluster: a high-availability cluster engine for Linux.
//!
//! # Layout
//!
//! - [`policy`]: every decision, as pure state machines. No IO, no clock reads, no threads, no
//!   global randomness: time comes in as `now_us`, randomness as a seed. The simulator and the
//!   daemon drive the same code.
//! - [`config`]: `cluster.toml` — the typed schema, loading, validation, and the resolution of
//!   names into the index-based [`policy::spec::ClusterSpec`] the cores work on.
//! - [`storage`]: the consensus log on disk (fsync), behind raft-rs's `Storage` trait.
//! - [`actors`], [`transport`], [`resources`]: the runtime shells (actors, QUIC, agents).
//!
//! The deterministic simulator lives in `simulations/` and is compiled as the `eterne-sim`
//! binary and as a test target.
#![deny(missing_docs)]

pub mod actors;
pub mod config;
pub mod policy;
pub mod resources;
pub mod storage;
pub mod transport;
