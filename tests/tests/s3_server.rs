//! The S3 harness against a real server (`s3s-fs` in its own process), through the
//! `object_store` crate's S3 client: object round trips, listing by prefix, copies,
//! a 24 MiB multipart upload, conditional puts, signature checks and cleanup on drop.

use std::time::Duration;

use drover_tests::{init_test_tracing, within, S3Server};
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStore, PutMode, PutOptions, PutPayload, UpdateVersion};

const DEADLINE: Duration = Duration::from_secs(60);
const MIB: usize = 1024 * 1024;

fn store_with(server: &S3Server, secret_key: &str) -> anyhow::Result<AmazonS3> {
    Ok(AmazonS3Builder::new()
        .with_endpoint(server.endpoint())
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_bucket_name(server.bucket())
        .with_access_key_id(server.access_key())
        .with_secret_access_key(secret_key)
        .with_region(server.region())
        .build()?)
}

fn store(server: &S3Server) -> anyhow::Result<AmazonS3> {
    store_with(server, server.secret_key())
}

/// `len` bytes of seeded noise, so a misplaced part shows as a mismatch.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut bytes = vec![0; len];
    rng.fill(&mut bytes);
    bytes
}

async fn list_keys(store: &AmazonS3, prefix: &str) -> anyhow::Result<Vec<String>> {
    let mut keys: Vec<String> = store
        .list(Some(&Path::from(prefix)))
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await?;
    keys.sort();
    Ok(keys)
}

#[tokio::test]
async fn put_get_head_list_copy_delete() -> anyhow::Result<()> {
    init_test_tracing();
    let server = S3Server::start().await?;
    let store = store(&server)?;
    let a = Path::from("runs/1/a.txt");
    let put = store.put(&a, PutPayload::from_static(b"hello")).await?;
    assert!(put.e_tag.is_some(), "a put returns an ETag");
    store.put(&"runs/1/b.txt".into(), "bee".into()).await?;
    store.put(&"runs/2/c.txt".into(), "sea".into()).await?;

    let got = store.get(&a).await?;
    assert_eq!(got.meta.size, 5);
    assert_eq!(got.bytes().await?.as_ref(), b"hello");
    let head = store.head(&a).await?;
    assert_eq!((head.size, head.e_tag), (5, put.e_tag.clone()));
    let range = store.get_range(&a, 1..4).await?;
    assert_eq!(range.as_ref(), b"ell");

    assert_eq!(
        list_keys(&store, "runs/1").await?,
        ["runs/1/a.txt", "runs/1/b.txt"]
    );
    let listed = store.list_with_delimiter(Some(&Path::from("runs"))).await?;
    let dirs: Vec<String> = listed
        .common_prefixes
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(dirs, ["runs/1", "runs/2"]);

    let copy = Path::from("copies/a.txt");
    store.copy(&a, &copy).await?;
    assert_eq!(store.get(&copy).await?.bytes().await?.as_ref(), b"hello");

    store.delete(&a).await?;
    let missing = store.head(&a).await.unwrap_err();
    assert!(
        matches!(missing, object_store::Error::NotFound { .. }),
        "{missing}"
    );
    assert!(matches!(
        store.get(&a).await.unwrap_err(),
        object_store::Error::NotFound { .. }
    ));
    assert_eq!(list_keys(&store, "runs/1").await?, ["runs/1/b.txt"]);
    assert_eq!(
        store.get(&copy).await?.bytes().await?.as_ref(),
        b"hello",
        "a copy outlives its source"
    );
    Ok(())
}

