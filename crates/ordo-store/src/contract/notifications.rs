//! Contract checks for the notification delivery log (K1).

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use ordo_core::notify::{Channel, DeliveryStatus, Locale};
use ordo_core::{EventSeq, IdSource, OrderId, ShopId, Timestamp};

use super::{Ids, T0, cny, expect_not_found, new_shop, ok};
use crate::{AttemptOutcome, NewNotification, NotificationAttempt, NotificationFilter, NotificationRecord, Store};

/// Event numbers no other check or run uses: the log's (event, channel) key is global.
fn fresh_seqs() -> EventSeq {
    let random = RandomState::new().hash_one(std::process::id());
    (1 << 40) + (random % (1 << 50)) as i64 * 16
}

fn new(shop: ShopId, seq: EventSeq, order: OrderId, channel: Channel, at: Timestamp) -> NewNotification {
    NewNotification {
        shop,
        event_seq: seq,
        order,
        channel,
        recipient: match channel {
            Channel::Email => "buyer@example.com".into(),
            Channel::Sms => "13800000000".into(),
        },
        template: "order.paid".into(),
        locale: Locale::En,
        data: serde_json::json!({ "n": seq }),
        created_at: at,
    }
}

async fn shop(store: &Arc<dyn Store>) -> (ShopId, Ids) {
    let mut ids = Ids::fresh();
    let shop = new_shop(store.as_ref(), &mut ids, cny()).await.id;
    (shop, ids)
}

fn mine(records: Vec<NotificationRecord>, shop: ShopId) -> Vec<NotificationRecord> {
    records.into_iter().filter(|r| r.shop == shop).collect()
}

fn all(limit: u32) -> NotificationFilter {
    NotificationFilter {
        limit,
        ..Default::default()
    }
}

pub(super) async fn notifications_enqueue_once_per_event_and_channel(store: Arc<dyn Store>) {
    let (shop, mut ids) = shop(&store).await;
    let order = OrderId(ids.next_id());
    let seq = fresh_seqs();
    let start = ok("notification_cursor", store.notification_cursor().await);

    let first = vec![
        new(shop, seq, order, Channel::Email, T0),
        new(shop, seq, order, Channel::Sms, T0),
    ];
    assert_eq!(
        ok("enqueue", store.enqueue_notifications(first.clone(), start + 3).await),
        2
    );
    assert_eq!(ok("notification_cursor", store.notification_cursor().await), start + 3);

    // Replanning the same event inserts nothing; a new event's notification is added.
    let mut again = first;
    again.push(new(shop, seq + 1, order, Channel::Email, T0));
    assert_eq!(
        ok("enqueue again", store.enqueue_notifications(again, start + 1).await),
        1
    );
    assert_eq!(
        ok("notification_cursor", store.notification_cursor().await),
        start + 3,
        "the cursor never moves backwards"
    );

    let listed = ok("list_notifications", store.list_notifications(shop, &all(10)).await);
    assert_eq!(listed.len(), 3);
    let email = listed
        .iter()
        .find(|n| n.event_seq == seq && n.channel == Channel::Email)
        .expect("the e-mail is listed");
    assert_eq!(email.shop, shop);
    assert_eq!(email.order, order);
    assert_eq!(email.recipient, "buyer@example.com");
    assert_eq!(email.template, "order.paid");
    assert_eq!(email.locale, Locale::En);
    assert_eq!(email.data, serde_json::json!({ "n": seq }));
    assert_eq!(email.status, DeliveryStatus::Pending);
    assert_eq!(email.attempts, 0);
    assert_eq!(email.next_attempt_at, Some(T0));
    assert_eq!((email.last_error.as_deref(), email.sent_at), (None, None));
    assert_eq!(email.created_at, T0);
}

