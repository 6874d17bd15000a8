//! Periodic tasks: a [`Schedule`] enqueues a task at every tick of a cron expression or a fixed
//! interval.
//!
//! Schedules are registered on workers ([`crate::WorkerBuilder::schedule`]); every instance may
//! register the same ones and no leader is needed. Each schedule has a row in the store
//! ([`ScheduleRecord`], name unique) holding its last enqueued tick. A worker that finds a tick
//! due moves that tick forward with a conditional update
//! ([`crate::TaskStore::advance_schedule`]: "from the tick I read to the next one") and, in the
//! same transaction, inserts the tick's task under a code made of the schedule's name and the
//! tick's time. Of any number of workers only one moves a given tick, so each tick is enqueued
//! once, also when an earlier tick's task succeeded and was deleted long ago.
//!
//! - **Missed ticks**: a tick is *on time* while it is at most [`Schedule::grace`] (default
//!   [`DEFAULT_GRACE`]) old when a worker reaches it; on-time ticks are each enqueued. Older
//!   ones were missed (every worker was down or stalled); [`MissedTicks`] says what happens
//!   to them: dropped ([`MissedTicks::Skip`], the default) or collapsed into one run of the
//!   latest ([`MissedTicks::RunLatest`]).
//! - **Changes**: the row keeps a fingerprint of the definition (spec, time zone, missed-tick
//!   policy, grace, task and options). A worker that registers a definition whose fingerprint
//!   differs replaces the row's definition at its start; the new definition's ticks start after
//!   that moment. Workers tick only a row whose fingerprint is their own, so during a rolling
//!   deploy instances of the older version stop ticking a schedule the newer one changed
//!   (they neither enqueue nor overwrite it) — the definition of the instance that started last
//!   is the one ticked.
//! - **Removal**: only workers that register a schedule tick it. A schedule no running worker
//!   registers any more keeps its row (with its last tick) but is no longer ticked; remove the
//!   row with `taskrow schedules remove <name>` ([`crate::TaskStore::remove_schedule`]). A worker
//!   still registering a removed schedule stops ticking it until it starts again (and registers
//!   it anew).

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use chrono_tz::Tz;
use tracing::{info, warn};

use crate::clock::{add, truncate_micros};
use crate::error::{Error, Result};
use crate::options::{EnqueueOptions, Start};
use crate::record::{MAX_CODE_CHARS, NewTask};
use crate::task::Task;

/// How old an unenqueued tick may be and still count as on time (default of
/// [`Schedule::grace`]): one minute.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(60);

/// Longest schedule name, in characters: the name and a tick's time (`@` and at most 28
/// characters) make the code of the tick's task, which must fit [`MAX_CODE_CHARS`].
pub const MAX_SCHEDULE_NAME_CHARS: usize = 200;

/// The shortest fixed interval.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// What happens to ticks that no worker enqueued in time (within [`Schedule::grace`]): when
/// every worker was down, or stalled, across them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissedTicks {
    /// Drop them: the schedule goes on with its next tick. The default, as most periodic work
    /// (reports, clean-ups, polling) is about the present and a late burst would only add load;
    /// choose [`MissedTicks::RunLatest`] for work that must run once after an outage.
    #[default]
    Skip,
    /// Run the latest of them once (late), then go on with the next tick.
    RunLatest,
}

impl MissedTicks {
    fn code(self) -> &'static str {
        match self {
            Self::Skip => "skip",
            Self::RunLatest => "run-latest",
        }
    }
}

#[derive(Clone)]
enum Spec {
    Cron {
        expr: String,
        cron: Box<croner::Cron>,
    },
    Every(Duration),
}

