//! The SASP task against a scripted GWM on 127.0.0.1, each test in a private network
//! namespace of its own (`unshare(CLONE_NEWNET)` on a dedicated thread, `lo` up): real TCP
//! and TLS, real timers.

use super::*;
use std::net::{IpAddr, Ipv4Addr};
use tandem_core::config::{SaspGwm, SaspMode};
use tandem_core::sasp::codec::{
    Body, Framer, Group, GroupWeights, LB_FLAG_NOCHANGE, LB_FLAG_PUSH, Message, REASON_NONE,
    STATE_QUIESCE, WEIGHT_CONFIDENT, WEIGHT_CONTACT, WEIGHT_REGISTRATION,
};
use tandem_core::sasp::lb::PROTOCOL_TCP;
use tokio::net::TcpListener;

const UID: &str = "tandem-192.0.2.1";
const GROUP: &str = "192.0.2.100@80";
const OK: u8 = WEIGHT_CONTACT | WEIGHT_REGISTRATION | WEIGHT_CONFIDENT;
/// Bound of every wait of a test (a noisy machine).
const WAIT: Duration = Duration::from_secs(20);

/// Runs `f` on a runtime of a new thread inside a new, private network namespace with `lo`
/// up. Fails loudly when the namespace cannot be made (the tests need root).
fn in_netns<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let t = std::thread::spawn(move || {
        // SAFETY: unshare(2) only changes this thread's network namespace; the thread is
        // ours and ends with the test.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "unshare(CLONE_NEWNET) failed (these tests need root): {}",
            std::io::Error::last_os_error()
        );
        let out = std::process::Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .output()
            .expect("run `ip link set lo up` (iproute2 is needed)");
        assert!(out.status.success(), "ip link set lo up: {out:?}");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        rt.block_on(f());
    });
    if let Err(e) = t.join() {
        std::panic::resume_unwind(e);
    }
}

fn mid(last: u8) -> MemberId {
    MemberId::new(
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, last)),
        80,
        PROTOCOL_TCP,
    )
}

fn groups(members: &[MemberId]) -> Groups {
    Groups::from([(GROUP.to_string(), members.iter().copied().collect())])
}

fn config(gwm: SocketAddr, mode: SaspMode, grace: f64) -> SaspConfig {
    let mut settings = LbSettings::new(
        UID,
        &SaspGwm {
            mode,
            ..SaspGwm::default()
        },
    );
    settings.reply_timeout = Duration::from_secs(2);
    SaspConfig {
        gwm,
        settings,
        groups: groups(&[mid(1), mid(2)]),
        grace: Duration::from_secs_f64(grace),
        tls: None,
        seed: 1,
        serial: 0,
    }
}

/// The GWM's end of one connection.
struct Peer<S> {
    stream: S,
    framer: Framer,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Peer<S> {
    fn new(stream: S) -> Self {
        Peer {
            stream,
            framer: Framer::new(),
        }
    }

    /// The next message from the LB; `None` when the LB closed the connection.
    async fn recv(&mut self) -> Option<Message> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(m) = self
                .framer
                .next_message()
                .expect("the LB writes valid SASP")
            {
                return Some(m);
            }
            let n = timeout(WAIT, self.stream.read(&mut buf))
                .await
                .expect("a message from the LB in time")
                .ok()?;
            if n == 0 {
                return None;
            }
            self.framer.push(&buf[..n]);
        }
    }

    async fn send(&mut self, m: Message) {
        self.stream.write_all(&m.to_bytes().unwrap()).await.unwrap();
    }

    /// Reads and answers the LB's messages up to its first Get Weights (Set LB State, the
    /// Registration, maybe Set Member State); returns what was received.
    async fn handshake(&mut self, w: &[(MemberId, u16)]) -> Vec<Message> {
        let mut got = Vec::new();
        loop {
            let m = self.recv().await.expect("the LB's first messages");
            self.answer(&m, w).await;
            let last = matches!(m.body, Body::GetWeightsRequest { .. });
            got.push(m);
            if last {
                return got;
            }
        }
    }

    async fn answer(&mut self, m: &Message, w: &[(MemberId, u16)]) {
        let code = ReturnCode::SUCCESS;
        let body = match &m.body {
            Body::SetLbStateRequest { .. } => Body::SetLbStateReply { code },
            Body::RegistrationRequest { .. } => Body::RegistrationReply { code },
            Body::DeregistrationRequest { .. } => Body::DeregistrationReply { code },
            Body::SetMemberStateRequest { .. } => Body::SetMemberStateReply { code },
            Body::GetWeightsRequest { .. } => Body::GetWeightsReply {
                code,
                interval: 30,
                groups: vec![weights(w)],
            },
            other => panic!("unexpected {other:?}"),
        };
        self.send(Message::new(m.id, body)).await;
    }
}

