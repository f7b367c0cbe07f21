//! Real zenoh sessions over loopback, configured through [`SessionSettings::zenoh_config`]:
//! user/password authentication and TLS behave as the module documentation says.
//!
//! Sessions use zenoh's sync API (`Wait`) from plain test threads (zenoh panics inside a
//! current-thread tokio runtime), multicast scouting off and explicit `127.0.0.1` endpoints on
//! ports picked by binding port 0. Subscribers use a callback into a channel, so nothing blocks
//! when samples pile up.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use zenoh::Wait;

use super::*;

/// How long a sample that must arrive may take (connection set-up included).
const ARRIVE_WITHIN: Duration = Duration::from_secs(10);
/// How long to wait for a sample that must not arrive.
const ABSENT_FOR: Duration = Duration::from_millis(1500);

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

fn open(settings: &SessionSettings) -> zenoh::Session {
    let config = settings.zenoh_config().expect("zenoh config");
    zenoh::open(config).wait().expect("open session")
}

fn peer_count(session: &zenoh::Session) -> usize {
    session.info().peers_zid().wait().count()
}

/// Waits until `session` sees a peer, up to `timeout`.
fn wait_for_peer(session: &zenoh::Session, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if peer_count(session) > 0 {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Subscribes on `listener`, then puts from `connector` every 100 ms until the sample arrives
/// or `timeout` passes.
fn exchange(
    listener: &zenoh::Session,
    connector: &zenoh::Session,
    key: &str,
    timeout: Duration,
) -> Option<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    let _subscriber = listener
        .declare_subscriber(key)
        .callback(move |sample| {
            let _ = tx.send(sample.payload().to_bytes().into_owned());
        })
        .wait()
        .expect("declare subscriber");
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        connector.put(key, "hello").wait().expect("put");
        if let Ok(payload) = rx.recv_timeout(Duration::from_millis(100)) {
            return Some(payload);
        }
    }
    None
}

fn close(session: zenoh::Session) {
    session.close().wait().expect("close");
}

fn listener_settings(port: u16, auth: Option<AuthSettings>) -> SessionSettings {
    SessionSettings {
        auth,
        ..SessionSettings::with_endpoints(vec![], vec![format!("tcp/127.0.0.1:{port}")])
    }
}

fn connector_settings(port: u16, auth: Option<AuthSettings>) -> SessionSettings {
    SessionSettings {
        auth,
        ..SessionSettings::with_endpoints(vec![format!("tcp/127.0.0.1:{port}")], vec![])
    }
}

fn credentials(user: &str, password: &str) -> Option<AuthSettings> {
    Some(AuthSettings {
        credentials: Some(Credentials {
            user: user.to_owned(),
            password: password.to_owned(),
        }),
        dictionary_file: None,
    })
}

/// A dictionary accepting `rivet:secret` (and another user), and the auth settings using it.
fn dictionary(dir: &Path) -> Option<AuthSettings> {
    let path = dir.join("users.txt");
    std::fs::write(&path, "operator:other\nrivet:secret\n").expect("write dictionary");
    Some(AuthSettings {
        credentials: None,
        dictionary_file: Some(path),
    })
}

#[test]
fn usrpwd_right_password_exchanges_a_sample() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let listener = open(&listener_settings(port, dictionary(dir.path())));
    let connector = open(&connector_settings(port, credentials("rivet", "secret")));
    assert!(
        wait_for_peer(&connector, ARRIVE_WITHIN),
        "the connecting side never saw the listener"
    );
    let payload = exchange(&listener, &connector, "rivet/test/usrpwd/ok", ARRIVE_WITHIN);
    assert_eq!(payload.as_deref(), Some(&b"hello"[..]));
    assert_eq!(peer_count(&listener), 1);
    close(connector);
    close(listener);
}

#[test]
fn usrpwd_wrong_password_connects_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let listener = open(&listener_settings(port, dictionary(dir.path())));
    // Opening succeeds: in peer mode zenoh connects in the background and keeps retrying.
    let connector = open(&connector_settings(port, credentials("rivet", "wrong")));
    let payload = exchange(&listener, &connector, "rivet/test/usrpwd/wrong", ABSENT_FOR);
    assert_eq!(payload, None, "a sample crossed with a wrong password");
    assert_eq!(peer_count(&connector), 0);
    assert_eq!(peer_count(&listener), 0);
    // An unknown user is refused the same way.
    let stranger = open(&connector_settings(port, credentials("mallory", "secret")));
    assert!(!wait_for_peer(&stranger, Duration::from_millis(500)));
    assert_eq!(peer_count(&listener), 0);
    close(stranger);
    close(connector);
    close(listener);
}

