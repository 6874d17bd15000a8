//! Consistency tasks: tasks enqueued inside the application's own transaction, committed with
//! its business writes, and dispatched only after the commit.
//!
//! ```ignore
//! let tx = store.begin_with_tasks(&client).await?;
//! document::ActiveModel { id: Set(7), state: Set(Done), ..Default::default() }.update(&*tx).await?;
//! tx.enqueue(&PublishMq { document_id: 7 }, EnqueueOptions::new()).await?;
//! let committed = tx.commit().await?;   // the dispatch handle exists only after the commit
//! committed.dispatch().await;            // awaited tasks run here; spawned ones on the runtime
//! ```

use std::ops::Deref;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseTransaction, EntityTrait};
use taskrow::{
    Client, Dispatch, EnqueueOptions, Error, Outcome, Result, RunReport, Task, TaskContext,
    TaskRecord,
};

use crate::dialect::{Dialect, WriteTxn};
use crate::entity::task_log;
use crate::store::SqlStore;

/// How long an immediately dispatched task waits before the worker's scheduler may take it
/// (seed 000's `delay_time`, 60 s): the dispatch after commit runs it first, and the scheduler
/// only steps in if the process died between commit and dispatch.
pub const DEFAULT_DISPATCH_DELAY: Duration = Duration::from_secs(60);

/// The application's transaction, carrying tasks. Dereferences to the SeaORM
/// [`DatabaseTransaction`]: do the business writes on `&*tx`. Dropped without
/// [`TaskTransaction::commit`], it rolls back, tasks included.
#[derive(Debug)]
#[must_use = "a task transaction rolls back unless committed"]
pub struct TaskTransaction<'s, D: Dialect> {
    txn: WriteTxn,
    store: &'s SqlStore<D>,
    client: Client,
    tasks: Vec<(i64, Dispatch)>,
    /// The task type and queue of each of `tasks`, counted as enqueued at the commit.
    types: Vec<(String, String)>,
}

impl<D: Dialect> SqlStore<D> {
    /// Begins a transaction on this store's database that business writes and tasks share.
    /// `client` runs the tasks after commit (it must be built on this store).
    ///
    /// It is the application's transaction, at the isolation level of the pool's sessions
    /// (MySQL: the server's default, `REPEATABLE READ` unless configured otherwise; taskrow's
    /// own transactions alone are `READ COMMITTED`). On SQLite it is `BEGIN IMMEDIATE` under
    /// the store's one-writer lock, so a read-then-write never fails with "database is
    /// locked"; keep it short there, for it holds the database's write lock:
    ///
    /// - a store write from the task that opened it (`client.enqueue`, `client.run_now`, a
    ///   second `begin_with_tasks`) fails at once with a transient error saying so: it would
    ///   wait for this very transaction. Enqueue through it ([`TaskTransaction::enqueue`]), or
    ///   commit first;
    /// - a store write from elsewhere in the process (a worker, another request) waits for it to
    ///   end, up to the SQLite busy timeout, then fails with a transient error naming it (see
    ///   [`crate::dialect::WriterLock`]).
    pub async fn begin_with_tasks(&self, client: &Client) -> Result<TaskTransaction<'_, D>> {
        let txn = self
            .dialect()
            .begin_task_transaction(self.connection())
            .await
            .map_err(|e| self.map_begin_error(e))?;
        Ok(TaskTransaction {
            txn,
            store: self,
            client: client.clone(),
            tasks: Vec::new(),
            types: Vec::new(),
        })
    }
}

impl<D: Dialect> SqlStore<D> {
    /// Ends the running task of `ctx` as succeeded inside the handler's own transaction `conn`
    /// (any SeaORM transaction on this store's database, a [`TaskTransaction`] included), so
    /// that the handler's business writes and "this task succeeded" commit together or not at
    /// all: a task whose effect is local to this database then takes effect exactly once.
    ///
    /// Fenced by the run's claim token: when another claim has taken the task (this run's
    /// lease was lost), it writes nothing and fails with [`Error::LeaseLost`]; return that
    /// error from the handler (`?`) so the transaction is dropped and rolls back.
    ///
    /// After the commit, return `Ok(())`: the worker's own finish of the run finds it logged as
    /// succeeded and writes nothing more. If the transaction rolls back instead, nothing of it
    /// happened, and the run ends as the handler's result says. It locks the task's row until
    /// the transaction ends, so keep the transaction short; on SQLite, begin it with a write
    /// (or with [`SqlStore::begin_with_tasks`]) so that it does not fail as a stale read.
    ///
    /// ```ignore
    /// async fn run(&self, ctx: &TaskContext) -> Result<(), TaskError> {
    ///     let store = ctx.data::<SqliteStore>()?;
    ///     let tx = store.connection().begin().await.map_err(TaskError::retry)?;
    ///     tx.execute_unprepared("UPDATE account SET balance = balance - 10 WHERE id = 7").await.map_err(TaskError::retry)?;
    ///     store.complete_in(&tx, ctx).await?;
    ///     tx.commit().await.map_err(TaskError::retry)?;
    ///     Ok(())
    /// }
    /// ```
    pub async fn complete_in<C: ConnectionTrait>(&self, conn: &C, ctx: &TaskContext) -> Result<()> {
        let finish = ctx.success();
        let applied = crate::store::succeed(conn, &finish, ctx.now(), false)
            .await
            .map_err(|e| self.map_db_error(e))?;
        if !applied {
            return Err(Error::LeaseLost {
                id: finish.lease.id,
            });
        }
        task_log::Entity::insert(task_log::Model::insert_for(
            &finish,
            Outcome::Succeeded,
            None,
        ))
        .exec_without_returning(conn)
        .await
        .map_err(|e| self.map_db_error(e))?;
        Ok(())
    }
}