fn weights(w: &[(MemberId, u16)]) -> GroupWeights {
    GroupWeights {
        group: Group::new(UID, GROUP),
        entries: w
            .iter()
            .map(|(m, weight)| {
                let e = WeightEntry {
                    state: 0,
                    flags: OK,
                    weight: *weight,
                };
                (m.to_member(), e)
            })
            .collect(),
    }
}

/// Waits for an event matching `pred`; returns the events up to and including it.
async fn until(
    rx: &mut mpsc::Receiver<SaspEvent>,
    what: &str,
    pred: impl Fn(&SaspEventKind) -> bool,
) -> Vec<SaspEventKind> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}; events: {seen:?}"))
            .expect("the task is running");
        let hit = pred(&ev.kind);
        seen.push(ev.kind);
        if hit {
            return seen;
        }
    }
}

fn is_state(s: GwmState) -> impl Fn(&SaspEventKind) -> bool {
    move |k| *k == SaspEventKind::State(s)
}

fn table(w: &[(MemberId, u16)]) -> impl Fn(&SaspEventKind) -> bool {
    let want: BTreeMap<MemberId, u16> = w.iter().copied().collect();
    move |k| match k {
        SaspEventKind::Weights { entries, .. } => {
            entries
                .iter()
                .map(|(m, e)| (*m, e.weight))
                .collect::<BTreeMap<_, _>>()
                == want
        }
        _ => false,
    }
}

#[test]
fn push_session_registers_takes_weights_quiesces_and_deregisters_on_shutdown() {
    in_netns(|| async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::channel(EVENT_QUEUE);
        let mut cfg = config(addr, SaspMode::Push, 30.0);
        cfg.settings.changed_only = true;
        let handle = spawn(cfg, tx).unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let mut gwm = Peer::new(stream);
        let first = gwm.handshake(&[(mid(1), 100), (mid(2), 50)]).await;
        assert!(matches!(
            &first[0].body,
            Body::SetLbStateRequest { lb_uid, flags, .. }
                if lb_uid == UID && *flags == LB_FLAG_PUSH | LB_FLAG_NOCHANGE
        ));
        let seen = until(&mut rx, "weights", table(&[(mid(1), 100), (mid(2), 50)])).await;
        let states: Vec<&SaspEventKind> = seen
            .iter()
            .filter(|k| matches!(k, SaspEventKind::State(_)))
            .collect();
        assert_eq!(
            states,
            [
                &SaspEventKind::State(GwmState::Connecting),
                &SaspEventKind::State(GwmState::Registering),
                &SaspEventKind::State(GwmState::Connected)
            ]
        );
        // A push (changed only): merged.
        let push = Body::SendWeights {
            groups: vec![weights(&[(mid(2), 7)])],
        };
        gwm.send(Message::new(0, push)).await;
        until(
            &mut rx,
            "pushed weights",
            table(&[(mid(1), 100), (mid(2), 7)]),
        )
        .await;
        // Quiesce: Set Member State with the flag.
        handle.set_quiesce(mid(2), true);
        let m = gwm.recv().await.unwrap();
        let Body::SetMemberStateRequest { groups, .. } = &m.body else {
            panic!("{m:?}")
        };
        assert_eq!(groups[0].entries[0].1.flags, STATE_QUIESCE);
        gwm.answer(&m, &[]).await;
        // A new member: its Registration, then a Get Weights.
        handle.set_groups(groups_of(&[mid(1), mid(2), mid(3)]));
        let m = gwm.recv().await.unwrap();
        assert!(matches!(&m.body, Body::RegistrationRequest { groups, .. }
            if groups[0].members == [mid(3).to_member()]));
        gwm.answer(&m, &[]).await;
        let m = gwm.recv().await.unwrap();
        assert!(matches!(m.body, Body::GetWeightsRequest { .. }));
        gwm.answer(&m, &[(mid(3), 9)]).await;
        until(
            &mut rx,
            "merged",
            table(&[(mid(1), 100), (mid(2), 7), (mid(3), 9)]),
        )
        .await;
        // Shutdown: one DeRegistration of the whole group, answered, then the task ends.
        let stop = tokio::spawn(handle.shutdown(Duration::from_secs(5)));
        let m = gwm.recv().await.unwrap();
        let Body::DeregistrationRequest { reason, groups, .. } = &m.body else {
            panic!("{m:?}")
        };
        assert_eq!(*reason, REASON_NONE);
        assert_eq!(groups[0].group.name, GROUP);
        assert!(groups[0].members.is_empty(), "the whole group");
        gwm.answer(&m, &[]).await;
        timeout(WAIT, stop)
            .await
            .expect("shutdown in time")
            .unwrap();
        assert!(gwm.recv().await.is_none(), "the LB closed the connection");
    });
}

