//! Operations: configuration, metrics.

pub mod config;
pub mod metrics;