pub(super) async fn notifications_are_due_by_time_and_record_attempts(store: Arc<dyn Store>) {
    let (shop, mut ids) = shop(&store).await;
    let order = OrderId(ids.next_id());
    let seq = fresh_seqs();
    let cursor = ok("notification_cursor", store.notification_cursor().await);
    let later = T0.plus_secs(60);
    let items = vec![
        new(shop, seq, order, Channel::Email, T0),
        new(shop, seq + 1, order, Channel::Email, later),
        new(shop, seq + 2, order, Channel::Email, T0),
    ];
    ok("enqueue", store.enqueue_notifications(items, cursor).await);
    let due = |at: Timestamp| {
        let store = Arc::clone(&store);
        async move { mine(ok("due_notifications", store.due_notifications(at, 1000).await), shop) }
    };
    let seqs = |records: &[NotificationRecord]| records.iter().map(|r| r.event_seq).collect::<Vec<_>>();
    assert_eq!(seqs(&due(T0.plus_millis(-1)).await), Vec::<EventSeq>::new());
    assert_eq!(seqs(&due(T0).await), vec![seq, seq + 2]);
    assert_eq!(seqs(&due(later).await), vec![seq, seq + 2, seq + 1], "earliest first");

    // A failed attempt with a retry: pending, due again at the retry time only.
    let first = due(T0).await.remove(0);
    let retry_at = T0.plus_secs(30);
    let failed = NotificationAttempt {
        notification: first.id,
        at: T0,
        ok: false,
        detail: "connection refused".into(),
    };
    ok(
        "record attempt",
        store
            .record_notification_attempt(first.id, &failed, AttemptOutcome::Retry { at: retry_at })
            .await,
    );
    assert_eq!(seqs(&due(T0).await), vec![seq + 2]);
    let again = due(retry_at).await;
    let retried = again.iter().find(|r| r.id == first.id).expect("due at the retry time");
    assert_eq!(retried.status, DeliveryStatus::Pending);
    assert_eq!(retried.attempts, 1);
    assert_eq!(retried.next_attempt_at, Some(retry_at));
    assert_eq!(retried.last_error.as_deref(), Some("connection refused"));

    // Then it is sent: no longer due, the error of the earlier attempt kept.
    let sent_at = retry_at.plus_secs(1);
    let worked = NotificationAttempt {
        notification: first.id,
        at: sent_at,
        ok: true,
        detail: "250 OK".into(),
    };
    ok(
        "record attempt",
        store
            .record_notification_attempt(first.id, &worked, AttemptOutcome::Sent)
            .await,
    );
    assert!(due(later.plus_secs(3600)).await.iter().all(|r| r.id != first.id));
    let listed = ok("list_notifications", store.list_notifications(shop, &all(10)).await);
    let sent = listed.iter().find(|r| r.id == first.id).expect("listed");
    assert_eq!(sent.status, DeliveryStatus::Sent);
    assert_eq!(
        (sent.attempts, sent.sent_at, sent.next_attempt_at),
        (2, Some(sent_at), None)
    );

    // Another gives up.
    let other = due(T0).await.remove(0);
    let gave_up = NotificationAttempt {
        notification: other.id,
        at: T0,
        ok: false,
        detail: "no provider configured".into(),
    };
    ok(
        "record attempt",
        store
            .record_notification_attempt(other.id, &gave_up, AttemptOutcome::Failed)
            .await,
    );
    let listed = ok("list_notifications", store.list_notifications(shop, &all(10)).await);
    let failed_record = listed.iter().find(|r| r.id == other.id).expect("listed");
    assert_eq!(failed_record.status, DeliveryStatus::Failed);
    assert_eq!(failed_record.next_attempt_at, None);
    assert_eq!(failed_record.last_error.as_deref(), Some("no provider configured"));

    let attempts = ok(
        "notification_attempts",
        store.notification_attempts(shop, &[first.id, other.id]).await,
    );
    assert_eq!(attempts, {
        let mut expected = vec![failed, worked, gave_up];
        expected.sort_by_key(|a| a.notification);
        expected
    });

    expect_not_found(
        "an attempt of an unknown notification",
        store
            .record_notification_attempt(i64::MAX, &gave_up_for(i64::MAX), AttemptOutcome::Failed)
            .await,
    );
}

fn gave_up_for(id: i64) -> NotificationAttempt {
    NotificationAttempt {
        notification: id,
        at: T0,
        ok: false,
        detail: "x".into(),
    }
}

