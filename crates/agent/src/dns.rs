//! The agent's DNS server: the names of service discovery answered on the host, so that
//! `web.prod.berth` resolves with nothing else installed.
//!
//! ```text
//!  server: GET /v1/discover?revision=R&wait=30 ──► DiscoveryFeed (healthy instances only)
//!     │  (long-poll: answered when the answers change)
//!     ▼
//!  Zones::build(feed) ── swapped in whole ──► every query reads one Zones, no lock
//!     ▼
//!  UDP + TCP on --dns-listen (default 127.0.0.1:8600; 53 is usually systemd-resolved's)
//! ```
//! For each discovery service `web` of namespace `prod.berth`:
//! - `SRV web.prod.berth` → one record per healthy task, `1 1 <host port> <task-id>.web.prod.berth`
//!   (the A/AAAA of each target in the additional section), when the service has SRV records;
//! - `A`/`AAAA web.prod.berth` → the hosts' addresses, when it has A records;
//! - `A`/`AAAA <task-id>.web.prod.berth` → that task's host.
//!
//! Names under a namespace that match nothing are NXDOMAIN; names outside every namespace
//! are REFUSED: the server is authoritative for berth's namespaces and recurses for nobody.
//! Answers are prepared when the feed changes, so a query costs a hash lookup.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use berth_api::agent::{DiscoveredService, DiscoveryFeed};
use hickory_proto::op::{Header, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SRV};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_server::ServerFuture;
use hickory_server::authority::MessageResponseBuilder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};

use crate::client::Client;

/// Where the agent answers DNS unless told otherwise (Consul's port: clear of the host's own
/// resolver on 53).
pub const DEFAULT_DNS_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8600);
/// How long a TCP client may take to send its query.
const TCP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one feed request waits for a change.
const FEED_WAIT: Duration = Duration::from_secs(30);

/// The records of one name.
#[derive(Debug, Default)]
struct Entry {
    a: Vec<Record>,
    aaaa: Vec<Record>,
    srv: Vec<Record>,
    /// The A/AAAA records of the SRV targets.
    srv_additionals: Vec<Record>,
}

/// What one query gets.
#[derive(Debug, PartialEq)]
pub enum Answer<'a> {
    /// The name has records of the type asked for.
    Records {
        answers: &'a [Record],
        additionals: &'a [Record],
    },
    /// The name exists, without records of that type.
    NoData,
    /// A name in a namespace that is no service and no task.
    NxDomain,
    /// A name outside every namespace.
    Refused,
}

/// Every answer the agent gives, prepared from one [`DiscoveryFeed`].
#[derive(Debug, Default)]
pub struct Zones {
    revision: u64,
    namespaces: Vec<LowerName>,
    names: HashMap<LowerName, Entry>,
}

impl Zones {
    /// The answers for `feed`. Services and instances whose names are not valid DNS names
    /// are left out (the server checks names, so there are none).
    pub fn build(feed: &DiscoveryFeed) -> Zones {
        let mut namespaces = BTreeSet::new();
        let mut names: HashMap<LowerName, Entry> = HashMap::new();
        for service in &feed.services {
            let Ok(zone) = fqdn(&[&service.namespace]) else {
                continue;
            };
            namespaces.insert(LowerName::new(&zone));
            let Ok(name) = fqdn(&[&service.name, &service.namespace]) else {
                continue;
            };
            let entry = names.entry(LowerName::new(&name)).or_default();
            add_service(&names_of_targets(service), entry, &name, service);
            // The targets: each instance's own name.
            for instance in &service.instances {
                let (Some(address), Ok(target)) = (
                    instance.address,
                    fqdn(&[&instance.id, &service.name, &service.namespace]),
                ) else {
                    continue;
                };
                let ttl = service.srv_ttl.or(service.a_ttl).unwrap_or(0);
                let target_entry = names.entry(LowerName::new(&target)).or_default();
                push_address(target_entry, target, ttl, address);
            }
        }
        Zones {
            revision: feed.revision,
            namespaces: namespaces.into_iter().collect(),
            names,
        }
    }

    /// The feed revision these answers were built from.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The answer to a query for `name` of type `kind`.
    pub fn answer(&self, name: &LowerName, kind: RecordType) -> Answer<'_> {
        if !self.namespaces.iter().any(|zone| zone.zone_of(name)) {
            return Answer::Refused;
        }
        let Some(entry) = self.names.get(name) else {
            return Answer::NxDomain;
        };
        let (answers, additionals): (&[Record], &[Record]) = match kind {
            RecordType::A => (&entry.a, &[]),
            RecordType::AAAA => (&entry.aaaa, &[]),
            RecordType::SRV => (&entry.srv, &entry.srv_additionals),
            _ => (&[], &[]),
        };
        if answers.is_empty() {
            Answer::NoData
        } else {
            Answer::Records {
                answers,
                additionals,
            }
        }
    }
}

