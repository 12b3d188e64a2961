//! A container's networking as two calls for the engine: [`attach`] before the container's
//! process starts, [`detach`] when it is gone.
//!
//! [`attach`] takes the namespace berth made for the container ([`netns::create`]) and
//! connects it as its [`NetworkMode`] says: bridge networks (the default network `berth` is
//! created on first use) with their addresses, veth pairs, firewall rules, published ports and
//! DNS names; pasta (or slirp4netns) rootless; nothing more for `none`, `host`, `container:`
//! and `ns:`. It returns what `inspect` and `berth port` show, and the texts of the
//! container's /etc/hosts and /etc/resolv.conf.
//!
//! What is about to be set up is recorded in the state database *before* any of it is, so
//! that [`detach`] — called by `rm`, by a failed start, or by the next berth command after a
//! monitor was killed with SIGKILL — needs nothing but the container's id. [`detach`] runs
//! every step even when an earlier one fails, and running it twice is harmless.
//!
//! Bridge changes of all containers of every state root are serialised by one host-wide lock
//! ([`hostwide::lock`]), so that the last container leaving a network and a new one joining
//! it cannot race between "the bridge has no ports" and deleting it, and so that two roots
//! choosing their default network's subnet at once cannot choose the same one.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::dns::{self, DnsEntry};
use super::files::{self, AddHost, HostsOptions, ResolvOptions};
use super::hostwide::{self, Conflict};
use super::ipam::{self, CreateOptions, DEFAULT_NETWORK};
use super::mode::{NetworkAttach, NetworkMode};
use super::netns::{self, Netns};
use super::ports::{self, PortMapping};
use super::rootful::{self, ConnectRequest};
use super::rootless::{self, Pasta, PastaOptions, Slirp, SlirpOptions};
use super::store::{NetworkDb, StoreError};

