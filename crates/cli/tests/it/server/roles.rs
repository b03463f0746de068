//! Authorization before validation, over every route and every role: a
//! caller without the role, or who may not see the resource, gets exactly
//! the answer it would get for a resource that does not exist (status and
//! body), whatever body it sends. Only a caller with the role gets its body
//! looked at.

use reqwest::Method;
use serde_json::{json, Value};

use super::harness::{cpu_pool, hello, text, Api, Db, Reply};

both_backends!(
    roles_are_checked_before_bodies,
    roles_are_checked_before_bodies_sqlite,
    roles_are_checked_before_bodies_postgres
);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Operator,
    Tenant,
    Provider,
    Site,
    Anonymous,
}

const EVERYONE: [Who; 5] = [
    Who::Operator,
    Who::Tenant,
    Who::Provider,
    Who::Site,
    Who::Anonymous,
];

/// One operation: method, path (`{site}` and `{job}` stand for a real
/// site's and job's ids), a valid body (None: the route takes none) and
/// who may call it.
struct Route {
    method: Method,
    path: &'static str,
    body: Option<Value>,
    allowed: &'static [Who],
}

fn route(
    method: Method,
    path: &'static str,
    body: Option<Value>,
    allowed: &'static [Who],
) -> Route {
    Route {
        method,
        path,
        body,
        allowed,
    }
}

/// Ids that exist nowhere, of the same shape as real ones.
const MISSING_SITE: &str = "site_0000000000000000000000000000000";
const MISSING_JOB: &str = "job_00000000000000000000000000000000";

/// The answer with the ids in it made neutral, for comparing with the
/// answer about a missing resource.
fn neutral(reply: &Reply, ids: &[(&str, &str)]) -> (u16, String) {
    let mut text = reply.text.clone();
    for (real, missing) in ids {
        text = text.replace(real, missing);
    }
    (reply.status, text)
}

async fn send(api: &Api, method: &Method, path: &str, body: &[u8]) -> Reply {
    api.raw(method.clone(), path, body.to_vec()).await
}