#[tokio::test]
async fn multipart_upload_of_24_mib_in_5_mib_parts() -> anyhow::Result<()> {
    init_test_tracing();
    let server = S3Server::start().await?;
    let store = store(&server)?;
    let data = noise(24, 24 * MIB);
    let path = Path::from("outputs/big.bin");

    let mut upload = store.put_multipart(&path).await?;
    for part in data.chunks(5 * MIB) {
        within(
            "an upload part",
            DEADLINE,
            upload.put_part(PutPayload::from(part.to_vec())),
        )
        .await??;
    }
    let done = within("completing the upload", DEADLINE, upload.complete()).await??;
    let e_tag = done.e_tag.unwrap_or_default();
    assert!(
        e_tag.trim_matches('"').ends_with("-5"),
        "a multipart ETag names its 5 parts: {e_tag}"
    );

    assert_eq!(store.head(&path).await?.size, data.len() as u64);
    let mut read = Vec::with_capacity(data.len());
    let mut chunks = store.get(&path).await?.into_stream();
    while let Some(chunk) = within("a read chunk", DEADLINE, chunks.try_next()).await?? {
        read.extend_from_slice(&chunk);
    }
    assert_eq!(read.len(), data.len());
    assert!(
        read == data,
        "the object read back differs from the parts put"
    );
    let tail = store.get_range(&path, (20 * MIB) as u64..(20 * MIB + 10) as u64);
    assert_eq!(tail.await?.as_ref(), &data[20 * MIB..20 * MIB + 10]);
    Ok(())
}

#[tokio::test]
async fn an_aborted_multipart_upload_leaves_no_object() -> anyhow::Result<()> {
    init_test_tracing();
    let server = S3Server::start().await?;
    let store = store(&server)?;
    let path = Path::from("outputs/aborted.bin");
    let mut upload = store.put_multipart(&path).await?;
    upload.put_part(PutPayload::from(noise(1, 5 * MIB))).await?;
    upload.abort().await?;
    assert!(matches!(
        store.head(&path).await.unwrap_err(),
        object_store::Error::NotFound { .. }
    ));
    Ok(())
}

#[tokio::test]
async fn conditional_puts_create_and_update() -> anyhow::Result<()> {
    init_test_tracing();
    let server = S3Server::start().await?;
    let store = store(&server)?;
    let path = Path::from("claims/job-1");
    let create = || PutOptions::from(PutMode::Create);

    let first = store.put_opts(&path, "one".into(), create()).await?;
    let again = store.put_opts(&path, "two".into(), create()).await;
    assert!(
        matches!(again, Err(object_store::Error::AlreadyExists { .. })),
        "a second create fails: {again:?}"
    );
    assert_eq!(store.get(&path).await?.bytes().await?.as_ref(), b"one");

    let current = UpdateVersion {
        e_tag: first.e_tag.clone(),
        version: None,
    };
    let updated = store
        .put_opts(
            &path,
            "three".into(),
            PutMode::Update(current.clone()).into(),
        )
        .await?;
    assert_ne!(updated.e_tag, first.e_tag);
    let stale = store
        .put_opts(&path, "four".into(), PutMode::Update(current).into())
        .await;
    assert!(
        matches!(stale, Err(object_store::Error::Precondition { .. })),
        "an update against a stale ETag fails: {stale:?}"
    );
    assert_eq!(store.get(&path).await?.bytes().await?.as_ref(), b"three");
    Ok(())
}

#[tokio::test]
async fn requests_with_a_wrong_secret_are_refused() -> anyhow::Result<()> {
    init_test_tracing();
    let server = S3Server::start().await?;
    store(&server)?.put(&"kept".into(), "x".into()).await?;
    let forged = store_with(&server, "not-the-secret")?;
    let refused = forged.get(&"kept".into()).await;
    assert!(refused.is_err(), "a bad signature is refused: {refused:?}");
    let refused = forged.put(&"other".into(), "y".into()).await;
    assert!(refused.is_err(), "a bad signature is refused: {refused:?}");
    Ok(())
}

#[tokio::test]
async fn buckets_are_separate_and_the_server_goes_with_its_directory() -> anyhow::Result<()> {
    init_test_tracing();
    let server = S3Server::start().await?;
    server.create_bucket("second")?;
    let second = AmazonS3Builder::new()
        .with_endpoint(server.endpoint())
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_bucket_name("second")
        .with_access_key_id(server.access_key())
        .with_secret_access_key(server.secret_key())
        .with_region(server.region())
        .build()?;
    second.put(&"only-here".into(), "z".into()).await?;
    assert!(store(&server)?.head(&"only-here".into()).await.is_err());
    assert!(server.data_dir().join("second/only-here").is_file());

    let pid = server.pid().expect("a running server has a pid");
    let dir = server.dir().to_path_buf();
    assert!(server.is_running());
    drop(server);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "drop reaps the server"
    );
    assert!(!dir.exists(), "drop removes the directory");
    Ok(())
}