#[test]
fn usrpwd_listener_refuses_a_peer_without_credentials() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let listener = open(&listener_settings(port, dictionary(dir.path())));
    let connector = open(&connector_settings(port, None));
    let payload = exchange(&listener, &connector, "rivet/test/usrpwd/none", ABSENT_FOR);
    assert_eq!(payload, None);
    assert_eq!(peer_count(&connector), 0);
    assert_eq!(peer_count(&listener), 0);
    close(connector);
    close(listener);
}

#[test]
fn usrpwd_credentials_need_a_listener_with_authentication() {
    // zenoh's open side insists on the listener's half of the handshake: credentials towards a
    // listener without authentication fail too (both sides must configure usrpwd).
    let port = free_port();
    let listener = open(&listener_settings(port, None));
    let connector = open(&connector_settings(port, credentials("rivet", "secret")));
    let payload = exchange(&listener, &connector, "rivet/test/usrpwd/asym", ABSENT_FOR);
    assert_eq!(payload, None);
    assert_eq!(peer_count(&connector), 0);
    close(connector);
    close(listener);
}

#[test]
fn usrpwd_listener_credentials_alone_accept_nobody() {
    // The listener's own user/password are what it presents when it connects; they do not make
    // it accept that user.
    // The profile check refuses this configuration (`session.auth.dictionary_file` is needed
    // to listen with authentication), so the zenoh configuration is made by hand.
    let port = free_port();
    let error = listener_settings(port, credentials("rivet", "secret"))
        .zenoh_config()
        .expect_err("listening with credentials and no dictionary");
    assert_eq!(error.key(), Some("session.auth.dictionary_file"));
    let mut config = listener_settings(port, None)
        .zenoh_config()
        .expect("plain listener");
    config
        .insert_json5(
            "transport/auth/usrpwd",
            r#"{user: "rivet", password: "secret", dictionary_file: null}"#,
        )
        .expect("usrpwd");
    let listener = zenoh::open(config).wait().expect("open listener");
    let connector = open(&connector_settings(port, credentials("rivet", "secret")));
    let payload = exchange(&listener, &connector, "rivet/test/usrpwd/self", ABSENT_FOR);
    assert_eq!(payload, None);
    assert_eq!(peer_count(&connector), 0);
    close(connector);
    close(listener);
}

// ---------------------------------------------------------------------------------------------
// TLS with certificates made by the `openssl` command

/// Runs `openssl` with `args` in `dir`; false (with a note) when the command is not there.
fn openssl(dir: &Path, args: &[&str]) -> bool {
    match std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
    {
        Ok(output) if output.status.success() => true,
        Ok(output) => panic!(
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(e) => {
            // CI installs openssl (.ci/run): there a missing one is a failure, not a skip.
            assert!(
                std::env::var_os("CI").is_none(),
                "cannot run openssl ({e}): CI must have it for the TLS tests"
            );
            eprintln!("skipping: cannot run openssl ({e})");
            false
        }
    }
}

/// A CA `<name>-ca.pem` (key `<name>-ca.key`) in `dir`.
fn make_ca(dir: &Path, name: &str) -> bool {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=rivet test CA {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}-ca.key"),
            "-out",
            &format!("{name}-ca.pem"),
        ],
    )
}

/// A certificate `<name>.pem` (key `<name>.key`) signed by CA `<ca>`, for `usage` (`serverAuth`
/// or `clientAuth`), naming 127.0.0.1 and localhost.
fn make_leaf(dir: &Path, ca: &str, name: &str, usage: &str) -> bool {
    let ext = format!("{name}.ext");
    let written = std::fs::write(
        dir.join(&ext),
        format!(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage={usage}\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
        ),
    );
    written.expect("write extensions");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    ) && openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}-ca.pem"),
            "-CAkey",
            &format!("{ca}-ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &format!("{name}.pem"),
        ],
    )
}

fn tls(root_ca: Option<PathBuf>) -> TlsSettings {
    TlsSettings {
        root_ca_certificate: root_ca,
        connect_certificate: None,
        connect_private_key: None,
        listen_certificate: None,
        listen_private_key: None,
        enable_mtls: false,
        verify_name_on_connect: true,
    }
}

fn tls_listener(port: u16, tls: TlsSettings) -> SessionSettings {
    SessionSettings {
        tls: Some(tls),
        ..SessionSettings::with_endpoints(vec![], vec![format!("tls/127.0.0.1:{port}")])
    }
}

fn tls_connector(port: u16, tls: TlsSettings) -> SessionSettings {
    SessionSettings {
        tls: Some(tls),
        ..SessionSettings::with_endpoints(vec![format!("tls/127.0.0.1:{port}")], vec![])
    }
}

