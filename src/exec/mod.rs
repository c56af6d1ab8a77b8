//! The executor: a plan's jobs run on its engines, and what a run leaves behind.

pub mod builder;
pub mod cache_travel;
pub mod extension_image;
pub mod fingerprint;
pub mod fleet;
pub mod images;
pub mod settings;
