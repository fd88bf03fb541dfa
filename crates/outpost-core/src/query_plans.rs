//! The plans of the sync's hot-path queries, held to the index each was written for. Users'
//! databases are never analysed (no `sqlite_stat1`), so these tests check the planner's choice
//! on a fresh store, which is what a device runs; a plan that scans or sorts the outbox makes a
//! long offline backlog sync in quadratic time (schema V5 fixed one such plan).

use crate::outbox::{ACKNOWLEDGE_SQL, take_batch_sql};
use crate::status::STATUS_SQL;
use crate::sync::apply::{PENDING_SQL, load_note_sql};

fn plan_of(sql: &str) -> Vec<String> {
    // A bare migrated database: the store itself runs `PRAGMA optimize` when it opens, and this
    // is about the plan SQLite picks before any statistics exist.
    let mut conn = rusqlite::Connection::open_in_memory().expect("db");
    crate::schema::migrations()
        .to_latest(&mut conn)
        .expect("migrate");
    let mut stmt = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .expect("prepare");
    // The plan does not depend on the values; every parameter is bound to NULL.
    let nulls = std::iter::repeat_n(rusqlite::types::Null, stmt.parameter_count());
    stmt.query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
        .and_then(|r| r.collect::<rusqlite::Result<Vec<_>>>())
        .expect("plan")
}

/// The plan uses `index` and never scans `notes` or `outbox` row by row; unless `sorts_few`
/// (the rows of one entity, a handful), it never sorts either.
fn assert_plan(what: &str, sql: &str, index: &str, sorts_few: bool) {
    let plan = plan_of(sql);
    let bad: Vec<&String> = plan
        .iter()
        .filter(|step| {
            (step.contains("TEMP B-TREE") && !sorts_few)
                || ((step.starts_with("SCAN outbox")
                    || step.starts_with("SCAN o ")
                    || step.starts_with("SCAN notes"))
                    && !step.contains("INDEX"))
        })
        .collect();
    assert!(bad.is_empty(), "{what}: {bad:?} in {plan:#?}");
    assert!(
        plan.iter().any(|s| s.contains(index)),
        "{what} should use {index}: {plan:#?}"
    );
}

#[test]
fn taking_a_batch_reads_the_queue_in_send_order_without_sorting_it() {
    assert_plan("take a batch", &take_batch_sql(), "outbox_by_state", false);
}

#[test]
fn acknowledging_finds_the_entry_by_its_mutation_id() {
    assert_plan(
        "acknowledge",
        ACKNOWLEDGE_SQL,
        "sqlite_autoindex_outbox_1",
        false,
    );
}

#[test]
fn applying_a_page_finds_each_notes_entries_and_row_by_id() {
    assert_plan("pending entries", PENDING_SQL, "outbox_by_entity", true);
    assert_plan(
        "the local note",
        &load_note_sql(),
        "sqlite_autoindex_notes_1",
        false,
    );
}

#[test]
fn the_status_counts_from_indexes() {
    assert_plan("the status", STATUS_SQL, "outbox_by_state", false);
}