/// Certificates for the TLS tests: CAs `good` and `other`, a server certificate from `good`, a
/// client certificate from `good`. `None` when openssl is not available.
fn certificates() -> Option<tempfile::TempDir> {
    let dir = tempfile::tempdir().expect("tempdir");
    let made = make_ca(dir.path(), "good")
        && make_ca(dir.path(), "other")
        && make_leaf(dir.path(), "good", "server", "serverAuth")
        && make_leaf(dir.path(), "good", "client", "clientAuth");
    made.then_some(dir)
}

fn server_tls(dir: &Path, root_ca: Option<PathBuf>) -> TlsSettings {
    TlsSettings {
        listen_certificate: Some(dir.join("server.pem")),
        listen_private_key: Some(dir.join("server.key")),
        ..tls(root_ca)
    }
}

#[test]
fn tls_connects_with_the_right_ca_and_not_with_another() {
    let Some(certs) = certificates() else {
        return;
    };
    let dir = certs.path();

    let port = free_port();
    let listener = open(&tls_listener(port, server_tls(dir, None)));
    let connector = open(&tls_connector(port, tls(Some(dir.join("good-ca.pem")))));
    assert!(
        wait_for_peer(&connector, ARRIVE_WITHIN),
        "no TLS connection with the right CA"
    );
    let payload = exchange(&listener, &connector, "rivet/test/tls/ok", ARRIVE_WITHIN);
    assert_eq!(payload.as_deref(), Some(&b"hello"[..]));
    close(connector);

    // A connecting side that trusts another CA does not accept the listener's certificate.
    let stranger = open(&tls_connector(port, tls(Some(dir.join("other-ca.pem")))));
    let payload = exchange(&listener, &stranger, "rivet/test/tls/other", ABSENT_FOR);
    assert_eq!(
        payload, None,
        "a sample crossed with an untrusted certificate"
    );
    assert_eq!(peer_count(&stranger), 0);
    close(stranger);
    close(listener);
}

#[test]
fn mtls_needs_a_client_certificate_from_the_ca() {
    let Some(certs) = certificates() else {
        return;
    };
    let dir = certs.path();
    let good_ca = Some(dir.join("good-ca.pem"));

    let port = free_port();
    let listener = open(&tls_listener(
        port,
        TlsSettings {
            enable_mtls: true,
            ..server_tls(dir, good_ca.clone())
        },
    ));
    let client = TlsSettings {
        enable_mtls: true,
        connect_certificate: Some(dir.join("client.pem")),
        connect_private_key: Some(dir.join("client.key")),
        ..tls(good_ca.clone())
    };
    let connector = open(&tls_connector(port, client));
    let payload = exchange(&listener, &connector, "rivet/test/mtls/ok", ARRIVE_WITHIN);
    assert_eq!(payload.as_deref(), Some(&b"hello"[..]));
    close(connector);

    // Without mTLS on the connecting side (no client certificate), the listener refuses.
    let anonymous = open(&tls_connector(port, tls(good_ca)));
    let payload = exchange(&listener, &anonymous, "rivet/test/mtls/anon", ABSENT_FOR);
    assert_eq!(
        payload, None,
        "a sample crossed without a client certificate"
    );
    assert_eq!(peer_count(&anonymous), 0);
    close(anonymous);
    close(listener);
}

#[test]
fn a_profile_with_tls_and_auth_talks_to_its_robot() {
    // End to end from TOML: the robot side listens on TLS with a dictionary, the bridge's
    // profile connects with a CA, user and password.
    let Some(certs) = certificates() else {
        return;
    };
    let dir = certs.path();
    std::fs::write(dir.join("users.txt"), "rivet:secret\n").expect("dictionary");
    let port = free_port();
    let robot = open(&SessionSettings {
        auth: Some(AuthSettings {
            credentials: None,
            dictionary_file: Some(dir.join("users.txt")),
        }),
        ..tls_listener(port, server_tls(dir, None))
    });
    let text = format!(
        "[robot]\nurdf = '{urdf}'\n[command]\ntopic = \"/cmd\"\nkind = \"forward_effort\"\n\
         [session]\nconnect = [\"tls/127.0.0.1:{port}\"]\n\
         [session.tls]\nroot_ca_certificate = \"good-ca.pem\"\n\
         [session.auth]\nuser = \"rivet\"\npassword = \"secret\"\n",
        urdf = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../scenes/robots/rivet_cartpole.urdf")
            .display()
    );
    let profile =
        RobotProfile::from_toml_str(&text, &dir.join("robot.toml")).expect("profile loads");
    let bridge = open(&profile.session);
    let payload = exchange(&robot, &bridge, "rivet/test/profile", ARRIVE_WITHIN);
    assert_eq!(payload.as_deref(), Some(&b"hello"[..]));
    close(bridge);
    close(robot);
}
