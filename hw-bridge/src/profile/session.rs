//! The `[session]` section: how the zenoh session is opened (mode, endpoints, scouting, TLS,
//! user/password authentication), and its translation into a [`zenoh::Config`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use super::ProfileError;

/// The zenoh mode of the bridge's session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionMode {
    /// A peer: connects to the endpoints in `connect`, listens on those in `listen`, and talks
    /// directly to the peers it reaches (the default; what rmw_zenoh's nodes are towards their
    /// router).
    #[default]
    Peer,
    /// A client: talks to exactly one router or peer (the first of `connect` that answers) and
    /// never listens.
    Client,
}

impl SessionMode {
    /// The TOML and zenoh spelling: `peer` or `client`.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionMode::Peer => "peer",
            SessionMode::Client => "client",
        }
    }
}

impl fmt::Display for SessionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// TLS settings (`[session.tls]`), used by `tls/...` endpoints. Paths are resolved against the
/// profile's directory at load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// CA certificate (PEM) that verifies the other side's certificate: the listener's when
    /// connecting (added to the built-in web PKI roots), the connecting side's with mTLS.
    pub root_ca_certificate: Option<PathBuf>,
    /// This side's certificate (PEM) when connecting with mTLS.
    pub connect_certificate: Option<PathBuf>,
    /// The private key (PEM) of `connect_certificate`.
    pub connect_private_key: Option<PathBuf>,
    /// This side's certificate (PEM) when listening on a `tls/` endpoint (required for one).
    pub listen_certificate: Option<PathBuf>,
    /// The private key (PEM) of `listen_certificate`.
    pub listen_private_key: Option<PathBuf>,
    /// Mutual TLS: the listener requires, and the connecting side presents, a certificate signed
    /// by `root_ca_certificate` (TLS 1.3 only).
    pub enable_mtls: bool,
    /// Whether a connecting side checks that the listener's certificate names the host it
    /// connected to (a subject alternative name `IP:127.0.0.1` or `DNS:robot.local`). Default
    /// true; turning it off still checks the certificate chain.
    pub verify_name_on_connect: bool,
}

/// A user name and password this side presents when it opens a connection.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub user: String,
    /// The password (read from the profile, or from the environment variable
    /// `password_env` named at load).
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"***")
            .finish()
    }
}

/// zenoh user/password authentication (`[session.auth]`).
///
/// zenoh checks credentials per connection, in one direction: the side that *opens* the
/// connection presents `credentials`, the side that *accepts* it checks them against its
/// `dictionary_file`. See the module documentation for what each side needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthSettings {
    /// What this side presents when it connects.
    pub credentials: Option<Credentials>,
    /// The `user:password` lines this side accepts from peers that connect to it (resolved
    /// against the profile's directory at load).
    pub dictionary_file: Option<PathBuf>,
}

/// How the bridge opens its zenoh session (`[session]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionSettings {
    /// Peer (default) or client.
    pub mode: SessionMode,
    /// Endpoints to connect to, `<proto>/<address>` (`tcp/192.168.1.10:7447`,
    /// `tls/robot.local:7447`).
    pub connect: Vec<String>,
    /// Endpoints to listen on (`tcp/0.0.0.0:7447`; port 0 picks a free one). Empty: this side
    /// does not listen.
    pub listen: Vec<String>,
    /// zenoh multicast scouting (UDP 224.0.0.224:7446). Off by default: a robot network should
    /// be configured with explicit endpoints.
    pub multicast_scouting: bool,
    /// TLS settings for `tls/` endpoints.
    pub tls: Option<TlsSettings>,
    /// User/password authentication.
    pub auth: Option<AuthSettings>,
}

impl Default for SessionSettings {
    /// A peer that neither connects nor listens, without scouting, TLS or authentication.
    fn default() -> Self {
        Self::with_endpoints(Vec::new(), Vec::new())
    }
}

/// The transports this build of zenoh has (`transport_tcp`, `transport_tls`).
const PROTOCOLS: [&str; 2] = ["tcp", "tls"];

impl SessionSettings {
    /// A plain peer connecting to `connect` and listening on `listen`: no scouting, no TLS, no
    /// authentication (for tests and command-line overrides). The endpoints are checked by
    /// [`SessionSettings::zenoh_config`].
    pub fn with_endpoints(connect: Vec<String>, listen: Vec<String>) -> Self {
        Self {
            mode: SessionMode::Peer,
            connect,
            listen,
            multicast_scouting: false,
            tls: None,
            auth: None,
        }
    }

