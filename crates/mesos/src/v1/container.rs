//! The container a task runs in: Docker or the Mesos containerizer, images, volumes,
//! networks, and the container status a task reports.

use super::*;

/// `ContainerInfo`: the container a task runs in. `type` says which of `docker` and `mesos`
/// applies.
///
/// Not modelled: `linux_info`, `rlimit_info`, `tty_info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    pub r#type: ContainerType,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<DockerInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesos: Option<MesosInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_infos: Vec<NetworkInfo>,
}

proto_enum! {
    /// `ContainerInfo.Type`.
    pub enum ContainerType {
        Docker = "DOCKER",
        Mesos = "MESOS",
    }
}

/// `ContainerInfo.DockerInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerInfo {
    pub image: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_enum"
    )]
    pub network: Option<DockerNetwork>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_mappings: Vec<PortMapping>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<Parameter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_pull_image: Option<bool>,
}

impl DockerInfo {
    /// `network` with its proto default, HOST.
    pub fn network(&self) -> DockerNetwork {
        self.network.unwrap_or(DockerNetwork::Host)
    }
}

proto_enum! {
    /// `ContainerInfo.DockerInfo.Network`.
    pub enum DockerNetwork {
        Host = "HOST",
        Bridge = "BRIDGE",
        None = "NONE",
        User = "USER",
    }
}

/// `DockerInfo.PortMapping` and `NetworkInfo.PortMapping` (the same shape): a host port the
/// task must hold in its resources, mapped to a container port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    #[serde(deserialize_with = "integer")]
    pub host_port: u32,
    #[serde(deserialize_with = "integer")]
    pub container_port: u32,
    /// `tcp` (the default) or `udp`; some frameworks send `tcp,udp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// `ContainerInfo.MesosInfo`: the Mesos containerizer, optionally with an image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MesosInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Image>,
}

/// `Image`: a container image for the Mesos containerizer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub r#type: ImageType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appc: Option<AppcImage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<DockerImage>,
    /// Default true: use a cached copy when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached: Option<bool>,
}

proto_enum! {
    /// `Image.Type`.
    pub enum ImageType {
        Appc = "APPC",
        Docker = "DOCKER",
    }
}

/// `Image.Appc`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppcImage {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// `Image.Docker`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerImage {
    pub name: String,
}

/// `Volume`: a host path (or sandbox path) mounted into the container.
///
/// Not modelled: `image` and `source` (docker volumes, secrets, CSI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub mode: VolumeMode,
    pub container_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<String>,
}

proto_enum! {
    /// `Volume.Mode`.
    pub enum VolumeMode {
        /// Read-write.
        Rw = "RW",
        /// Read-only.
        Ro = "RO",
    }
}

/// `NetworkInfo`: a network a container joins (in a task) or the addresses it got (in a
/// status).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<IpAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_mappings: Vec<PortMapping>,
}

/// `NetworkInfo.IPAddress`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpAddress {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_enum"
    )]
    pub protocol: Option<IpProtocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
}

proto_enum! {
    /// `NetworkInfo.Protocol`.
    pub enum IpProtocol {
        Ipv4 = "IPv4",
        Ipv6 = "IPv6",
    }
}

/// `ContainerStatus`: what the container got, reported in a status (its IP, mostly).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<ContainerId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_infos: Vec<NetworkInfo>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_integer"
    )]
    pub executor_pid: Option<u32>,
}
