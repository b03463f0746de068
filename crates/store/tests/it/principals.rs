//! Principals and tokens.

use std::sync::Arc;

use suanwang_store::{Role, StoreError};

use crate::harness::*;

contract!(principal_create_lookup_revoke, |db| {
    let store = db.store.clone();
    assert_eq!(store.principal_count(Role::Tenant).await.unwrap(), 0);
    store.ping().await.unwrap();

    let acme = tenant(&*store, "acme").await;
    assert_eq!(store.principal_count(Role::Tenant).await.unwrap(), 1);
    assert_eq!(store.principal_count(Role::Provider).await.unwrap(), 0);

    // The token is found by its hash, with its principal.
    let (found, token_id) = store
        .principal_by_token(&hash_of(&format!("tok-{acme}")))
        .await
        .unwrap()
        .expect("token found");
    assert_eq!(found, principal(Role::Tenant, &acme, "acme"));
    assert_eq!(token_id, format!("tok-{acme}"));
    assert!(store
        .principal_by_token("no such hash")
        .await
        .unwrap()
        .is_none());

    // Names are unique per role.
    let duplicate = store
        .create_principal(
            &principal(Role::Tenant, "tenant-other", "acme"),
            &token("tok-other", "tenant-other"),
            &audit("op", "create", "tenant-other"),
        )
        .await;
    assert!(
        matches!(duplicate, Err(StoreError::Conflict(_))),
        "{duplicate:?}"
    );
    assert_eq!(store.principal_count(Role::Tenant).await.unwrap(), 1);
    // The failed create left nothing behind: its token is unknown.
    assert!(store
        .principal_by_token(&hash_of("tok-other"))
        .await
        .unwrap()
        .is_none());
    // The same name in another role is fine.
    let hub = provider(&*store, "acme").await;
    assert_eq!(store.principal_count(Role::Provider).await.unwrap(), 1);
    let beta = tenant(&*store, "beta").await;
    let names: Vec<String> = store
        .principals(Role::Tenant)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, strings(&["acme", "beta"]));

    // A second token.
    let mut second = token("tok-acme-2", &acme);
    second.created_at_ms = T0 + 1;
    store
        .create_token(&second, &audit(&acme, "token.create", "tok-acme-2"))
        .await
        .unwrap();
    let tokens = store.tokens(&acme).await.unwrap();
    let ids: Vec<&str> = tokens.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, [format!("tok-{acme}").as_str(), "tok-acme-2"]);
    assert!(tokens.iter().all(|t| !t.revoked));
    assert_eq!(
        (tokens[0].created_at_ms, tokens[1].created_at_ms),
        (T0, T0 + 1)
    );
    assert_eq!(
        store
            .principal_by_token(&hash_of("tok-acme-2"))
            .await
            .unwrap()
            .unwrap()
            .1,
        "tok-acme-2"
    );

    // Another principal cannot revoke it; its owner can, once.
    let revoke = audit(&acme, "token.revoke", "tok-acme-2");
    assert!(!store
        .revoke_token(&beta, "tok-acme-2", &revoke)
        .await
        .unwrap());
    assert!(!store
        .revoke_token(&hub, "tok-acme-2", &revoke)
        .await
        .unwrap());
    assert!(store
        .revoke_token(&acme, "tok-acme-2", &revoke)
        .await
        .unwrap());
    assert!(!store
        .revoke_token(&acme, "tok-acme-2", &revoke)
        .await
        .unwrap());
    assert!(!store
        .revoke_token(&acme, "no-such-token", &revoke)
        .await
        .unwrap());
    assert!(store
        .principal_by_token(&hash_of("tok-acme-2"))
        .await
        .unwrap()
        .is_none());
    // The first token still works.
    assert!(store
        .principal_by_token(&hash_of(&format!("tok-{acme}")))
        .await
        .unwrap()
        .is_some());
    let revoked: Vec<(String, bool)> = store
        .tokens(&acme)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.id, t.revoked))
        .collect();
    assert_eq!(
        revoked,
        [
            (format!("tok-{acme}"), false),
            ("tok-acme-2".to_owned(), true)
        ]
    );
});

contract!(token_hash_and_id_collisions_are_conflicts, |db| {
    let store = db.store.clone();
    let acme = tenant(&*store, "acme").await;
    // The same hash again (a second token with the same secret) must not
    // be stored: a hash finds exactly one token.
    let mut same_hash = token("tok-acme-2", &acme);
    same_hash.hash = hash_of(&format!("tok-{acme}"));
    let outcome = store
        .create_token(&same_hash, &audit(&acme, "token.create", "x"))
        .await;
    assert!(
        matches!(outcome, Err(StoreError::Conflict(_))),
        "{outcome:?}"
    );
    // The same id again.
    let outcome = store
        .create_token(
            &token(&format!("tok-{acme}"), &acme),
            &audit(&acme, "token.create", "x"),
        )
        .await;
    assert!(
        matches!(outcome, Err(StoreError::Conflict(_))),
        "{outcome:?}"
    );
    assert_eq!(store.tokens(&acme).await.unwrap().len(), 1);
});

contract!(concurrent_duplicate_principals_conflict, |db| {
    // Eight clients race to create the same tenant: exactly one wins, the
    // others get Conflict (never a raw database error).
    let store = db.store.clone();
    let mut handles = Vec::new();
    for i in 0..8 {
        let store = Arc::clone(&store);
        handles.push(tokio::spawn(async move {
            let id = format!("tenant-{i}");
            store
                .create_principal(
                    &principal(Role::Tenant, &id, "racer"),
                    &token(&format!("tok-{i}"), &id),
                    &audit("op", "create", &id),
                )
                .await
        }));
    }
    let mut created = 0;
    for handle in handles {
        match handle.await.unwrap() {
            Ok(()) => created += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(other) => panic!("expected Conflict, got {other:?}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(store.principal_count(Role::Tenant).await.unwrap(), 1);
});

contract!(writes_survive_reopen, |db| {
    let acme = tenant(&*db.store, "acme").await;
    let outcome = submit(&*db.store, job("j1", &acme, 3, 1, 0)).await;
    assert_eq!(outcome, suanwang_store::IdemOutcome::Done);
    // Another store on the same database (a restart, or a second server).
    let reopened = db.open().await;
    assert_eq!(reopened.principal_count(Role::Tenant).await.unwrap(), 1);
    assert!(reopened
        .principal_by_token(&hash_of(&format!("tok-{acme}")))
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        task_states(&*reopened, "j1").await,
        strings(&["pending"; 3])
    );
});
