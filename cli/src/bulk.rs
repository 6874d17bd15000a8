//! `taskrow cancel` and `taskrow delete`: one task, or every task matching the filters.
//!
//! Bulk runs go through [`taskrow::bulk::apply_matching`]: each task is cancelled or deleted
//! on its own, with the single-task refusals (a live lease, a succeeded task) reported as
//! skipped instead of ending the run.

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use taskrow::bulk::{BulkAction, BulkReport, apply_matching};
use taskrow::{CancelAction, Error, TaskFilter, TaskState, TaskStore};

use crate::args::{BulkArgs, DeleteArgs};
use crate::commands::{CliError, Io, Result, explain, filter, plural};
use crate::parse::Target;
use crate::render;

/// The filter of a bulk run, or the one named task (refusing filters beside it).
fn which(args: BulkArgs) -> Result<Either> {
    let f = &args.filter;
    let filtered = !args.states.is_empty()
        || !f.biz_types.is_empty()
        || !f.task_types.is_empty()
        || !f.queues.is_empty()
        || f.code_prefix.is_some();
    match args.task {
        Some(_) if filtered => Err(CliError::Message(
            "--state, --biz-type, --type, --queue and --code-prefix select many tasks; they do \
             not apply to one named task"
                .to_owned(),
        )),
        Some(t) => Ok(Either::One(t)),
        None => Ok(Either::Matching(filter(args.states, args.filter))),
    }
}

enum Either {
    One(Target),
    Matching(TaskFilter),
}

