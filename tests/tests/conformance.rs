//! The conformance suite against every store: one line per store.
//!
//! Tests are named `<store>::<operation>::<behaviour>`; run one store with
//! `cargo test -p taskrow-tests --test conformance memory::`.

use taskrow_memory::MemoryStore;
use taskrow_tests::factory::TestStore;

taskrow_tests::store_conformance!(memory, || async { TestStore::new(MemoryStore::new()) });
