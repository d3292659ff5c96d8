//! Connecting to the cluster the way kubectl does (kubeconfig, `--context`,
//! `-n`), and turning client errors into one-line [`CliError`]s.

use kube::config::{Config, KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::Client;

use super::args::GlobalArgs;
use super::error::{one_line, root_cause, CliError};

/// A connected client plus what the commands need to know about the caller.
#[derive(Clone)]
pub struct Session {
    /// The client.
    pub client: Client,
    /// The namespace commands work in (`-n`, else the context's, else `default`).
    pub namespace: String,
    /// The API server URL, for error messages.
    pub server_url: String,
    /// The user name of the kubeconfig context (identity fallback).
    pub kubeconfig_user: Option<String>,
    /// `--as`: the name to record instead of the authenticated one.
    pub as_user: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("namespace", &self.namespace)
            .field("server_url", &self.server_url)
            .field("kubeconfig_user", &self.kubeconfig_user)
            .field("as_user", &self.as_user)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session over an existing client (tests, embedding): the namespace
    /// is `-n` or the client's default namespace; `--as` is taken from
    /// `global`; no kubeconfig user is known.
    pub fn new(client: Client, global: &GlobalArgs) -> Self {
        let namespace = global
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string());
        Session {
            client,
            namespace,
            server_url: "the configured server".to_string(),
            kubeconfig_user: None,
            as_user: global.as_user.clone(),
        }
    }

    /// Set the server URL used in error messages.
    pub fn with_server_url(mut self, url: impl Into<String>) -> Self {
        self.server_url = url.into();
        self
    }

    /// Set the kubeconfig user (the identity fallback).
    pub fn with_kubeconfig_user(mut self, user: Option<String>) -> Self {
        self.kubeconfig_user = user;
        self
    }
}

/// What the commands take from the selected kubeconfig context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextInfo {
    /// The context's name.
    pub context: String,
    /// Its namespace, if set.
    pub namespace: Option<String>,
    /// The user: the basic-auth `username` of its user entry if set, else the
    /// entry's name.
    pub user: Option<String>,
}

/// Read the selected (or current) context of a kubeconfig (pure).
pub fn context_info(
    kubeconfig: &Kubeconfig,
    context: Option<&str>,
) -> Result<ContextInfo, CliError> {
    let name = match context.or(kubeconfig.current_context.as_deref()) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => {
            return Err(CliError::Kubeconfig(
                "no current context is set; pass --context NAME".into(),
            ))
        }
    };
    let ctx = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| c.context.as_ref())
        .ok_or_else(|| CliError::Kubeconfig(format!("context {name:?} not found")))?;
    let user = ctx.user.as_ref().filter(|u| !u.is_empty()).map(|entry| {
        kubeconfig
            .auth_infos
            .iter()
            .find(|a| &a.name == entry)
            .and_then(|a| a.auth_info.as_ref())
            .and_then(|a| a.username.clone())
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| entry.clone())
    });
    Ok(ContextInfo {
        context: name,
        namespace: ctx.namespace.clone().filter(|n| !n.is_empty()),
        user,
    })
}

/// Connect as kubectl would: `--kubeconfig`, else `$KUBECONFIG`, else
/// `~/.kube/config`; `--context` or the current context; without any
/// kubeconfig, the in-cluster service account.
pub async fn connect(global: &GlobalArgs) -> Result<Session, CliError> {
    let read = match &global.kubeconfig {
        Some(path) => Kubeconfig::read_from(path),
        None => Kubeconfig::read(),
    };
    let (config, info) = match read {
        Ok(kubeconfig) => {
            let info = context_info(&kubeconfig, global.context.as_deref())?;
            let options = KubeConfigOptions {
                context: Some(info.context.clone()),
                cluster: None,
                user: None,
            };
            let config = Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| kubeconfig_error(&e))?;
            (config, Some(info))
        }
        Err(e) if global.kubeconfig.is_none() && global.context.is_none() => {
            match Config::incluster() {
                Ok(config) => (config, None),
                Err(_) => {
                    return Err(CliError::Kubeconfig(format!(
                    "{} (and not running inside a cluster); set KUBECONFIG or pass --kubeconfig",
                    kubeconfig_error(&e)
                        .to_string()
                        .trim_start_matches("kubeconfig: ")
                )))
                }
            }
        }
        Err(e) => return Err(kubeconfig_error(&e)),
    };
    let server_url = config.cluster_url.to_string();
    let server_url = server_url.trim_end_matches('/').to_string();
    let default_namespace = info
        .as_ref()
        .and_then(|i| i.namespace.clone())
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(|e| map_kube_error(e, &server_url))?;
    let mut session = Session::new(client, global).with_server_url(server_url);
    if global.namespace.is_none() {
        session.namespace = default_namespace;
    }
    session.kubeconfig_user = info.and_then(|i| i.user);
    Ok(session)
}