/// `labels` joined into a fully qualified name.
fn fqdn(labels: &[&str]) -> Result<Name, hickory_proto::ProtoError> {
    let mut name = Name::from_ascii(labels.join("."))?;
    name.set_fqdn(true);
    Ok(name)
}

/// The SRV targets of `service` with their addresses.
fn names_of_targets(service: &DiscoveredService) -> Vec<(Name, IpAddr, u16)> {
    service
        .instances
        .iter()
        .filter_map(|i| {
            let target = fqdn(&[&i.id, &service.name, &service.namespace]).ok()?;
            Some((target, i.address?, i.port?))
        })
        .collect()
}

/// The service's own records: SRV (with its targets' addresses) and A/AAAA, as configured.
fn add_service(
    targets: &[(Name, IpAddr, u16)],
    entry: &mut Entry,
    name: &Name,
    service: &DiscoveredService,
) {
    if let Some(ttl) = service.srv_ttl {
        for (target, address, port) in targets.iter() {
            let srv = SRV::new(1, 1, *port, target.clone());
            entry
                .srv
                .push(Record::from_rdata(name.clone(), ttl, RData::SRV(srv)));
            let mut additional = Entry::default();
            push_address(&mut additional, target.clone(), ttl, *address);
            entry.srv_additionals.extend(additional.a);
            entry.srv_additionals.extend(additional.aaaa);
        }
    }
    if let Some(ttl) = service.a_ttl {
        let addresses: BTreeSet<IpAddr> =
            service.instances.iter().filter_map(|i| i.address).collect();
        for address in addresses {
            push_address(entry, name.clone(), ttl, address);
        }
    }
}

fn push_address(entry: &mut Entry, name: Name, ttl: u32, address: IpAddr) {
    match address {
        IpAddr::V4(v4) => entry
            .a
            .push(Record::from_rdata(name, ttl, RData::A(A::from(v4)))),
        IpAddr::V6(v6) => {
            entry
                .aaaa
                .push(Record::from_rdata(name, ttl, RData::AAAA(AAAA::from(v6))))
        }
    }
}

/// The answers in force, swapped whole when the feed changes.
#[derive(Debug, Clone, Default)]
pub struct SharedZones(Arc<RwLock<Arc<Zones>>>);

impl SharedZones {
    /// The answers now.
    pub fn current(&self) -> Arc<Zones> {
        self.0.read().expect("zones lock").clone()
    }

    /// Puts `zones` in force.
    pub fn replace(&self, zones: Zones) {
        *self.0.write().expect("zones lock") = Arc::new(zones);
    }
}

/// Answers queries from the [`SharedZones`].
struct Handler {
    zones: SharedZones,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let builder = MessageResponseBuilder::from_message_request(request);
        let mut header = Header::response_from_request(request.header());
        let queries = request.queries();
        let zones = self.zones.current();
        let answer = match queries {
            _ if request.message_type() != MessageType::Query
                || request.op_code() != OpCode::Query =>
            {
                Err(ResponseCode::NotImp)
            }
            [query] => match zones.answer(query.name(), query.query_type()) {
                Answer::Records {
                    answers,
                    additionals,
                } => Ok((answers, additionals)),
                Answer::NoData => Ok((&[][..], &[][..])),
                Answer::NxDomain => Err(ResponseCode::NXDomain),
                Answer::Refused => Err(ResponseCode::Refused),
            },
            _ => Err(ResponseCode::FormErr),
        };
        let sent = match answer {
            Ok((answers, additionals)) => {
                header.set_authoritative(true);
                let message = builder.build(header, answers, &[], &[], additionals);
                response.send_response(message).await
            }
            Err(code) => {
                header.set_authoritative(code == ResponseCode::NXDomain);
                header.set_response_code(code);
                response
                    .send_response(builder.build_no_records(header))
                    .await
            }
        };
        match sent {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, "a DNS answer could not be sent");
                let mut failed = Header::response_from_request(request.header());
                failed.set_response_code(ResponseCode::ServFail);
                failed.into()
            }
        }
    }
}

/// A running DNS server.
pub struct DnsServer {
    /// Where it answers (UDP and TCP).
    pub local: SocketAddr,
    server: ServerFuture<Handler>,
}

