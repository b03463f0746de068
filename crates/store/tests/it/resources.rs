//! Topology, sites and pools.

use suanwang_store::{Role, StoreError};

use crate::harness::*;

contract!(topology_put_get, |db| {
    let store = db.store.clone();
    assert_eq!(store.topology().await.unwrap(), None);
    store
        .put_topology(
            r#"{"regions":[1]}"#,
            &audit("op", "topology.put", "topology"),
        )
        .await
        .unwrap();
    assert_eq!(
        store.topology().await.unwrap().as_deref(),
        Some(r#"{"regions":[1]}"#)
    );
    store
        .put_topology(
            r#"{"regions":[2]}"#,
            &audit("op", "topology.put", "topology"),
        )
        .await
        .unwrap();
    assert_eq!(
        store.topology().await.unwrap().as_deref(),
        Some(r#"{"regions":[2]}"#)
    );
});

contract!(sites_create_and_list, |db| {
    let store = db.store.clone();
    let hub = provider(&*store, "hub").await;
    let other = provider(&*store, "other").await;
    let a = site(&*store, &hub, "gz1", "r1").await;
    let b = site(&*store, &hub, "bj1", "r2").await;
    let c = site_with_id(&*store, "site-gz1-other", &other, "gz1", "r1").await;

    // The same name under the same provider is taken.
    let duplicate = store
        .create_site(
            &site_row("site-dup", &hub, "gz1", "r3"),
            &token("tok-site-dup", "site-dup"),
            &audit(&hub, "site.create", "site-dup"),
        )
        .await;
    assert!(
        matches!(duplicate, Err(StoreError::Conflict(_))),
        "{duplicate:?}"
    );
    assert!(store.site("site-dup").await.unwrap().is_none());
    assert!(store
        .principal_by_token(&hash_of("tok-site-dup"))
        .await
        .unwrap()
        .is_none());

    let mine: Vec<String> = store
        .sites(Some(&hub))
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(mine, [b, a.clone()], "sorted by name");
    let theirs: Vec<String> = store
        .sites(Some(&other))
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(theirs, [c]);
    assert_eq!(store.sites(None).await.unwrap().len(), 3);
    assert!(store
        .sites(Some("provider-nobody"))
        .await
        .unwrap()
        .is_empty());

    // A new site: not healthy until it heartbeats, version 0, no lease.
    let row = store.site(&a).await.unwrap().expect("site");
    assert_eq!(row, site_row(&a, &hub, "gz1", "r1"));
    assert!(store.site("site-none").await.unwrap().is_none());
    assert_eq!(store.site_version(&a).await.unwrap(), 0);
    assert!(matches!(
        store.site_version("site-none").await,
        Err(StoreError::NotFound(_))
    ));

    // The site is a principal of role site, child of its provider, with a token.
    let (principal, _) = store
        .principal_by_token(&hash_of(&format!("tok-{a}")))
        .await
        .unwrap()
        .expect("site token");
    assert_eq!(principal.role, Role::Site);
    assert_eq!(principal.id, a);
    assert_eq!(principal.parent.as_deref(), Some(hub.as_str()));
    assert_eq!(store.principal_count(Role::Site).await.unwrap(), 3);

    store
        .heartbeat(&a, T0 + 15_000, &Default::default())
        .await
        .unwrap();
    let row = store.site(&a).await.unwrap().unwrap();
    assert!(row.healthy);
    assert_eq!(row.lease_expires_at_ms, Some(T0 + 15_000));
});

contract!(pools_replace_deactivate_and_used, |db| {
    let store = db.store.clone();
    let w = world(&*store).await;
    let a = pool(&w.site, "a", 8);
    let b = pool(&w.site, "b", 4);
    store
        .put_pools(
            &w.site,
            &[a.clone(), b.clone()],
            &audit(&w.site, "pools.put", &w.site),
        )
        .await
        .unwrap();
    // `main` from the world is left out, so it is deactivated.
    let pools = store.pools(&w.site).await.unwrap();
    assert_eq!(pools, [a.clone(), b.clone()]);

    // Placed tasks use their pool's units.
    let acme = w.tenant.clone();
    submit(&*store, job("j1", &acme, 3, 2, 0)).await;
    place(&*store, "j1", &a.id, &w.site, 3).await;
    let pools = store.pools(&w.site).await.unwrap();
    assert_eq!(pools[0].used, 6);
    assert_eq!(pools[1].used, 0);

    // Replace: a goes, b changes, c is new.
    let mut b2 = pool(&w.site, "b", 6);
    b2.price_micro = 3_000_000;
    let c = pool(&w.site, "c", 2);
    store
        .put_pools(
            &w.site,
            &[b2.clone(), c.clone()],
            &audit(&w.site, "pools.put", &w.site),
        )
        .await
        .unwrap();
    let pools = store.pools(&w.site).await.unwrap();
    assert_eq!(pools, [b2.clone(), c.clone()]);

    // The scheduler sees only active pools of healthy sites.
    let input = store.round_input().await.unwrap();
    let ids: Vec<(&str, &str)> = input
        .pools
        .iter()
        .map(|p| (p.pool.id.as_str(), p.region.as_str()))
        .collect();
    assert_eq!(ids, [(b2.id.as_str(), "r1"), (c.id.as_str(), "r1")]);

    // The deactivated pool's tasks go on: still assigned, still reportable.
    let (_, assigned) = store.assignments(&w.site).await.unwrap();
    assert_eq!(assigned.len(), 3);
    assert!(assigned.iter().all(|t| t.pool == a.id));
    let (outcomes, _) = store
        .report(&w.site, &[status("j1", 0, 1, "succeeded")], &[], T0 + 5)
        .await
        .unwrap();
    assert_eq!(outcomes, [suanwang_store::ItemOutcome::Accepted]);

    // Bringing a back reactivates it with its used units.
    store
        .put_pools(
            &w.site,
            &[a.clone(), b2.clone(), c.clone()],
            &audit(&w.site, "pools.put", &w.site),
        )
        .await
        .unwrap();
    let pools = store.pools(&w.site).await.unwrap();
    assert_eq!(pools.len(), 3);
    assert_eq!(pools[0].id, a.id);
    assert_eq!(pools[0].used, 4);

    // Pools of an unhealthy site are not offered.
    let hub = w.provider.clone();
    let quiet = site(&*store, &hub, "quiet", "r2").await;
    store
        .put_pools(
            &quiet,
            &[pool(&quiet, "q", 10)],
            &audit(&quiet, "pools.put", &quiet),
        )
        .await
        .unwrap();
    let input = store.round_input().await.unwrap();
    assert!(input.pools.iter().all(|p| p.pool.site == w.site));
    store
        .heartbeat(&quiet, T0 + 60_000, &Default::default())
        .await
        .unwrap();
    let input = store.round_input().await.unwrap();
    assert!(input
        .pools
        .iter()
        .any(|p| p.pool.site == quiet && p.region == "r2"));
});