/// A kubeconfig loading error as one line (`cannot read PATH: REASON`).
fn kubeconfig_error(err: &KubeconfigError) -> CliError {
    match err {
        KubeconfigError::ReadConfig(io, path) => {
            CliError::Kubeconfig(format!("cannot read {}: {io}", path.display()))
        }
        other => CliError::Kubeconfig(one_line(&other.to_string())),
    }
}

/// Map a client error that has no more specific meaning for the caller:
/// transport failures name the server, API errors keep the server's message.
pub fn map_kube_error(err: kube::Error, server_url: &str) -> CliError {
    match err {
        kube::Error::Api(status) if status.code == 403 => {
            CliError::Forbidden(one_line(&status.message))
        }
        kube::Error::Api(status) => CliError::Api {
            code: status.code,
            message: one_line(&status.message),
        },
        kube::Error::HyperError(_) | kube::Error::Service(_) => CliError::Unreachable {
            url: server_url.to_string(),
            reason: one_line(&root_cause(&err)),
        },
        other => CliError::BadResponse {
            url: server_url.to_string(),
            reason: one_line(&root_cause(&other)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: c1
  cluster: {server: "https://127.0.0.1:6443"}
users:
- name: dev-admin
  user: {token: abc}
- name: basic
  user: {username: bob, password: secret}
contexts:
- name: dev
  context: {cluster: c1, user: dev-admin, namespace: shop}
- name: other
  context: {cluster: c1, user: basic}
- name: nouser
  context: {cluster: c1}
"#;

    #[test]
    fn reads_current_and_named_contexts() {
        let kc = Kubeconfig::from_yaml(KUBECONFIG).unwrap();
        assert_eq!(
            context_info(&kc, None).unwrap(),
            ContextInfo {
                context: "dev".into(),
                namespace: Some("shop".into()),
                user: Some("dev-admin".into())
            }
        );
        assert_eq!(
            context_info(&kc, Some("other")).unwrap(),
            ContextInfo {
                context: "other".into(),
                namespace: None,
                user: Some("bob".into())
            }
        );
        assert_eq!(context_info(&kc, Some("nouser")).unwrap().user, None);
        let e = context_info(&kc, Some("prod")).unwrap_err();
        assert_eq!(e.to_string(), "kubeconfig: context \"prod\" not found");
    }

    #[test]
    fn no_current_context() {
        let kc = Kubeconfig::from_yaml("apiVersion: v1\nkind: Config\n").unwrap();
        assert!(context_info(&kc, None)
            .unwrap_err()
            .to_string()
            .contains("--context"));
    }

    #[tokio::test]
    async fn connect_uses_kubeconfig_namespace_and_user() {
        let dir =
            std::env::temp_dir().join(format!("kubectl-incident-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config");
        std::fs::write(&path, KUBECONFIG).unwrap();
        let global = GlobalArgs {
            kubeconfig: Some(path.clone()),
            ..Default::default()
        };
        let s = connect(&global).await.unwrap();
        assert_eq!(s.namespace, "shop");
        assert_eq!(s.kubeconfig_user.as_deref(), Some("dev-admin"));
        assert_eq!(s.server_url, "https://127.0.0.1:6443");
        let global = GlobalArgs {
            kubeconfig: Some(path.clone()),
            context: Some("other".into()),
            namespace: Some("ops".into()),
            as_user: Some("alice".into()),
        };
        let s = connect(&global).await.unwrap();
        assert_eq!(s.namespace, "ops");
        assert_eq!(s.kubeconfig_user.as_deref(), Some("bob"));
        assert_eq!(s.as_user.as_deref(), Some("alice"));
        let global = GlobalArgs {
            kubeconfig: Some(path.clone()),
            context: Some("other".into()),
            ..Default::default()
        };
        assert_eq!(connect(&global).await.unwrap().namespace, "default");
        let missing = GlobalArgs {
            kubeconfig: Some(dir.join("missing")),
            ..Default::default()
        };
        let e = connect(&missing).await.unwrap_err();
        assert!(matches!(e, CliError::Kubeconfig(_)), "{e:?}");
        assert!(
            e.to_string().starts_with(&format!(
                "kubeconfig: cannot read {}: ",
                dir.join("missing").display()
            )),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
