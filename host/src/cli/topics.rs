//! `kappa topic create|list` and `kappa consume`: the topics of the log and
//! the events of one partition, read page by page.

use super::{ConsumeArgs, Failure, failed, print_json};
use crate::client::Client;
use crate::render::group;

/// `kappa topic create NAME --partitions N`.
pub(super) async fn create(
    client: &Client,
    name: &str,
    partitions: u32,
    json: bool,
) -> Result<(), Failure> {
    let topic = client.create_topic(name, partitions).await?;
    if json {
        return print_json(&topic);
    }
    println!(
        "created topic {} with {} partitions",
        topic.name, topic.partitions
    );
    Ok(())
}

/// `kappa topic list`.
pub(super) async fn list(client: &Client, json: bool) -> Result<(), Failure> {
    let topics = client.topics().await?;
    if json {
        return print_json(&topics);
    }
    for t in topics {
        println!(
            "{:<24} {:>3} partitions {:>12} events",
            t.name,
            t.partitions,
            group(t.end_offsets.iter().sum::<u64>())
        );
    }
    Ok(())
}

/// `kappa consume TOPIC`: up to `--limit` events from `--from`, one JSON
/// object a line, and on stderr where the next page starts if there is more.
pub(super) async fn consume(client: &Client, args: ConsumeArgs, json: bool) -> Result<(), Failure> {
    let ConsumeArgs {
        topic,
        partition,
        from,
        limit,
    } = args;
    let mut next = from;
    let mut left = limit;
    let mut events = Vec::new();
    let mut end = next;
    while left > 0 {
        let page = client
            .consume(&topic, partition, next, left.min(10_000))
            .await?;
        end = page.end_offset;
        if page.events.is_empty() {
            break;
        }
        left -= page.events.len();
        next = page.next_offset;
        events.extend(page.events);
    }
    if json {
        print_json(&events)?;
    } else {
        for e in &events {
            let line = serde_json::to_string(e).map_err(|e| failed(e.to_string()))?;
            println!("{line}");
        }
    }
    if next < end {
        eprintln!(
            "(stopped at --limit {limit}: partition {partition} has more, up to offset \
             {}; next page: --from {next}, or a larger --limit)",
            end - 1
        );
    }
    Ok(())
}
