//! The real binary through its command line, against the TIXNGO simulator over real HTTP on
//! 127.0.0.1, the store read back with SQL. One test program for all of them, so that a change to
//! the crate links one test binary, not nine; each file is a module, so a subject runs alone with
//! its path as the filter: `cargo test --test cli sync::` (or `contacts::`, `crash::`, …).

mod support;

mod contacts;
mod crash;
mod files;
mod mapping;
mod matchday;
mod operator;
mod pg_batch;
mod postgres;
mod postgres_runs;
mod smoke;
mod soak;
mod sync;
