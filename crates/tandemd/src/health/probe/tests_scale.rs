//! 2 000 servers probed by the `http` advisor through the real scheduler and runner, in a
//! private network namespace: every server is up within one interval, killed listeners
//! are down within interval × (retries + 1) + 1 s, and the CPU time it took is printed.

use super::runner::{Runner, drive};
use super::tests::in_netns;
use super::*;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tandem_core::advisor::{Event, Scheduler, State};
use tandem_core::config::{Advisor, AdvisorKey, AdvisorKind, Config, load_file};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const CLUSTER: &str = "203.0.113.1";
const ALIVE: u32 = 1990;
const VICTIMS: u32 = 10;

fn alive(i: u32) -> IpAddr {
    IpAddr::from([127, 1 + (i / 250) as u8, 0, (i % 250) as u8 + 1])
}

fn victim(i: u32) -> IpAddr {
    IpAddr::from([127, 100, 0, i as u8 + 1])
}

/// Answers every connection of `l` with a 200.
fn serve(l: TcpListener) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut b = [0u8; 512];
                let _ = s.read(&mut b).await;
                let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\n").await;
            });
        }
    })
}

fn thread_cpu() -> Duration {
    // SAFETY: getrusage writes the struct.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer; RUSAGE_THREAD is this thread.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn config(interval: f64) -> Config {
    let mut lines = format!("cluster add {CLUSTER}\nport add {CLUSTER}@80+81\n");
    for i in 0..ALIVE {
        lines.push_str(&format!("server add {CLUSTER}@80@{}\n", alive(i)));
    }
    for i in 0..VICTIMS {
        lines.push_str(&format!("server add {CLUSTER}@81@{}\n", victim(i)));
    }
    let mut c = load_file(&lines, "scale.cfg", &Config::default()).expect("config");
    for port in [80, 81] {
        c.health.advisors.insert(
            AdvisorKey {
                kind: AdvisorKind::Http,
                cluster: None,
                port,
            },
            Advisor {
                interval,
                // Just under the 2 s interval: on a loaded 2-core machine a loopback probe of
                // 2 000 was seen to take over 1 s (a CI run), and one late answer with
                // retries 0 is a false down. A killed listener refuses at once either way.
                connecttimeout: 1.9,
                receivetimeout: 1.9,
                retries: 0,
                timeout: None,
            },
        );
    }
    c
}

/// Drives until `done` holds (checked every 50 ms) or `limit` passes; returns when.
async fn drive_until(
    s: &mut Scheduler,
    r: &mut Runner,
    limit: Instant,
    events: &mut Vec<Event>,
    done: impl Fn(&Scheduler, Instant) -> bool,
) -> Option<Instant> {
    loop {
        let now = Instant::now();
        if done(s, now) {
            return Some(now);
        }
        if now >= limit {
            return None;
        }
        drive(s, r, (now + Duration::from_millis(50)).min(limit), |e| {
            events.push(e)
        })
        .await;
    }
}

#[test]
fn two_thousand_http_targets() {
    in_netns(|| async {
        let cluster: IpAddr = CLUSTER.parse().unwrap();
        let _main = serve(TcpListener::bind("0.0.0.0:80").await.expect("bind :80"));
        let mut victims = Vec::new();
        for i in 0..VICTIMS {
            let l = TcpListener::bind((victim(i), 81))
                .await
                .expect("bind victim");
            victims.push(serve(l));
        }
        let interval = 2.0;
        let c = config(interval);
        let mut s = Scheduler::new();
        let mut r = Runner::new(ProbeContext::new(Some("/nonexistent".into())));
        r.set_context(ProbeContext::new(None));
        let mut events = Vec::new();
        let cpu0 = thread_cpu();
        let t0 = Instant::now();
        s.configure(t0, &c);
        s.set_running(t0, true);
        assert_eq!(s.len(), (ALIVE + VICTIMS) as usize);
        let all_up = |s: &Scheduler, now: Instant| {
            (0..ALIVE).all(|i| {
                s.health(now, cluster, 80, alive(i))
                    .is_some_and(|h| h.state == State::Up)
            }) && (0..VICTIMS).all(|i| {
                s.health(now, cluster, 81, victim(i))
                    .is_some_and(|h| h.state == State::Up)
            })
        };
        let limit = t0 + Duration::from_secs_f64(interval + 2.0);
        let up_at = drive_until(&mut s, &mut r, limit, &mut events, all_up)
            .await
            .expect("every server up within one interval (+2 s)");
        // Three more intervals of steady probing, measured.
        let steady0 = (thread_cpu(), Instant::now(), s.stats().probes);
        let steady_end = Instant::now() + Duration::from_secs_f64(interval * 3.0);
        drive_until(&mut s, &mut r, steady_end, &mut events, |_, _| false).await;
        let steady_cpu = thread_cpu() - steady0.0;
        let steady_wall = steady0.1.elapsed();
        let steady_probes = s.stats().probes - steady0.2;
        assert!(events.is_empty(), "nothing went down: {events:?}");
        // Kill the victims' listeners.
        for v in victims.drain(..) {
            v.abort();
        }
        let killed = Instant::now();
        let all_down =
            |s: &Scheduler, _now: Instant| (0..VICTIMS).all(|i| s.is_down(cluster, 81, victim(i)));
        let bound = Duration::from_secs_f64(interval + 1.0);
        let down_at = drive_until(
            &mut s,
            &mut r,
            killed + bound + Duration::from_secs(2),
            &mut events,
            all_down,
        )
        .await
        .expect("killed servers go down");
        // Raise the last events.
        drive(
            &mut s,
            &mut r,
            Instant::now() + Duration::from_millis(20),
            |e| events.push(e),
        )
        .await;
        let death = down_at - killed;
        eprintln!(
            "2000 http targets, interval {interval}s: all up after {:?}; steady: {} probes in \
             {steady_wall:?} using {steady_cpu:?} CPU ({:.1} µs per probe); killed listeners \
             down after {death:?}; {} probes in flight at the end",
            up_at - t0,
            steady_probes,
            steady_cpu.as_secs_f64() * 1e6 / steady_probes.max(1) as f64,
            r.len()
        );
        assert!(
            death <= bound + Duration::from_secs(1),
            "down within interval × (retries + 1) + 1 s (+1 s slack): {death:?}"
        );
        assert!(
            steady_probes as f64 >= f64::from(ALIVE + VICTIMS) * 2.5,
            "about three rounds: {steady_probes}"
        );
        let downs = events.iter().filter(|e| e.script() == "serverDown").count();
        let alerts: Vec<&Event> = events
            .iter()
            .filter(|e| e.script() == "managerAlert")
            .collect();
        assert_eq!(downs, VICTIMS as usize - 1, "{events:?}");
        assert_eq!(
            alerts,
            [&Event::ManagerAlert { cluster, port: 81 }],
            "the last one of port 81 raises managerAlert"
        );
        assert!((0..ALIVE).all(|i| !s.is_down(cluster, 80, alive(i))));
        eprintln!("CPU of the whole run: {:?}", thread_cpu() - cpu0);
    });
}
