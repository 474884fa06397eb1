//! The S-360 store.
mod sqlite;
pub use sqlite::*;
