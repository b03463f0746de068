//! The OpenAPI document at `/v1/openapi.json`, generated from the handlers'
//! annotations and the wire types.
//!
//! Every operation lists every status it can answer, each error with the
//! `ErrorBody`; the sets below are shared so that the handlers' annotations
//! stay short: `Authn` on every operation that takes a token, `Hidden` where
//! something may be missing or not the caller's (role, visibility, path id),
//! `BadBody` with a JSON body, `BadQuery` with a query string, `Conflict`
//! where the store may refuse a change.

use std::collections::BTreeMap;

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, RefOr, Response, ResponseBuilder};
use utoipa::{IntoResponses, Modify, OpenApi};

use crate::routes::{
    bills, earnings, jobs, ledger, market, principals, quote, sites, system, topology, wallet,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "suanwang", description = "The control plane of a national compute-power network."),
    paths(
        principals::create_tenant, principals::list_tenants, principals::create_provider, principals::list_providers,
        principals::whoami, principals::create_token, principals::list_tokens, principals::revoke_token,
        topology::show, topology::replace,
        sites::create, sites::list, sites::get, sites::put_pools, sites::heartbeat, sites::assignments, sites::report,
        jobs::submit, jobs::list, jobs::get, jobs::why, jobs::cancel, jobs::tasks, jobs::events, jobs::usage,
        quote::quote, market::list, bills::list, earnings::list, ledger::check,
        wallet::own, wallet::show, wallet::topup, wallet::credit,
        system::export,
    ),
    components(schemas(suanwang_api::ErrorBody, suanwang_api::ErrorDetail)),
    modifiers(&Bearer),
    security(("bearer" = []))
)]
#[derive(Debug)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Error answers with the `ErrorBody`, by status.
fn errors(statuses: &[(u16, &str)]) -> BTreeMap<String, RefOr<Response>> {
    statuses
        .iter()
        .map(|(status, description)| {
            let content = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build();
            let response = ResponseBuilder::new()
                .description(*description)
                .content("application/json", content)
                .build();
            (status.to_string(), RefOr::T(response))
        })
        .collect()
}

/// 401 and 429: every operation that takes a token.
#[derive(Debug)]
pub struct Authn;

impl IntoResponses for Authn {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        errors(&[
            (401, "`unauthorized`: a missing, unknown or revoked token"),
            (429, "`rate-limited`: too many requests for this token"),
        ])
    }
}

/// 404: what does not exist, and what the caller may not see (another
/// tenant's job, another provider's site, an operation of another role),
/// answered alike.
#[derive(Debug)]
pub struct Hidden;

impl IntoResponses for Hidden {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        errors(&[(
            404,
            "`not-found`: missing, or not the caller's to see; the same answer for both",
        )])
    }
}

/// 400, 413 and 422: a JSON body.
#[derive(Debug)]
pub struct BadBody;

impl IntoResponses for BadBody {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        errors(&[
            (400, "`bad-json`: the body is not JSON"),
            (413, "`too-large`: the body is over 1 MiB"),
            (
                422,
                "`invalid`: a field breaks a rule; `field` names it by its JSON path",
            ),
        ])
    }
}

/// 400: a query string.
#[derive(Debug)]
pub struct BadQuery;

impl IntoResponses for BadQuery {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        errors(&[(
            400,
            "`bad-query`: a query parameter is unknown or out of range; `field` names it",
        )])
    }
}

/// 409: the store refuses the change as it stands.
#[derive(Debug)]
pub struct Conflict;

impl IntoResponses for Conflict {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        errors(&[(
            409,
            "`conflict`, `finished` or `in-flight`: the change conflicts with what is stored, or the same Idempotency-Key is in flight",
        )])
    }
}

/// 422: a bad `Idempotency-Key` header, or a key reused with another request.
#[derive(Debug)]
pub struct BadKey;

impl IntoResponses for BadKey {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        errors(&[(
            422,
            "`invalid` (field `Idempotency-Key`) or `idempotency-mismatch`: the key was used with a different request",
        )])
    }
}