/// A periodic task: a name, a cron expression or fixed interval, the task to enqueue at each
/// tick and its [`EnqueueOptions`]. Register it on a worker with
/// [`crate::WorkerBuilder::schedule`].
///
/// ```
/// use std::time::Duration;
/// use taskrow::schedule::{MissedTicks, Schedule};
/// # use taskrow::{async_trait, serde::{Deserialize, Serialize}, Task, TaskContext, TaskError, typetag};
/// # #[derive(Serialize, Deserialize)]
/// # #[serde(crate = "taskrow::serde")]
/// # struct Report { kind: String }
/// # #[typetag::serde(name = "doc.report")]
/// # #[async_trait]
/// # impl Task for Report {
/// #     async fn run(&self, _ctx: &TaskContext) -> Result<(), TaskError> { Ok(()) }
/// # }
///
/// # fn main() -> taskrow::Result<()> {
/// // 03:00:00 every day, Berlin time, run once late after an outage.
/// let nightly = Schedule::cron("nightly-report", "0 0 3 * * *")?
///     .time_zone("Europe/Berlin")?
///     .missed(MissedTicks::RunLatest)
///     .task(Report { kind: "daily".into() });
/// // Every 30 seconds (aligned to the Unix epoch: :00 and :30).
/// let ping = Schedule::every("ping", Duration::from_secs(30))?.task(Report { kind: "ping".into() });
///
/// assert!(Schedule::cron("bad", "61 * * * *").is_err());
/// assert!(Schedule::cron("", "* * * * *").is_err());
/// assert!(nightly.clone().time_zone("Mars/Olympus").is_err());
/// # let _ = (nightly, ping);
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use]
pub struct Schedule {
    name: String,
    spec: Spec,
    tz: Tz,
    missed: MissedTicks,
    grace: Duration,
    task: Option<Arc<dyn Task>>,
    options: EnqueueOptions,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("name", &self.name)
            .field("spec", &self.spec_text())
            .field("time_zone", &self.tz.name())
            .field("missed", &self.missed)
            .field("grace", &self.grace)
            .field("task", &self.task.as_ref().map(|t| t.typetag_name()))
            .field("options", &self.options)
            .finish()
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::Config(
            "a schedule needs a name (it keys the schedule's row and its tasks' codes)".into(),
        ));
    }
    let n = name.chars().count();
    if n > MAX_SCHEDULE_NAME_CHARS {
        return Err(Error::Config(format!(
            "the schedule name `{name}` is {n} characters long; at most \
             {MAX_SCHEDULE_NAME_CHARS} fit (with a tick's time it makes each task's code)"
        )));
    }
    Ok(())
}

impl Schedule {
    /// A schedule ticking at the times of a cron expression: five fields (minute, hour, day of
    /// month, month, day of week) or six with seconds first (`"0 0 3 * * *"`: 03:00:00 every
    /// day). Parsed by `croner` (ranges, steps, names, `L`, `W`, `#`). Times are in UTC unless
    /// [`Schedule::time_zone`] says otherwise.
    ///
    /// An empty name or an expression that does not parse is a [`Error::Config`] saying why.
    pub fn cron(name: impl Into<String>, expression: &str) -> Result<Self> {
        let name = name.into();
        check_name(&name)?;
        let parser = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .year(croner::parser::Year::Disallowed)
            .build();
        let cron = parser.parse(expression).map_err(|e| {
            Error::Config(format!(
                "schedule `{name}`: `{expression}` is not a cron expression ({e}); write five \
                 fields (minute hour day-of-month month day-of-week) or six with seconds first, \
                 as in `0 0 3 * * *` for 03:00:00 every day"
            ))
        })?;
        Ok(Self::with_spec(
            name,
            Spec::Cron {
                expr: expression.trim().to_owned(),
                cron: Box::new(cron),
            },
        ))
    }

    /// A schedule ticking every `period` (at least [`MIN_INTERVAL`]), at whole multiples of it
    /// since the Unix epoch (every 30 s: at :00 and :30), so every instance computes the same
    /// ticks. An empty name or a shorter period is a [`Error::Config`].
    pub fn every(name: impl Into<String>, period: Duration) -> Result<Self> {
        let name = name.into();
        check_name(&name)?;
        if period < MIN_INTERVAL {
            return Err(Error::Config(format!(
                "schedule `{name}`: the interval {period:?} is shorter than the shortest, \
                 {MIN_INTERVAL:?}"
            )));
        }
        let period = Duration::from_micros(period.as_micros().min(u64::MAX as u128) as u64);
        Ok(Self::with_spec(name, Spec::Every(period)))
    }

    fn with_spec(name: String, spec: Spec) -> Self {
        Self {
            name,
            spec,
            tz: Tz::UTC,
            missed: MissedTicks::default(),
            grace: DEFAULT_GRACE,
            task: None,
            options: EnqueueOptions::new(),
        }
    }

