//! `berth network create | ls | inspect | rm | prune | connect | disconnect`, with Podman's
//! flags, columns and JSON.
//!
//! Networks live in the state database (berth-engine's `network::store`); a bridge appears on
//! the host only when the first container joins. Bad input — an overlapping subnet, an
//! unknown network, a name in use — fails in one line with exit 125 before anything is
//! recorded.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::IpAddr;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;

use berth_engine::network::ipam::{self, CreateOptions, Network, Subnet, DEFAULT_NETWORK};
use berth_engine::network::rootful;
use berth_engine::network::store::{NetworkDb, NetworkRecord};

use crate::cli::GlobalOptions;
use crate::format::{write_table, Format};

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum NetworkCommand {
    /// Create a bridge network.
    Create(CreateArgs),
    /// List networks.
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Show networks' configuration as JSON.
    Inspect(InspectArgs),
    /// Remove networks.
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove every network no container uses (the default network stays).
    Prune(PruneArgs),
    /// Connect a container to a network: at once if it runs, and at every later start.
    Connect(ConnectArgs),
    /// Disconnect a container from a network: at once if it runs, and for later starts.
    Disconnect(DisconnectArgs),
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The network, by name or id.
    pub network: String,
    /// The container, by name or id.
    pub container: String,
    /// Another name of the container on this network (repeatable).
    #[arg(long, value_name = "NAME")]
    pub alias: Vec<String>,
    /// The container's IPv4 address on this network.
    #[arg(long, value_name = "IP")]
    pub ip: Option<String>,
    /// The container's IPv6 address on this network.
    #[arg(long, value_name = "IP")]
    pub ip6: Option<String>,
    /// The MAC address of the container's interface on this network.
    #[arg(long, value_name = "MAC")]
    pub mac_address: Option<String>,
}

#[derive(Debug, Args)]
pub struct DisconnectArgs {
    /// The network, by name or id.
    pub network: String,
    /// The container, by name or id.
    pub container: String,
    /// Accepted for Podman's command line; a running container is always disconnected.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The network's name (default: berth1, berth2, …).
    pub name: Option<String>,
    /// The driver; only bridge is supported.
    #[arg(short, long, value_name = "DRIVER")]
    pub driver: Option<String>,
    /// A subnet in CIDR form, repeatable (one IPv4 and one IPv6 for dual stack).
    #[arg(long, value_name = "SUBNET")]
    pub subnet: Vec<String>,
    /// The gateway of the subnet given in the same position.
    #[arg(long, value_name = "IP")]
    pub gateway: Vec<String>,
    /// Hand out container addresses only from this range (CIDR) of the matching subnet.
    #[arg(long, value_name = "RANGE")]
    pub ip_range: Vec<String>,
    /// No route out of the network: containers reach only each other.
    #[arg(long)]
    pub internal: bool,
    /// No DNS server for the network's container names.
    #[arg(long)]
    pub disable_dns: bool,
    /// Give the network an IPv6 subnet too.
    #[arg(long)]
    pub ipv6: bool,
    /// The bridge interface's name on the host (default berthN).
    #[arg(long, value_name = "NAME")]
    pub interface_name: Option<String>,
    /// A label KEY=VALUE, repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// A driver option KEY=VALUE; none is supported yet.
    #[arg(short, long = "opt", value_name = "KEY=VALUE")]
    pub opt: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Print only the names.
    #[arg(short, long)]
    pub quiet: bool,
    /// A Go template, or `json`.
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Keep networks matching KEY=VALUE: name, id, driver, label (repeatable).
    #[arg(short, long, value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Show full network ids.
    #[arg(long)]
    pub no_trunc: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Networks by name or id.
    #[arg(required = true)]
    pub networks: Vec<String>,
    /// A Go template applied to each network.
    #[arg(short, long, value_name = "FORMAT")]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Networks by name or id.
    #[arg(required = true)]
    pub networks: Vec<String>,
    /// Remove the network even while containers use it (their interfaces on it go).
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
    /// Keep networks not matching KEY=VALUE (label only).
    #[arg(long, value_name = "FILTER")]
    pub filter: Vec<String>,
}