pub(super) async fn each_due_notification_is_claimed_by_one_worker(store: Arc<dyn Store>) {
    let (shop, mut ids) = shop(&store).await;
    let order = OrderId(ids.next_id());
    let seq = fresh_seqs();
    let cursor = ok("notification_cursor", store.notification_cursor().await);
    let items = (0..20).map(|i| new(shop, seq + i, order, Channel::Email, T0)).collect();
    ok("enqueue", store.enqueue_notifications(items, cursor).await);
    let due = mine(ok("due", store.due_notifications(T0, 1000).await), shop);
    let ids: Vec<i64> = due.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 20);
    let lease = T0.plus_secs(300);

    // Eight workers claim the same page at once: each notification goes to exactly one.
    let claims = (0..8).map(|_| store.claim_notifications(&ids, T0, lease)).collect();
    let mut won: Vec<i64> = Vec::new();
    for claim in super::join_all(claims).await {
        won.extend(ok("claim", claim));
    }
    won.sort_unstable();
    let mut want = ids.clone();
    want.sort_unstable();
    assert_eq!(won, want, "every notification claimed exactly once");

    // Claimed: not due again until the lease runs out, and not claimable meanwhile.
    assert!(mine(ok("due", store.due_notifications(T0.plus_secs(299), 1000).await), shop).is_empty());
    assert!(ok("claim", store.claim_notifications(&ids, T0.plus_secs(299), lease).await).is_empty());
    assert_eq!(
        mine(ok("due", store.due_notifications(lease, 1000).await), shop).len(),
        20
    );

    // A notification already sent is never claimed, whatever the time.
    let sent = NotificationAttempt {
        notification: ids[0],
        at: T0,
        ok: true,
        detail: "250 OK".into(),
    };
    ok(
        "record attempt",
        store
            .record_notification_attempt(ids[0], &sent, AttemptOutcome::Sent)
            .await,
    );
    let later = lease.plus_secs(3600);
    let again = ok(
        "claim",
        store.claim_notifications(&ids, later, later.plus_secs(300)).await,
    );
    assert_eq!(again.len(), 19);
    assert!(!again.contains(&ids[0]));
}

pub(super) async fn notifications_are_scoped_and_paged(store: Arc<dyn Store>) {
    let (a, mut ids) = shop(&store).await;
    let (b, _) = shop(&store).await;
    let (one, two) = (OrderId(ids.next_id()), OrderId(ids.next_id()));
    let seq = fresh_seqs();
    let cursor = ok("notification_cursor", store.notification_cursor().await);
    let items = vec![
        new(a, seq, one, Channel::Email, T0),
        new(a, seq + 1, two, Channel::Email, T0),
        new(a, seq + 2, one, Channel::Email, T0),
    ];
    ok("enqueue", store.enqueue_notifications(items, cursor).await);

    let listed = ok("list_notifications", store.list_notifications(a, &all(10)).await);
    let ids_of = |r: &[NotificationRecord]| r.iter().map(|n| n.id).collect::<Vec<_>>();
    let mut newest_first = ids_of(&listed);
    newest_first.sort_by(|x, y| y.cmp(x));
    assert_eq!(ids_of(&listed), newest_first, "newest first");

    let page = ok(
        "list_notifications page",
        store
            .list_notifications(
                a,
                &NotificationFilter {
                    cursor: Some(listed[0].id),
                    limit: 1,
                    ..Default::default()
                },
            )
            .await,
    );
    assert_eq!(ids_of(&page), vec![listed[1].id]);

    let of_one = ok(
        "list_notifications by order",
        store
            .list_notifications(
                a,
                &NotificationFilter {
                    order: Some(one),
                    limit: 10,
                    ..Default::default()
                },
            )
            .await,
    );
    assert_eq!(
        of_one.iter().map(|n| n.event_seq).collect::<Vec<_>>(),
        vec![seq + 2, seq]
    );

    // Another shop sees none of them, nor their attempts.
    let id = listed[0].id;
    ok(
        "record attempt",
        store
            .record_notification_attempt(id, &gave_up_for(id), AttemptOutcome::Failed)
            .await,
    );
    assert!(ok("list_notifications", store.list_notifications(b, &all(10)).await).is_empty());
    assert!(ok("notification_attempts", store.notification_attempts(b, &[id]).await).is_empty());
    assert_eq!(
        ok("notification_attempts", store.notification_attempts(a, &[id]).await).len(),
        1
    );
    assert!(ok("notification_attempts", store.notification_attempts(a, &[]).await).is_empty());
}
