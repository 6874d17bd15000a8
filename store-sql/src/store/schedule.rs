//! The schedule operations of [`SqlStore`]: registration, the conditional advance of a tick
//! (with its task's insert, in one transaction), listing and removal.

use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use taskrow::options::validate;
use taskrow::schedule::{AdvanceStatus, NewSchedule, ScheduleAdvance, ScheduleRecord};
use taskrow::{Error, Result, TaskRef};

use super::{Fail, SqlStore, Step, end, find, insert_row};
use crate::dialect::{Dialect, ErrorKind};
use crate::entity::schedule;
use crate::time::{sql, stored};

/// How often a registration starts over after another instance registered or changed the same
/// schedule between its read and its write.
const REGISTER_TRIES: u32 = 8;

/// What one try of a registration did.
enum Registered {
    Row(ScheduleRecord),
    /// Another instance inserted or changed the row meanwhile: read it again.
    Raced,
}

impl<D: Dialect> SqlStore<D> {
    pub(super) async fn register_schedule_sql(&self, s: &NewSchedule) -> Result<ScheduleRecord> {
        for _ in 0..REGISTER_TRIES {
            let r = self
                .retrying(|| async move {
                    let txn = self.begin().await?;
                    let r = self.register_in(&txn, s).await;
                    end(txn, r).await
                })
                .await?;
            if let Registered::Row(row) = r {
                return Ok(row);
            }
        }
        Err(Error::backend(
            true,
            format!(
                "registering schedule `{}` kept racing with other instances; try again",
                s.name
            ),
        ))
    }

    async fn register_in(&self, txn: &crate::WriteTxn, s: &NewSchedule) -> Step<Registered> {
        let now = stored(s.now);
        let found = schedule::Entity::find()
            .filter(schedule::Column::Name.eq(s.name.as_str()))
            .one(&**txn)
            .await?;
        let Some(row) = found else {
            let insert = schedule::ActiveModel {
                id: NotSet,
                name: Set(s.name.clone()),
                spec: Set(s.spec.clone()),
                time_zone: Set(s.time_zone.clone()),
                task_type: Set(s.task_type.clone()),
                fingerprint: Set(s.fingerprint.clone()),
                last_tick: Set(sql(now)),
                next_tick: Set(s.next_tick.map(sql)),
                created_at: Set(sql(now)),
                registered_at: Set(sql(now)),
                updated_at: Set(sql(now)),
            };
            return match schedule::Entity::insert(insert).exec(&**txn).await {
                Ok(_) => self.read_schedule(txn, &s.name).await.map(Registered::Row),
                Err(e) if self.dialect.classify(&e) == ErrorKind::UniqueViolation => {
                    Ok(Registered::Raced)
                }
                Err(e) => Err(Fail::Db(e)),
            };
        };
        let update = schedule::Entity::update_many()
            .col_expr(schedule::Column::RegisteredAt, Expr::value(sql(now)))
            .filter(schedule::Column::Name.eq(s.name.as_str()))
            .filter(schedule::Column::Fingerprint.eq(row.fingerprint.as_str()))
            .filter(schedule::Column::LastTick.eq(row.last_tick));
        let update = if row.fingerprint == s.fingerprint {
            update
        } else {
            // A changed definition: its ticks start after the change.
            let last = row.last_tick.max(sql(now));
            update
                .col_expr(schedule::Column::Spec, Expr::value(s.spec.clone()))
                .col_expr(schedule::Column::TimeZone, Expr::value(s.time_zone.clone()))
                .col_expr(schedule::Column::TaskType, Expr::value(s.task_type.clone()))
                .col_expr(
                    schedule::Column::Fingerprint,
                    Expr::value(s.fingerprint.clone()),
                )
                .col_expr(schedule::Column::LastTick, Expr::value(last))
                .col_expr(
                    schedule::Column::NextTick,
                    Expr::value(s.next_tick.map(sql)),
                )
                .col_expr(schedule::Column::UpdatedAt, Expr::value(sql(now)))
        };
        if update.exec(&**txn).await?.rows_affected == 0 {
            return Ok(Registered::Raced);
        }
        self.read_schedule(txn, &s.name).await.map(Registered::Row)
    }

    async fn read_schedule(&self, txn: &crate::WriteTxn, name: &str) -> Step<ScheduleRecord> {
        schedule::Entity::find()
            .filter(schedule::Column::Name.eq(name))
            .one(&**txn)
            .await?
            .map(schedule::Model::into_record)
            .ok_or_else(|| Fail::Task(Error::ScheduleNotFound(name.to_owned())))
    }

    pub(super) async fn advance_schedule_sql(&self, a: &ScheduleAdvance) -> Result<AdvanceStatus> {
        if a.to <= a.from {
            return Err(Error::InvalidInput(format!(
                "schedule `{}`: a tick moves forward ({} is not after {})",
                a.name, a.to, a.from
            )));
        }
        if let Some(task) = &a.task {
            validate(task)?;
        }
        self.retrying(|| async move {
            let txn = self.begin().await?;
            let r = self.advance_in(&txn, a).await;
            end(txn, r).await
        })
        .await
    }

    async fn advance_in(&self, txn: &crate::WriteTxn, a: &ScheduleAdvance) -> Step<AdvanceStatus> {
        // The conditional update: of all contenders that read `from`, one moves the row.
        let moved = schedule::Entity::update_many()
            .col_expr(schedule::Column::LastTick, Expr::value(sql(a.to)))
            .col_expr(
                schedule::Column::NextTick,
                Expr::value(a.next_tick.map(sql)),
            )
            .col_expr(schedule::Column::UpdatedAt, Expr::value(sql(a.now)))
            .filter(schedule::Column::Name.eq(a.name.as_str()))
            .filter(schedule::Column::LastTick.eq(sql(a.from)))
            .filter(schedule::Column::Fingerprint.eq(a.fingerprint.as_str()))
            .exec(&**txn)
            .await?
            .rows_affected;
        if moved == 0 {
            return Ok(AdvanceStatus::Lost);
        }
        if let Some(task) = &a.task {
            // Insert if absent: the tick's code is the same on every instance, so a task
            // enqueued for this tick by any earlier means is not enqueued twice.
            match find(&**txn, &TaskRef::Code(task.code.clone())).await {
                Ok(_) => {}
                Err(Fail::Task(Error::NotFound(_))) => {
                    match insert_row(&*self.dialect, &**txn, task, true).await {
                        Ok(_) | Err(Fail::Task(Error::DuplicateCode(_))) => {}
                        Err(f) => return Err(f),
                    }
                }
                Err(f) => return Err(f),
            }
        }
        Ok(AdvanceStatus::Advanced)
    }

    pub(super) async fn schedules_sql(&self) -> Result<Vec<ScheduleRecord>> {
        let rows = schedule::Entity::find()
            .order_by_asc(schedule::Column::Name)
            .all(&self.db)
            .await
            .map_err(|e| self.error(Fail::Db(e)))?;
        Ok(rows.into_iter().map(schedule::Model::into_record).collect())
    }

    pub(super) async fn remove_schedule_sql(&self, name: &str) -> Result<ScheduleRecord> {
        self.retrying(|| async move {
            let txn = self.begin().await?;
            let r = async {
                let row = self.read_schedule(&txn, name).await?;
                schedule::Entity::delete_by_id(row.id).exec(&*txn).await?;
                Ok(row)
            }
            .await;
            end(txn, r).await
        })
        .await
    }
}
