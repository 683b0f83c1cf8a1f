//! EterneCluster: a high-availability cluster engine for Linux.
//!
//! # Layout
//!
//! - [`policy`]: every decision, as pure state machines. No IO, no clock reads, no threads, no
//!   global randomness: time comes in as `now_us`, randomness as a seed. The simulator and the
//!   daemon drive the same code.
//! - [`config`]: `cluster.toml` — the typed schema, loading, validation, and the resolution of
//!   names into the index-based [`policy::spec::ClusterSpec`] the cores work on.
//! - [`directio`]: opening a device for `O_DIRECT` (or buffered where refused), aligned
//!   buffers and block IO, shared by the disk path and `disk_lock`.
//! - [`ondisk`]: little-endian fields, CRC seals and FNV fingerprints of our on-disk formats.
//! - [`storage`]: the consensus log on disk (fsync), behind raft-rs's `Storage` trait.
//! - [`actors`], [`transport`], [`resources`]: the runtime shells (actors, QUIC, agents);
//!   [`actors::daemon`] is `eterned`.
//! - [`control`]: the control socket (JSON lines) that `eternectl` talks to.
//!
//! - [`fuzz`]: `eterne-fuzz`'s engine, seeded and structure-aware fuzzing of every decoder
//!   of bytes from a peer, a file, a disk or a client. Its source lives in `fuzz/engine/`,
//!   compiled into the library (like the simulator) so the binary and `tests/fuzz.rs` share it.
//!
//! - [`sim`]: the deterministic cluster simulator. Its source lives in `simulations/`; it is
//!   compiled into the library so that the `eterne-sim` binary and the tests share it.
#![deny(missing_docs)]

pub mod actors;
pub mod config;
pub mod control;
pub mod directio;
#[path = "../fuzz/engine/mod.rs"]
pub mod fuzz;
pub mod monitor;
pub mod ondisk;
pub mod policy;
pub mod resources;
#[path = "../simulations/sim/mod.rs"]
pub mod sim;
pub mod storage;
pub mod transport;