pub fn dispatch(global: &GlobalOptions, command: NetworkCommand) -> Result<ExitCode> {
    match command {
        NetworkCommand::Create(args) => create(global, args),
        NetworkCommand::Ls(args) => ls(global, args),
        NetworkCommand::Inspect(args) => inspect(global, args),
        NetworkCommand::Rm(args) => rm(global, args),
        NetworkCommand::Prune(args) => prune(global, args),
        NetworkCommand::Connect(args) => connect(global, args),
        NetworkCommand::Disconnect(args) => disconnect(global, args),
    }
}

/// The engine's containers, for `network connect` and `disconnect`.
fn containers(global: &GlobalOptions) -> Result<berth_engine::containers::ops::Containers> {
    let ctx = crate::containers::context(global)?;
    berth_engine::containers::ops::Containers::open(&ctx).context("opening the container store")
}

fn connect(global: &GlobalOptions, args: ConnectArgs) -> Result<ExitCode> {
    let mut addresses = Vec::new();
    for (flag, value, v4) in [("--ip", &args.ip, true), ("--ip6", &args.ip6, false)] {
        if let Some(text) = value {
            let ip: IpAddr = text
                .parse()
                .with_context(|| format!("invalid {flag} {text:?}: not an IP address"))?;
            if ip.is_ipv4() != v4 {
                bail!("invalid {flag} {text:?}: of the wrong family");
            }
            addresses.push(ip);
        }
    }
    // Checked here: a stopped container keeps it until its next start.
    if let Some(mac) = &args.mac_address {
        let octets: Vec<&str> = mac.split(':').collect();
        let hex = |o: &&str| o.len() == 2 && o.bytes().all(|b| b.is_ascii_hexdigit());
        if octets.len() != 6 || !octets.iter().all(hex) {
            bail!("invalid --mac-address {mac:?}: expected six hexadecimal octets like 02:42:0a:00:00:05");
        }
    }
    let attach = berth_engine::network::mode::NetworkAttach {
        name: args.network,
        addresses,
        mac: args.mac_address,
        aliases: args.alias,
        interface: None,
    };
    containers(global)?.connect_network(&args.container, &attach)?;
    Ok(ExitCode::SUCCESS)
}

fn disconnect(global: &GlobalOptions, args: DisconnectArgs) -> Result<ExitCode> {
    containers(global)?.disconnect_network(&args.container, &args.network)?;
    Ok(ExitCode::SUCCESS)
}

fn open(global: &GlobalOptions) -> Result<NetworkDb> {
    let root = crate::images::root_dir(global)?;
    Ok(NetworkDb::open_root(&root)?)
}

fn key_values(flag: &str, values: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for value in values {
        let (key, val) = value.split_once('=').unwrap_or((value.as_str(), ""));
        if key.is_empty() {
            bail!("invalid {flag} {value:?}: expected KEY=VALUE");
        }
        out.insert(key.to_owned(), val.to_owned());
    }
    Ok(out)
}

