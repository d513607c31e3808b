//! berth's image store.
//!
//! What it is for: getting container images onto a machine and turning them into container
//! root filesystems. It imports OCI image layouts and `docker save` exports (directories or
//! tars), makes one-layer images from root filesystems, pulls from OCI registries, and stacks
//! an image's unpacked layers with overlayfs for each new container.
//!
//! What it guarantees:
//! - Content is verified: every blob against its digest and size, every layer against its
//!   diff_id. Nothing appears under a digest until it is verified and synced.
//! - Hostile archives are refused with an error naming the entry (see [`unpack`]); nothing is
//!   written outside the store's scratch space.
//! - Several processes may use one store at once, and a process killed at any point leaves a
//!   consistent store: scratch space is reclaimed at the next open.
//! - The on-disk layout is versioned (docs/formats/image-store.md).
//!
//! What it does not do yet: registry credentials (pulls are anonymous), parallel layer
//! downloads, signature verification, pushing, and image build.

mod archive;
mod blob;
mod download;
mod error;
mod fsutil;
mod import;
mod index;
mod layers;
mod layout;
mod media;
mod progress;
mod pull;
mod registry;
mod snapshot;
mod source;
mod staging;
mod store;
pub mod unpack;

pub use error::{Error, Result};
pub use import::{ImportOptions, RootfsOptions};
pub use index::{ImageRecord, LayerRecord};
pub use layout::LAYOUT_VERSION;
pub use progress::{NoProgress, Progress};
pub use pull::{PullOptions, Pulled};
pub use snapshot::Rootfs;
pub use store::{PruneReport, Removal, Store};
