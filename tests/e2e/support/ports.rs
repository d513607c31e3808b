//! Free loopback ports.

use std::net::TcpListener;

/// A loopback port nobody listens on right now (the OS picks it).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}
