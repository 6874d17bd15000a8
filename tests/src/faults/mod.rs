//! What the fault suite (`tests/faults.rs`) and its worker binary (`taskrow-test-worker`) share:
//! the task types they run, the handlers' own record of every execution, and how a worker
//! process is configured, started, killed and stopped.
//!
//! Every handler here writes its own record of each run — a line when it starts and a line
//! when it ends, with microsecond wall-clock times — to a per-process file, independently of
//! taskrow's log table. The suite counts executions from both and checks that no two runs of
//! one task overlapped in time.

pub mod clock;
pub mod process;
pub mod records;
pub mod tasks;

pub use clock::{ClockChoice, SkewedClock};
pub use process::{WorkerConfig, WorkerProcess};
pub use records::{Recorder, Run, RunGuard, now_us, read_runs};