    /// The zenoh configuration: zenoh's defaults, with `mode`, `connect/endpoints`,
    /// `listen/endpoints` (replacing zenoh's default `tcp/[::]:0` for peers: an empty list
    /// means no listener), `scouting/multicast/enabled`, `transport/link/tls/*` and
    /// `transport/auth/usrpwd/*` set from these settings.
    ///
    /// The settings are checked first (the same rules a profile is checked with, except that
    /// files are not looked for), so settings built in code fail here rather than when the
    /// session opens.
    pub fn zenoh_config(&self) -> Result<zenoh::Config, ProfileError> {
        self.check()
            .map_err(|(key, message)| ProfileError::Session { key, message })?;
        let mut config = zenoh::Config::default();
        let mut set = |zenoh_key: &str, key: &str, value: String| {
            config
                .insert_json5(zenoh_key, &value)
                .map_err(|e| ProfileError::Session {
                    key: key.to_owned(),
                    message: format!("zenoh rejected `{zenoh_key}`: {e}"),
                })
        };
        set("mode", "session.mode", json_string(self.mode.as_str()))?;
        set(
            "connect/endpoints",
            "session.connect",
            json_list(&self.connect),
        )?;
        set(
            "listen/endpoints",
            "session.listen",
            json_list(&self.listen),
        )?;
        set(
            "scouting/multicast/enabled",
            "session.multicast_scouting",
            self.multicast_scouting.to_string(),
        )?;
        if let Some(tls) = &self.tls {
            for (name, path) in tls.files() {
                if let Some(path) = path {
                    let key = format!("session.tls.{name}");
                    let value = json_string(path_str(path, &key)?);
                    set(&format!("transport/link/tls/{name}"), &key, value)?;
                }
            }
            set(
                "transport/link/tls/enable_mtls",
                "session.tls.enable_mtls",
                tls.enable_mtls.to_string(),
            )?;
            set(
                "transport/link/tls/verify_name_on_connect",
                "session.tls.verify_name_on_connect",
                tls.verify_name_on_connect.to_string(),
            )?;
        }
        if let Some(auth) = &self.auth {
            // One insertion for the whole object, so zenoh's validator of `usrpwd` (user and
            // password together) sees the complete value; leaf insertions are not validated.
            let (user, password) = match &auth.credentials {
                Some(c) => (json_string(&c.user), json_string(&c.password)),
                None => ("null".to_owned(), "null".to_owned()),
            };
            let dictionary = match &auth.dictionary_file {
                Some(path) => json_string(path_str(path, "session.auth.dictionary_file")?),
                None => "null".to_owned(),
            };
            set(
                "transport/auth/usrpwd",
                "session.auth",
                format!("{{user: {user}, password: {password}, dictionary_file: {dictionary}}}"),
            )?;
        }
        Ok(config)
    }

    /// Checks everything that does not need the file system. Errors are `(key path, message)`.
    pub(super) fn check(&self) -> Result<(), (String, String)> {
        for (list, listen) in [(&self.connect, false), (&self.listen, true)] {
            let section = if listen { "listen" } else { "connect" };
            for (index, endpoint) in list.iter().enumerate() {
                let key = format!("session.{section}[{index}]");
                check_endpoint(endpoint, listen).map_err(|message| (key.clone(), message))?;
                if endpoint.starts_with("tls/") {
                    self.check_tls_endpoint(listen)
                        .map_err(|message| (key, message))?;
                }
            }
        }
        if self.mode == SessionMode::Client {
            if !self.listen.is_empty() {
                return Err((
                    "session.listen".to_owned(),
                    "a client does not listen: use mode = \"peer\" or remove the listen \
                     endpoints"
                        .to_owned(),
                ));
            }
            if self.connect.is_empty() && !self.multicast_scouting {
                return Err((
                    "session.connect".to_owned(),
                    "a client needs a router or peer to connect to: give `connect` endpoints \
                     or enable multicast_scouting"
                        .to_owned(),
                ));
            }
        }
        if let Some(tls) = &self.tls {
            tls.check()?;
        }
        if let Some(auth) = &self.auth {
            auth.check()?;
            if !self.listen.is_empty() && auth.dictionary_file.is_none() {
                return Err((
                    "session.auth.dictionary_file".to_owned(),
                    "is needed to listen with authentication: without a dictionary zenoh \
                     accepts no one (user and password are only what this side presents when \
                     it connects)"
                        .to_owned(),
                ));
            }
        }
        Ok(())
    }

    /// What a `tls/` endpoint needs from `[session.tls]`.
    fn check_tls_endpoint(&self, listen: bool) -> Result<(), String> {
        let Some(tls) = &self.tls else {
            // Connecting without [session.tls] verifies the listener against the built-in web
            // PKI roots only; listening needs a certificate.
            if listen {
                return Err(
                    "listening on a `tls/` endpoint needs a [session.tls] section with \
                     listen_certificate and listen_private_key"
                        .to_owned(),
                );
            }
            return Ok(());
        };
        if listen && (tls.listen_certificate.is_none() || tls.listen_private_key.is_none()) {
            return Err(
                "listening on a `tls/` endpoint needs session.tls.listen_certificate and \
                 session.tls.listen_private_key"
                    .to_owned(),
            );
        }
        if !listen
            && tls.enable_mtls
            && (tls.connect_certificate.is_none() || tls.connect_private_key.is_none())
        {
            return Err("connecting to a `tls/` endpoint with enable_mtls needs \
                 session.tls.connect_certificate and session.tls.connect_private_key"
                .to_owned());
        }
        Ok(())
    }
}

