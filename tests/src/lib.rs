//! The conformance suite: the one definition of how a taskrow store behaves.
//!
//! Every behaviour promised by [`taskrow::TaskStore`]'s contract is a `pub async fn` in
//! [`cases`], one module per operation (`cases::claim::skips_live_lease`). Each case takes a
//! fresh, empty store and panics when the store breaks the contract. The
//! [`store_conformance!`] macro runs every case against one store, so a store joins the suite
//! with one line, and a new case runs for every store at once:
//!
//! ```ignore
//! use taskrow_memory::MemoryStore;
//! use taskrow_tests::factory::TestStore;
//!
//! taskrow_tests::store_conformance!(memory, || async { TestStore::new(MemoryStore::new()) });
//! ```
//!
//! Stores keep no clock: every case passes times explicitly, built from a fixed base
//! ([`cases::t0`]) and moved by hand, so no case sleeps.

pub mod cases;
pub mod complete_in;
pub mod consistency;
pub mod factory;
pub mod faults;
pub mod tasks;
pub mod wrappers;

/// The README's examples, compiled and run as doc-tests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// Runs every conformance case against one store, as `#[tokio::test]`s named
/// `<store>::<operation>::<behaviour>` (`memory::claim::skips_live_lease`).
///
/// `$factory` is something callable with no arguments whose call is awaited and gives a
/// [`factory::TestStore`], a [`factory::Setup`] or an `Option<TestStore>` (an async fn, or a
/// closure returning an async block); it is called once per test, so each test gets a fresh
/// store. Paths in `$factory` resolve in the invoking module. The invoking crate needs `tokio`
/// with the `macros` and `rt-multi-thread` features.
///
/// A test awaits the case and then, only if the case returned, the store's cleanup: a failed
/// test leaves its database behind for inspection. A skipped store prints `skipped: <reason>`
/// and passes, except under `CI=true`, where a skip fails the test.
#[macro_export]
macro_rules! store_conformance {
    ($store:ident, $factory:expr) => {
        mod $store {
            #[allow(unused_imports)]
            use super::*;

            async fn setup() -> $crate::factory::Setup {
                $crate::factory::Setup::from(($factory)().await)
            }

            $crate::conformance_cases! {
                insert {
                    returns_pending_row,
                    duplicate_code_changes_nothing,
                    codes_are_exact,
                    keeps_code_of_max_length,
                    rejects_invalid_input,
                    payload_round_trips,
                }
                insert_many {
                    inserts_all,
                    empty_batch_inserts_nothing,
                    duplicate_within_batch_inserts_nothing,
                    duplicate_against_table_inserts_nothing,
                }
                insert_if_absent {
                    inserts_when_absent,
                    returns_existing_unchanged,
                }
                claim {
                    takes_only_due_tasks,
                    takes_oldest_due_first,
                    respects_limit,
                    filters_by_biz_type,
                    filters_by_task_type,
                    sets_running_and_lease,
                    skips_live_lease,
                    reclaims_expired_lease,
                    sets_new_claim_token_each_time,
                    logs_lost_run_as_worker_lost,
                    fails_expired_task_at_last_attempt,
                    reclaims_unlimited_task_every_time,
                    lost_reply_tasks_are_reclaimed_after_lease,
                    skips_finished_tasks,
                    skips_excluded_ids,
                    concurrent_claimers_take_each_task_once,
                    refuses_worker_id_that_does_not_fit,
                    records_when_the_run_became_due,
                }
                claim_one {
                    claims_pending_not_yet_due,
                    claims_by_id,
                    claims_failed_task,
                    claims_expired_lease,
                    logs_lost_run_of_expired_lease,
                    runs_expired_task_past_last_attempt,
                    only_pending_claims_pending,
                    only_pending_claims_expired_lease,
                    only_pending_fails_exhausted_expired_task,
                    only_pending_refuses_failed,
                    refuses_live_running,
                    refuses_cancelled,
                    refuses_succeeded,
                    refuses_unknown,
                    concurrent_claims_have_one_winner,
                    refuses_worker_id_that_does_not_fit,
                }
                finish {
                    success_deletes_and_logs,
                    success_keeps_when_asked,
                    retry_makes_pending_due_at,
                    failed_makes_failed,
                    keeps_error_of_max_length,
                    batch_answers_per_item_in_order,
                    late_finish_from_old_holder_is_lease_lost,
                    late_failure_from_old_holder_is_lease_lost,
                    finish_of_deleted_task_is_lease_lost,
                    interrupted_gives_attempt_back,
                    applies_after_lease_expiry_until_reclaimed,
                    retried_success_is_applied_once,
                    retried_kept_success_is_applied_once,
                    retried_retry_is_applied_once,
                    retried_failure_is_applied_once,
                    retried_interruption_is_applied_once,
                    retried_retry_is_applied_after_reclaim,
                    late_finish_replaces_worker_lost_row,
                    retry_after_lost_reply_is_applied,
                }
                release {
                    returns_task_to_pending,
                    stale_lease_is_lease_lost,
                    released_lease_is_spent,
                }
                extend_lease {
                    moves_expiry_and_bumps_version,
                    finish_after_extend_is_applied,
                    repeated_extend_keeps_token,
                    extends_expired_lease_until_reclaimed,
                    stale_lease_is_refused,
                    finished_run_is_refused,
                    lost_reply_then_next_beat_and_finish_hold,
                }
                get {
                    by_id_and_code,
                    missing_is_not_found,
                }
                list {
                    returns_all_in_id_order,
                    filters_by_state,
                    filters_by_biz_type,
                    filters_by_task_type,
                    filters_by_code_prefix,
                    code_prefix_is_literal,
                    code_prefix_of_any_characters,
                    filters_by_due_before,
                    combines_filters,
                    pages_cover_all_rows_once,
                    rows_match_list,
                }
                logs {
                    by_task_id,
                    by_code_after_task_is_deleted,
                    filters_by_outcome,
                    filters_by_since,
                    limit_keeps_oldest,
                    limit_newest_keeps_latest,
                    one_row_per_claim_token,
                    filters_by_outcome_worker_lost,
                }
                counts {
                    empty_store_has_none,
                    by_type_and_state,
                }
                priority {
                    higher_level_beats_age,
                    same_level_oldest_due_first,
                    retried_task_keeps_its_level,
                    levels_come_from_options_then_type,
                    counts_by_queue_and_level,
                }
                queues {
                    claim_filters_by_queue,
                    list_and_reset_filter_by_queue,
                    paused_queue_is_not_claimed_until_resumed,
                    queues_lists_state_and_counts,
                    invalid_queue_name_is_refused,
                    flood_in_one_queue_leaves_anothers_slots,
                    worker_honours_pause_and_resume,
                    run_until_idle_runs_each_queue,
                }
                reset {
                    one_failed_task_runs_again,
                    one_cancelled_task_runs_again,
                    one_retrying_task_starts_over,
                    one_expired_running_task_runs_again,
                    one_expired_running_task_logs_lost_run,
                    one_clears_interruptions,
                    one_refuses_live_running,
                    one_refuses_succeeded,
                    one_missing_is_not_found,
                    matching_resets_only_failed_and_cancelled,
                    matching_states_narrow_further,
                }
                cancel {
                    pending_becomes_cancelled,
                    failed_becomes_cancelled,
                    expired_running_becomes_cancelled,
                    expired_running_logs_lost_run,
                    cancelled_again_is_ok,
                    live_running_is_marked,
                    heartbeat_reports_the_mark,
                    mark_survives_a_lost_beat_reply,
                    marked_failure_ends_cancelled,
                    marked_success_stays_succeeded,
                    cancelled_finish_ends_cancelled,
                    claim_skips_marked_task,
                    release_of_marked_task_cancels_it,
                    reset_clears_the_mark,
                    refuses_succeeded,
                    missing_is_not_found,
                    matching_skips_refused,
                }
                delete {
                    removes_task_and_keeps_logs,
                    expired_running_can_be_deleted,
                    expired_running_logs_lost_run,
                    refuses_live_running,
                    missing_is_not_found,
                    unreadable_refuses_readable_row,
                    matching_skips_live_running,
                }
                purge {
                    removes_old_finished_tasks_and_logs,
                    failed_tasks_go_when_named,
                    keeps_logs_when_told,
                    refuses_unfinished_states,
                    limit_bounds_each_batch,
                    dry_run_counts_and_removes_nothing,
                }
                times {
                    micros_round_trip,
                }
                retry {
                    fixed_policy_waits_interval,
                    exponential_policy_stays_within_jitter_bounds,
                    exhausted_attempts_fail,
                    permanent_error_fails_at_once,
                    retry_at_is_honoured,
                    retry_after_is_honoured,
                    unlimited_attempts_keep_retrying,
                }
                worker {
                    drains_with_concurrency,
                    pipelined_claims_stay_bounded,
                    retries_at_policy_times,
                    permanent_failure_and_exhausted_attempts,
                    unknown_type_and_corrupt_payload,
                    panic_is_a_failed_attempt,
                    timeout_stops_a_hanging_handler,
                    missing_data_names_the_type,
                    shutdown_signals_and_leaves_nothing_leased,
                    shutdown_deadline_interrupts,
                    heartbeat_keeps_slow_task_leased,
                    limits_by_biz_type_and_task_type,
                    run_now_runs_and_refuses,
                    bad_settings_fail_at_build,
                    claimed_ahead_task_is_handed_back,
                    client_operations_use_the_clients_clock,
                    cancel_stops_a_listening_handler,
                    cancel_aborts_an_ignoring_handler_at_grace,
                    cancel_survives_lost_beat_replies,
                }
                retention {
                    workers_purge_old_rows,
                    bad_retention_settings_fail_at_build,
                }
                wait {
                    reports_each_end,
                    follows_retries_to_the_end,
                    times_out_and_tells_deleted_from_unknown,
                }
                schedule {
                    registers_once_per_name,
                    concurrent_registrations_leave_one_row,
                    advance_moves_tick_and_inserts_task,
                    second_contender_loses,
                    deleted_tick_task_is_not_enqueued_again,
                    existing_tick_task_is_kept,
                    advance_without_task,
                    advance_refuses_backward,
                    changed_definition_replaces_row,
                    removed_schedule,
                    lists_by_name,
                    three_workers_hundred_ticks,
                    missed_ticks_skip,
                    missed_ticks_run_latest,
                    changed_schedule_is_taken_up_on_start,
                    removed_schedule_stops_ticking,
                    started_worker_ticks,
                    started_worker_wakes_at_the_next_tick,
                    slow_pass_still_wakes_at_the_next_tick,
                    lost_advance_reply_enqueues_the_tick_once,
                    bad_definitions_fail_at_build,
                }
                workers {
                    beat_inserts_then_replaces,
                    alive_until_stale,
                    lists_by_id,
                    remove_answers_whether_there_was_a_row,
                    prune_is_bounded_and_oldest_first,
                    prune_keeps_rows_beaten_again,
                    concurrent_beats_leave_one_row_each,
                    bad_beats_are_refused,
                    started_worker_appears_and_leaves_at_shutdown,
                    failed_beats_never_stop_the_runs,
                    started_worker_prunes_rows_long_gone,
                }
                upkeep {
                    lost_heartbeats_stop_the_handler,
                    lost_replies_keep_lease_and_result,
                    dropped_run_now_keeps_its_upkeep,
                    claimed_ahead_tasks_start_at_attempt_one,
                    shutdown_on_last_attempt_runs_again,
                    stalled_writer_pauses_claiming,
                    refused_result_does_not_block_others,
                    shutdown_never_waits_for_a_hung_database,
                    stale_clock_pauses_claiming,
                }
            }
        }
    };
}

/// One `#[tokio::test]` per case, grouped in a module per operation. Used by
/// [`store_conformance!`]; not meant to be called directly.
#[doc(hidden)]
#[macro_export]
macro_rules! conformance_cases {
    ($($op:ident { $($case:ident),* $(,)? })*) => {
        $(
            mod $op {
                $(
                    #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn $case() {
                        $crate::factory::run(super::setup(), $crate::cases::$op::$case).await;
                    }
                )*
            }
        )*
    };
}
