//! The host daemon (issue #3): see docs/adr/0014-daemon-api.md.