impl TlsSettings {
    /// The file settings with their key names (as in TOML and in zenoh's `transport/link/tls`).
    pub fn files(&self) -> [(&'static str, Option<&Path>); 5] {
        [
            ("root_ca_certificate", self.root_ca_certificate.as_deref()),
            ("connect_certificate", self.connect_certificate.as_deref()),
            ("connect_private_key", self.connect_private_key.as_deref()),
            ("listen_certificate", self.listen_certificate.as_deref()),
            ("listen_private_key", self.listen_private_key.as_deref()),
        ]
    }

    fn check(&self) -> Result<(), (String, String)> {
        for (cert, key) in [
            ("listen_certificate", "listen_private_key"),
            ("connect_certificate", "connect_private_key"),
        ] {
            let files = self.files();
            let has = |name: &str| files.iter().any(|(n, p)| *n == name && p.is_some());
            if has(cert) != has(key) {
                let (given, missing) = if has(cert) { (cert, key) } else { (key, cert) };
                return Err((
                    format!("session.tls.{given}"),
                    format!("is given without session.tls.{missing}: they go together"),
                ));
            }
        }
        if self.enable_mtls && self.root_ca_certificate.is_none() {
            return Err((
                "session.tls.enable_mtls".to_owned(),
                "mutual TLS needs session.tls.root_ca_certificate (the CA that signs the \
                 connecting side's certificate)"
                    .to_owned(),
            ));
        }
        Ok(())
    }
}

impl AuthSettings {
    fn check(&self) -> Result<(), (String, String)> {
        if let Some(c) = &self.credentials {
            check_credential("user", &c.user).map_err(|m| ("session.auth.user".to_owned(), m))?;
            if c.user.contains(':') {
                return Err((
                    "session.auth.user".to_owned(),
                    "contains `:`, which a zenoh user/password dictionary cannot hold".to_owned(),
                ));
            }
            check_credential("password", &c.password)
                .map_err(|m| ("session.auth.password".to_owned(), m))?;
        }
        if self.credentials.is_none() && self.dictionary_file.is_none() {
            return Err((
                "session.auth".to_owned(),
                "is empty: give user and password (to connect) and/or dictionary_file (to \
                 accept connections)"
                    .to_owned(),
            ));
        }
        Ok(())
    }
}

/// zenoh trims dictionary entries and rejects empty ones, so credentials with surrounding
/// whitespace could never match.
fn check_credential(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("the {what} is empty"));
    }
    if value.trim() != value {
        return Err(format!(
            "the {what} starts or ends with whitespace, which zenoh's dictionary trims away"
        ));
    }
    Ok(())
}

/// Checks one endpoint: zenoh's `<proto>/<address>[?<metadata>][#<config>]` syntax, a
/// protocol this build has, and a `<host>:<port>` address (port 0 only for listening).
pub(super) fn check_endpoint(text: &str, listen: bool) -> Result<(), String> {
    // zenoh's own message carries its source location; ours says the same without it.
    let endpoint = zenoh::config::EndPoint::from_str(text).map_err(|_| {
        format!(
            "`{text}` is not a zenoh endpoint `<proto>/<address>[?<metadata>][#<config>]` \
             (e.g. `tcp/192.168.1.10:7447`)"
        )
    })?;
    let protocol = endpoint.protocol();
    let protocol = protocol.as_str();
    if !PROTOCOLS.contains(&protocol) {
        return Err(format!(
            "`{text}`: protocol `{protocol}` is not available; this build speaks {}",
            PROTOCOLS.map(|p| format!("`{p}`")).join(" and ")
        ));
    }
    let address = endpoint.address();
    let address = address.as_str();
    let port = address
        .rsplit_once(':')
        .filter(|(host, _)| !host.is_empty())
        .map(|(_, port)| port)
        .ok_or_else(|| format!("`{text}`: the address `{address}` is not `<host>:<port>`"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{text}`: the port `{port}` is not a number from 0 to 65535"))?;
    if port == 0 && !listen {
        return Err(format!(
            "`{text}`: port 0 can only be listened on, not connected to"
        ));
    }
    Ok(())
}

fn path_str<'a>(path: &'a Path, key: &str) -> Result<&'a str, ProfileError> {
    path.to_str().ok_or_else(|| ProfileError::Session {
        key: key.to_owned(),
        message: format!(
            "the path {} is not valid UTF-8, which zenoh's configuration needs",
            path.display()
        ),
    })
}

/// `value` as a JSON (and so JSON5) string literal.
pub(super) fn json_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON list of strings.
fn json_list(values: &[String]) -> String {
    let items: Vec<String> = values.iter().map(|v| json_string(v)).collect();
    format!("[{}]", items.join(", "))
}
