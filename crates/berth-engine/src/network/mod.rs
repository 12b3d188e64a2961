//! Container networking: the pieces that stand on their own before containers run.
//!
//! - [`attach`]: the engine's two calls, [`attach::attach`] before a container starts and
//!   [`attach::detach`] after it is gone, over all the pieces below.
//! - [`engine`]: the same for a container's bundle and its flags as given, for `run`/`start`.
//! - [`mode`]: the `--network` option (none, host, bridge, NAME, container:, ns:, pasta,
//!   slirp4netns) and its defaults.
//! - [`ports`]: the `-p`/`-P` grammar and the choice of free host ports.
//! - [`ipam`]: network configuration (`network create`), subnet choice and overlap checks, and
//!   address allocation over a pluggable store.
//! - [`netns`]: naming a network namespace by path or pid, and running a command inside one.
//! - [`bridge`]: rootful plumbing — a bridge with the gateway address, a veth pair per
//!   container with its inner end as `eth0`, and teardown.
//! - [`firewall`]: masquerading and published ports (DNAT) through nftables, every rule tagged
//!   so that cleanup finds it.
//! - [`hostwide`]: keeping the bridges of independent state roots apart on one host.
//! - [`rootful`]: connecting a container to a bridge network and disconnecting it, as one
//!   operation each that leaves nothing half set up.
//! - [`rootless`]: pasta (and slirp4netns as the fallback) for rootless containers.
//! - [`report`]: inspect's NetworkSettings and the PORTS column of `ps`, as Podman shows them.
//! - [`dns`]: names between containers of a network, served by aardvark-dns.
//! - [`files`]: the container's /etc/hosts and /etc/resolv.conf.
//! - [`store`]: networks, address allocations and attachments in the state database.
//!
//! The rootful plumbing execs iproute2's `ip` and nftables' `nft` rather than speaking netlink
//! itself: one `ip -batch` exec per side of a container and one `nft -j -f -` transaction
//! cost a few milliseconds and keep the kernel's own error messages, while the netlink crates
//! change their API often. The [`bridge`] functions are the seam where a netlink backend can
//! come in later without changing callers.

pub mod attach;
pub mod bridge;
pub mod dns;
pub mod engine;
pub mod files;
pub mod firewall;
pub mod hostwide;
pub mod ipam;
pub mod mode;
pub mod netns;
pub mod ports;
pub mod report;
pub mod rootful;
pub mod rootless;
pub mod store;