    /// The IANA time zone of a cron expression (`"Europe/Berlin"`; default `"UTC"`). Daylight
    /// saving is followed: a wall time that a jump forward skips ticks at the jump's end (02:30
    /// at 03:00), and one that occurs twice ticks once, at its first occurrence. A name the time zone database does not know is a [`Error::Config`];
    /// a fixed interval takes none.
    pub fn time_zone(mut self, name: &str) -> Result<Self> {
        if matches!(self.spec, Spec::Every(_)) {
            return Err(Error::Config(format!(
                "schedule `{}`: a fixed interval has no time zone (its ticks are multiples of \
                 the interval since the Unix epoch); use a cron expression for wall-clock times",
                self.name
            )));
        }
        self.tz = name.parse::<Tz>().map_err(|_| {
            Error::Config(format!(
                "schedule `{}`: `{name}` is not a time zone of the IANA database; use a name \
                 such as `UTC`, `Europe/Berlin` or `America/New_York`",
                self.name
            ))
        })?;
        Ok(self)
    }

    /// The task enqueued at every tick (a copy of this value each time).
    pub fn task(mut self, task: impl Task) -> Self {
        self.task = Some(Arc::new(task));
        self
    }

    /// How each tick's task is stored (biz type, retry policy, max attempts, …). The code is
    /// the schedule's own (`<name>@<tick>`) and the start is the tick; a [`EnqueueOptions::delay`]
    /// moves it after the tick. Setting a code or a fixed start time is refused when the worker
    /// is built.
    pub fn options(mut self, options: EnqueueOptions) -> Self {
        self.options = options;
        self
    }

    /// What happens to missed ticks (default [`MissedTicks::Skip`]).
    pub fn missed(mut self, policy: MissedTicks) -> Self {
        self.missed = policy;
        self
    }

    /// How late a tick may be enqueued and still count as on time (default [`DEFAULT_GRACE`]).
    /// Later ones follow [`Schedule::missed`].
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The schedule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The spec as the row keeps it: the cron expression, or `every <n>s` / `every <n>ms`.
    pub fn spec_text(&self) -> String {
        match &self.spec {
            Spec::Cron { expr, .. } => expr.clone(),
            Spec::Every(d) if d.subsec_nanos() == 0 => format!("every {}s", d.as_secs()),
            Spec::Every(d) => format!("every {}ms", d.as_millis()),
        }
    }