fn groups_of(m: &[MemberId]) -> Groups {
    groups(m)
}

#[test]
fn reconnects_after_the_gwm_closes_and_keeps_weights_for_the_grace_period() {
    in_netns(|| async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::channel(EVENT_QUEUE);
        let handle = spawn(config(addr, SaspMode::Pull, 30.0), tx).unwrap();
        handle.set_quiesce(mid(1), true);
        let (stream, _) = listener.accept().await.unwrap();
        let mut gwm = Peer::new(stream);
        let first = gwm.handshake(&[(mid(1), 1)]).await;
        let quiesce = |m: &Message| matches!(m.body, Body::SetMemberStateRequest { .. });
        // The quiesce may have reached the task before or after the connection.
        if !first.iter().any(quiesce) {
            let m = gwm.recv().await.unwrap();
            assert!(quiesce(&m), "{m:?}");
            gwm.answer(&m, &[]).await;
        }
        until(&mut rx, "connected", is_state(GwmState::Connected)).await;
        drop(gwm); // the GWM goes away
        let seen = until(&mut rx, "grace", is_state(GwmState::Grace)).await;
        assert!(
            seen.iter()
                .any(|k| matches!(k, SaspEventKind::Disconnected { reason }
                if reason.contains("closed the connection"))),
            "{seen:?}"
        );
        // The GWM comes back: the LB registers again (same quiesce) within the backoff.
        let t = Instant::now();
        let (stream, _) = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "first retry after ≈1 s"
        );
        let mut gwm = Peer::new(stream);
        let again = gwm.handshake(&[(mid(1), 2)]).await;
        let kinds: Vec<u16> = again.iter().map(|m| m.body.message_type()).collect();
        assert_eq!(
            kinds,
            [0x1050, 0x1010, 0x1060, 0x1030],
            "quiesce kept across reconnects"
        );
        let seen = until(&mut rx, "connected again", is_state(GwmState::Connected)).await;
        assert!(
            !seen.contains(&SaspEventKind::State(GwmState::Registering)),
            "still grace while registering: {seen:?}"
        );
        until(&mut rx, "new weights", table(&[(mid(1), 2)])).await;
        drop(handle);
    });
}

#[test]
fn grace_ends_in_lost_while_the_gwm_stays_away() {
    in_netns(|| async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::channel(EVENT_QUEUE);
        let _handle = spawn(config(addr, SaspMode::Push, 1.5), tx).unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let mut gwm = Peer::new(stream);
        gwm.handshake(&[(mid(1), 1)]).await;
        until(&mut rx, "connected", is_state(GwmState::Connected)).await;
        drop(gwm);
        drop(listener); // connections are refused from now on
        until(&mut rx, "grace", is_state(GwmState::Grace)).await;
        let t = Instant::now();
        let seen = until(&mut rx, "lost", is_state(GwmState::Lost)).await;
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(1400) && took < Duration::from_secs(5),
            "lost after the grace of 1.5 s, took {took:?}"
        );
        assert!(
            seen.iter()
                .any(|k| matches!(k, SaspEventKind::Disconnected { reason }
                if reason.contains("connect to"))),
            "refused reconnection attempts during grace: {seen:?}"
        );
    });
}

