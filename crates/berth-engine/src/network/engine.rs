//! The glue between a container's bundle and [`attach`](super::attach): what `run`, `start`
//! and `rm` call with the user's network flags as given.
//!
//! [`ContainerNetworkOptions`] holds the flags (`--network`, `--network-alias`, `-p`, `-P`,
//! `--dns`, `--dns-search`, `--dns-option`, `--add-host`) as strings, as a container record
//! stores them; [`ContainerNetworkOptions::check`] validates them at `create`, so a bad one
//! fails before anything exists. [`start`] runs before the container's process: it makes the
//! namespace, connects it, points the bundle's `config.json` at the namespace by path, and
//! writes the bundle's `hosts` and `resolv.conf`. [`stop`] undoes it and is idempotent.
//! `network connect` and `disconnect` record their change in the container's flags
//! ([`ContainerNetworkOptions::with_network`] and [`ContainerNetworkOptions::without_network`]),
//! so that every later start joins the networks they left it on, as Podman's do; [`connect`]
//! and [`disconnect`] apply it to a running container at once.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::attach::{self, AttachError, Attached, ContainerNetworkRequest, NetworkPaths};
use super::files;
use super::ipam::DEFAULT_NETWORK;
use super::mode::{self, NetworkAttach, NetworkMode};
use super::netns::{self, Netns};
use super::ports::{self, FreePorts, PortSpec};
use super::rootless;
use super::store::{NetworkDb, StoreError};

/// Errors of the glue, named after the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineNetError {
    #[error(transparent)]
    Mode(Box<mode::ModeError>),
    #[error(transparent)]
    Ports(Box<ports::PortError>),
    #[error(transparent)]
    Files(Box<files::FilesError>),
    #[error(transparent)]
    Attach(Box<AttachError>),
    #[error("invalid --dns {value:?}: not an IP address")]
    Dns { value: String },
    #[error("container {id} has no network namespace to share (is it running?)")]
    NoNamespace { id: String },
    #[error("{what} of the bundle {path}")]
    Bundle {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the bundle's config.json {path} has no network namespace to point at {netns}")]
    NoNetworkNamespace { path: PathBuf, netns: PathBuf },
}

// The wrapped errors are boxed to keep this one small; `?` still converts them.
macro_rules! boxed_from {
    ($($from:ty => $variant:ident),*) => {
        $(impl From<$from> for EngineNetError {
            fn from(err: $from) -> Self {
                Self::$variant(Box::new(err))
            }
        })*
    };
}
boxed_from!(mode::ModeError => Mode, ports::PortError => Ports, files::FilesError => Files,
    AttachError => Attach);

/// The network flags of one container, as given on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerNetworkOptions {
    #[serde(default)]
    pub network: Vec<String>,
    #[serde(default)]
    pub network_aliases: Vec<String>,
    #[serde(default)]
    pub publish: Vec<String>,
    #[serde(default)]
    pub publish_all: bool,
    #[serde(default)]
    pub dns: Vec<String>,
    #[serde(default)]
    pub dns_search: Vec<String>,
    #[serde(default)]
    pub dns_option: Vec<String>,
    #[serde(default)]
    pub add_host: Vec<String>,
    /// The bridge networks as `network connect` and `disconnect` left them, each a
    /// `NAME[:OPTIONS]` value ([`NetworkAttach::to_value`]); they replace `network` and
    /// `network_aliases` from the first of those commands on. Empty: a namespace with only
    /// `lo` that can be connected again, as Podman leaves a container disconnected from its
    /// last network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge_networks: Option<Vec<String>>,
}

impl ContainerNetworkOptions {
    /// The mode these flags ask for. Without `--network`, a rootful container joins the
    /// default bridge network and a rootless one gets pasta (slirp4netns where pasta is not
    /// installed), as Podman does.
    pub fn mode(&self, rootless: bool) -> Result<NetworkMode, EngineNetError> {
        if let Some(values) = &self.bridge_networks {
            let nets = values.iter().map(|v| mode::parse_bridge_value(v));
            return Ok(NetworkMode::Bridge(nets.collect::<Result<_, _>>()?));
        }
        if self.network.is_empty() && rootless && !rootless::pasta_installed() {
            return Ok(NetworkMode::Slirp4netns(Vec::new()));
        }
        let values: Vec<&str> = self.network.iter().map(String::as_str).collect();
        let mode = mode::parse_network(&values, rootless)?;
        Ok(match mode {
            NetworkMode::Bridge(nets) => {
                NetworkMode::Bridge(attach::with_aliases(nets, &self.network_aliases))
            }
            other => other,
        })
    }

