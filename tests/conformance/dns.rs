//! Conformance tests: dns.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use zsync::net::resolve;
use zsync::Io;

use crate::support::{self, assert_canceled};

fn localhost_is_loopback(io: &Io) {
    let addrs = resolve(io, "localhost:80").unwrap();
    assert!(!addrs.is_empty());
    assert!(
        addrs.iter().all(|a| a.port() == 80 && a.ip().is_loopback()),
        "{addrs:?}"
    );
    let addrs = resolve(io, ("localhost", 443)).unwrap();
    assert!(addrs
        .iter()
        .all(|a| a.port() == 443 && a.ip().is_loopback()));
    let addrs = resolve(io, (String::from("localhost"), 7)).unwrap();
    assert!(addrs.iter().all(|a| a.port() == 7 && a.ip().is_loopback()));
    let addrs = resolve(io, String::from("localhost:8")).unwrap();
    assert!(addrs.iter().all(|a| a.port() == 8 && a.ip().is_loopback()));
}

fn literals_resolve_to_themselves(io: &Io) {
    let v4: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let v6: SocketAddr = "[::1]:9".parse().unwrap();
    assert_eq!(resolve(io, "127.0.0.1:8080").unwrap(), vec![v4]);
    assert_eq!(resolve(io, "[::1]:9").unwrap(), vec![v6]);
    assert_eq!(resolve(io, v4).unwrap(), vec![v4]);
    assert_eq!(resolve(io, ("127.0.0.1", 8080)).unwrap(), vec![v4]);
    assert_eq!(resolve(io, ("::1", 9)).unwrap(), vec![v6]);
    assert_eq!(
        resolve(io, (IpAddr::V4(Ipv4Addr::LOCALHOST), 8080)).unwrap(),
        vec![v4]
    );
    assert_eq!(resolve(io, (Ipv4Addr::LOCALHOST, 8080)).unwrap(), vec![v4]);
    assert_eq!(resolve(io, (Ipv6Addr::LOCALHOST, 9)).unwrap(), vec![v6]);
    assert_eq!(
        resolve(io, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080)).unwrap(),
        vec![v4]
    );
    assert_eq!(
        resolve(io, SocketAddrV6::new(Ipv6Addr::LOCALHOST, 9, 0, 0)).unwrap(),
        vec![v6]
    );
    assert_eq!(resolve(io, [v4, v6]).unwrap(), vec![v4, v6]);
    assert_eq!(resolve(io, &[v6, v4][..]).unwrap(), vec![v6, v4]);
    assert_eq!(resolve(io, vec![v4]).unwrap(), vec![v4]);
    let by_ref: &SocketAddr = &v4;
    assert_eq!(resolve(io, by_ref).unwrap(), vec![v4]);
}

fn literals_need_no_lookup(io: &Io) {
    // A canceled task cannot look a name up, but literals are parsed in place: no resolver call,
    // hence no cancellation point.
    io.cancel_current();
    assert_canceled(resolve(io, "localhost:80"));
    assert_canceled(resolve(io, ("localhost", 80)));
    assert_eq!(
        resolve(io, "127.0.0.1:1").unwrap(),
        vec!["127.0.0.1:1".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(resolve(io, ("::1", 2)).unwrap().len(), 1);
    // Shielded, the lookup runs.
    assert!(!io
        .shielded(|| resolve(io, "localhost:80"))
        .unwrap()
        .is_empty());
}

fn unknown_name_is_not_found(io: &Io) {
    for name in ["no-such-host.invalid:80", "no-such-host.invalid:0"] {
        let e = resolve(io, name).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{name}: {e:?}");
        assert!(e.to_string().contains("no-such-host.invalid"), "{e}");
    }
    let e = resolve(io, ("no-such-host.invalid", 80)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e:?}");
    assert!(e.to_string().contains("no-such-host.invalid"), "{e}");
}

fn malformed_is_invalid_input(io: &Io) {
    for bad in [
        "no-port",
        "",
        "not an address",
        "localhost:notaport",
        "localhost:99999",
    ] {
        let e = resolve(io, bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad:?}: {e:?}");
    }
    let e = resolve(io, "no-port").unwrap_err();
    assert!(e.to_string().contains("no-port"), "{e}");
}

fn concurrent_lookups(io: &Io) {
    let Some(first) = support::concurrent_or_refused(io, |io| resolve(io, "localhost:1")) else {
        // Blocking: lookups run inline, one after the other.
        for port in 1..4 {
            assert!(!resolve(io, ("localhost", port)).unwrap().is_empty());
        }
        return;
    };
    let tasks: Vec<_> = (2..10u16)
        .map(|port| io.spawn(move |io| resolve(io, ("localhost", port))))
        .collect();
    assert!(!first.join().unwrap().unwrap().is_empty());
    for (port, t) in (2..10u16).zip(tasks) {
        let addrs = t.join().unwrap().unwrap();
        assert!(addrs.iter().all(|a| a.port() == port));
    }
}

conformance! {
    on sim:
    localhost_is_loopback,
    literals_resolve_to_themselves,
    literals_need_no_lookup,
    unknown_name_is_not_found,
    malformed_is_invalid_input,
    concurrent_lookups,
    ;
    not on sim:
}
