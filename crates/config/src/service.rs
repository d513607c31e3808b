//! Services (issue #6): a container registered with `--service NAME[:PORT]` is an
//! [`Endpoint`] stored as JSON at `/berth/services/NAME/<container id>`, attached to the
//! lease of the daemon that runs it.
//!
//! This module is the contract between the parts that write endpoints (the daemon's
//! registration and health checks) and the parts that read them (`berth service`, the DNS
//! servers' watch-fed cache): the key layout, the name rules and the JSON shape. Nothing
//! here talks to the store.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where service endpoints live in the store.
pub const SERVICE_PREFIX: &str = "/berth/services/";

/// The DNS domain of services: `NAME.service.berth`.
pub const SERVICE_DOMAIN: &str = "service.berth";

/// The longest service name: one DNS label.
pub const MAX_SERVICE_NAME_LEN: usize = 63;

/// Why a service name or a `--service` value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error(
        "invalid service name {name:?}: {reason} (a service name is 1-{MAX_SERVICE_NAME_LEN} lowercase letters, digits and '-', not starting or ending with '-', e.g. web or api-v2)"
    )]
    Name { name: String, reason: &'static str },
    #[error(
        "invalid service port in {spec:?}: {reason} (write NAME or NAME:PORT with PORT 1-65535)"
    )]
    Port { spec: String, reason: &'static str },
}

/// A service name: one DNS label, so that `NAME.service.berth` resolves.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceName(String);

impl ServiceName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The prefix of this service's endpoints: `/berth/services/NAME/`.
    pub fn store_prefix(&self) -> String {
        format!("{SERVICE_PREFIX}{}/", self.0)
    }

    /// The key of one container's endpoint in this service.
    pub fn endpoint_key(&self, container_id: &str) -> String {
        format!("{SERVICE_PREFIX}{}/{container_id}", self.0)
    }

    /// The DNS name that resolves to this service's healthy endpoints.
    pub fn dns_name(&self) -> String {
        format!("{}.{SERVICE_DOMAIN}", self.0)
    }
}

impl FromStr for ServiceName {
    type Err = ServiceError;

    fn from_str(name: &str) -> Result<Self, ServiceError> {
        let refuse = |reason| {
            Err(ServiceError::Name {
                name: name.to_owned(),
                reason,
            })
        };
        if name.is_empty() {
            return refuse("it is empty");
        }
        if name.len() > MAX_SERVICE_NAME_LEN {
            return refuse("it is longer than one DNS label");
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return refuse("it has a character outside the allowed set");
        }
        if name.starts_with('-') || name.ends_with('-') {
            return refuse("it starts or ends with '-'");
        }
        Ok(Self(name.to_owned()))
    }
}

impl TryFrom<String> for ServiceName {
    type Error = ServiceError;
    fn try_from(name: String) -> Result<Self, ServiceError> {
        name.parse()
    }
}

impl From<ServiceName> for String {
    fn from(name: ServiceName) -> String {
        name.0
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One `--service NAME[:PORT]` of a container. The port is the container's port; without
/// one the endpoint is an address only (A records, no SRV).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub name: ServiceName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

impl FromStr for ServiceSpec {
    type Err = ServiceError;

    fn from_str(spec: &str) -> Result<Self, ServiceError> {
        let (name, port) = match spec.split_once(':') {
            None => (spec, None),
            Some((name, port)) => (name, Some(port)),
        };
        let name = name.parse()?;
        let port = match port {
            None => None,
            Some(port) => {
                let refuse = |reason| {
                    Err(ServiceError::Port {
                        spec: spec.to_owned(),
                        reason,
                    })
                };
                match port.parse::<u32>() {
                    Err(_) => return refuse("it is not a number"),
                    Ok(0) => return refuse("0 is not a port"),
                    Ok(p) if p > u32::from(u16::MAX) => return refuse("it is above 65535"),
                    Ok(p) => Some(p as u16),
                }
            }
        };
        Ok(Self { name, port })
    }
}

impl fmt::Display for ServiceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.name),
            None => write!(f, "{}", self.name),
        }
    }
}