    /// The time zone's name (`UTC` for fixed intervals).
    pub fn time_zone_name(&self) -> &'static str {
        self.tz.name()
    }

    /// The first tick strictly after `t`, or `None` when there is none (a cron expression that
    /// matches no future time).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.spec {
            Spec::Cron { cron, .. } => cron
                .find_next_occurrence(&t.with_timezone(&self.tz), false)
                .ok()
                .map(|n| n.with_timezone(&Utc)),
            Spec::Every(p) => {
                let p = p.as_micros() as i64;
                let k = t.timestamp_micros().div_euclid(p) + 1;
                DateTime::from_timestamp_micros(k.checked_mul(p)?)
            }
        }
    }

    /// The latest tick at or before `t`, or `None` when there is none.
    pub fn latest_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.spec {
            Spec::Cron { cron, .. } => cron
                .find_previous_occurrence(&t.with_timezone(&self.tz), true)
                .ok()
                .map(|n| n.with_timezone(&Utc)),
            Spec::Every(p) => {
                let p = p.as_micros() as i64;
                let k = t.timestamp_micros().div_euclid(p);
                DateTime::from_timestamp_micros(k.checked_mul(p)?)
            }
        }
    }

    /// The code of the task enqueued for `tick`: `<name>@<tick in RFC 3339, UTC>`, the same on
    /// every instance (`nightly-report@2026-01-01T02:00:00Z`).
    pub fn tick_code(&self, tick: DateTime<Utc>) -> String {
        format!(
            "{}@{}",
            self.name,
            tick.to_rfc3339_opts(SecondsFormat::AutoSi, true)
        )
    }

    fn task_ref(&self) -> Result<&Arc<dyn Task>> {
        self.task.as_ref().ok_or_else(|| {
            Error::Config(format!(
                "schedule `{}` has no task: give it one with .task(…)",
                self.name
            ))
        })
    }

    /// The task row for `tick`, enqueued at `now`: the schedule's options with the tick's code,
    /// due at the tick (plus the options' delay).
    pub fn task_for(&self, tick: DateTime<Utc>, now: DateTime<Utc>) -> Result<NewTask> {
        let task = self.task_ref()?;
        let at = match self.options.start {
            None => tick,
            Some(Start::After(d)) => add(tick, d),
            Some(Start::At(_)) => return Err(self.fixed_start()),
        };
        let mut options = self.options.clone().code(self.tick_code(tick));
        options.start = Some(Start::At(at));
        options.build(task.as_ref(), now)
    }

    fn fixed_start(&self) -> Error {
        Error::Config(format!(
            "schedule `{}`: the options set a fixed start time, but each tick sets its own; \
             use .delay(…) to start a tick's task later than the tick",
            self.name
        ))
    }

    /// Checks the whole definition as a worker does when it is built: a task is given, the
    /// options set neither a code nor a fixed start, and a tick's row passes the stores'
    /// checks. Answers the definition's fingerprint.
    pub fn check(&self) -> Result<String> {
        if self.options.code.is_some() {
            return Err(Error::Config(format!(
                "schedule `{}`: the options set a code, but each tick's task gets its own \
                 (`<name>@<tick>`) so that it is enqueued once; leave the code unset",
                self.name
            )));
        }
        if matches!(self.options.start, Some(Start::At(_))) {
            return Err(self.fixed_start());
        }
        // A row as far in the future as a tick can be: its code is the longest one.
        let far = DateTime::from_timestamp(253_402_300_799, 999_999_000).unwrap_or_default();
        let row = self
            .task_for(far, far)
            .map_err(|e| Error::Config(format!("schedule `{}`: {e}", self.name)))?;
        debug_assert!(row.code.chars().count() <= MAX_CODE_CHARS);
        Ok(self.fingerprint_of(&row))
    }

    /// The fingerprint of the definition: 16 hex digits of a stable hash (FNV-1a, 64 bits) of
    /// every field that shapes the ticks or their tasks.
    fn fingerprint_of(&self, row: &NewTask) -> String {
        let delay = (row.run_at - row.created_at)
            .num_microseconds()
            .unwrap_or(0);
        let canonical = [
            self.spec_text(),
            self.tz.name().to_owned(),
            self.missed.code().to_owned(),
            self.grace.as_micros().to_string(),
            row.task_type.clone(),
            row.payload.clone(),
            row.name.clone(),
            row.description.clone().unwrap_or_default(),
            row.biz_type.clone(),
            delay.to_string(),
            format!("{:?}", row.max_attempts),
            row.retry.to_json(),
            format!("{:?}", row.timeout.map(|d| d.as_micros())),
            row.on_success.code().to_string(),
            row.dispatch.code().to_string(),
        ];
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for field in &canonical {
            for b in field.len().to_le_bytes().iter().chain(field.as_bytes()) {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        format!("{h:016x}")
    }

    /// The registration of this schedule at `now` ([`crate::TaskStore::register_schedule`]).
    pub fn registration(&self, now: DateTime<Utc>) -> Result<NewSchedule> {
        let fingerprint = self.check()?;
        let task = self.task_ref()?;
        let now = truncate_micros(now);
        Ok(NewSchedule {
            name: self.name.clone(),
            spec: self.spec_text(),
            time_zone: self.tz.name().to_owned(),
            task_type: task.typetag_name().to_owned(),
            fingerprint,
            next_tick: self.next_after(now),
            now,
        })
    }

    /// The move of this schedule's row from tick `from` to tick `to` at `now`
    /// ([`crate::TaskStore::advance_schedule`]), enqueuing `to`'s task when `enqueue`.
    pub fn advance(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        enqueue: bool,
        now: DateTime<Utc>,
    ) -> Result<ScheduleAdvance> {
        let fingerprint = self.check()?;
        let now = truncate_micros(now);
        Ok(ScheduleAdvance {
            name: self.name.clone(),
            fingerprint,
            from,
            to,
            next_tick: self.next_after(to),
            task: if enqueue {
                Some(self.task_for(to, now)?)
            } else {
                None
            },
            now,
        })
    }

    /// What to do at `now` for a row whose last enqueued tick is `last`.
    fn plan(&self, last: DateTime<Utc>, now: DateTime<Utc>) -> Plan {
        let Some(next) = self.next_after(last) else {
            return Plan::Never;
        };
        if next > now {
            return Plan::Wait(next);
        }
        let grace = TimeDelta::from_std(self.grace).unwrap_or(TimeDelta::MAX);
        if now - next <= grace {
            return Plan::Advance {
                to: next,
                enqueue: true,
            };
        }
        // `next` was missed; so was every tick up to the latest, unless that one is on time.
        let latest = self.latest_at_or_before(now).unwrap_or(next).max(next);
        let on_time = now - latest <= grace;
        match self.missed {
            MissedTicks::Skip => Plan::Advance {
                to: latest,
                enqueue: on_time,
            },
            MissedTicks::RunLatest => Plan::Advance {
                to: latest,
                enqueue: true,
            },
        }
    }
}

enum Plan {
    Never,
    Wait(DateTime<Utc>),
    Advance { to: DateTime<Utc>, enqueue: bool },
}

/// A schedule's row as a store keeps it. Stores build it field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRecord {
    /// Row id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// The cron expression, or `every <n>s`.
    pub spec: String,
    /// The IANA time zone of a cron expression (`UTC` for intervals).
    pub time_zone: String,
    /// The type name of the task enqueued at each tick.
    pub task_type: String,
    /// The fingerprint of the definition that ticks this row.
    pub fingerprint: String,
    /// The last tick handled (enqueued, or skipped as missed); at first the registration time.
    pub last_tick: DateTime<Utc>,
    /// The tick after `last_tick`, as the instance that last moved the row computed it.
    pub next_tick: Option<DateTime<Utc>>,
    /// When the row was created.
    pub created_at: DateTime<Utc>,
    /// When an instance last registered the schedule (at its start).
    pub registered_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A schedule as a starting worker registers it ([`crate::TaskStore::register_schedule`]);
/// built by [`Schedule::registration`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewSchedule {
    /// Unique name.
    pub name: String,
    /// Spec text.
    pub spec: String,
    /// Time zone name.
    pub time_zone: String,
    /// The task's type name.
    pub task_type: String,
    /// The definition's fingerprint.
    pub fingerprint: String,
    /// The first tick after `now`.
    pub next_tick: Option<DateTime<Utc>>,
    /// The registration time.
    pub now: DateTime<Utc>,
}

