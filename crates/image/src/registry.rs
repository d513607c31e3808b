//! The registry side of a pull: an anonymous OCI distribution client for one repository, with
//! its errors mapped to the store's. Everything it returns is checked by the caller against a
//! digest; this module only moves bytes.

use std::sync::Once;
use std::time::Duration;

use berth_types::{Digest, ImageRef};
use oci_client::client::{BlobResponse, ClientConfig, ClientProtocol, SizedStream};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use crate::error::{Error, Result};
use crate::media;

/// How long connecting to a registry may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a registry may stay silent in the middle of a response.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The manifest media types berth asks for, in order of preference.
const ACCEPTED_MANIFESTS: &[&str] = &[
    media::OCI_INDEX,
    media::OCI_MANIFEST,
    media::DOCKER_MANIFEST_LIST,
    media::DOCKER_MANIFEST,
];

/// A blob body from the registry, and where in the blob it starts.
pub(crate) struct BlobBody {
    pub stream: SizedStream,
    /// 0 when the registry sent the whole blob (it may ignore a range request).
    pub offset: u64,
}

/// One repository of one registry.
pub(crate) struct Repository {
    client: Client,
    reference: Reference,
    name: ImageRef,
}

impl Repository {
    /// A client for the repository `name` names. With `insecure`, its registry is spoken to
    /// over plain HTTP; every other registry still needs HTTPS.
    pub fn new(name: &ImageRef, insecure: bool) -> Self {
        install_crypto_provider();
        let protocol = if insecure {
            ClientProtocol::HttpsExcept(vec![name.registry().to_owned()])
        } else {
            ClientProtocol::Https
        };
        let config = ClientConfig {
            protocol,
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            user_agent: concat!("berth/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        let reference = match (name.digest(), name.tag()) {
            (Some(digest), _) => Reference::with_digest(
                name.registry().to_owned(),
                name.path().to_owned(),
                digest.to_string(),
            ),
            (None, tag) => Reference::with_tag(
                name.registry().to_owned(),
                name.path().to_owned(),
                // A parsed reference without a digest always has a tag.
                tag.unwrap_or("latest").to_owned(),
            ),
        };
        Self {
            client: Client::new(config),
            reference,
            name: name.clone(),
        }
    }

    /// The manifest (or index) the reference names: its bytes as served, unverified.
    pub async fn top_manifest(&self) -> Result<Vec<u8>> {
        self.manifest(&self.reference).await
    }

    /// The manifest with digest `digest` in this repository, unverified.
    pub async fn manifest_by_digest(&self, digest: &Digest) -> Result<Vec<u8>> {
        self.manifest(&self.reference.clone_with_digest(digest.to_string()))
            .await
    }

    async fn manifest(&self, reference: &Reference) -> Result<Vec<u8>> {
        let (bytes, _) = self
            .client
            .pull_manifest_raw(reference, &RegistryAuth::Anonymous, ACCEPTED_MANIFESTS)
            .await
            .map_err(|err| self.error(err))?;
        Ok(bytes.to_vec())
    }

    /// The blob `digest` from byte `offset` on.
    pub async fn blob(&self, digest: &Digest, offset: u64) -> Result<BlobBody> {
        let registry = self.reference.resolve_registry().to_owned();
        self.client
            .store_auth_if_needed(&registry, &RegistryAuth::Anonymous)
            .await;
        let response = self
            .client
            .pull_blob_stream_partial(&self.reference, digest.to_string().as_str(), offset, None)
            .await
            .map_err(|err| self.error(err))?;
        Ok(match response {
            BlobResponse::Partial(stream) => BlobBody { stream, offset },
            BlobResponse::Full(stream) => BlobBody { stream, offset: 0 },
        })
    }

    fn error(&self, err: OciDistributionError) -> Error {
        let not_found = match &err {
            OciDistributionError::RegistryError { envelope, .. } => {
                envelope.errors.iter().any(|e| {
                    matches!(
                        e.code,
                        OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown
                    )
                })
            }
            OciDistributionError::ImageManifestNotFoundError(_) => true,
            OciDistributionError::ServerError { code, .. } => *code == 404,
            _ => false,
        };
        if not_found {
            Error::NotInRegistry {
                reference: self.name.to_string(),
            }
        } else {
            Error::Registry {
                reference: self.name.to_string(),
                source: Box::new(err),
            }
        }
    }
}

/// reqwest is built without a default TLS crypto provider (the default, aws-lc-rs, needs
/// cmake); berth uses ring. Installing it twice is harmless, so a failure is ignored.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