/// The document as served: the generated one, plus what the derive
/// attributes cannot say (rules on array items, map keys and values) and
/// what depends on the deployment (the topology's region ids, as enums).
pub fn document(topology: &suanwang_core::topology::Topology) -> serde_json::Value {
    use serde_json::{json, Value};
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
    let regions: Vec<Value> = topology
        .regions
        .iter()
        .map(|region| Value::String(region.id.clone()))
        .collect();
    let no_nul = json!({"type": "string", "maxLength": 4096, "pattern": "^[^\\u0000]*$"});
    let id = json!({"type": "string", "minLength": 1, "maxLength": 128, "pattern": suanwang_api::ID_PATTERN});
    let matrix_row = json!({"type": "array", "minItems": 1, "maxItems": 4096, "items": {"type": "number", "minimum": 0}});
    let mut nullable_regions = regions.clone();
    nullable_regions.push(Value::Null);
    let mut patch =
        |schema: &str, property: &str, change: &dyn Fn(&mut serde_json::Map<String, Value>)| {
            let field = doc
                .pointer_mut(&format!(
                    "/components/schemas/{schema}/properties/{property}"
                ))
                .and_then(Value::as_object_mut);
            match field {
                Some(field) => change(field),
                None => tracing::error!(
                    schema,
                    property,
                    "OpenAPI document: no such property to patch"
                ),
            }
        };
    patch("RunSpec", "args", &|field| {
        field.insert("items".into(), no_nul.clone());
    });
    patch("RunSpec", "env", &|field| {
        field.insert("maxProperties".into(), json!(256));
        field.insert(
            "propertyNames".into(),
            json!({"pattern": "^(?!SUANWANG_)[A-Za-z_][A-Za-z0-9_]{0,255}$"}),
        );
        field.insert("additionalProperties".into(), no_nul.clone());
    });
    patch("ResourcesSpec", "families", &|field| {
        field.insert("items".into(), id.clone());
    });
    patch("TopologySpec", "latency_ms", &|field| {
        field.insert("items".into(), matrix_row.clone());
    });
    patch("TopologySpec", "transfer_yuan_per_gb", &|field| {
        field.insert("items".into(), matrix_row.clone());
    });
    for (schema, property) in [("JobSpec", "origin"), ("CreateSite", "region")] {
        patch(schema, property, &|field| {
            field.insert("enum".into(), Value::Array(regions.clone()));
        });
    }
    patch("JobSpec", "data_region", &|field| {
        field.insert("enum".into(), Value::Array(nullable_regions.clone()));
    });
    patch("JobSpec", "allowed_regions", &|field| {
        field.insert(
            "items".into(),
            json!({"type": "string", "enum": regions.clone()}),
        );
    });
    // A pool's view is its spec (`#[serde(flatten)]`) plus `id` and `used`;
    // the derive writes that as `allOf` with the spec, whose
    // `additionalProperties: false` (it is a request body too) would then
    // refuse `id` and `used`. One object with all the properties says it.
    let spec = doc.pointer("/components/schemas/PoolSpec").cloned();
    let own = doc.pointer("/components/schemas/PoolView/allOf/1").cloned();
    match (spec, own) {
        (Some(spec), Some(own)) => {
            let mut properties = spec["properties"].as_object().cloned().unwrap_or_default();
            properties.extend(own["properties"].as_object().cloned().unwrap_or_default());
            let mut required = spec["required"].as_array().cloned().unwrap_or_default();
            required.extend(own["required"].as_array().cloned().unwrap_or_default());
            doc["components"]["schemas"]["PoolView"] = json!({
                "type": "object",
                "description": "A pool as declared (`PoolSpec`), with its id and the units in use.",
                "properties": properties,
                "required": required,
            });
        }
        _ => tracing::error!("OpenAPI document: PoolView is not allOf [PoolSpec, ...]"),
    }
    // The market's region filter takes this deployment's region ids.
    let region_parameter = doc
        .pointer_mut("/paths/~1v1~1market/get/parameters")
        .and_then(Value::as_array_mut)
        .and_then(|parameters| parameters.iter_mut().find(|p| p["name"] == "region"));
    match region_parameter {
        Some(parameter) => {
            parameter["schema"] = json!({"type": "string", "enum": regions.clone()});
        }
        None => tracing::error!("OpenAPI document: GET /v1/market has no region parameter"),
    }
    doc
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use suanwang_core::topology::Topology;

    use super::*;

    fn doc() -> Value {
        document(&Topology::national())
    }

    #[test]
    fn every_operation_lists_its_errors_with_the_error_body() {
        let doc = doc();
        let paths = doc["paths"].as_object().expect("paths");
        let mut operations = 0;
        for (path, methods) in paths {
            for (method, operation) in methods.as_object().expect("methods") {
                operations += 1;
                let responses = operation["responses"].as_object().expect("responses");
                let name = format!("{method} {path}");
                for status in ["401", "429"] {
                    assert!(responses.contains_key(status), "{name}: no {status}");
                }
                if path.contains("{id}") {
                    assert!(responses.contains_key("404"), "{name}: no 404");
                }
                if operation.get("requestBody").is_some() {
                    for status in ["400", "413", "422"] {
                        assert!(responses.contains_key(status), "{name}: no {status}");
                    }
                }
                let queries = operation["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|parameter| parameter["in"] == "query");
                if queries {
                    assert!(responses.contains_key("400"), "{name}: no 400");
                }
                for (status, response) in responses {
                    if !status.starts_with('2') {
                        assert_eq!(
                            response["content"]["application/json"]["schema"]["$ref"],
                            "#/components/schemas/ErrorBody",
                            "{name} {status}"
                        );
                    }
                }
            }
        }
        assert_eq!(operations, 35);
        assert!(doc["components"]["schemas"]["ErrorDetail"].is_object());
    }

    #[test]
    fn constraints_the_server_enforces_are_in_the_schema() {
        let doc = doc();
        let parameter = |path: &str, name: &str| -> Value {
            doc["paths"][path]["get"]["parameters"]
                .as_array()
                .and_then(|all| all.iter().find(|p| p["name"] == name).cloned())
                .unwrap_or_else(|| panic!("{path} has a {name} parameter"))
        };
        let regions = parameter("/v1/market", "region")["schema"]["enum"].clone();
        assert!(
            regions
                .as_array()
                .is_some_and(|r| r.contains(&Value::from("guian"))),
            "{regions}"
        );
        assert_eq!(parameter("/v1/market", "family")["schema"]["minLength"], 1);
        for path in ["/v1/bills", "/v1/earnings"] {
            let period = parameter(path, "period")["schema"]["pattern"].clone();
            assert_eq!(
                period, "^(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])$",
                "{path}"
            );
        }
        let schemas = &doc["components"]["schemas"];
        let job = &schemas["JobSpec"]["properties"];
        assert_eq!(job["tasks"]["minimum"], 1);
        assert_eq!(job["tasks"]["maximum"], 100_000);
        assert_eq!(job["name"]["maxLength"], 128);
        assert_eq!(job["name"]["pattern"], suanwang_api::NAME_PATTERN);
        assert_eq!(job["retries"]["maximum"], 100);
        assert_eq!(job["hours"]["exclusiveMinimum"], 0);
        let origins = job["origin"]["enum"].as_array().expect("origin enum");
        assert!(origins.contains(&Value::from("shanghai")), "{origins:?}");
        assert!(job["data_region"]["enum"]
            .as_array()
            .is_some_and(|values| values.contains(&Value::Null)));
        assert_eq!(
            schemas["JobKind"]["enum"],
            serde_json::json!(["batch", "gang", "service"])
        );
        assert_eq!(
            schemas["ResourceKind"]["enum"],
            serde_json::json!(["cpu", "gpu", "hpc"])
        );
        assert_eq!(
            schemas["ReportState"]["enum"],
            serde_json::json!(["running", "succeeded", "failed"])
        );
        // The states and kinds the server sends are enums too, each field a
        // reference to its one list.
        assert_eq!(
            schemas["TaskState"]["enum"],
            serde_json::json!([
                "pending",
                "placed",
                "running",
                "succeeded",
                "failed",
                "cancelled",
                "lost"
            ])
        );
        assert_eq!(
            schemas["JobState"]["enum"],
            serde_json::json!([
                "pending",
                "placed",
                "running",
                "succeeded",
                "failed",
                "cancelled"
            ])
        );
        assert_eq!(
            schemas["Outcome"]["enum"],
            serde_json::json!(["accepted", "duplicate", "rejected"])
        );
        assert_eq!(
            schemas["EventKind"]["enum"],
            serde_json::json!([
                "submitted",
                "placed",
                "pending",
                "running",
                "succeeded",
                "failed",
                "cancelled",
                "lost",
                "gang",
                "deadline"
            ])
        );
        for (schema, property, enumeration) in [
            ("StatusReport", "state", "ReportState"),
            ("TaskView", "state", "TaskState"),
            ("AssignmentView", "state", "TaskState"),
            ("JobView", "state", "JobState"),
            ("Why", "state", "JobState"),
            ("JobRef", "state", "JobState"),
            ("ReportOutcome", "outcome", "Outcome"),
            ("EventView", "kind", "EventKind"),
        ] {
            assert_eq!(
                schemas[schema]["properties"][property]["$ref"],
                format!("#/components/schemas/{enumeration}"),
                "{schema}.{property}"
            );
        }
        let pool = &schemas["PoolSpec"]["properties"];
        assert_eq!(pool["name"]["pattern"], suanwang_api::ID_PATTERN);
        assert_eq!(pool["kind"]["$ref"], "#/components/schemas/ResourceKind");
        let view = &schemas["PoolView"];
        assert!(view.get("allOf").is_none(), "{view}");
        for field in ["id", "used", "name", "capacity"] {
            assert!(view["properties"][field].is_object(), "{field}: {view}");
        }
        assert!(view.get("additionalProperties").is_none(), "{view}");
        let env = &schemas["RunSpec"]["properties"]["env"];
        assert_eq!(env["maxProperties"], 256);
        assert!(env["propertyNames"]["pattern"].is_string());
        let list = &doc["paths"]["/v1/jobs"]["get"]["parameters"];
        let after = list
            .as_array()
            .and_then(|parameters| parameters.iter().find(|p| p["name"] == "after"))
            .expect("after");
        assert_eq!(after["in"], "query");
        assert_eq!(after["schema"]["pattern"], crate::routes::PATH_ID_PATTERN);
        let tasks = &doc["paths"]["/v1/jobs/{id}/tasks"]["get"]["parameters"];
        let limit = tasks
            .as_array()
            .and_then(|parameters| parameters.iter().find(|p| p["name"] == "limit"))
            .expect("limit");
        assert_eq!(limit["schema"]["maximum"], 1000);
        assert_eq!(limit["schema"]["minimum"], 1);
        let id = tasks
            .as_array()
            .and_then(|parameters| parameters.iter().find(|p| p["name"] == "id"))
            .expect("id");
        assert_eq!(id["schema"]["pattern"], crate::routes::PATH_ID_PATTERN);
    }
}