    /// Checks every flag without lasting side effects: the first bad one is the error. Host
    /// ports given by number are bound for a moment, so that a port in use (by a host process
    /// or another container) or a privileged port rootless fails before the container is
    /// created; starting binds them again for good.
    pub fn check(&self, rootless: bool) -> Result<(), EngineNetError> {
        self.mode(rootless)?;
        let specs: Vec<PortSpec> =
            self.publish.iter().map(|s| PortSpec::parse(s)).collect::<Result<_, _>>()?;
        if !specs.is_empty() {
            let mut chooser = FreePorts::new();
            let mappings = ports::resolve_all(&specs, &mut chooser)?;
            drop(chooser);
            if rootless {
                rootless::check_unprivileged_ports(&mappings)
                    .map_err(|e| EngineNetError::Attach(Box::new(e.into())))?;
            }
            drop(ports::reserve(&mappings)?);
        }
        self.dns_servers()?;
        for host in &self.add_host {
            files::parse_add_host(host, None)?;
        }
        Ok(())
    }

    /// The bridge networks the container joins when it starts, in order; an error naming
    /// the mode for a container that is not on bridge networks (`none`, `host`, `container:`,
    /// `ns:`, pasta, slirp4netns), which `network connect` cannot change.
    pub fn bridge_attaches(&self, rootless: bool) -> Result<Vec<NetworkAttach>, EngineNetError> {
        match self.mode(rootless)? {
            NetworkMode::Bridge(nets) => Ok(nets),
            other => Err(AttachError::NotSupported {
                mode: attach::mode_name(&other),
                context: "with network connect (bridge networks only)",
            }
            .into()),
        }
    }

    /// These flags with `net` added to the bridge networks (`network connect`): container
    /// `id` joins it at its next start. Connecting twice to one network is an error.
    pub fn with_network(
        &self,
        id: &str,
        net: &NetworkAttach,
        rootless: bool,
    ) -> Result<Self, EngineNetError> {
        let mut nets = self.bridge_attaches(rootless)?;
        if nets.iter().any(|n| n.name == net.name) {
            let network = net.name.clone();
            return Err(AttachError::AlreadyConnected { id: id.to_owned(), network }.into());
        }
        nets.push(net.clone());
        Ok(self.with_bridges(&nets))
    }

    /// These flags without bridge network `name` (`network disconnect`).
    pub fn without_network(
        &self,
        id: &str,
        name: &str,
        rootless: bool,
    ) -> Result<Self, EngineNetError> {
        let mut nets = self.bridge_attaches(rootless)?;
        let Some(index) = nets.iter().position(|n| n.name == name) else {
            let network = name.to_owned();
            return Err(AttachError::NotConnected { id: id.to_owned(), network }.into());
        };
        nets.remove(index);
        Ok(self.with_bridges(&nets))
    }

    fn with_bridges(&self, nets: &[NetworkAttach]) -> Self {
        Self {
            bridge_networks: Some(nets.iter().map(NetworkAttach::to_value).collect()),
            ..self.clone()
        }
    }

    fn dns_servers(&self) -> Result<Vec<IpAddr>, EngineNetError> {
        self.dns
            .iter()
            .map(|d| d.parse().map_err(|_| EngineNetError::Dns { value: d.clone() }))
            .collect()
    }
}

/// The container [`start`] connects.
#[derive(Debug, Clone)]
pub struct StartRequest<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub hostname: &'a str,
    pub options: &'a ContainerNetworkOptions,
    /// The image's ExposedPorts keys (`80/tcp`), for `-P`.
    pub exposed: &'a [String],
    pub rootless: bool,
    /// The container's bundle: `config.json`, `hosts`, `resolv.conf`.
    pub bundle: &'a Path,
}

