//! The actix actor tree (NodeActor, ConsensusActor, PeerActor, PathActor, GroupActor,
//! ResourceActor): thin shells that feed inputs to [`crate::policy::node::NodeCore`] and carry
//! out its effects. Built by the runtime issue; the cores they wrap are complete.
