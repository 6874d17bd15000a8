//! SeaORM entities for the taskrow tables, with their conversions to and from taskrow's
//! records. The schema itself is created by `taskrow-migration`; the tests of the store crates
//! check that it matches these entities column for column.

pub mod queue;
pub mod schedule;
pub mod task;
pub mod task_log;
pub mod worker;
