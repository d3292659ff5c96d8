//! URL routing: a request path to the API endpoint (discovery, OpenAPI or a
//! resource `Target`).

use crate::resources::ResourceDef;
use crate::status::ApiError;
use crate::store::Store;

/// A parsed resource URL.
#[derive(Debug, Clone)]
pub struct Target {
    /// The resource.
    pub def: ResourceDef,
    /// Requested version.
    pub version: String,
    /// Namespace (namespaced resources).
    pub namespace: Option<String>,
    /// Object name.
    pub name: Option<String>,
    /// Subresource.
    pub sub: Option<String>,
}

pub(super) enum Route {
    Version,
    Health,
    ApiVersions,
    GroupList,
    Group(String),
    ResourceList(String, String),
    Resource(Box<Target>),
    OpenApiV2,
    OpenApiV3Root,
    OpenApiV3(String),
}

pub(super) fn route(store: &Store, path: &str) -> Result<Route, ApiError> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segs.as_slice() {
        ["version"] => return Ok(Route::Version),
        ["healthz"] | ["readyz"] | ["livez"] => return Ok(Route::Health),
        ["api"] => return Ok(Route::ApiVersions),
        ["apis"] => return Ok(Route::GroupList),
        ["openapi", "v2"] => return Ok(Route::OpenApiV2),
        ["openapi", "v3"] => return Ok(Route::OpenApiV3Root),
        ["openapi", "v3", rest @ ..] => return Ok(Route::OpenApiV3(rest.join("/"))),
        ["api", "v1"] => return Ok(Route::ResourceList(String::new(), "v1".into())),
        ["apis", g] => return Ok(Route::Group(g.to_string())),
        ["apis", g, v] => return Ok(Route::ResourceList(g.to_string(), v.to_string())),
        _ => {}
    }
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g, v, rest @ ..] => (g, v, rest),
        _ => return Err(ApiError::path_not_found()),
    };
    let lookup = |plural: &str| store.def(group, plural).filter(|d| d.serves(version));
    let (namespace, rest): (Option<String>, &[&str]) = match rest {
        ["namespaces", ns, plural, tail @ ..] if lookup(plural).is_some_and(|d| d.namespaced) => {
            (Some(ns.to_string()), &rest[2..][..1 + tail.len()])
        }
        _ => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(n.to_string()), None),
        [p, n, s] => (*p, Some(n.to_string()), Some(s.to_string())),
        _ => return Err(ApiError::path_not_found()),
    };
    let def = lookup(plural).ok_or_else(ApiError::path_not_found)?;
    if def.namespaced && namespace.is_none() && name.is_some() {
        return Err(ApiError::path_not_found());
    }
    if let Some(s) = &sub {
        let ok = (s == "status" && def.has_status)
            || (s == "scale" && def.scale.is_some())
            || (s == "log" && def.group.is_empty() && def.plural == "pods");
        if !ok {
            return Err(ApiError::path_not_found());
        }
    }
    Ok(Route::Resource(Box::new(Target {
        def,
        version: version.to_string(),
        namespace,
        name,
        sub,
    })))
}
