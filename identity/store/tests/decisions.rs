//! Access decisions edges report: insert, filters, paging, retention, and the migration that
//! adds them to a version-1 database.

#![allow(clippy::unwrap_used)]

use identity_claims::{DecisionKind, DecisionOutcome, DecisionRecord};
use identity_store::{
    DecisionCursor, DecisionQuery, DeviceId, Revision, ServiceTokenId, Store, UserId,
    MAX_DECISION_PAGE,
};

const T0: u64 = 1_767_600_000_000;

fn record(at_ms: u64, who: &str, decision: DecisionOutcome) -> DecisionRecord {
    DecisionRecord {
        at_ms,
        edge: "fra1".into(),
        reference: Some(format!("{at_ms:016x}")),
        decision,
        kind: DecisionKind::Http,
        source_ip: "100.64.0.2".into(),
        device_id: Some(format!("dev_{who}")),
        user_id: Some(format!("usr_{who}")),
        email: Some(format!("{who}@corp.example")),
        destination: "wiki.corp.example/".into(),
        application: Some("wiki".into()),
        policy: None,
        reason: "r".into(),
    }
}

fn token() -> ServiceTokenId {
    ServiceTokenId::new("tok_edge")
}

fn times(found: &[identity_store::StoredDecision]) -> Vec<u64> {
    found.iter().map(|d| d.record.at_ms - T0).collect()
}

#[test]
fn a_batch_is_stored_with_consecutive_ids_and_read_back_newest_first() {
    let store = Store::open_in_memory().unwrap();
    let batch = [
        record(T0 + 10, "ada", DecisionOutcome::Allow),
        record(T0 + 30, "ada", DecisionOutcome::Deny),
        record(T0 + 20, "bob", DecisionOutcome::Deny),
    ];
    assert_eq!(
        store.insert_decisions(&token(), &batch, T0 + 99).unwrap(),
        3
    );
    assert_eq!(store.insert_decisions(&token(), &[], T0).unwrap(), 0);
    let all = store.decisions(&DecisionQuery::default()).unwrap();
    assert_eq!(times(&all), [30, 20, 10]);
    assert_eq!(all.iter().map(|d| d.id).collect::<Vec<_>>(), [2, 3, 1]);
    assert_eq!(all[0].record, batch[1]);
    assert_eq!(all[0].token_id, token());
    assert_eq!(all[0].received_at_ms, T0 + 99);
    assert_eq!(
        store.current_revision().unwrap(),
        Revision(0),
        "decisions are not in the feed"
    );
}

#[test]
fn every_filter_narrows_the_result() {
    let store = Store::open_in_memory().unwrap();
    let mut other_app = record(T0 + 40, "bob", DecisionOutcome::Allow);
    other_app.application = Some("db".into());
    store
        .insert_decisions(
            &token(),
            &[
                record(T0 + 10, "ada", DecisionOutcome::Allow),
                record(T0 + 20, "ada", DecisionOutcome::Deny),
                record(T0 + 30, "bob", DecisionOutcome::Deny),
                other_app,
            ],
            T0,
        )
        .unwrap();
    let find = |q: DecisionQuery| times(&store.decisions(&q).unwrap());
    let q = DecisionQuery::default;
    assert_eq!(
        find(DecisionQuery {
            email: Some("ada@corp.example".into()),
            ..q()
        }),
        [20, 10]
    );
    assert_eq!(
        find(DecisionQuery {
            user_id: Some(UserId::new("usr_bob")),
            ..q()
        }),
        [40, 30]
    );
    assert_eq!(
        find(DecisionQuery {
            device_id: Some(DeviceId::new("dev_ada")),
            decision: Some(DecisionOutcome::Deny),
            ..q()
        }),
        [20]
    );
    assert_eq!(
        find(DecisionQuery {
            application: Some("db".into()),
            ..q()
        }),
        [40]
    );
    assert_eq!(
        find(DecisionQuery {
            reference: Some(format!("{:016x}", T0 + 30)),
            ..q()
        }),
        [30]
    );
    assert_eq!(
        find(DecisionQuery {
            since_ms: Some(T0 + 20),
            until_ms: Some(T0 + 40),
            ..q()
        }),
        [30, 20],
        "since is inclusive, until exclusive"
    );
    assert_eq!(
        find(DecisionQuery {
            email: Some("nobody@corp.example".into()),
            ..q()
        }),
        Vec::<u64>::new()
    );
}