impl DnsServer {
    /// Binds `listen` (UDP and TCP) and answers from `zones`.
    pub async fn bind(listen: SocketAddr, zones: SharedZones) -> std::io::Result<DnsServer> {
        let udp = tokio::net::UdpSocket::bind(listen).await?;
        let local = udp.local_addr()?;
        // TCP on the port UDP got, so that port 0 gives one port for both.
        let tcp = tokio::net::TcpListener::bind(local).await?;
        let mut server = ServerFuture::new(Handler { zones });
        server.register_socket(udp);
        server.register_listener(tcp, TCP_TIMEOUT);
        Ok(DnsServer { local, server })
    }

    /// Runs until the server's sockets fail.
    pub async fn run(mut self) {
        if let Err(e) = self.server.block_until_done().await {
            tracing::warn!(error = %e, "the DNS server stopped");
        }
    }
}

/// Keeps `zones` up to date with the server's discovery feed, for as long as it runs.
pub async fn follow(client: Client, zones: SharedZones) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let revision = zones.current().revision();
        match client.discover(revision, FEED_WAIT).await {
            Ok(feed) => {
                backoff = Duration::from_millis(500);
                if feed.revision != revision {
                    tracing::debug!(revision = feed.revision, "discovery answers changed");
                    zones.replace(Zones::build(&feed));
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "the discovery feed failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use berth_api::agent::DiscoveredInstance;

    use super::*;

    fn feed() -> DiscoveryFeed {
        DiscoveryFeed {
            revision: 7,
            services: vec![
                DiscoveredService {
                    namespace: "prod.berth".into(),
                    name: "web".into(),
                    a_ttl: None,
                    srv_ttl: Some(5),
                    instances: vec![
                        DiscoveredInstance {
                            id: "t1".into(),
                            address: Some([10, 0, 0, 1].into()),
                            port: Some(31001),
                        },
                        DiscoveredInstance {
                            id: "t2".into(),
                            address: Some([10, 0, 0, 2].into()),
                            port: Some(31002),
                        },
                    ],
                },
                DiscoveredService {
                    namespace: "prod.berth".into(),
                    name: "db".into(),
                    a_ttl: Some(10),
                    srv_ttl: None,
                    instances: vec![DiscoveredInstance {
                        id: "t3".into(),
                        address: Some("fd00::3".parse().unwrap()),
                        port: Some(5432),
                    }],
                },
            ],
        }
    }

    fn name(s: &str) -> LowerName {
        LowerName::new(&Name::from_ascii(s).unwrap())
    }

    fn rdata(records: &[Record]) -> Vec<String> {
        records.iter().map(|r| r.data().to_string()).collect()
    }

    #[test]
    fn srv_lists_each_healthy_task_with_its_host_port_and_target() {
        let zones = Zones::build(&feed());
        let Answer::Records {
            answers,
            additionals,
        } = zones.answer(&name("Web.Prod.Berth."), RecordType::SRV)
        else {
            panic!("no SRV answer");
        };
        assert_eq!(
            rdata(answers),
            [
                "1 1 31001 t1.web.prod.berth.",
                "1 1 31002 t2.web.prod.berth."
            ]
        );
        assert!(answers.iter().all(|r| r.ttl() == 5));
        assert_eq!(rdata(additionals), ["10.0.0.1", "10.0.0.2"]);
        let Answer::Records { answers, .. } =
            zones.answer(&name("t2.web.prod.berth."), RecordType::A)
        else {
            panic!("no A for the target");
        };
        assert_eq!(rdata(answers), ["10.0.0.2"]);
    }

    #[test]
    fn a_records_only_where_the_service_asks_for_them() {
        let zones = Zones::build(&feed());
        assert_eq!(
            zones.answer(&name("web.prod.berth."), RecordType::A),
            Answer::NoData
        );
        let Answer::Records { answers, .. } =
            zones.answer(&name("db.prod.berth."), RecordType::AAAA)
        else {
            panic!("no AAAA for db");
        };
        assert_eq!(rdata(answers), ["fd00::3"]);
        assert_eq!(
            zones.answer(&name("db.prod.berth."), RecordType::SRV),
            Answer::NoData
        );
    }

    #[test]
    fn unknown_names_in_a_namespace_do_not_exist_and_others_are_refused() {
        let zones = Zones::build(&feed());
        assert_eq!(
            zones.answer(&name("api.prod.berth."), RecordType::SRV),
            Answer::NxDomain
        );
        assert_eq!(
            zones.answer(&name("example.com."), RecordType::A),
            Answer::Refused
        );
        assert_eq!(
            Zones::default().answer(&name("web.prod.berth."), RecordType::A),
            Answer::Refused
        );
    }
}
