//! The `--network` option: which network namespace a container gets and how it is connected,
//! with Podman's values and defaults.
//!
//! `none`, `host`, `bridge` (the default network), `NAME[:OPTIONS]` (a user network; the
//! option may repeat to join several), `container:ID`, `ns:PATH`, `private` (the default), and
//! the rootless modes `pasta[:ARGS]` and `slirp4netns[:OPTIONS]`. With no `--network`, a
//! rootful container joins the `berth` bridge network and a rootless one uses pasta, as Podman 5
//! does. [`parse_network`] turns the option values into one [`NetworkMode`] or a one-line
//! error naming the bad value.

use std::net::IpAddr;
use std::path::PathBuf;

use super::ipam::{validate_network_name, DEFAULT_NETWORK};

/// Errors of the `--network` option, each naming the value at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModeError {
    #[error("invalid --network {value:?}: {reason}")]
    Value { value: String, reason: String },
    #[error("--network {value} cannot be combined with other --network options")]
    Combined { value: String },
    #[error("--network {value} is not supported yet rootless")]
    Rootless { value: String },
}

/// One user network to join, with its per-network options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkAttach {
    pub name: String,
    /// `ip=` and `ip6=`.
    pub addresses: Vec<IpAddr>,
    /// `mac=`.
    pub mac: Option<String>,
    /// `alias=`, repeatable.
    pub aliases: Vec<String>,
    /// `interface_name=`; `None` numbers them eth0, eth1, ….
    pub interface: Option<String>,
}

impl NetworkAttach {
    /// The `--network` value that [`parse_bridge_value`] reads back as this attachment:
    /// `NAME[:ip=…,mac=…,alias=…,interface_name=…]`, as a container's record keeps the
    /// networks `network connect` and `disconnect` left it on.
    pub fn to_value(&self) -> String {
        let mut opts: Vec<String> = Vec::new();
        for ip in &self.addresses {
            opts.push(format!("{}={ip}", if ip.is_ipv4() { "ip" } else { "ip6" }));
        }
        opts.extend(self.mac.iter().map(|m| format!("mac={m}")));
        opts.extend(self.aliases.iter().map(|a| format!("alias={a}")));
        opts.extend(self.interface.iter().map(|i| format!("interface_name={i}")));
        if opts.is_empty() {
            self.name.clone()
        } else {
            format!("{}:{}", self.name, opts.join(","))
        }
    }
}

/// Reads one bridge network's `--network` value (`NAME[:OPTIONS]`), as [`parse_network`]
/// reads each of several.
pub fn parse_bridge_value(value: &str) -> Result<NetworkAttach, ModeError> {
    let (name, rest) = match value.split_once(':') {
        Some((name, rest)) => (name, Some(rest)),
        None => (value, None),
    };
    parse_attach(value, name, rest)
}

/// What the container's network is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    /// A namespace of its own with only `lo`.
    None,
    /// The host's namespace.
    Host,
    /// Rootful: bridge networks, the first giving the default route.
    Bridge(Vec<NetworkAttach>),
    /// The namespace of another container.
    Container(String),
    /// An existing namespace file.
    Ns(PathBuf),
    /// Rootless through pasta, with extra pasta arguments.
    Pasta(Vec<String>),
    /// Rootless through slirp4netns, with its `KEY=VALUE` options.
    Slirp4netns(Vec<(String, String)>),
}

/// The slirp4netns options Podman accepts after `slirp4netns:`.
const SLIRP_KEYS: [&str; 6] =
    ["allow_host_loopback", "cidr", "enable_ipv6", "mtu", "outbound_addr", "port_handler"];

fn bad(value: &str, reason: impl Into<String>) -> ModeError {
    ModeError::Value { value: value.to_owned(), reason: reason.into() }
}