/// The health of an endpoint as registered. Only endpoints that may take traffic are in
/// the store at all (an unhealthy or stopped container's key is deleted), so this says
/// whether that is because a check passed or because there is no check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointHealth {
    /// The container has a health check and its last result passed.
    Healthy,
    /// The container has no health check; it is registered while it runs.
    None,
}

/// One container's endpoint in a service: the JSON value at
/// `/berth/services/NAME/<container id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The service this endpoint belongs to (also in the key).
    pub service: ServiceName,
    /// The full container id (also the last key segment).
    pub container_id: String,
    /// The container's name, without a leading '/'.
    pub container_name: String,
    /// The host name of the machine running the container.
    pub host: String,
    /// The container's address on its network; `None` for `--network host` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv4Addr>,
    /// The network `address` is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// The container port from `--service NAME:PORT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The host port that `port` is published on (`-p`), if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    pub health: EndpointHealth,
}

impl Endpoint {
    /// The key this endpoint is stored at.
    pub fn store_key(&self) -> String {
        self.service.endpoint_key(&self.container_id)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an endpoint always serializes")
    }

    /// Parse a stored value. `None` for a value that is not an endpoint (someone else's
    /// data under the prefix must not break the readers).
    pub fn from_json(value: &[u8]) -> Option<Self> {
        serde_json::from_slice(value).ok()
    }
}

/// Split a store key under [`SERVICE_PREFIX`] into its service and container id.
pub fn parse_endpoint_key(key: &[u8]) -> Option<(ServiceName, &str)> {
    let rest = std::str::from_utf8(key)
        .ok()?
        .strip_prefix(SERVICE_PREFIX)?;
    let (name, id) = rest.split_once('/')?;
    if id.is_empty() || id.contains('/') {
        return None;
    }
    Some((name.parse().ok()?, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_are_dns_labels() {
        for good in ["web", "api-v2", "a", "0db", &"x".repeat(63)] {
            assert_eq!(good.parse::<ServiceName>().unwrap().as_str(), good);
        }
        for bad in [
            "",
            "Web",
            "-web",
            "web-",
            "we_b",
            "web.x",
            "web/x",
            &"x".repeat(64),
        ] {
            let err = bad.parse::<ServiceName>().unwrap_err();
            assert!(err.to_string().contains("invalid service name"), "{err}");
        }
    }

    #[test]
    fn specs_take_an_optional_port_in_range() {
        let spec: ServiceSpec = "web:8080".parse().unwrap();
        assert_eq!((spec.name.as_str(), spec.port), ("web", Some(8080)));
        assert_eq!(spec.to_string(), "web:8080");
        assert_eq!("web".parse::<ServiceSpec>().unwrap().port, None);
        for bad in ["web:0", "web:65536", "web:http", "web:", ":80"] {
            assert!(bad.parse::<ServiceSpec>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn endpoints_round_trip_through_their_key_and_json() {
        let endpoint = Endpoint {
            service: "web".parse().unwrap(),
            container_id: "abc123".into(),
            container_name: "web1".into(),
            host: "node1".into(),
            address: Some(Ipv4Addr::new(10, 88, 0, 5)),
            network: Some("bridge".into()),
            port: Some(80),
            host_port: None,
            health: EndpointHealth::Healthy,
        };
        let key = endpoint.store_key();
        assert_eq!(key, "/berth/services/web/abc123");
        let (service, id) = parse_endpoint_key(key.as_bytes()).unwrap();
        assert_eq!((service.as_str(), id), ("web", "abc123"));
        assert_eq!(Endpoint::from_json(&endpoint.to_json()), Some(endpoint));
        assert_eq!(Endpoint::from_json(b"not json"), None);
        assert_eq!(parse_endpoint_key(b"/berth/services/web/"), None);
        assert_eq!(parse_endpoint_key(b"/berth/services/Web/x"), None);
        assert_eq!(parse_endpoint_key(b"/berth/config/web/x"), None);
    }
}
