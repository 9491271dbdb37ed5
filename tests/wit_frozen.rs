//! The released plugin contracts are frozen: every file under `wit/` has the
//! sha256 committed in `wit/released.sha256` when its version was released.
//! An edit of a released contract fails here; a new contract version is a
//! new directory beside the others, whose digests are added to that file
//! when it is released.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use sha2::Digest;

#[test]
fn released_wit_files_are_unchanged() {
    let wit = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../wit"));
    let committed: BTreeMap<String, String> = std::fs::read_to_string(wit.join("released.sha256"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (digest, path) = l.split_once("  ").unwrap_or_else(|| {
                panic!("wit/released.sha256: not `DIGEST  PATH` (sha256sum's format): {l}")
            });
            (path.to_owned(), digest.to_owned())
        })
        .collect();
    let mut found = BTreeMap::new();
    for dir in std::fs::read_dir(wit).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            let path = file.strip_prefix(wit).unwrap().display().to_string();
            let digest = hex::encode(sha2::Sha256::digest(std::fs::read(&file).unwrap()));
            found.insert(path, digest);
        }
    }
    for (path, digest) in &found {
        match committed.get(path) {
            Some(want) => assert_eq!(
                digest, want,
                "wit/{path} changed, but a released contract is frozen: put the change in a \
                 new contract version (a new directory under wit/) instead"
            ),
            None => panic!(
                "wit/{path} has no committed digest: when its contract version is released, add \
                 it to wit/released.sha256 (`cd wit && sha256sum {path} >> released.sha256`)"
            ),
        }
    }
    for path in committed.keys() {
        assert!(
            found.contains_key(path),
            "wit/{path} was released but is gone: released contracts are never removed"
        );
    }
    assert!(found.len() >= 2, "{found:?}");
}