#[test]
fn pages_follow_the_cursor_without_gaps_or_repeats_on_equal_times() {
    let store = Store::open_in_memory().unwrap();
    // Five decisions in the same millisecond and two others: the cursor must split ties by id.
    let mut batch: Vec<_> = (0..5)
        .map(|_| record(T0 + 50, "ada", DecisionOutcome::Deny))
        .collect();
    batch.push(record(T0 + 60, "ada", DecisionOutcome::Deny));
    batch.push(record(T0 + 10, "ada", DecisionOutcome::Deny));
    store.insert_decisions(&token(), &batch, T0).unwrap();
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .decisions(&DecisionQuery {
                before,
                limit: 3,
                ..DecisionQuery::default()
            })
            .unwrap();
        seen.extend(page.iter().map(|d| (d.record.at_ms - T0, d.id)));
        match page.last() {
            Some(last) if page.len() == 3 => before = Some(last.cursor()),
            _ => break,
        }
    }
    assert_eq!(
        seen,
        [
            (60, 6),
            (50, 5),
            (50, 4),
            (50, 3),
            (50, 2),
            (50, 1),
            (10, 7)
        ]
    );
}

#[test]
fn the_page_size_is_capped() {
    let store = Store::open_in_memory().unwrap();
    let batch: Vec<_> = (0..u64::from(MAX_DECISION_PAGE) + 5)
        .map(|i| record(T0 + i, "ada", DecisionOutcome::Allow))
        .collect();
    store.insert_decisions(&token(), &batch, T0).unwrap();
    let page = store
        .decisions(&DecisionQuery {
            limit: u32::MAX,
            ..DecisionQuery::default()
        })
        .unwrap();
    assert_eq!(page.len(), MAX_DECISION_PAGE as usize);
}

#[test]
fn cursors_round_trip_through_text() {
    let cursor = DecisionCursor { at_ms: T0, id: 42 };
    assert_eq!(cursor.to_string(), format!("{T0}-42"));
    assert_eq!(
        cursor.to_string().parse::<DecisionCursor>().unwrap(),
        cursor
    );
    for bad in ["", "1", "a-1", "1-", "-1-2"] {
        assert!(bad.parse::<DecisionCursor>().is_err(), "{bad}");
    }
}

#[test]
fn pruning_removes_the_oldest_in_bounded_steps() {
    let store = Store::open_in_memory().unwrap();
    let batch: Vec<_> = (0..10)
        .map(|i| record(T0 + i, "ada", DecisionOutcome::Allow))
        .collect();
    store.insert_decisions(&token(), &batch, T0).unwrap();
    assert_eq!(store.prune_decisions(T0 + 7, 4).unwrap(), 4);
    assert_eq!(store.prune_decisions(T0 + 7, 4).unwrap(), 3);
    assert_eq!(store.prune_decisions(T0 + 7, 4).unwrap(), 0);
    let left = store.decisions(&DecisionQuery::default()).unwrap();
    assert_eq!(times(&left), [9, 8, 7]);
    // Ids keep counting after a prune.
    store
        .insert_decisions(
            &token(),
            &[record(T0 + 11, "ada", DecisionOutcome::Allow)],
            T0,
        )
        .unwrap();
    assert_eq!(
        store.decisions(&DecisionQuery::default()).unwrap()[0].id,
        11
    );
}

#[test]
fn a_version_1_database_migrates_and_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity.db");
    {
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        rusqlite_migration::Migrations::new(vec![rusqlite_migration::M::up(include_str!(
            "../migrations/0001_initial.sql"
        ))])
        .to_latest(&mut conn)
        .unwrap();
        conn.execute(
            "INSERT INTO users (id, idp, subject, email, disabled, created_at, updated_at) \
             VALUES ('usr_1', 'corp', 's', 'a@example.com', 0, 1, 1)",
            [],
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), 3);
    assert!(store.user(&UserId::new("usr_1")).unwrap().is_some());
    store
        .insert_decisions(&token(), &[record(T0, "ada", DecisionOutcome::Deny)], T0)
        .unwrap();
    assert_eq!(store.decisions(&DecisionQuery::default()).unwrap()[0].id, 1);
}