/// One move of a schedule's last tick ([`crate::TaskStore::advance_schedule`]); built by
/// [`Schedule::advance`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ScheduleAdvance {
    /// The schedule's name.
    pub name: String,
    /// The fingerprint of the definition moving it: the move applies only to a row with it.
    pub fingerprint: String,
    /// The last tick as read: the move applies only while the row still has it.
    pub from: DateTime<Utc>,
    /// The new last tick.
    pub to: DateTime<Utc>,
    /// The tick after `to`.
    pub next_tick: Option<DateTime<Utc>>,
    /// The task of tick `to`, inserted with the move unless its code exists; `None` for a
    /// tick skipped as missed.
    pub task: Option<NewTask>,
    /// The current time.
    pub now: DateTime<Utc>,
}

/// Whether [`crate::TaskStore::advance_schedule`] moved the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdvanceStatus {
    /// Moved (and the tick's task inserted, if any).
    Advanced,
    /// Not moved: another instance moved it first, the definition changed, or the row is gone.
    Lost,
}

/// The schedules a worker ticks, checked when the worker is built.
#[derive(Debug)]
pub(crate) struct Ticker {
    schedules: Vec<Schedule>,
    fingerprints: Vec<String>,
    registered: AtomicBool,
    paused: Mutex<HashSet<String>>,
}

/// What one pass of [`Ticker::tick`] did.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TickPass {
    /// Tasks enqueued.
    pub enqueued: u64,
    /// The earliest next tick of the schedules this worker ticks.
    pub next: Option<DateTime<Utc>>,
}

impl Ticker {
    /// Checks every schedule and that no two share a name.
    pub(crate) fn new(schedules: Vec<Schedule>) -> Result<Self> {
        let mut names = HashSet::new();
        let mut fingerprints = Vec::with_capacity(schedules.len());
        for s in &schedules {
            if !names.insert(s.name.clone()) {
                return Err(Error::Config(format!(
                    "two schedules are named `{}`: names are unique",
                    s.name
                )));
            }
            fingerprints.push(s.check()?);
        }
        Ok(Self {
            schedules,
            fingerprints,
            registered: AtomicBool::new(false),
            paused: Mutex::new(HashSet::new()),
        })
    }

