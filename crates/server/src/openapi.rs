//! The OpenAPI document at `/v1/openapi.json`, generated from the handlers'
//! annotations and the wire types.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{jobs, principals, sites, system, topology};

#[derive(OpenApi)]
#[openapi(
    info(title = "suanwang", description = "The control plane of a national compute-power network."),
    paths(
        principals::create_tenant, principals::list_tenants, principals::create_provider, principals::list_providers,
        principals::whoami, principals::create_token, principals::list_tokens, principals::revoke_token,
        topology::show, topology::replace,
        sites::create, sites::list, sites::get, sites::put_pools, sites::heartbeat, sites::assignments, sites::report,
        jobs::submit, jobs::list, jobs::get, jobs::why, jobs::cancel, jobs::tasks, jobs::events, jobs::usage,
        system::export,
    ),
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
