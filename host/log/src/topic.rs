//! One topic of the embedded log: its partitions and request journal, and
//! its directory on disk (`topic.json` with the format and the partition
//! count, written whole and renamed into place; loaded and checked on open).

use super::*;

/// Contents of `topic.json`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TopicMeta {
    format: u32,
    partitions: u32,
}

#[derive(Debug)]
pub(crate) struct Topic {
    pub(crate) name: String,
    pub(crate) partitions: Vec<Arc<Partition>>,
    pub(crate) round_robin: AtomicU32,
    /// Locked after the partition writers, never before.
    pub(crate) journal: Mutex<Journal>,
}

impl Topic {
    /// How many partitions the topic has.
    #[expect(
        clippy::cast_possible_truncation,
        reason = "the partitions are made from a u32 count, at most MAX_PARTITIONS"
    )]
    pub(crate) fn partition_count(&self) -> u32 {
        self.partitions.len() as u32
    }

    pub(crate) fn info(&self) -> TopicInfo {
        TopicInfo {
            name: self.name.clone(),
            partitions: self.partition_count(),
            end_offsets: self.end_offsets(),
        }
    }

    pub(crate) fn end_offsets(&self) -> Vec<u64> {
        self.partitions
            .iter()
            .map(|p| p.end.load(Ordering::Acquire))
            .collect()
    }

    pub(crate) fn partition(&self, partition: u32) -> Result<&Arc<Partition>, LogError> {
        self.partitions
            .get(partition as usize)
            .ok_or_else(|| LogError::UnknownPartition {
                topic: self.name.clone(),
                partition,
                partitions: self.partition_count(),
            })
    }
}

pub(crate) fn validate_topic_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err("it is longer than 200 characters");
    }
    if name == "." || name == ".." || name.eq_ignore_ascii_case(LOCK_FILE) {
        // LOCK in any case, as the lock file sits next to the topic directories.
        return Err("\".\", \"..\" and \"LOCK\" are reserved");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// Loads a topic directory found at open; `None` for an unfinished creation.
pub(crate) fn load_topic(
    topic_dir: &Path,
    name: &str,
    options: &LogOptions,
) -> Result<Option<Topic>, LogError> {
    let meta_path = topic_dir.join(TOPIC_META_FILE);
    let bytes = match fs::read(&meta_path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            tracing::warn!(
                dir = %topic_dir.display(),
                "ignoring {}: it has no {TOPIC_META_FILE}, so its creation never finished",
                topic_dir.display()
            );
            return Ok(None);
        }
        Err(e) => {
            return Err(LogError::io(
                format!("cannot read {}", meta_path.display()),
                e,
            ));
        }
    };
    // A rename that never happened leaves only the temporary file behind.
    let _ = fs::remove_file(topic_dir.join(TOPIC_META_TMP_FILE));
    let corrupt = |reason: String| LogError::Corrupt {
        file: meta_path.clone(),
        position: 0,
        reason,
    };
    let meta: TopicMeta = serde_json::from_slice(&bytes)
        .map_err(|e| corrupt(format!("invalid topic metadata: {e}")))?;
    if meta.format != FORMAT_VERSION {
        return Err(corrupt(format!(
            "format {} is not supported (this build reads format {FORMAT_VERSION})",
            meta.format
        )));
    }
    if !(1..=MAX_PARTITIONS).contains(&meta.partitions) {
        return Err(corrupt(format!(
            "invalid partition count {}",
            meta.partitions
        )));
    }
    let entries = journal::read(topic_dir, options.fsync)?;
    let n = meta.partitions as usize;
    let floors = entries
        .as_deref()
        .map_or_else(|| vec![0; n], |e| journal::floors(e, n));
    let recover = |p: u32, floor: u64| {
        Partition::recover(name, p, topic_dir.join(p.to_string()), floor, options).map(Arc::new)
    };
    let mut partitions = (0..meta.partitions)
        .map(|p| recover(p, floors[p as usize]))
        .collect::<Result<Vec<_>, _>>()?;
    let resolved = match &entries {
        Some(entries) => {
            let ends: Vec<u64> = partitions
                .iter()
                .map(|p| p.end.load(Ordering::Acquire))
                .collect();
            journal::resolve(entries, &ends)
        }
        None => journal::Resolved::default(),
    };
    for &(p, offset) in &resolved.cuts {
        let Some(slot) = partitions.get_mut(p as usize) else {
            return Err(LogError::Corrupt {
                file: topic_dir.join(journal::JOURNAL_FILE),
                position: 0,
                reason: format!("an entry names partition {p}, but the topic has {n}"),
            });
        };
        partition::cut_back(&topic_dir.join(p.to_string()), offset, options)?;
        *slot = recover(p, floors[p as usize].min(offset))?;
    }
    let existed = entries.is_some();
    if existed && options.fsync {
        // The ends become the journal's floor: make sure they are durable.
        for p in &partitions {
            p.sync()?;
        }
    }
    let ends: Vec<u64> = partitions
        .iter()
        .map(|p| p.end.load(Ordering::Acquire))
        .collect();
    let journal = Journal::open(
        topic_dir,
        existed,
        resolved.complete,
        &ends,
        options.fsync,
        options.request_ids_kept,
    )?;
    Ok(Some(Topic {
        name: name.to_owned(),
        partitions,
        round_robin: AtomicU32::new(0),
        journal: Mutex::new(journal),
    }))
}

/// Writes `topic.json` atomically: temporary file, fsync, rename, fsync directory.
pub(crate) fn write_topic_meta(
    topic_dir: &Path,
    partitions: u32,
    fsync: bool,
) -> Result<(), LogError> {
    let tmp = topic_dir.join(TOPIC_META_TMP_FILE);
    let path = topic_dir.join(TOPIC_META_FILE);
    let bytes = serde_json::to_vec(&TopicMeta {
        format: FORMAT_VERSION,
        partitions,
    })
    .expect("two integers always serialize");
    let written = File::create(&tmp).and_then(|mut f| {
        f.write_all(&bytes)?;
        if fsync { f.sync_all() } else { Ok(()) }
    });
    written
        .and_then(|()| fs::rename(&tmp, &path))
        .map_err(|e| LogError::io(format!("cannot write {}", path.display()), e))?;
    if fsync {
        segment::sync_dir(topic_dir)?;
    }
    Ok(())
}