    async fn register(&self, store: &dyn crate::TaskStore, now: DateTime<Utc>) -> Result<()> {
        if self.registered.load(Ordering::SeqCst) {
            return Ok(());
        }
        for s in &self.schedules {
            let row = store.register_schedule(&s.registration(now)?).await?;
            info!(schedule = %row.name, spec = %row.spec, time_zone = %row.time_zone, last_tick = %row.last_tick, "taskrow schedule registered");
        }
        self.registered.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn set_paused(&self, name: &str, paused: bool, why: &str) {
        let mut p = self.paused.lock().unwrap_or_else(|e| e.into_inner());
        if paused && p.insert(name.to_owned()) {
            warn!(schedule = %name, "taskrow schedule not ticked by this worker: {why}");
        } else if !paused && p.remove(name) {
            info!(schedule = %name, "taskrow schedule ticked by this worker again");
        }
    }

    /// Registers the schedules (once), then enqueues every tick due at the clock's now.
    pub(crate) async fn tick(
        &self,
        store: &dyn crate::TaskStore,
        now: DateTime<Utc>,
    ) -> Result<TickPass> {
        self.register(store, now).await?;
        let rows = store.schedules().await?;
        let mut pass = TickPass::default();
        for (s, fingerprint) in self.schedules.iter().zip(&self.fingerprints) {
            let Some(row) = rows.iter().find(|r| r.name == s.name) else {
                self.set_paused(
                    &s.name,
                    true,
                    "its row was removed; restart the worker to register it again",
                );
                continue;
            };
            if &row.fingerprint != fingerprint {
                self.set_paused(
                    &s.name,
                    true,
                    "another instance registered a different definition (a newer or older \
                     version); the row follows the instance that started last",
                );
                continue;
            }
            self.set_paused(&s.name, false, "");
            let mut last = row.last_tick;
            loop {
                match s.plan(last, now) {
                    Plan::Never => break,
                    Plan::Wait(next) => {
                        pass.next = Some(pass.next.map_or(next, |n| n.min(next)));
                        break;
                    }
                    Plan::Advance { to, enqueue } => {
                        let advance = s.advance(last, to, enqueue, now)?;
                        match store.advance_schedule(&advance).await? {
                            AdvanceStatus::Advanced => {
                                if let Some(task) = &advance.task {
                                    pass.enqueued += 1;
                                    crate::metrics::enqueued(&task.task_type, &task.queue, 1);
                                } else {
                                    warn!(schedule = %s.name, tick = %to, "taskrow schedule skipped missed ticks up to this one (no worker ran in time; policy: skip)");
                                }
                                last = to;
                            }
                            // Another instance moved it past `last`, to `to` at least: it
                            // enqueues what is due. Look again at the tick after `to` (the
                            // poll interval would leave a tick unseen if that instance stops).
                            AdvanceStatus::Lost => {
                                if let Some(next) = s.next_after(to) {
                                    pass.next = Some(pass.next.map_or(next, |n| n.min(next)));
                                }
                                break;
                            }
                        }
                    }
                }
            }
        }
        Ok(pass)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::TaskContext;
    use crate::error::TaskError;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Tick {
        n: u32,
    }

    #[typetag::serde(name = "core.schedule.tick")]
    #[async_trait::async_trait]
    impl Task for Tick {
        async fn run(&self, _ctx: &TaskContext) -> std::result::Result<(), TaskError> {
            Ok(())
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn intervals_align_to_the_epoch() {
        let s = Schedule::every("i", Duration::from_secs(30)).unwrap();
        assert_eq!(
            s.next_after(at("2026-01-01T00:00:00Z")),
            Some(at("2026-01-01T00:00:30Z"))
        );
        assert_eq!(
            s.next_after(at("2026-01-01T00:00:29.999Z")),
            Some(at("2026-01-01T00:00:30Z"))
        );
        assert_eq!(
            s.latest_at_or_before(at("2026-01-01T00:01:10Z")),
            Some(at("2026-01-01T00:01:00Z"))
        );
        assert_eq!(
            s.latest_at_or_before(at("2026-01-01T00:01:00Z")),
            Some(at("2026-01-01T00:01:00Z"))
        );
        assert_eq!(s.spec_text(), "every 30s");
        let ms = Schedule::every("m", Duration::from_millis(1500)).unwrap();
        assert_eq!(ms.spec_text(), "every 1500ms");
    }

    #[test]
    fn cron_follows_its_time_zone_and_daylight_saving() {
        let s = Schedule::cron("c", "0 30 2 * * *")
            .unwrap()
            .time_zone("Europe/Berlin")
            .unwrap();
        // 02:30 Berlin in winter is 01:30 UTC.
        assert_eq!(
            s.next_after(at("2026-01-10T00:00:00Z")),
            Some(at("2026-01-10T01:30:00Z"))
        );
        // 2026-03-29: clocks jump from 02:00 to 03:00 in Berlin; 02:30 does not exist that day
        // and the tick comes at the jump's end (03:00 CEST, 01:00 UTC).
        assert_eq!(
            s.next_after(at("2026-03-28T12:00:00Z")),
            Some(at("2026-03-29T01:00:00Z"))
        );
        assert_eq!(
            s.next_after(at("2026-03-29T01:00:00Z")),
            Some(at("2026-03-30T00:30:00Z"))
        );
        // 2026-10-25: 02:30 occurs twice (CEST, then CET); it ticks once.
        assert_eq!(
            s.next_after(at("2026-10-24T12:00:00Z")),
            Some(at("2026-10-25T00:30:00Z"))
        );
        assert_eq!(
            s.next_after(at("2026-10-25T00:30:00Z")),
            Some(at("2026-10-26T01:30:00Z"))
        );
        // In summer 02:30 Berlin is 00:30 UTC.
        assert_eq!(
            s.next_after(at("2026-07-01T00:00:00Z")),
            Some(at("2026-07-01T00:30:00Z"))
        );
        // Five fields start at the minute; UTC by default.
        let m = Schedule::cron("m", "*/15 * * * *").unwrap();
        assert_eq!(
            m.next_after(at("2026-01-01T00:00:00Z")),
            Some(at("2026-01-01T00:15:00Z"))
        );
        assert_eq!(m.time_zone_name(), "UTC");
    }

    #[test]
    fn plan_enqueues_on_time_ticks_and_follows_the_missed_policy() {
        let s = Schedule::every("p", Duration::from_secs(600)).unwrap();
        let t0 = at("2026-01-01T00:00:00Z");
        let min = |m: i64| t0 + TimeDelta::minutes(m);
        assert!(matches!(s.plan(t0, min(5)), Plan::Wait(t) if t == min(10)));
        assert!(matches!(
            s.plan(t0, min(10) + TimeDelta::seconds(60)),
            Plan::Advance { to, enqueue: true } if to == min(10)
        ));
        assert!(matches!(
            s.plan(t0, min(35)),
            Plan::Advance { to, enqueue: false } if to == min(30)
        ));
        // The latest is on time, older ones missed: skip to it and enqueue it.
        assert!(matches!(
            s.plan(t0, min(30) + TimeDelta::seconds(10)),
            Plan::Advance { to, enqueue: true } if to == min(30)
        ));
        let r = s.clone().missed(MissedTicks::RunLatest);
        assert!(matches!(
            r.plan(t0, min(35)),
            Plan::Advance { to, enqueue: true } if to == min(30)
        ));
    }

    #[test]
    fn fingerprint_changes_with_the_definition_only() {
        let base = Schedule::every("f", Duration::from_secs(60))
            .unwrap()
            .task(Tick { n: 1 });
        let fp = base.check().unwrap();
        assert_eq!(fp.len(), 16);
        assert_eq!(base.clone().check().unwrap(), fp, "stable");
        for other in [
            base.clone().task(Tick { n: 2 }),
            base.clone().missed(MissedTicks::RunLatest),
            base.clone().grace(Duration::from_secs(5)),
            base.clone().options(EnqueueOptions::new().biz_type("b")),
            base.clone()
                .options(EnqueueOptions::new().delay(Duration::from_secs(1))),
            Schedule::every("f", Duration::from_secs(61))
                .unwrap()
                .task(Tick { n: 1 }),
        ] {
            assert_ne!(other.check().unwrap(), fp, "{other:?}");
        }
    }

    #[test]
    fn tick_task_is_due_at_the_tick_under_its_code() {
        let s = Schedule::cron("report", "0 0 3 * * *")
            .unwrap()
            .task(Tick { n: 1 })
            .options(EnqueueOptions::new().delay(Duration::from_secs(5)));
        let tick = at("2026-01-02T03:00:00Z");
        let row = s.task_for(tick, at("2026-01-02T03:00:01Z")).unwrap();
        assert_eq!(row.code, "report@2026-01-02T03:00:00Z");
        assert_eq!(row.run_at, at("2026-01-02T03:00:05Z"));
        assert_eq!(row.task_type, "core.schedule.tick");
        assert_eq!(row.payload, r#"{"n":1}"#);
    }
}