async fn roles_are_checked_before_bodies(db: Db) {
    // Plenty of requests from few tokens: no rate limit in the way.
    let server = db
        .serve_with("rate_limit_per_s = 100000\nrate_limit_burst = 100000\n")
        .await;
    let tenant = server.tenant("tenant").await;
    let provider = server.provider("provider").await;
    let site = server.site(&provider, "site", "shanghai").await;
    site.put_pools(json!([cpu_pool("cpu", 4, 0.5)])).await;
    let job = tenant.api.submit(&hello("mine")).await;
    let job_id = text(&job, "id");
    let topology = server.operator().get("/v1/topology").await.expect(200);
    let apis = |who: Who| match who {
        Who::Operator => server.operator(),
        Who::Tenant => tenant.api.clone(),
        Who::Provider => provider.api.clone(),
        Who::Site => site.api.clone(),
        Who::Anonymous => server.anonymous(),
    };

    use Who::*;
    let routes = [
        route(
            Method::POST,
            "/v1/tenants",
            Some(json!({"name": "t2"})),
            &[Operator],
        ),
        route(Method::GET, "/v1/tenants", None, &[Operator]),
        route(
            Method::POST,
            "/v1/providers",
            Some(json!({"name": "p2"})),
            &[Operator],
        ),
        route(Method::GET, "/v1/providers", None, &[Operator]),
        route(
            Method::PUT,
            "/v1/topology",
            Some(topology.clone()),
            &[Operator],
        ),
        route(Method::GET, "/v1/place/export", None, &[Operator]),
        route(
            Method::POST,
            "/v1/sites",
            Some(json!({"name": "s2", "region": "shanghai"})),
            &[Provider],
        ),
        route(
            Method::GET,
            "/v1/sites/{site}",
            None,
            &[Operator, Provider, Site],
        ),
        route(
            Method::PUT,
            "/v1/sites/{site}/pools",
            Some(json!({"pools": [cpu_pool("cpu", 4, 0.5)]})),
            &[Provider, Site],
        ),
        route(Method::POST, "/v1/sites/{site}/heartbeat", None, &[Site]),
        route(Method::GET, "/v1/sites/{site}/assignments", None, &[Site]),
        route(
            Method::POST,
            "/v1/sites/{site}/reports",
            Some(json!({"statuses": [], "usage": []})),
            &[Site],
        ),
        route(Method::POST, "/v1/jobs", Some(hello("another")), &[Tenant]),
        route(Method::GET, "/v1/jobs/{job}", None, &[Operator, Tenant]),
        route(Method::GET, "/v1/jobs/{job}/why", None, &[Operator, Tenant]),
        route(
            Method::GET,
            "/v1/jobs/{job}/tasks",
            None,
            &[Operator, Tenant],
        ),
        route(
            Method::GET,
            "/v1/jobs/{job}/events",
            None,
            &[Operator, Tenant],
        ),
        route(
            Method::GET,
            "/v1/jobs/{job}/usage",
            None,
            &[Operator, Tenant],
        ),
        route(
            Method::POST,
            "/v1/jobs/{job}/cancel",
            None,
            &[Operator, Tenant],
        ),
        // Open to every token: only the anonymous caller is refused.
        route(
            Method::GET,
            "/v1/whoami",
            None,
            &[Operator, Tenant, Provider, Site],
        ),
        route(
            Method::GET,
            "/v1/topology",
            None,
            &[Operator, Tenant, Provider, Site],
        ),
        route(
            Method::GET,
            "/v1/sites",
            None,
            &[Operator, Tenant, Provider, Site],
        ),
        route(
            Method::GET,
            "/v1/jobs",
            None,
            &[Operator, Tenant, Provider, Site],
        ),
        route(
            Method::GET,
            "/v1/tokens",
            None,
            &[Operator, Tenant, Provider, Site],
        ),
        route(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "t"})),
            &[Operator, Tenant, Provider, Site],
        ),
        route(
            Method::DELETE,
            "/v1/tokens/tok_0000",
            None,
            &[Operator, Tenant, Provider, Site],
        ),
    ];
    let mut checked = 0;
    for route in &routes {
        let real = route
            .path
            .replace("{site}", &site.id)
            .replace("{job}", &job_id);
        // The same operation on a resource that does not exist; for a
        // route without an id, a route that does not exist.
        let missing = if route.path.contains('{') {
            route
                .path
                .replace("{site}", MISSING_SITE)
                .replace("{job}", MISSING_JOB)
        } else {
            format!("/v1/no-such-thing{}", route.path)
        };
        let ids = [
            (site.id.as_str(), MISSING_SITE),
            (job_id.as_str(), MISSING_JOB),
        ];
        let mut bodies: Vec<Vec<u8>> = vec![
            b"{}".to_vec(),
            b"not json".to_vec(),
            br#"{"unknown_field": 1.5}"#.to_vec(),
            br#""a string""#.to_vec(),
        ];
        if let Some(body) = &route.body {
            bodies.push(serde_json::to_vec(body).expect("JSON"));
        }
        for who in EVERYONE {
            let api = apis(who);
            if route.allowed.contains(&who) {
                // With the role, the body is read: a wrong body of a route
                // that takes one is a 400 or 422, never a 404.
                if route.body.is_some() {
                    for body in &bodies[1..3] {
                        let reply = send(&api, &route.method, &real, body).await;
                        assert!(
                            matches!(reply.status, 400 | 422),
                            "{who:?} {} {real} {:?}: {} {}",
                            route.method,
                            String::from_utf8_lossy(body),
                            reply.status,
                            reply.text
                        );
                    }
                }
                continue;
            }
            for body in &bodies {
                let got = send(&api, &route.method, &real, body).await;
                // Without a token, anything answers 401 (except a route
                // that does not exist at all).
                let expected = if who == Anonymous {
                    api.get(&format!("/v1/jobs/{MISSING_JOB}")).await
                } else {
                    send(&api, &route.method, &missing, body).await
                };
                let shown = String::from_utf8_lossy(body);
                assert!(
                    matches!(got.status, 401 | 404),
                    "{who:?} {} {real} {shown}: {} {}",
                    route.method,
                    got.status,
                    got.text
                );
                assert_eq!(
                    neutral(&got, &ids),
                    neutral(&expected, &ids),
                    "{who:?} {} {real} with {shown} is not answered as {missing}",
                    route.method
                );
                checked += 1;
            }
        }
    }
    // Every route was refused to someone: at least the anonymous caller.
    assert!(checked >= routes.len() * 4, "{checked}");
    // Nothing a refused caller sent changed anything.
    let job_now = tenant.api.job(&job_id).await;
    assert_ne!(job_now["state"], "cancelled", "{job_now}");
    let tenants = server.operator().get("/v1/tenants").await.expect(200);
    assert_eq!(tenants.as_array().map(Vec::len), Some(1), "{tenants}");
}
