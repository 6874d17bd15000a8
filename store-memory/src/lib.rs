//! An in-memory [`taskrow::TaskStore`]: the full store contract, with the same semantics and
//! errors as the SQL stores, and no database. Use it to unit-test task handlers and workers
//! (with a [`taskrow::ManualClock`] to move time by hand).

pub mod harness;
mod store;

pub use harness::TestHarness;
pub use store::MemoryStore;
