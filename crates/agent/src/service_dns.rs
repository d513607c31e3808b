//! The daemon's service cache (issue #6, docs/adr/0603-service-dns.md): one task watches
//! `/berth/services/` in the store and keeps the service table that all of the daemon's DNS
//! servers answer `NAME.service.berth` from ([`berth_net::dns::Services`]).
//!
//! As the config sync does, it starts (and restarts, after any store error: a lost
//! connection, a compacted revision, a cancelled watch) with a full read of the prefix, which
//! replaces the table whole, then watches from the revision after that read, so no change
//! between the read and the watch is missed and a change made while the store was out of
//! reach is seen once it is back. While the store is out of reach the servers answer from
//! the last table read: names that were right a moment ago beat no names at all.
//!
//! The key is the truth of which service and container an entry is; the JSON value
//! ([`Endpoint`]) gives the address and port. A value that is not an endpoint counts as no
//! endpoint. Only endpoints that may take traffic are in the store (registration deletes
//! the others), so nothing is filtered here.

use std::time::Duration;

use berth_config::{
    Endpoint, EventKind, Kv, KvError, SERVICE_DOMAIN, SERVICE_PREFIX, parse_endpoint_key,
};
use berth_net::dns::{ServiceEndpoint, Services, SharedServices};

/// How long the task waits before reading the store again after an error.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Starts the cache task on the current runtime; it runs until the runtime stops.
pub fn spawn(services: SharedServices, kv: Kv) {
    tokio::spawn(async move {
        let mut last_error = String::new();
        loop {
            match sync(&services, &kv).await {
                Ok(()) => tracing::info!("the store closed the services watch; reading again"),
                Err(err) => {
                    let text = err.to_string();
                    if text != last_error {
                        tracing::warn!(%err, "service DNS: reading the store again in 1 s");
                        last_error = text;
                    }
                }
            }
            tokio::time::sleep(RETRY_AFTER).await;
        }
    });
}

/// Applies one stored key's value (`None`: deleted) to `table`.
pub fn apply(table: &mut Services, key: &[u8], value: Option<&[u8]>) {
    let Some((service, id)) = parse_endpoint_key(key) else {
        return;
    };
    match value.and_then(Endpoint::from_json) {
        Some(endpoint) => table.insert(
            service.as_str(),
            id,
            ServiceEndpoint {
                address: endpoint.address,
                port: endpoint.port,
            },
        ),
        None => table.remove(service.as_str(), id),
    }
}

/// One full read, then the watch until it ends or fails.
async fn sync(services: &SharedServices, kv: &Kv) -> Result<(), KvError> {
    let (revision, entries) = kv.get(SERVICE_PREFIX.as_bytes(), true, 0).await?;
    let mut table = Services::new(SERVICE_DOMAIN);
    for entry in &entries {
        apply(&mut table, &entry.key, Some(entry.value.as_slice()));
    }
    tracing::debug!(
        services = table.len(),
        revision,
        "service DNS: read the services"
    );
    *services.write().unwrap_or_else(|p| p.into_inner()) = table;
    let mut stream = kv
        .watch(SERVICE_PREFIX.as_bytes(), true, revision + 1)
        .await?;
    while let Some(events) = stream.next().await? {
        let mut table = services.write().unwrap_or_else(|p| p.into_inner());
        for event in &events {
            let value = match event.kind {
                EventKind::Put => Some(event.entry.value.as_slice()),
                EventKind::Delete => None,
            };
            apply(&mut table, &event.entry.key, value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use berth_config::EndpointHealth;

    use super::*;

    fn endpoint(service: &str, id: &str, address: Option<Ipv4Addr>, port: Option<u16>) -> Endpoint {
        Endpoint {
            service: service.parse().unwrap_or_else(|e| panic!("{e}")),
            container_id: id.to_owned(),
            container_name: format!("{service}-{id}"),
            host: "node1".to_owned(),
            address,
            network: address.map(|_| "berth".to_owned()),
            port,
            host_port: None,
            health: EndpointHealth::None,
        }
    }

    #[test]
    fn puts_and_deletes_of_endpoint_keys_shape_the_table() {
        let mut table = Services::new(SERVICE_DOMAIN);
        let web1 = endpoint("web", "aaa", Some(Ipv4Addr::new(10, 88, 0, 2)), Some(80));
        let web2 = endpoint("web", "bbb", None, None);
        apply(
            &mut table,
            web1.store_key().as_bytes(),
            Some(web1.to_json().as_slice()),
        );
        apply(
            &mut table,
            web2.store_key().as_bytes(),
            Some(web2.to_json().as_slice()),
        );
        let endpoints = table.endpoints("web").map(|e| e.len());
        assert_eq!(endpoints, Some(2));
        assert_eq!(
            table.endpoints("web").and_then(|e| e.get("aaa")).copied(),
            Some(ServiceEndpoint {
                address: Some(Ipv4Addr::new(10, 88, 0, 2)),
                port: Some(80),
            })
        );
        // A value that is not an endpoint takes the endpoint away; foreign keys are ignored.
        apply(
            &mut table,
            web2.store_key().as_bytes(),
            Some(b"garbage".as_slice()),
        );
        apply(
            &mut table,
            b"/berth/services/web",
            Some(web1.to_json().as_slice()),
        );
        apply(
            &mut table,
            b"/berth/config/web/x",
            Some(web1.to_json().as_slice()),
        );
        assert_eq!(table.endpoints("web").map(|e| e.len()), Some(1));
        apply(&mut table, web1.store_key().as_bytes(), None);
        assert!(table.is_empty());
    }
}
