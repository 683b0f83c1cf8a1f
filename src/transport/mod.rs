//! QUIC endpoints per heartbeat path, mutual TLS, the wire envelope and the disk heartbeat.
//! The simulator's in-memory network carries the same [`crate::policy::message::Message`] types.
pub mod disk;