#[test]
fn a_gwm_that_never_answers_is_dropped_and_retried() {
    in_netns(|| async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::channel(EVENT_QUEUE);
        let _handle = spawn(config(addr, SaspMode::Push, 30.0), tx).unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let mut silent = Peer::new(stream);
        let m = silent.recv().await.unwrap();
        assert!(matches!(m.body, Body::SetLbStateRequest { .. }));
        let t = Instant::now();
        let seen = until(&mut rx, "disconnect", |k| {
            matches!(k, SaspEventKind::Disconnected { .. })
        })
        .await;
        let SaspEventKind::Disconnected { reason } = seen.last().unwrap() else {
            unreachable!()
        };
        assert!(
            reason.starts_with("silent GWM: no reply to Set LB State"),
            "{reason}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(6),
            "reply timeout 2 s: {:?}",
            t.elapsed()
        );
        // The rest of the LB's first messages, then the end of the connection.
        let mut rest = Vec::new();
        while let Some(m) = silent.recv().await {
            rest.push(m.body.message_type());
        }
        assert_eq!(
            rest,
            [0x1010, 0x1030],
            "then the LB closed the silent connection"
        );
        assert!(seen.contains(&SaspEventKind::State(GwmState::Registering)));
        until(&mut rx, "backoff", is_state(GwmState::Backoff)).await;
        let (stream, _) = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
        Peer::new(stream).handshake(&[(mid(1), 1)]).await;
        until(&mut rx, "connected", is_state(GwmState::Connected)).await;
    });
}

#[test]
fn garbage_from_the_gwm_closes_the_session_with_a_reason() {
    in_netns(|| async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::channel(EVENT_QUEUE);
        let _handle = spawn(config(addr, SaspMode::Push, 30.0), tx).unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let mut gwm = Peer::new(stream);
        gwm.handshake(&[(mid(1), 5)]).await;
        until(&mut rx, "weights", table(&[(mid(1), 5)])).await;
        gwm.stream
            .write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            .await
            .unwrap();
        let seen = until(&mut rx, "disconnect", |k| {
            matches!(k, SaspEventKind::Disconnected { .. })
        })
        .await;
        let SaspEventKind::Disconnected { reason } = seen.last().unwrap() else {
            unreachable!()
        };
        assert!(reason.starts_with("bad message from the GWM"), "{reason}");
        until(&mut rx, "grace", is_state(GwmState::Grace)).await;
    });
}

/// A CA, and a GWM certificate for 127.0.0.1 signed by it: (CA PEM, server config).
fn tls_material() -> (String, Arc<rustls::ServerConfig>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let der_key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], der_key)
        .unwrap();
    (ca.pem(), Arc::new(server))
}

