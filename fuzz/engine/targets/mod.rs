//! The targets, one module per decoder family.
//!
//! | target | decoder | input |
//! |---|---|---|
//! | `config` | `cluster.toml`: size, UTF-8, TOML, schema, validation, then resolution and digest | a file's bytes |
//! | `envelope` | [`crate::transport::envelope::Envelope::decode`] | a datagram or stream's bytes |
//! | `raft` | [`crate::policy::raft_wire::WireMessage::decode`] and the conversion to raft-rs | a raft message's bytes |
//! | `entry` | [`crate::policy::entry::Keys::decode`]: a committed log entry's command | an entry's data |
//! | `snapshot` | [`crate::policy::snapshot::decode`]: the replicated state in a snapshot | a snapshot's data |
//! | `control` | [`crate::control::parse_request`] | one request line |
//! | `disk` | the disk path's header, slot record, pill and acknowledgement; `disk_lock`'s owner block and slots | a selector, two parameters, a block |

pub mod config;
pub mod control;
pub mod disk;
pub mod wire;

use std::sync::Arc;

use super::Target;

/// Every target, in a fixed order.
pub fn all() -> Vec<Arc<dyn Target>> {
    vec![
        Arc::new(config::ConfigTarget::new()),
        Arc::new(wire::EnvelopeTarget::new()),
        Arc::new(wire::RaftTarget::new()),
        Arc::new(wire::EntryTarget::new()),
        Arc::new(wire::SnapshotTarget::new()),
        Arc::new(control::ControlTarget::new()),
        Arc::new(disk::DiskTarget::new()),
    ]
}
