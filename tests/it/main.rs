//! kbuild's integration tests: the real kbuild binary against the real Docker engine, the
//! real Go toolchain in the builder image, and real git repositories. Nothing is mocked.
//! The builder image comes from `cargo xtask builder-image` (run by `cargo xtask test`).

mod common;

mod attest;
mod build;
mod cache;
mod ciflow;
mod cli;
mod contexts;
mod doctor;
mod engines;
mod extimage;
mod fleet;
mod gocache;
mod gzip;
mod host;
mod images;
mod inputs;
mod outdir;
mod pinned;
mod pipes;
mod plan;
mod podman;
mod progress;
mod recipe;
mod release;
mod robust;
mod sharing;
mod signers;
mod smoke;
mod source;
mod ssh;
mod swap;
mod sync;
mod testtars;
mod timings;
mod version;
mod words;