/// Parses the `--network` values of one container (each flag's value in order).
pub fn parse_network(values: &[&str], rootless: bool) -> Result<NetworkMode, ModeError> {
    let default = || {
        if rootless {
            NetworkMode::Pasta(Vec::new())
        } else {
            NetworkMode::Bridge(vec![NetworkAttach {
                name: DEFAULT_NETWORK.to_owned(),
                ..Default::default()
            }])
        }
    };
    if values.is_empty() {
        return Ok(default());
    }

    let mut attaches = Vec::new();
    for &value in values {
        let (kind, rest) = match value.split_once(':') {
            Some((kind, rest)) => (kind, Some(rest)),
            None => (value, None),
        };
        let single = match (kind, rest) {
            ("", _) => return Err(bad(value, "it is empty")),
            ("none", None) => Some(NetworkMode::None),
            ("host", None) => Some(NetworkMode::Host),
            ("private", None) => Some(default()),
            ("container", Some(id)) if !id.is_empty() => {
                Some(NetworkMode::Container(id.to_owned()))
            }
            ("container", _) => return Err(bad(value, "expected container:ID")),
            ("ns", Some(path)) if path.starts_with('/') => {
                Some(NetworkMode::Ns(PathBuf::from(path)))
            }
            ("ns", _) => return Err(bad(value, "expected ns:/ABSOLUTE/PATH")),
            ("pasta", args) => Some(NetworkMode::Pasta(
                args.map(|a| a.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect())
                    .unwrap_or_default(),
            )),
            ("slirp4netns", opts) => Some(NetworkMode::Slirp4netns(parse_slirp(value, opts)?)),
            ("none" | "host" | "private", Some(_)) => {
                return Err(bad(value, format!("{kind} takes no options")))
            }
            _ => None,
        };
        match single {
            Some(mode) if values.len() == 1 => return Ok(mode),
            Some(_) => return Err(ModeError::Combined { value: value.to_owned() }),
            None => attaches.push(parse_attach(value, kind, rest)?),
        }
    }
    if rootless {
        return Err(ModeError::Rootless { value: values.join(",") });
    }
    Ok(NetworkMode::Bridge(attaches))
}

fn parse_slirp(value: &str, opts: Option<&str>) -> Result<Vec<(String, String)>, ModeError> {
    let mut out = Vec::new();
    for opt in opts.unwrap_or("").split(',').filter(|s| !s.is_empty()) {
        let Some((key, val)) = opt.split_once('=') else {
            return Err(bad(value, format!("slirp4netns option {opt:?} is not KEY=VALUE")));
        };
        if !SLIRP_KEYS.contains(&key) {
            return Err(bad(value, format!("unknown slirp4netns option {key:?}")));
        }
        out.push((key.to_owned(), val.to_owned()));
    }
    Ok(out)
}

