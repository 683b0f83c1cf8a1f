//! The consensus log on disk.
