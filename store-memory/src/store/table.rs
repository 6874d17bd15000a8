//! [`Table`]: the task rows by id, and beside them the due index a claim walks.
//!
//! The index holds `(priority, due time, id)` for every row a claim could take at some time: a
//! pending row at its `next_run_at`, a running row at its `lease_expires_at`. Its fields are private to
//! this module and every change of a row goes through [`Table::insert`], [`Table::remove`],
//! [`Table::update`] or [`Table::update_matching`], which keep the index in step, so it cannot
//! drift from the rows.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use chrono::{DateTime, Utc};
use taskrow::{Priority, TaskRecord, TaskState};

/// A row's place in the due index: its priority's code (claimed first when lowest), when a
/// claim could take it, then its id.
type Key = (i16, DateTime<Utc>, i64);

/// When a claim could take `r`: a pending task's next run time, or an expired-or-not running
/// task's lease expiry. `None` for other states.
fn due_at(r: &TaskRecord) -> Option<DateTime<Utc>> {
    match r.state {
        TaskState::Pending => r.next_run_at,
        TaskState::Running => r.lease_expires_at,
        _ => None,
    }
}

fn key(r: &TaskRecord) -> Option<Key> {
    due_at(r).map(|d| (r.priority.code(), d, r.id))
}

/// Moves a row's index entry from `before` to `after`.
fn reindex(due: &mut BTreeSet<Key>, before: Option<Key>, after: Option<Key>) {
    if before == after {
        return;
    }
    if let Some(k) = before {
        let had = due.remove(&k);
        debug_assert!(had, "due index lacked {k:?}");
    }
    if let Some(k) = after {
        let new = due.insert(k);
        debug_assert!(new, "due index already had {k:?}");
    }
}

/// The task rows by id, with their due index.
#[derive(Debug, Default)]
pub(super) struct Table {
    rows: BTreeMap<i64, TaskRecord>,
    due: BTreeSet<Key>,
}

impl Table {
    pub(super) fn get(&self, id: i64) -> Option<&TaskRecord> {
        self.rows.get(&id)
    }

    pub(super) fn contains(&self, id: i64) -> bool {
        self.rows.contains_key(&id)
    }

    pub(super) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Every row, by id.
    pub(super) fn values(&self) -> impl Iterator<Item = &TaskRecord> {
        self.rows.values()
    }

    /// The rows from id `from` on, by id.
    pub(super) fn starting_at(&self, from: i64) -> impl Iterator<Item = &TaskRecord> {
        self.rows.range(from..).map(|(_, r)| r)
    }

    /// The rows a claim at `now` could take, highest priority first, then oldest due (ties by
    /// id): pending rows with `next_run_at <= now` and running rows with
    /// `lease_expires_at <= now`. Costs one step per row yielded (and one range per priority
    /// level), whatever the table's size.
    pub(super) fn due_by(&self, now: DateTime<Utc>) -> impl Iterator<Item = &TaskRecord> {
        Priority::ALL.into_iter().flat_map(move |p| {
            let p = p.code();
            self.due
                .range((
                    Bound::Included((p, DateTime::<Utc>::MIN_UTC, i64::MIN)),
                    Bound::Included((p, now, i64::MAX)),
                ))
                .map(|(_, _, id)| &self.rows[id])
        })
    }

    /// Adds a row whose id is not in the table.
    pub(super) fn insert(&mut self, r: TaskRecord) {
        reindex(&mut self.due, None, key(&r));
        let old = self.rows.insert(r.id, r);
        debug_assert!(old.is_none(), "row {:?} inserted twice", old.map(|r| r.id));
    }

    pub(super) fn remove(&mut self, id: i64) -> Option<TaskRecord> {
        let r = self.rows.remove(&id)?;
        reindex(&mut self.due, key(&r), None);
        Some(r)
    }

    /// Changes row `id`, which the caller has found in the table, with `f`.
    pub(super) fn update<T>(&mut self, id: i64, f: impl FnOnce(&mut TaskRecord) -> T) -> T {
        let r = self.rows.get_mut(&id).expect("the caller found the row");
        let before = key(r);
        let out = f(r);
        debug_assert_eq!(r.id, id, "a row's id never changes");
        reindex(&mut self.due, before, key(r));
        out
    }

    /// Changes every row that `pick` selects with `change`; returns how many.
    pub(super) fn update_matching(
        &mut self,
        pick: impl Fn(&TaskRecord) -> bool,
        mut change: impl FnMut(&mut TaskRecord),
    ) -> u64 {
        let mut n = 0;
        for r in self.rows.values_mut().filter(|r| pick(r)) {
            let before = key(r);
            change(r);
            reindex(&mut self.due, before, key(r));
            n += 1;
        }
        n
    }

    /// Panics unless the due index is exactly what the rows make it.
    #[cfg(test)]
    pub(super) fn check(&self) {
        let expected: BTreeSet<Key> = self.rows.values().filter_map(key).collect();
        assert_eq!(self.due, expected, "the due index drifted from the rows");
        for (id, r) in &self.rows {
            assert_eq!(*id, r.id, "row filed under another id");
        }
    }
}