impl<D: Dialect> TaskTransaction<'_, D> {
    /// Enqueues `task` in this transaction. Unless `options` say otherwise, it is dispatched
    /// immediately and awaited after commit ([`Dispatch::ImmediateAwaited`]), and the worker
    /// may take it only after [`DEFAULT_DISPATCH_DELAY`]. Use
    /// `options.dispatch(Dispatch::ImmediateSpawned)` to spawn it instead, or
    /// `Dispatch::Scheduled` to leave it to the worker.
    pub async fn enqueue(
        &mut self,
        task: &dyn Task,
        options: EnqueueOptions,
    ) -> Result<TaskRecord> {
        let dispatch = options.dispatch.unwrap_or(Dispatch::ImmediateAwaited);
        let mut options = options.dispatch(dispatch);
        if dispatch != Dispatch::Scheduled && options.start.is_none() {
            options = options.delay(DEFAULT_DISPATCH_DELAY);
        }
        let row = options.build(task, self.client.clock().now())?;
        let rec = self.store.insert_on(&*self.txn, row).await?;
        self.tasks.push((rec.id, dispatch));
        self.types.push((rec.task_type.clone(), rec.queue.clone()));
        Ok(rec)
    }

    /// Commits the business writes and the tasks together, and returns the handle that
    /// dispatches them. Nothing runs before this returns.
    pub async fn commit(self) -> Result<Committed> {
        let store = self.store;
        self.txn.commit().await.map_err(|e| store.map_db_error(e))?;
        for (task_type, queue) in &self.types {
            taskrow::metrics::enqueued(task_type, queue, 1);
        }
        Ok(Committed {
            client: self.client,
            tasks: self.tasks,
        })
    }

    /// Rolls back: no business write and no task remains.
    pub async fn rollback(self) -> Result<()> {
        let store = self.store;
        self.txn.rollback().await.map_err(|e| store.map_db_error(e))
    }
}

impl<D: Dialect> Deref for TaskTransaction<'_, D> {
    type Target = DatabaseTransaction;
    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

/// Committed tasks, ready to dispatch. Dropping it without [`Committed::dispatch`] is safe:
/// the worker runs the tasks once their delay has passed (what happens when the process dies
/// between commit and dispatch).
#[derive(Debug)]
#[must_use = "dispatch the committed tasks, or the worker runs them only after their delay"]
pub struct Committed {
    client: Client,
    tasks: Vec<(i64, Dispatch)>,
}

/// What dispatch did with one committed task.
#[derive(Debug)]
#[non_exhaustive]
pub enum Dispatched {
    /// Run in the caller (awaited dispatch): how the run ended.
    Ran(RunReport),
    /// A worker had taken the task first (or it was gone): that run stands, nothing ran here.
    Taken(i64),
    /// Could not be run now (the database failed): the worker runs it after its delay.
    NotRun {
        /// The task's id.
        id: i64,
        /// Why.
        error: taskrow::Error,
    },
    /// Spawned onto the runtime (spawned dispatch); the handle answers as
    /// [`Client::run_committed`] does.
    Spawned(tokio::task::JoinHandle<Result<Option<RunReport>>>),
    /// Left to the worker (scheduled dispatch).
    Scheduled(i64),
}

impl Committed {
    /// The ids of the committed tasks, in enqueue order.
    pub fn ids(&self) -> Vec<i64> {
        self.tasks.iter().map(|(id, _)| *id).collect()
    }

    /// Runs the awaited tasks now, in order, spawns the spawned ones, and says what happened to
    /// each, in enqueue order. A failed run is retried by the worker per the task's policy.
    pub async fn dispatch(self) -> Vec<Dispatched> {
        let mut out = Vec::with_capacity(self.tasks.len());
        for (id, mode) in self.tasks {
            out.push(match mode {
                Dispatch::ImmediateAwaited => match self.client.run_committed(id).await {
                    Ok(Some(report)) => Dispatched::Ran(report),
                    Ok(None) => Dispatched::Taken(id),
                    Err(error) => Dispatched::NotRun { id, error },
                },
                Dispatch::ImmediateSpawned => Dispatched::Spawned(self.client.spawn_committed(id)),
                Dispatch::Scheduled => Dispatched::Scheduled(id),
            });
        }
        self.client.wake_workers();
        out
    }
}