pub(crate) async fn cancel(
    store: &dyn TaskStore,
    args: BulkArgs,
    now: DateTime<Utc>,
    io: &mut Io<'_>,
) -> Result<ExitCode> {
    let dry_run = args.dry_run;
    let filter = match which(args)? {
        Either::One(target) => return cancel_one(store, &target, dry_run, now, io).await,
        Either::Matching(f) => f,
    };
    let report = apply_matching(store, BulkAction::Cancel, &filter, now, dry_run).await?;
    // Tasks running under a live lease are marked, not cancelled: their workers stop them. (A
    // dry run lists them as they are; a run, as the cancel left them: still running.)
    let running = report
        .done
        .iter()
        .filter(|t| {
            if dry_run {
                matches!(t.check_cancel(now), Ok(CancelAction::Mark))
            } else {
                t.state == TaskState::Running
            }
        })
        .count() as u64;
    let n = report.done.len() as u64 - running;
    let asked = if running > 0 {
        format!(
            " and ask{} the worker{} of {running} running task{} to stop {} at the next heartbeat",
            if dry_run { "" } else { "ed" },
            plural(running),
            plural(running),
            if running == 1 { "it" } else { "them" }
        )
    } else {
        String::new()
    };
    if dry_run {
        dry_run_lines(("cancel", "cancelled"), &report, (&asked, running), io)?;
    } else {
        write!(
            io.out,
            "cancelled {n} task{}{asked}: they will not run until `taskrow reset`",
            plural(n)
        )?;
        skipped_lines(&report, io)?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn cancel_one(
    store: &dyn TaskStore,
    target: &Target,
    dry_run: bool,
    now: DateTime<Utc>,
    io: &mut Io<'_>,
) -> Result<ExitCode> {
    if dry_run {
        let task = store.get(&target.0).await.map_err(|e| explain(e, target))?;
        let verdict = match task.check_cancel(now)? {
            CancelAction::Cancel => "would cancel it",
            CancelAction::Mark => "would ask its worker to stop it (cancel requested)",
            _ => "it is cancelled already, or its cancel requested",
        };
        writeln!(
            io.out,
            "dry run: task `{}` (id {}) is {}: {verdict}; nothing changed",
            task.code, task.id, task.state
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let task = store
        .cancel(&target.0, now)
        .await
        .map_err(|e| explain(e, target))?;
    if task.state == TaskState::Running {
        writeln!(
            io.out,
            "cancel requested for task `{}` (id {}), running on `{}`: its worker stops it at its \
             next heartbeat (aborting the handler after its cancel grace), and the run is logged \
             as cancelled; `taskrow show {}` shows when it has stopped",
            task.code,
            task.id,
            task.lease_owner.as_deref().unwrap_or("?"),
            task.id
        )?;
    } else {
        writeln!(
            io.out,
            "cancelled task `{}` (id {}): it will not run until `taskrow reset {}`",
            task.code, task.id, task.id
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn delete(
    store: &dyn TaskStore,
    args: DeleteArgs,
    now: DateTime<Utc>,
    io: &mut Io<'_>,
) -> Result<ExitCode> {
    let (dry_run, yes) = (args.which.dry_run, args.yes);
    let filter = match which(args.which)? {
        Either::One(target) => return delete_one(store, &target, dry_run, now, io).await,
        Either::Matching(f) => f,
    };
    let plan = apply_matching(store, BulkAction::Delete, &filter, now, true).await?;
    if dry_run {
        dry_run_lines(("delete", "deleted"), &plan, ("", 0), io)?;
        return Ok(ExitCode::SUCCESS);
    }
    let n = plan.done.len();
    if n > 0 && !yes {
        let first: Vec<&str> = plan.done.iter().take(5).map(|t| t.code.as_str()).collect();
        let more = if n > first.len() { ", …" } else { "" };
        write!(
            io.err,
            "this deletes {n} task{} ({}{more}); their log rows stay.\ntype `yes` to go on: ",
            plural(n as u64),
            first.join(", ")
        )?;
        io.err.flush()?;
        let mut answer = String::new();
        io.stdin.read_line(&mut answer)?;
        let answer = answer.trim().to_ascii_lowercase();
        if answer != "yes" && answer != "y" {
            return Err(CliError::Message(
                "aborted: nothing was deleted (pass --yes to skip the question)".to_owned(),
            ));
        }
    }
    let report = apply_matching(store, BulkAction::Delete, &filter, now, false).await?;
    let n = report.done.len() as u64;
    write!(
        io.out,
        "deleted {n} task{}; their log rows remain",
        plural(n)
    )?;
    skipped_lines(&report, io)?;
    Ok(ExitCode::SUCCESS)
}

async fn delete_one(
    store: &dyn TaskStore,
    target: &Target,
    dry_run: bool,
    now: DateTime<Utc>,
    io: &mut Io<'_>,
) -> Result<ExitCode> {
    let task = match store.get(&target.0).await {
        Ok(task) => task,
        // A row that cannot be read: its error says to delete it, so delete must work.
        Err(Error::CorruptRow { .. }) if !dry_run => {
            let row = store
                .delete_unreadable(&target.0)
                .await
                .map_err(|e| explain(e, target))?;
            writeln!(
                io.out,
                "deleted unreadable row `{}` (id {}, type {}; it could not be read: {}); its \
                 log rows remain",
                row.code, row.id, row.task_type, row.reason
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        Err(Error::CorruptRow { id, reason }) => {
            writeln!(
                io.out,
                "dry run: would delete unreadable row {id} ({reason}); nothing changed"
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(explain(e, target)),
    };
    if dry_run {
        task.check_delete(now)?;
        write!(
            io.out,
            "{}",
            render::task_table(std::slice::from_ref(&task))
        )?;
        writeln!(
            io.out,
            "dry run: would delete task `{}` (id {}, {}); nothing changed",
            task.code, task.id, task.state
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let task = store
        .delete(&target.0, now)
        .await
        .map_err(|e| explain(e, target))?;
    writeln!(
        io.out,
        "deleted task `{}` (id {}, was {}); its log rows remain",
        task.code, task.id, task.state
    )?;
    Ok(ExitCode::SUCCESS)
}

/// A dry run's report: the tasks that would change, then the count and the skipped ones.
/// A dry run's table and summary; `also` ends the summary's first part (bulk cancel: the
/// `marked` running tasks whose workers it would ask to stop, which the count leaves out).
fn dry_run_lines(
    (verb, done): (&str, &str),
    report: &BulkReport,
    (also, marked): (&str, u64),
    io: &mut Io<'_>,
) -> Result<()> {
    let n = report.done.len() as u64 - marked;
    if n + marked > 0 {
        write!(io.out, "{}", render::task_table(&report.done))?;
        write!(io.out, "dry run: would {verb} {n} task{}{also}", plural(n))?;
    } else {
        write!(io.out, "dry run: no task would be {done}")?;
    }
    skipped_lines(report, io)?;
    writeln!(io.out, "nothing changed")?;
    Ok(())
}

/// Ends the summary line with the skipped count, and names each skipped task with its reason.
fn skipped_lines(report: &BulkReport, io: &mut Io<'_>) -> Result<()> {
    let k = report.skipped.len() as u64;
    if k == 0 {
        writeln!(io.out)?;
        return Ok(());
    }
    writeln!(io.out, "; skipped {k}:")?;
    for s in &report.skipped {
        writeln!(
            io.out,
            "  `{}` (id {}): {}",
            s.code,
            s.id,
            render::cut(&s.reason, 160)
        )?;
    }
    Ok(())
}