#[test]
fn tls_session_verifies_the_gwm_certificate() {
    in_netns(|| async {
        let dir = std::env::temp_dir().join(format!("tandem-sasp-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (ca_pem, server) = tls_material();
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, &ca_pem).unwrap();
        let (other_ca, _) = tls_material();
        let other_file = dir.join("other.pem");
        std::fs::write(&other_file, &other_ca).unwrap();
        let good = tls_config(&ca_file).unwrap();
        let wrong = tls_config(&other_file).unwrap();
        assert!(tls_config(&dir.join("missing.pem")).is_err());
        std::fs::write(dir.join("empty.pem"), "").unwrap();
        let empty = tls_config(&dir.join("empty.pem")).unwrap_err();
        assert!(
            format!("{empty:#}").contains("no CA certificate"),
            "{empty:#}"
        );
        std::fs::remove_dir_all(&dir).unwrap();

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(server);

        // A certificate from another CA: the handshake fails, reported with a reason.
        let (tx, mut rx) = mpsc::channel(EVENT_QUEUE);
        let mut cfg = config(addr, SaspMode::Push, 30.0);
        cfg.tls = Some(wrong);
        let bad = spawn(cfg, tx).unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        assert!(acceptor.accept(stream).await.is_err());
        let seen = until(&mut rx, "refused", |k| {
            matches!(k, SaspEventKind::Disconnected { .. })
        })
        .await;
        let SaspEventKind::Disconnected { reason } = seen.last().unwrap() else {
            unreachable!()
        };
        assert!(reason.contains("TLS handshake"), "{reason}");
        bad.shutdown(Duration::from_secs(1)).await;

        // The right CA: a whole session over TLS.
        let (tx, mut rx) = mpsc::channel(EVENT_QUEUE);
        let mut cfg = config(addr, SaspMode::Push, 30.0);
        cfg.tls = Some(good);
        let handle = spawn(cfg, tx).unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let tls = acceptor.accept(stream).await.expect("TLS handshake");
        let mut gwm = Peer::new(tls);
        gwm.handshake(&[(mid(1), 11), (mid(2), 22)]).await;
        until(
            &mut rx,
            "weights over TLS",
            table(&[(mid(1), 11), (mid(2), 22)]),
        )
        .await;
        let stop = tokio::spawn(handle.shutdown(Duration::from_secs(5)));
        let m = gwm.recv().await.unwrap();
        assert!(matches!(m.body, Body::DeregistrationRequest { .. }));
        gwm.answer(&m, &[]).await;
        timeout(WAIT, stop).await.unwrap().unwrap();
    });
}

#[test]
fn shutdown_is_bounded_when_the_gwm_does_not_answer() {
    in_netns(|| async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::channel(EVENT_QUEUE);
        let handle = spawn(config(addr, SaspMode::Push, 30.0), tx).unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let mut gwm = Peer::new(stream);
        gwm.handshake(&[(mid(1), 1)]).await;
        until(&mut rx, "connected", is_state(GwmState::Connected)).await;
        let t = Instant::now();
        handle.shutdown(Duration::from_millis(500)).await;
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(450) && took < Duration::from_secs(3),
            "{took:?}"
        );
        let m = gwm.recv().await.unwrap();
        assert!(matches!(m.body, Body::DeregistrationRequest { .. }));
        assert!(gwm.recv().await.is_none(), "closed after the bounded wait");
        // Settings a session cannot use are refused at once.
        let (tx, _rx) = mpsc::channel(1);
        let mut cfg = config(addr, SaspMode::Push, 30.0);
        cfg.settings.lb_uid = String::new();
        assert!(spawn(cfg, tx).is_err());
    });
}

#[test]
fn gwm_view_follows_the_events() {
    let mut v = GwmView::default();
    let entry = |flags| WeightEntry {
        state: 0,
        flags,
        weight: 10,
    };
    let weights = |flags| SaspEventKind::Weights {
        group: GROUP.into(),
        entries: BTreeMap::from([(mid(1), entry(flags))]),
    };
    v.apply(&SaspEventKind::State(GwmState::Registering));
    v.apply(&weights(OK));
    assert!(v.steering(GROUP).is_none(), "not yet connected");
    v.apply(&SaspEventKind::State(GwmState::Connected));
    assert_eq!(v.steering(GROUP).unwrap()[&mid(1)].weight, 10);
    assert!(v.steering("other").is_none());
    v.apply(&weights(WEIGHT_CONTACT));
    assert!(v.steering(GROUP).is_none(), "no member confident");
    v.apply(&weights(OK));
    v.apply(&SaspEventKind::Disconnected {
        reason: "the GWM closed the connection".into(),
    });
    v.apply(&SaspEventKind::State(GwmState::Grace));
    assert!(v.steering(GROUP).is_some(), "last weights during grace");
    assert_eq!(
        v.last_error.as_deref(),
        Some("the GWM closed the connection")
    );
    v.apply(&SaspEventKind::State(GwmState::Lost));
    assert!(v.steering(GROUP).is_none() && v.weights.is_empty());
}