fn parse_attach(value: &str, name: &str, opts: Option<&str>) -> Result<NetworkAttach, ModeError> {
    // "bridge" is the default network by its mode name.
    let name = if name == "bridge" { DEFAULT_NETWORK } else { name };
    validate_network_name(name)
        .map_err(|_| bad(value, format!("{name:?} is not a network name")))?;
    let mut attach = NetworkAttach { name: name.to_owned(), ..Default::default() };
    for opt in opts.unwrap_or("").split(',').filter(|s| !s.is_empty()) {
        let Some((key, val)) = opt.split_once('=') else {
            return Err(bad(value, format!("network option {opt:?} is not KEY=VALUE")));
        };
        match key {
            "ip" | "ip6" => {
                let ip: IpAddr = val
                    .parse()
                    .map_err(|_| bad(value, format!("{key} {val:?} is not an IP address")))?;
                if (key == "ip") != ip.is_ipv4() {
                    return Err(bad(value, format!("{key} {val:?} is of the wrong family")));
                }
                attach.addresses.push(ip);
            }
            "mac" => attach.mac = Some(val.to_owned()),
            "alias" => attach.aliases.push(val.to_owned()),
            "interface_name" => attach.interface = Some(val.to_owned()),
            _ => return Err(bad(value, format!("unknown network option {key:?}"))),
        }
    }
    Ok(attach)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str) -> NetworkAttach {
        NetworkAttach { name: name.into(), ..Default::default() }
    }

    #[test]
    fn defaults_follow_privilege() {
        assert_eq!(parse_network(&[], false).unwrap(), NetworkMode::Bridge(vec![named("berth")]));
        assert_eq!(parse_network(&[], true).unwrap(), NetworkMode::Pasta(vec![]));
        assert_eq!(parse_network(&["private"], true).unwrap(), NetworkMode::Pasta(vec![]));
        assert_eq!(
            parse_network(&["bridge"], false).unwrap(),
            NetworkMode::Bridge(vec![named("berth")])
        );
    }

    #[test]
    fn every_mode() {
        assert_eq!(parse_network(&["none"], true).unwrap(), NetworkMode::None);
        assert_eq!(parse_network(&["host"], false).unwrap(), NetworkMode::Host);
        assert_eq!(
            parse_network(&["container:abc"], false).unwrap(),
            NetworkMode::Container("abc".into())
        );
        assert_eq!(
            parse_network(&["ns:/run/netns/x"], false).unwrap(),
            NetworkMode::Ns("/run/netns/x".into())
        );
        assert_eq!(
            parse_network(&["pasta:--mtu,1500"], true).unwrap(),
            NetworkMode::Pasta(vec!["--mtu".into(), "1500".into()])
        );
        assert_eq!(
            parse_network(&["slirp4netns:allow_host_loopback=true,mtu=1500"], true).unwrap(),
            NetworkMode::Slirp4netns(vec![
                ("allow_host_loopback".into(), "true".into()),
                ("mtu".into(), "1500".into())
            ])
        );
        let two = parse_network(
            &["front:ip=10.89.0.5,alias=web,alias=www", "back:interface_name=eth9"],
            false,
        )
        .unwrap();
        let NetworkMode::Bridge(nets) = two else { panic!("{two:?}") };
        assert_eq!(nets[0].addresses, vec!["10.89.0.5".parse::<IpAddr>().unwrap()]);
        assert_eq!(nets[0].aliases, ["web", "www"]);
        assert_eq!(nets[1].interface.as_deref(), Some("eth9"));
    }

    #[test]
    fn an_attachment_reads_back_from_its_value() {
        let full = NetworkAttach {
            name: "side".into(),
            addresses: vec!["10.250.52.77".parse().unwrap(), "fd00::7".parse().unwrap()],
            mac: Some("02:42:ac:11:00:02".into()),
            aliases: vec!["extra".into(), "more".into()],
            interface: Some("eth7".into()),
        };
        assert_eq!(
            full.to_value(),
            "side:ip=10.250.52.77,ip6=fd00::7,mac=02:42:ac:11:00:02,alias=extra,alias=more,\
             interface_name=eth7"
        );
        assert_eq!(parse_bridge_value(&full.to_value()).unwrap(), full);
        assert_eq!(named("web").to_value(), "web");
        assert_eq!(parse_bridge_value("web").unwrap(), named("web"));
        assert_eq!(parse_bridge_value("bridge").unwrap(), named("berth"));
        assert!(parse_bridge_value("web:speed=9").is_err());
    }

    #[test]
    fn bad_values_are_named() {
        let cases = [
            (vec!["container:"], "invalid --network \"container:\": expected container:ID"),
            (vec!["ns:relative"], "invalid --network \"ns:relative\": expected ns:/ABSOLUTE/PATH"),
            (
                vec!["none", "front"],
                "--network none cannot be combined with other --network options",
            ),
            (vec!["host:x"], "invalid --network \"host:x\": host takes no options"),
            (vec!["-bad"], "invalid --network \"-bad\": \"-bad\" is not a network name"),
            (
                vec!["front:ip=1.2.3"],
                "invalid --network \"front:ip=1.2.3\": ip \"1.2.3\" is not an IP address",
            ),
            (
                vec!["front:ip=::1"],
                "invalid --network \"front:ip=::1\": ip \"::1\" is of the wrong family",
            ),
            (
                vec!["front:speed=9"],
                "invalid --network \"front:speed=9\": unknown network option \"speed\"",
            ),
            (
                vec!["slirp4netns:x=1"],
                "invalid --network \"slirp4netns:x=1\": unknown slirp4netns option \"x\"",
            ),
            (vec![""], "invalid --network \"\": it is empty"),
        ];
        for (values, want) in cases {
            assert_eq!(parse_network(&values, false).unwrap_err().to_string(), want);
        }
        assert_eq!(
            parse_network(&["front"], true).unwrap_err().to_string(),
            "--network front is not supported yet rootless"
        );
    }
}
