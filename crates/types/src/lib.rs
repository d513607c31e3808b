//! Validated newtypes used at every boundary of berth.
//!
//! Inputs from users, archives and registries are parsed into these types at the edge
//! ("parse, don't validate"), so code further in can trust them: a [`Digest`] is always a
//! well-formed `sha256:<64 lowercase hex>`, an [`ImageRef`] always follows the
//! docker/OCI reference grammar and is normalized the way docker normalizes it.
//!
//! A [`ContainerId`] is always 64 lowercase hex characters, a [`ContainerName`] follows docker's
//! name grammar.
//!
//! Not here yet: node names (issue #7).

/// Serializes a type as its `Display` string and deserializes it through `FromStr`, so
/// values are validated when read back from JSON as when parsed from the command line.
/// Exported for the validated types of other crates (`berth_types::serde_as_string!(T)`).
#[macro_export]
macro_rules! serde_as_string {
    ($type:ty) => {
        impl $crate::__serde::Serialize for $type {
            fn serialize<S: $crate::__serde::Serializer>(
                &self,
                serializer: S,
            ) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> $crate::__serde::Deserialize<'de> for $type {
            fn deserialize<D: $crate::__serde::Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Self, D::Error> {
                let s = <String as $crate::__serde::Deserialize>::deserialize(deserializer)?;
                s.parse()
                    .map_err(<D::Error as $crate::__serde::de::Error>::custom)
            }
        }
    };
}

/// serde, for [`serde_as_string!`] expanded in other crates.
#[doc(hidden)]
pub use serde as __serde;

mod container_id;
mod container_name;
mod digest;
mod image_ref;

pub use container_id::{ContainerId, ContainerIdError};
pub use container_name::{ContainerName, ContainerNameError};
pub use digest::{Digest, DigestError, Sha256Writer};
pub use image_ref::{ImageRef, ImageRefError};
