//! `cluster.toml`: schema, loading, validation, resolution into [`crate::policy::spec::ClusterSpec`].