/// Connects the container before its process starts; see the module documentation. `None`
/// for `--network none` and `host` without published ports, which need nothing from here.
pub fn start(
    paths: &NetworkPaths,
    req: &StartRequest<'_>,
) -> Result<Option<Attached>, EngineNetError> {
    let opts = req.options;
    let mode = opts.mode(req.rootless)?;
    if matches!(mode, NetworkMode::None | NetworkMode::Host)
        && opts.publish.is_empty()
        && !opts.publish_all
    {
        return Ok(None);
    }

    // Host ports first, each held by the chooser until attach binds them itself.
    let specs: Vec<PortSpec> =
        opts.publish.iter().map(|s| PortSpec::parse(s)).collect::<Result<_, _>>()?;
    let mut chooser = FreePorts::new();
    let mut mappings = ports::resolve_all(&specs, &mut chooser)?;
    if opts.publish_all {
        let more = ports::publish_all(
            req.exposed.iter().map(String::as_str),
            &mappings,
            None,
            &mut chooser,
        )?;
        mappings.extend(more);
    }
    drop(chooser);

    let gateway = None;
    let add_hosts = opts
        .add_host
        .iter()
        .map(|h| files::parse_add_host(h, gateway))
        .collect::<Result<_, _>>()?;
    let netns = match &mode {
        NetworkMode::Host => None,
        NetworkMode::Container(other) => {
            let path = netns::path_for(&paths.runroot, other);
            if !path.exists() {
                return Err(EngineNetError::NoNamespace { id: other.clone() });
            }
            Some(Netns::Path(path))
        }
        NetworkMode::Ns(path) => Some(Netns::Path(path.clone())),
        _ => Some(netns::create(&paths.runroot, req.id).map_err(AttachError::from)?),
    };
    let attached = attach::attach(
        paths,
        &ContainerNetworkRequest {
            id: req.id.to_owned(),
            name: req.name.to_owned(),
            netns: netns.clone(),
            mode,
            ports: mappings,
            dns: opts.dns_servers()?,
            dns_search: opts.dns_search.clone(),
            dns_options: opts.dns_option.clone(),
            add_hosts,
            hostname: req.hostname.to_owned(),
            rootless: req.rootless,
        },
    )?;
    if let Err(err) = write_bundle(req.bundle, &attached) {
        let _ = attach::detach(paths, req.id);
        return Err(err);
    }
    Ok(Some(attached))
}

/// Points the bundle's network namespace at the one attached, and writes its etc files.
fn write_bundle(bundle: &Path, attached: &Attached) -> Result<(), EngineNetError> {
    let io = |what, path: &Path| {
        let path = path.to_owned();
        move |source| EngineNetError::Bundle { what, path, source }
    };
    if let Some(netns) = &attached.network.netns_path {
        let config = bundle.join("config.json");
        let text = std::fs::read(&config).map_err(io("reading config.json", &config))?;
        let mut spec: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| EngineNetError::Bundle {
                what: "parsing config.json",
                path: config.clone(),
                source: e.into(),
            })?;
        let entry = spec
            .pointer_mut("/linux/namespaces")
            .and_then(|n| n.as_array_mut())
            .and_then(|list| list.iter_mut().find(|n| n["type"] == "network"))
            .ok_or_else(|| EngineNetError::NoNetworkNamespace {
                path: config.clone(),
                netns: netns.clone(),
            })?;
        entry["path"] = serde_json::Value::String(netns.display().to_string());
        let tmp = bundle.join(".config.json.tmp");
        let out = serde_json::to_vec(&spec).map_err(|e| EngineNetError::Bundle {
            what: "encoding config.json",
            path: config.clone(),
            source: e.into(),
        })?;
        std::fs::write(&tmp, out).map_err(io("writing config.json", &tmp))?;
        std::fs::rename(&tmp, &config).map_err(io("replacing config.json", &config))?;
    }
    for (name, text) in
        [("hosts", &attached.network.hosts), ("resolv.conf", &attached.network.resolv_conf)]
    {
        let path = bundle.join(name);
        std::fs::write(&path, text).map_err(io("writing", &path))?;
    }
    Ok(())
}

/// The name of network `query` (a name or an id), for `network connect` and `disconnect` of a
/// container that is not running, which reach the network store no other way. The default
/// network counts as there before its first use creates it.
pub fn network_name(paths: &NetworkPaths, query: &str) -> Result<String, EngineNetError> {
    let db = NetworkDb::open_root(&paths.root).map_err(AttachError::from)?;
    match db.find(query) {
        Ok(found) => Ok(found.network.name),
        Err(StoreError::NotFound { .. }) if query == DEFAULT_NETWORK => Ok(query.to_owned()),
        Err(err) => Err(AttachError::from(err).into()),
    }
}