/// Errors of attaching and detaching, named after the step that failed, with the container.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hostwide(#[from] hostwide::HostwideError),
    #[error("network {network} cannot be set up on this host: {conflict} (remove that, or create the network again with another --subnet and --interface-name)")]
    HostConflict { network: String, conflict: Conflict },
    #[error(transparent)]
    Routes(#[from] ipam::IpamError),
    #[error("encoding the network record of container {id}")]
    Record {
        id: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Ports(#[from] ports::PortError),
    #[error(transparent)]
    Connect(#[from] rootful::RootfulError),
    #[error(transparent)]
    Dns(#[from] dns::DnsError),
    #[error(transparent)]
    Rootless(#[from] rootless::RootlessError),
    #[error(transparent)]
    Netns(#[from] netns::NetnsError),
    #[error(transparent)]
    Files(#[from] files::FilesError),
    #[error("reading {path}")]
    ReadHostFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--network {mode} is not supported yet {context}")]
    NotSupported { mode: String, context: &'static str },
    #[error("network {network} is internal: ports cannot be published on it")]
    InternalPorts { network: String },
    #[error("container {id} runs without a network of berth's to connect or disconnect")]
    NotRunning { id: String },
    #[error("container {id} is already connected to network {network}")]
    AlreadyConnected { id: String, network: String },
    #[error("container {id} is not connected to network {network}")]
    NotConnected { id: String, network: String },
}

/// Where berth keeps its state: the data root (state.db) and the runtime root.
#[derive(Debug, Clone)]
pub struct NetworkPaths {
    pub root: PathBuf,
    pub runroot: PathBuf,
    /// The port aardvark-dns serves on; 53 except in tests.
    pub dns_port: u16,
}

impl NetworkPaths {
    pub fn new(root: &Path, runroot: &Path) -> Self {
        Self { root: root.to_owned(), runroot: runroot.to_owned(), dns_port: 53 }
    }

    fn dir(&self) -> PathBuf {
        self.runroot.join("network")
    }

    fn dns_dir(&self) -> PathBuf {
        self.dir().join("aardvark-dns")
    }

    /// slirp4netns's files of container `id`: its pid file, API socket and log. The socket
    /// takes the short id, as a socket path may not be longer than 107 bytes.
    fn slirp_files(&self, id: &str) -> (PathBuf, PathBuf, PathBuf) {
        let dir = self.dir().join("slirp4netns");
        let short = &id[..id.len().min(12)];
        (
            dir.join(format!("{id}.pid")),
            dir.join(format!("{short}.sock")),
            dir.join(format!("{id}.log")),
        )
    }

    fn pasta_pid_file(&self, id: &str) -> PathBuf {
        self.dir().join("pasta").join(format!("{id}.pid"))
    }
}

/// What the engine asks for one container.
#[derive(Debug, Clone)]
pub struct ContainerNetworkRequest {
    pub id: String,
    pub name: String,
    /// The namespace berth made with [`netns::create`]; unused for `host`, `container:` and
    /// `ns:`, which bring their own.
    pub netns: Option<Netns>,
    pub mode: NetworkMode,
    /// Resolved `-p`/`-P` mappings.
    pub ports: Vec<PortMapping>,
    pub dns: Vec<IpAddr>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    pub add_hosts: Vec<AddHost>,
    pub hostname: String,
    pub rootless: bool,
}

/// One network a container is on, as inspect's NetworkSettings.Networks shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStatus {
    pub name: String,
    pub network_id: String,
    pub interface: String,
    pub addresses: Vec<IpAddr>,
    pub prefix_lengths: Vec<u8>,
    pub gateways: Vec<IpAddr>,
    pub mac: Option<String>,
    pub aliases: Vec<String>,
}

impl NetworkStatus {
    /// The status of a container just `connected` to `net` through `interface`.
    fn of(
        net: &ipam::Network,
        interface: String,
        connected: rootful::Attachment,
        aliases: &[String],
    ) -> Self {
        let prefix_lengths = connected
            .addresses
            .iter()
            .map(|a| net.subnet_of(*a).map(|s| s.subnet.prefix()).unwrap_or(0))
            .collect();
        Self {
            name: net.name.clone(),
            network_id: net.id.clone(),
            interface,
            addresses: connected.addresses,
            prefix_lengths,
            gateways: connected.gateways,
            mac: Some(connected.mac),
            aliases: aliases.to_vec(),
        }
    }
}

/// What [`attach`] made: for inspect, `berth port`, and the container's /etc files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerNetwork {
    /// The mode as the user gave it (`bridge`, `none`, `host`, `pasta`, …).
    pub mode: String,
    pub networks: Vec<NetworkStatus>,
    pub ports: Vec<PortMapping>,
    /// The namespace the container's spec joins by path; `None` for `host`.
    pub netns_path: Option<PathBuf>,
    pub hosts: String,
    pub resolv_conf: String,
}

/// [`attach`]'s result: the description, and the published host ports held bound. Keep the
/// reservation alive for as long as the container runs (the monitor holds it, as conmon
/// does), so no other process takes a port that nftables forwards.
#[derive(Debug)]
pub struct Attached {
    pub network: ContainerNetwork,
    pub held_ports: ports::Reservation,
}

/// The record kept in the state database, written before anything is set up.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AttachRecord {
    id: String,
    name: String,
    mode: String,
    /// Bridge networks by name, with the container's names on each.
    networks: Vec<RecordedNetwork>,
    /// The namespace berth made and must remove.
    own_netns: bool,
    pasta_pid_file: Option<PathBuf>,
    #[serde(default)]
    slirp_pid_file: Option<PathBuf>,
    /// Filled in once the setup is complete.
    result: Option<ContainerNetwork>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct RecordedNetwork {
    name: String,
    aliases: Vec<String>,
}

/// The mode's name as Podman shows it in inspect's HostConfig.NetworkMode.
pub fn mode_name(mode: &NetworkMode) -> String {
    match mode {
        NetworkMode::None => "none".into(),
        NetworkMode::Host => "host".into(),
        // Disconnected from every network, a bridge container stays one (Podman's rule).
        NetworkMode::Bridge(nets)
            if nets.is_empty() || (nets.len() == 1 && nets[0].name == DEFAULT_NETWORK) =>
        {
            "bridge".into()
        }
        NetworkMode::Bridge(nets) => {
            nets.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(",")
        }
        NetworkMode::Container(id) => format!("container:{id}"),
        NetworkMode::Ns(path) => format!("ns:{}", path.display()),
        NetworkMode::Pasta(_) => "pasta".into(),
        NetworkMode::Slirp4netns(_) => "slirp4netns".into(),
    }
}

/// The network `name`, creating the default network `berth` on first use (see
/// [`hostwide::choose_default`]). Take the host-wide lock around it and the connect.
pub fn network_or_default(
    db: &mut NetworkDb,
    name: &str,
) -> Result<super::store::NetworkRecord, AttachError> {
    match db.find(name) {
        Ok(found) => Ok(found),
        Err(StoreError::NotFound { .. }) if name == DEFAULT_NETWORK => {
            let routes = ipam::host_route_table()?;
            create_default(db, &routes)
        }
        Err(err) => Err(err.into()),
    }
}

/// Records the default network on a subnet and bridge name free on this host. Like Podman's
/// default network it has no DNS server: names between containers are what user networks
/// are for, and the default costs no aardvark-dns process.
fn create_default(
    db: &mut NetworkDb,
    routes: &[ipam::HostRoute],
) -> Result<super::store::NetworkRecord, AttachError> {
    let existing: Vec<ipam::Network> = db.networks()?.into_iter().map(|r| r.network).collect();
    let (subnet, interface) = hostwide::choose_default(&existing, routes)?;
    let opts = CreateOptions {
        name: DEFAULT_NETWORK.to_owned(),
        subnets: vec![subnet],
        interface: Some(interface),
        disable_dns: true,
        ..Default::default()
    };
    let plain: Vec<ipam::Subnet> = routes.iter().map(|r| r.destination).collect();
    match db.create_network(&opts, &plain) {
        Ok(created) => Ok(created),
        // Another berth of this root created it meanwhile.
        Err(StoreError::Plan(ipam::IpamError::Exists { .. })) => Ok(db.find(DEFAULT_NETWORK)?),
        Err(err) => Err(err.into()),
    }
}

/// Network `name` as this host lets it be set up now; the caller holds the host-wide lock.
/// The default network moves to a free subnet and bridge name when its recorded ones are
/// taken and no container of this root is on it; any other conflict is an error.
fn claimed_network(
    db: &mut NetworkDb,
    name: &str,
    routes: &[ipam::HostRoute],
) -> Result<ipam::Network, AttachError> {
    let net = network_or_default(db, name)?.network;
    let Some(conflict) = hostwide::conflict(&net, routes)? else { return Ok(net) };
    if net.name == DEFAULT_NETWORK && db.users(&net.name)?.is_empty() {
        tracing::debug!(%conflict, "the default network moves");
        db.remove_network(&net.name)?;
        let moved = create_default(db, routes)?.network;
        return match hostwide::conflict(&moved, routes)? {
            None => Ok(moved),
            Some(conflict) => Err(AttachError::HostConflict { network: moved.name, conflict }),
        };
    }
    Err(AttachError::HostConflict { network: net.name, conflict })
}

fn save(db: &mut NetworkDb, record: &AttachRecord) -> Result<(), AttachError> {
    let json = serde_json::to_string(record)
        .map_err(|source| AttachError::Record { id: record.id.clone(), source })?;
    db.put_attachment(&record.id, &json)?;
    Ok(())
}

fn load(db: &NetworkDb, id: &str) -> Result<Option<AttachRecord>, AttachError> {
    match db.attachment(id)? {
        None => Ok(None),
        // A record this berth cannot read is still a container to clean up after.
        Some(json) => Ok(Some(serde_json::from_str(&json).unwrap_or_else(|err| {
            tracing::warn!(id, error = %err, "unreadable network record");
            AttachRecord { id: id.to_owned(), own_netns: true, ..Default::default() }
        }))),
    }
}

/// Connects container `req.id` as its mode says; on failure everything done is undone and
/// the error returned. See the module documentation.
pub fn attach(
    paths: &NetworkPaths,
    req: &ContainerNetworkRequest,
) -> Result<Attached, AttachError> {
    let mut db = NetworkDb::open_root(&paths.root)?;
    match attach_inner(paths, &mut db, req) {
        Ok(done) => Ok(done),
        Err(err) => {
            if let Err(undo) = detach(paths, &req.id) {
                tracing::warn!(id = %req.id, error = %undo, "undoing a failed network attach");
            }
            Err(err)
        }
    }
}

fn attach_inner(
    paths: &NetworkPaths,
    db: &mut NetworkDb,
    req: &ContainerNetworkRequest,
) -> Result<Attached, AttachError> {
    let mode = mode_name(&req.mode);
    let own_netns = req
        .netns
        .as_ref()
        .is_some_and(|n| *n == Netns::Path(netns::path_for(&paths.runroot, &req.id)));
    let mut record = AttachRecord {
        id: req.id.clone(),
        name: req.name.clone(),
        mode: mode.clone(),
        own_netns,
        ..Default::default()
    };
    let host_resolv = || -> Result<String, AttachError> {
        let path = files::host_resolv_conf_path();
        std::fs::read_to_string(&path).map_err(|source| AttachError::ReadHostFile { path, source })
    };
    let host_hosts = std::fs::read_to_string("/etc/hosts").ok();
    let mut resolv = ResolvOptions {
        host: host_resolv()?,
        servers: req.dns.clone(),
        search: req.dns_search.clone(),
        options: req.dns_options.clone(),
        ..Default::default()
    };
    let mut hosts = HostsOptions {
        hostname: req.hostname.clone(),
        container_name: req.name.clone(),
        add_hosts: req.add_hosts.clone(),
        base: None,
        ..Default::default()
    };
    let mut statuses = Vec::new();
    let mut held_ports = ports::Reservation::default();

    match &req.mode {
        NetworkMode::None => {
            if !req.ports.is_empty() {
                return Err(AttachError::NotSupported {
                    mode: "none".into(),
                    context: "with published ports",
                });
            }
            save(db, &record)?;
        }
        NetworkMode::Host => {
            resolv.host_network = true;
            hosts.base = host_hosts;
            save(db, &record)?;
        }
        NetworkMode::Container(_) | NetworkMode::Ns(_) => {
            save(db, &record)?;
        }
        NetworkMode::Bridge(nets) => {
            if nets.is_empty() && !req.ports.is_empty() {
                return Err(AttachError::NotSupported {
                    mode: mode.clone(),
                    context: "with published ports and no network (connect one first)",
                });
            }
            if req.rootless {
                return Err(AttachError::NotSupported {
                    mode: mode.clone(),
                    context: "rootless (use pasta or slirp4netns)",
                });
            }
            let netns = req.netns.clone().ok_or_else(|| AttachError::NotSupported {
                mode: mode.clone(),
                context: "without a network namespace",
            })?;
            // The ports first: one in use fails before anything is set up.
            held_ports = ports::reserve(&req.ports)?;
            let _lock = hostwide::lock()?;
            let routes = ipam::host_route_table()?;
            let mut records = Vec::new();
            for attach in nets {
                let net = claimed_network(db, &attach.name, &routes)?;
                if net.internal && !req.ports.is_empty() {
                    return Err(AttachError::InternalPorts { network: net.name.clone() });
                }
                records.push((attach.clone(), net));
            }
            record.networks = records
                .iter()
                .map(|(a, n)| RecordedNetwork { name: n.name.clone(), aliases: a.aliases.clone() })
                .collect();
            save(db, &record)?;

            for (i, (attach, net)) in records.iter().enumerate() {
                let interface = attach.interface.clone().unwrap_or_else(|| format!("eth{i}"));
                // Ports go to the first network only, as Podman publishes them.
                let ports: &[PortMapping] = if i == 0 { &req.ports } else { &[] };
                let connected = rootful::connect(
                    &ConnectRequest {
                        network: net,
                        container_id: &req.id,
                        netns: netns.clone(),
                        interface: &interface,
                        requested: &attach.addresses,
                        ports,
                        default_route: i == 0,
                        mac: attach.mac.clone(),
                    },
                    db,
                )?;
                hosts.addresses.extend(connected.addresses.iter().copied());
                hosts.aliases.extend(attach.aliases.iter().cloned());
                if net.dns_enabled {
                    resolv.first.extend(net.subnets.iter().filter_map(|s| s.gateway).take(1));
                }
                resolv.ipv6 |= net.ipv6_enabled;
                statuses.push(NetworkStatus::of(net, interface, connected, &attach.aliases));
            }
            // DNS after the bridges exist: aardvark-dns binds their gateway addresses.
            let dns_nets: Vec<&ipam::Network> =
                records.iter().map(|(_, n)| n).filter(|n| n.dns_enabled).collect();
            for net in dns_nets {
                refresh_dns(paths, db, net)?;
            }
            hosts.host_ip = statuses.first().and_then(|s| s.gateways.first().copied());
        }
        NetworkMode::Pasta(extra) => {
            let netns = req.netns.clone().ok_or_else(|| AttachError::NotSupported {
                mode: mode.clone(),
                context: "without a network namespace",
            })?;
            if req.rootless {
                rootless::check_unprivileged_ports(&req.ports)?;
            }
            let pid_file = paths.pasta_pid_file(&req.id);
            if let Some(dir) = pid_file.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|source| AttachError::ReadHostFile { path: dir.to_owned(), source })?;
            }
            record.pasta_pid_file = Some(pid_file.clone());
            save(db, &record)?;
            let mut opts = PastaOptions::new(netns);
            opts.ports = req.ports.clone();
            opts.extra = extra.clone();
            // No --userns: pasta is started from berth's own user namespace (rootless, the
            // one that owns the container's network namespace) and stays in it.
            // pasta lives on its own once started (dropping the handle leaves it running);
            // its pid file is how detach finds it.
            let pasta = Pasta::start(&opts, &pid_file)?;
            tracing::debug!(id = %req.id, pid = pasta.pid(), "pasta started");
            resolv.first.push(rootless::PASTA_DNS_FORWARD);
        }
        NetworkMode::Slirp4netns(options) => {
            let netns = req.netns.clone().ok_or_else(|| AttachError::NotSupported {
                mode: mode.clone(),
                context: "without a network namespace",
            })?;
            if req.rootless {
                rootless::check_unprivileged_ports(&req.ports)?;
            }
            let mut opts = SlirpOptions::new(netns);
            for (key, value) in options {
                match key.as_str() {
                    "allow_host_loopback" => opts.allow_host_loopback = value == "true",
                    "enable_ipv6" => opts.enable_ipv6 = value == "true",
                    "mtu" => match value.parse() {
                        Ok(mtu) => opts.mtu = mtu,
                        Err(_) => {
                            return Err(AttachError::NotSupported {
                                mode: format!("slirp4netns:mtu={value}"),
                                context: "(not a number)",
                            })
                        }
                    },
                    _ => {
                        return Err(AttachError::NotSupported {
                            mode: format!("slirp4netns:{key}"),
                            context: "(only allow_host_loopback, enable_ipv6 and mtu)",
                        })
                    }
                }
            }
            let (pid_file, socket, log) = paths.slirp_files(&req.id);
            if let Some(dir) = pid_file.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|source| AttachError::ReadHostFile { path: dir.to_owned(), source })?;
            }
            let _ = std::fs::remove_file(&socket);
            opts.api_socket = (!req.ports.is_empty()).then(|| socket.clone());
            opts.log_file = Some(log);
            record.slirp_pid_file = Some(pid_file.clone());
            save(db, &record)?;
            // slirp4netns stays after berth exits (it is reparented); its pid file is how
            // detach finds it.
            let slirp = Slirp::start_with(
                std::process::Command::new("slirp4netns"),
                &opts,
                std::time::Duration::from_secs(30),
            )?;
            std::fs::write(&pid_file, slirp.pid().to_string())
                .map_err(|source| AttachError::ReadHostFile { path: pid_file.clone(), source })?;
            for m in &req.ports {
                slirp.add_port(m)?;
            }
            tracing::debug!(id = %req.id, pid = slirp.pid(), "slirp4netns started");
            resolv.first.push(rootless::SLIRP_DNS);
        }
    }

    let network = ContainerNetwork {
        mode,
        networks: statuses,
        ports: req.ports.clone(),
        netns_path: match &req.mode {
            NetworkMode::Host => None,
            NetworkMode::Ns(path) => Some(path.clone()),
            _ => req.netns.as_ref().map(Netns::path),
        },
        hosts: files::hosts_file(&hosts),
        resolv_conf: files::resolv_conf(&resolv)?,
    };
    record.result = Some(network.clone());
    save(db, &record)?;
    Ok(Attached { network, held_ports })
}

/// Rewrites network `net`'s aardvark-dns file from every container recorded on it, and makes
/// the server follow.
fn refresh_dns(
    paths: &NetworkPaths,
    db: &NetworkDb,
    net: &ipam::Network,
) -> Result<(), AttachError> {
    let held = ipam::IpamStore::allocated(db, &net.name).map_err(|source| {
        StoreError::Plan(ipam::IpamError::Store { network: net.name.clone(), source })
    })?;
    let mut entries = Vec::new();
    for id in db.attached_containers()? {
        let Some(record) = load(db, &id)? else { continue };
        let Some(on) = record.networks.iter().find(|n| n.name == net.name) else { continue };
        let addresses: Vec<IpAddr> =
            held.iter().filter(|(_, c)| **c == id).map(|(a, _)| *a).collect();
        if addresses.is_empty() {
            continue;
        }
        let mut names = vec![record.name.clone()];
        names.extend(on.aliases.iter().cloned());
        names.retain(|n| !n.is_empty());
        entries.push(DnsEntry { container_id: id.clone(), addresses, names });
    }
    let config = if entries.is_empty() { None } else { Some(dns::network_config(net, &entries)?) };
    dns::update(&paths.dns_dir(), &net.name, config.as_deref(), paths.dns_port)?;
    Ok(())
}

/// Undoes container `id`'s networking: published ports, veth pairs and addresses, its DNS
/// names, pasta, and the namespace berth made. Every step runs even if one fails (the first
/// error is returned); a container with nothing recorded is no error.
pub fn detach(paths: &NetworkPaths, id: &str) -> Result<(), AttachError> {
    let mut db = NetworkDb::open_root(&paths.root)?;
    let mut first: Option<AttachError> = None;
    let mut keep = |r: Result<(), AttachError>| {
        if let Err(e) = r {
            tracing::debug!(error = %e, "network detach step failed");
            first.get_or_insert(e);
        }
    };
    let record = load(&db, id)?;
    if let Some(record) = &record {
        // Published ports went to the first network; an unreadable or unfinished record may
        // have had them.
        let had_ports = record.result.as_ref().is_none_or(|r| !r.ports.is_empty());
        if !record.networks.is_empty() {
            match hostwide::lock() {
                Err(e) => keep(Err(e.into())),
                Ok(_lock) => {
                    for (i, on) in record.networks.iter().enumerate() {
                        let net = match db.find(&on.name) {
                            Ok(found) => found.network,
                            // The network was removed with --force; its bridge went with it.
                            Err(StoreError::NotFound { .. }) => continue,
                            Err(e) => {
                                keep(Err(e.into()));
                                continue;
                            }
                        };
                        let ports_here = had_ports && i == 0;
                        keep(
                            rootful::disconnect(&net, id, ports_here, &mut db)
                                .map_err(AttachError::from),
                        );
                        if net.dns_enabled {
                            // This container's names go: its record is left out from now.
                            let mut without = record.clone();
                            without.networks.retain(|n| n.name != on.name);
                            keep(save(&mut db, &without));
                            keep(refresh_dns(paths, &db, &net));
                        }
                    }
                }
            }
        }
        if let Some(pid_file) = &record.slirp_pid_file {
            keep(Slirp::stop_by_pid_file(pid_file).map_err(AttachError::from));
            let _ = std::fs::remove_file(pid_file);
            let (_, socket, log) = paths.slirp_files(id);
            let _ = std::fs::remove_file(socket);
            let _ = std::fs::remove_file(log);
        }
        if let Some(pid_file) = &record.pasta_pid_file {
            match Pasta::from_pid_file(pid_file) {
                Ok(Some(pasta)) => keep(pasta.stop().map_err(AttachError::from)),
                Ok(None) => {}
                Err(e) => keep(Err(e.into())),
            }
            let _ = std::fs::remove_file(pid_file);
        }
    }
    // The namespace berth made goes whether or not a record says so: the record may not have
    // been written when the monitor died.
    keep(netns::remove(&paths.runroot, id).map_err(AttachError::from));
    // No record, nothing to forget: `--network none` containers cost no write here.
    if first.is_none() && record.is_some() {
        db.remove_attachment(id)?;
    }
    match first {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// Connects running container `id` to one more bridge network (`network connect`): an
/// address, a veth pair named `ethN` inside (the next free N, or the one asked for), its
/// names in the network's DNS, and the network's DNS server first in its resolv.conf. Only
/// containers on bridge networks (the default one included) can be connected; on failure
/// nothing of the new network is left. Returns the container's networking as it is now.
pub fn connect(
    paths: &NetworkPaths,
    id: &str,
    attach: &NetworkAttach,
) -> Result<ContainerNetwork, AttachError> {
    let mut db = NetworkDb::open_root(&paths.root)?;
    let mut record = load(&db, id)?.ok_or_else(|| AttachError::NotRunning { id: id.to_owned() })?;
    let mut result =
        record.result.clone().ok_or_else(|| AttachError::NotRunning { id: id.to_owned() })?;
    let bridged = !record.networks.is_empty() || record.mode == "bridge";
    let netns = match (&result.netns_path, bridged && record.own_netns) {
        (Some(path), true) => Netns::Path(path.clone()),
        _ => {
            return Err(AttachError::NotSupported {
                mode: record.mode.clone(),
                context: "with network connect (bridge networks only)",
            })
        }
    };

    let _lock = hostwide::lock()?;
    let routes = ipam::host_route_table()?;
    let net = claimed_network(&mut db, &attach.name, &routes)?;
    if record.networks.iter().any(|n| n.name == net.name) {
        return Err(AttachError::AlreadyConnected { id: id.to_owned(), network: net.name });
    }
    let interface = attach.interface.clone().unwrap_or_else(|| {
        (0..)
            .map(|i| format!("eth{i}"))
            .find(|name| !result.networks.iter().any(|n| &n.interface == name))
            .expect("an unbounded range always has a free name")
    });
    // Recorded first, so that a crash from here on is cleaned up with the container.
    record
        .networks
        .push(RecordedNetwork { name: net.name.clone(), aliases: attach.aliases.clone() });
    save(&mut db, &record)?;
    let connected = rootful::connect(
        &ConnectRequest {
            network: &net,
            container_id: id,
            netns,
            interface: &interface,
            requested: &attach.addresses,
            ports: &[],
            default_route: result.networks.is_empty(),
            mac: attach.mac.clone(),
        },
        &mut db,
    );
    let connected = match connected {
        Ok(c) => c,
        Err(err) => {
            record.networks.pop();
            save(&mut db, &record)?;
            return Err(err.into());
        }
    };

    for addr in &connected.addresses {
        result.hosts.push_str(&format!("{addr}\t{}\n", record.name));
    }
    if let Some(gw) =
        net.subnets.iter().filter_map(|s| s.gateway).next().filter(|_| net.dns_enabled)
    {
        let line = format!("nameserver {gw}\n");
        if !result.resolv_conf.contains(&line) {
            result.resolv_conf.insert_str(0, &line);
        }
    }
    result.networks.push(NetworkStatus::of(&net, interface, connected, &attach.aliases));
    record.result = Some(result.clone());
    save(&mut db, &record)?;
    if net.dns_enabled {
        refresh_dns(paths, &db, &net)?;
    }
    Ok(result)
}

/// Disconnects running container `id` from bridge network `network` (`network
/// disconnect`): its interface, address, names and published ports there go; the bridge goes
/// too when it was the last container on it. Returns the container's networking as it is now.
pub fn disconnect(
    paths: &NetworkPaths,
    id: &str,
    network: &str,
) -> Result<ContainerNetwork, AttachError> {
    let mut db = NetworkDb::open_root(&paths.root)?;
    let mut record = load(&db, id)?.ok_or_else(|| AttachError::NotRunning { id: id.to_owned() })?;
    let mut result =
        record.result.clone().ok_or_else(|| AttachError::NotRunning { id: id.to_owned() })?;
    // By name, or by id as the store resolves it.
    let name = match db.find(network) {
        Ok(found) => found.network.name,
        Err(StoreError::NotFound { .. }) => network.to_owned(),
        Err(e) => return Err(e.into()),
    };
    let not_connected = || AttachError::NotConnected { id: id.to_owned(), network: name.clone() };
    let index = record.networks.iter().position(|n| n.name == name).ok_or_else(not_connected)?;

    let _lock = hostwide::lock()?;
    let had_ports = index == 0 && !result.ports.is_empty();
    let net = match db.find(&name) {
        Ok(found) => Some(found.network),
        Err(StoreError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(net) = &net {
        rootful::disconnect(net, id, had_ports, &mut db)?;
        if let Some(gw) = net.subnets.iter().filter_map(|s| s.gateway).next() {
            result.resolv_conf = result.resolv_conf.replace(&format!("nameserver {gw}\n"), "");
        }
    }
    record.networks.remove(index);
    if let Some(status) = result.networks.iter().find(|n| n.name == name) {
        let gone: Vec<String> = status.addresses.iter().map(|a| format!("{a}\t")).collect();
        result.hosts = result
            .hosts
            .lines()
            .filter(|l| !gone.iter().any(|g| l.starts_with(g)))
            .fold(String::new(), |mut out, l| {
                out.push_str(l);
                out.push('\n');
                out
            });
    }
    result.networks.retain(|n| n.name != name);
    if had_ports {
        // They were forwarded to this network's address.
        result.ports.clear();
    }
    record.result = Some(result.clone());
    save(&mut db, &record)?;
    if let Some(net) = net.filter(|n| n.dns_enabled) {
        refresh_dns(paths, &db, &net)?;
    }
    Ok(result)
}

/// What [`attach`] recorded for container `id`, for inspect and `berth port`.
pub fn status(paths: &NetworkPaths, id: &str) -> Result<Option<ContainerNetwork>, AttachError> {
    let db = NetworkDb::open_root(&paths.root)?;
    Ok(load(&db, id)?.and_then(|r| r.result))
}

/// What [`attach`] recorded for every container connected now, by id: one read of the
/// state database for `ps`.
pub fn statuses(
    paths: &NetworkPaths,
) -> Result<std::collections::HashMap<String, ContainerNetwork>, AttachError> {
    let db = NetworkDb::open_root(&paths.root)?;
    let mut out = std::collections::HashMap::new();
    for id in db.attached_containers()? {
        if let Some(result) = load(&db, &id)?.and_then(|r| r.result) {
            out.insert(id, result);
        }
    }
    Ok(out)
}

/// The attach request's network list for `--network NAME` values with `--network-alias`
/// aliases added to the first one (as Podman applies them).
pub fn with_aliases(mut nets: Vec<NetworkAttach>, aliases: &[String]) -> Vec<NetworkAttach> {
    if let Some(first) = nets.first_mut() {
        first.aliases.extend(aliases.iter().cloned());
    }
    nets
}