fn create(global: &GlobalOptions, args: CreateArgs) -> Result<ExitCode> {
    let subnets: Vec<Subnet> =
        args.subnet.iter().map(|s| s.parse()).collect::<Result<_, ipam::IpamError>>()?;
    let gateways: Vec<IpAddr> = args
        .gateway
        .iter()
        .map(|g| g.parse().with_context(|| format!("invalid --gateway {g:?}: not an IP address")))
        .collect::<Result<_>>()?;
    let ip_ranges: Vec<Subnet> =
        args.ip_range.iter().map(|s| s.parse()).collect::<Result<_, ipam::IpamError>>()?;
    let mut db = open(global)?;
    let name = match args.name {
        Some(name) => name,
        None => {
            let taken: Vec<String> = db.networks()?.into_iter().map(|r| r.network.name).collect();
            (1..)
                .map(|i| format!("{DEFAULT_NETWORK}{i}"))
                .find(|n| !taken.contains(n))
                .expect("an unbounded range always has a free name")
        }
    };
    let opts = CreateOptions {
        name,
        driver: args.driver,
        subnets,
        gateways,
        ip_ranges,
        internal: args.internal,
        disable_dns: args.disable_dns,
        ipv6: args.ipv6,
        interface: args.interface_name,
        labels: key_values("--label", &args.label)?,
        options: key_values("--opt", &args.opt)?,
    };
    if opts.ipv6 && !opts.subnets.iter().any(Subnet::is_ipv6) {
        bail!("--ipv6 without an IPv6 --subnet is not supported yet");
    }
    let routes = ipam::host_routes()?;
    let record = db.create_network(&opts, &routes)?;
    println!("{}", record.network.name);
    Ok(ExitCode::SUCCESS)
}

/// One network as `ls --format` templates see it: Podman's Go field names.
#[derive(Debug, Serialize)]
struct LsRow {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Driver")]
    driver: String,
    #[serde(rename = "NetworkInterface")]
    network_interface: String,
    #[serde(rename = "Created")]
    created: String,
    #[serde(rename = "Subnets")]
    subnets: Vec<String>,
    #[serde(rename = "IPv6Enabled")]
    ipv6_enabled: bool,
    #[serde(rename = "Internal")]
    internal: bool,
    #[serde(rename = "DNSEnabled")]
    dns_enabled: bool,
    #[serde(rename = "Labels")]
    labels: BTreeMap<String, String>,
}

fn matches(record: &NetworkRecord, filter: &str) -> Result<bool> {
    let net = &record.network;
    let (key, value) = filter
        .split_once('=')
        .with_context(|| format!("invalid --filter {filter:?}: expected KEY=VALUE"))?;
    Ok(match key {
        "name" => net.name.contains(value),
        "id" => net.id.starts_with(value),
        "driver" => net.driver == value,
        "label" => match value.split_once('=') {
            Some((k, v)) => net.labels.get(k).is_some_and(|x| x == v),
            None => net.labels.contains_key(value),
        },
        other => bail!("--filter {other} is not supported yet (name, id, driver, label)"),
    })
}