/// `network connect`: connects running container `id` to one more network and rewrites its
/// bundle's hosts and resolv.conf in place (the container sees them through its bind
/// mounts).
pub fn connect(
    paths: &NetworkPaths,
    id: &str,
    bundle: &Path,
    attach: &mode::NetworkAttach,
) -> Result<(), EngineNetError> {
    let now = attach::connect(paths, id, attach)?;
    write_etc(bundle, &now)
}

/// `network disconnect`: the reverse of [`connect`], for any of the container's networks.
pub fn disconnect(
    paths: &NetworkPaths,
    id: &str,
    bundle: &Path,
    network: &str,
) -> Result<(), EngineNetError> {
    let now = attach::disconnect(paths, id, network)?;
    write_etc(bundle, &now)
}

/// Rewrites the bundle's hosts and resolv.conf without replacing the files, which are bind
/// mounted into the running container.
fn write_etc(bundle: &Path, net: &super::attach::ContainerNetwork) -> Result<(), EngineNetError> {
    for (name, text) in [("hosts", &net.hosts), ("resolv.conf", &net.resolv_conf)] {
        let path = bundle.join(name);
        std::fs::write(&path, text).map_err(|source| EngineNetError::Bundle {
            what: "writing",
            path,
            source,
        })?;
    }
    Ok(())
}

/// Undoes [`start`]; idempotent, and enough after a monitor killed with SIGKILL.
pub fn stop(paths: &NetworkPaths, id: &str) -> Result<(), EngineNetError> {
    Ok(attach::detach(paths, id)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    // connect and disconnect rewrite the list of bridge networks, --network-alias folded into
    // the first; the list may become empty, and only bridge containers have one.
    #[test]
    fn connect_and_disconnect_rewrite_the_bridge_networks() {
        let opts =
            ContainerNetworkOptions { network_aliases: vec!["web".into()], ..Default::default() };
        let side = NetworkAttach {
            name: "side".into(),
            addresses: vec!["10.250.53.7".parse().unwrap()],
            aliases: vec!["extra".into()],
            ..Default::default()
        };
        let on = opts.with_network("c1", &side, false).unwrap();
        let values = ["berth:alias=web", "side:ip=10.250.53.7,alias=extra"];
        assert_eq!(on.bridge_networks, Some(values.map(String::from).to_vec()));
        let NetworkMode::Bridge(nets) = on.mode(false).unwrap() else { panic!("not bridge") };
        assert_eq!((nets[0].aliases.as_slice(), &nets[1]), (&["web".to_owned()][..], &side));
        assert_eq!(
            on.with_network("c1", &side, false).unwrap_err().to_string(),
            "container c1 is already connected to network side"
        );

        let off = on.without_network("c1", "berth", false).unwrap();
        assert_eq!(off.bridge_networks, Some(vec![values[1].to_owned()]));
        let empty = off.without_network("c1", "side", false).unwrap();
        assert_eq!(empty.mode(false).unwrap(), NetworkMode::Bridge(Vec::new()));
        assert_eq!(
            empty.without_network("c1", "side", false).unwrap_err().to_string(),
            "container c1 is not connected to network side"
        );

        let none = ContainerNetworkOptions { network: vec!["none".into()], ..Default::default() };
        let err = none.with_network("c1", &side, false).unwrap_err().to_string();
        assert!(err.contains("none") && err.contains("bridge networks only"), "{err}");
        assert!(opts.with_network("c1", &side, true).is_err(), "rootless has no bridges");
    }

    #[test]
    fn bad_flags_are_caught_before_anything_is_made() {
        let ok = ContainerNetworkOptions {
            network: vec!["web".into()],
            publish: vec!["127.0.0.1::80".into()],
            dns: vec!["10.250.0.1".into()],
            add_host: vec!["db:10.250.0.9".into()],
            ..Default::default()
        };
        ok.check(false).unwrap();
        let bad = |f: &dyn Fn(&mut ContainerNetworkOptions)| {
            let mut o = ok.clone();
            f(&mut o);
            o.check(false).unwrap_err().to_string()
        };
        assert!(bad(&|o| o.publish = vec!["80:80:80:80".into()]).contains("80:80:80:80"));
        assert_eq!(
            bad(&|o| o.dns = vec!["nine".into()]),
            "invalid --dns \"nine\": not an IP address"
        );
        assert!(
            bad(&|o| o.network = vec!["none".into(), "host".into()]).contains("cannot be combined")
        );
        assert!(bad(&|o| o.add_host = vec!["nocolon".into()]).contains("nocolon"));
    }
}