fn ls(global: &GlobalOptions, args: LsArgs) -> Result<ExitCode> {
    let db = open(global)?;
    let mut kept = Vec::new();
    for record in db.networks()? {
        let mut keep = true;
        for filter in &args.filter {
            keep &= matches(&record, filter)?;
        }
        if keep {
            kept.push(record);
        }
    }
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for record in &kept {
            writeln!(out, "{}", record.network.name)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<LsRow> = kept
        .iter()
        .map(|r| {
            let n = &r.network;
            LsRow {
                id: if args.no_trunc { n.id.clone() } else { n.id.chars().take(12).collect() },
                name: n.name.clone(),
                driver: n.driver.clone(),
                network_interface: n.network_interface.clone(),
                created: r.created.to_rfc3339_nanos(),
                subnets: n.subnets.iter().map(|s| s.subnet.to_string()).collect(),
                ipv6_enabled: n.ipv6_enabled,
                internal: n.internal,
                dns_enabled: n.dns_enabled,
                labels: n.labels.clone(),
            }
        })
        .collect();
    match args.format.as_deref() {
        Some("json") => {
            let json: Vec<_> = kept.iter().map(inspect_json).collect();
            writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        }
        Some(template) => match template.strip_prefix("table") {
            // A table header of Podman's names: {{.ID}} is NETWORK ID.
            Some(body) => {
                let body = body.trim_start().replace("\\t", "\t");
                let format = Format::parse(&body)?;
                let mut cells = vec![header(&body)];
                for row in &rows {
                    cells.push(format.render(row)?.split('\t').map(str::to_owned).collect());
                }
                write_table(&cells, &mut out)?;
            }
            None => Format::parse(template)?.print_all(&rows, &mut out)?,
        },
        None => {
            let mut cells = vec![vec!["NETWORK ID".into(), "NAME".into(), "DRIVER".into()]];
            for row in &rows {
                cells.push(vec![row.id.clone(), row.name.clone(), row.driver.clone()]);
            }
            write_table(&cells, &mut out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A table header for `body`'s fields, in Podman's words for network listings.
fn header(body: &str) -> Vec<String> {
    body.split('\t')
        .map(|cell| {
            let field = cell
                .split("{{")
                .nth(1)
                .and_then(|s| s.split("}}").next())
                .map(|s| s.trim().trim_start_matches('.').to_owned())
                .unwrap_or_default();
            match field.as_str() {
                "ID" => "NETWORK ID".to_owned(),
                "NetworkInterface" => "NETWORK INTERFACE".to_owned(),
                "IPv6Enabled" => "IPV6".to_owned(),
                "DNSEnabled" => "DNS".to_owned(),
                other => other.to_uppercase(),
            }
        })
        .collect()
}

/// `network inspect`'s JSON, field for field as Podman 4 prints it.
#[derive(Debug, Serialize)]
struct InspectJson<'a> {
    name: &'a str,
    id: &'a str,
    driver: &'a str,
    network_interface: &'a str,
    created: String,
    subnets: &'a [ipam::SubnetConfig],
    ipv6_enabled: bool,
    internal: bool,
    dns_enabled: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: &'a BTreeMap<String, String>,
    ipam_options: BTreeMap<&'static str, &'static str>,
}

fn inspect_json(record: &NetworkRecord) -> InspectJson<'_> {
    let n: &Network = &record.network;
    InspectJson {
        name: &n.name,
        id: &n.id,
        driver: &n.driver,
        network_interface: &n.network_interface,
        created: record.created.to_rfc3339_nanos(),
        subnets: &n.subnets,
        ipv6_enabled: n.ipv6_enabled,
        internal: n.internal,
        dns_enabled: n.dns_enabled,
        labels: &n.labels,
        ipam_options: BTreeMap::from([("driver", "host-local")]),
    }
}

fn inspect(global: &GlobalOptions, args: InspectArgs) -> Result<ExitCode> {
    let db = open(global)?;
    // Every name is resolved before anything is printed, so an unknown one prints nothing.
    let records: Vec<NetworkRecord> =
        args.networks.iter().map(|n| db.find(n)).collect::<Result<_, _>>()?;
    let mut out = std::io::stdout().lock();
    match args.format.as_deref() {
        None | Some("json") => {
            let json: Vec<_> = records.iter().map(inspect_json).collect();
            writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        }
        Some(template) => {
            let format = Format::parse(template)?;
            for record in &records {
                writeln!(out, "{}", format.render(&inspect_json(record))?)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn rm(global: &GlobalOptions, args: RmArgs) -> Result<ExitCode> {
    let mut db = open(global)?;
    let records: Vec<NetworkRecord> =
        args.networks.iter().map(|n| db.find(n)).collect::<Result<_, _>>()?;
    // Refuse the whole command before removing any, so nothing is half done.
    if !args.force {
        let configured = container_networks(global)?;
        for record in &records {
            let users = users(&db, &configured, &record.network.name)?;
            if !users.is_empty() {
                let short: Vec<String> =
                    users.iter().map(|u| u.chars().take(12).collect()).collect();
                bail!(
                    "network {} is in use by container(s) {}: stop and remove them first, or use --force",
                    record.network.name,
                    short.join(", ")
                );
            }
        }
    }
    for record in records {
        remove(&mut db, &record.network)?;
        println!("{}", record.network.name);
    }
    Ok(ExitCode::SUCCESS)
}

/// Every container's id with the bridge networks its next start joins (recorded by
/// `--network` and by `network connect` and `disconnect`), running or not.
fn container_networks(global: &GlobalOptions) -> Result<Vec<(String, Vec<String>)>> {
    let ctx = crate::containers::context(global)?;
    let mut out = Vec::new();
    for record in containers(global)?.list()? {
        let options = berth_engine::containers::CreateOptions::of(&record)?;
        // Containers not on bridge networks (none, host, pasta, …) join none.
        let nets = options.run.networking.bridge_attaches(ctx.rootless).unwrap_or_default();
        out.push((record.id, nets.into_iter().map(|n| n.name).collect()));
    }
    Ok(out)
}

/// The containers on network `name` now, or on it from their next start, as Podman counts a
/// network's users.
fn users(db: &NetworkDb, configured: &[(String, Vec<String>)], name: &str) -> Result<Vec<String>> {
    let mut users = db.users(name)?;
    for (id, nets) in configured {
        if nets.iter().any(|n| n == name) && !users.contains(id) {
            users.push(id.clone());
        }
    }
    Ok(users)
}

/// Takes network `net` off the host (its bridge and rules; with them any container's
/// interface on it) and out of the database.
fn remove(db: &mut NetworkDb, net: &Network) -> Result<()> {
    rootful::remove_network(net)?;
    db.remove_network(&net.name)?;
    Ok(())
}

fn prune(global: &GlobalOptions, args: PruneArgs) -> Result<ExitCode> {
    let mut db = open(global)?;
    let configured = container_networks(global)?;
    let mut candidates = Vec::new();
    for record in db.networks()? {
        let mut keep = record.network.name == DEFAULT_NETWORK;
        for filter in &args.filter {
            if !filter.starts_with("label=") {
                bail!("--filter {filter} is not supported yet for prune (label only)");
            }
            keep |= !matches(&record, filter)?;
        }
        if !keep && users(&db, &configured, &record.network.name)?.is_empty() {
            candidates.push(record);
        }
    }
    if !args.force {
        eprint!(
            "WARNING! This will remove all networks not used by at least one container.\n\
             Are you sure you want to continue? [y/N] "
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(ExitCode::SUCCESS);
        }
    }
    for record in candidates {
        remove(&mut db, &record.network)?;
        println!("{}", record.network.name);
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct PortArgs {
    /// The container, by name or id.
    pub container: String,
    /// Only this container port: PORT[/PROTOCOL].
    pub port: Option<String>,
}

/// `berth port`: the container's published ports, as `80/tcp -> 127.0.0.1:8080`, or with a
/// port given, the host addresses it is published on.
pub fn port(global: &GlobalOptions, args: PortArgs) -> Result<ExitCode> {
    let ctx = crate::containers::context(global)?;
    let mut containers = berth_engine::containers::ops::Containers::open(&ctx)
        .context("opening the container store")?;
    let record = containers.lookup(&args.container)?;
    let paths = berth_engine::network::attach::NetworkPaths::new(&ctx.root, &ctx.runroot);
    let ports = berth_engine::network::attach::status(&paths, &record.id)?
        .map(|status| status.ports)
        .unwrap_or_default();
    let mut out = std::io::stdout().lock();
    let Some(wanted) = &args.port else {
        for mapping in &ports {
            writeln!(out, "{mapping}")?;
        }
        return Ok(ExitCode::SUCCESS);
    };
    let (number, protocol) = wanted.split_once('/').unwrap_or((wanted.as_str(), "tcp"));
    let number: u16 = number.parse().with_context(|| format!("invalid port {wanted:?}"))?;
    let found: Vec<_> = ports
        .iter()
        .filter(|m| m.container_port == number && m.protocol.as_str() == protocol)
        .collect();
    if found.is_empty() {
        bail!("no public port {wanted} published for container {}", record.name);
    }
    for m in found {
        let ip = m.host_ip.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        writeln!(out, "{}", std::net::SocketAddr::new(ip, m.host_port))?;
    }
    Ok(ExitCode::SUCCESS)
}
