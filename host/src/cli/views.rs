//! `kappa get|scan|digest|diff`: reading views, NAME (the promoted version)
//! or NAME@VERSION, and comparing two of them.

use super::{DiffArgs, Failure, ScanArgs, failed, print_json};
use crate::client::Client;
use crate::render::{group, render_diff, render_json};

/// `kappa get VIEW KEY`: exit 1 when the key is not in the view.
pub(super) async fn get(
    client: &Client,
    view: &str,
    key: &str,
    hex: bool,
    json: bool,
) -> Result<(), Failure> {
    let reply = client.get(view, key, hex).await?;
    if json {
        print_json(&reply)?;
    } else if let Some(row) = &reply.row {
        println!("{}", render_json(&row.value));
    }
    if reply.found {
        Ok(())
    } else {
        Err(failed(format!(
            "key `{key}` is not in the view of {}",
            reply.id
        )))
    }
}

/// `kappa scan VIEW`: a page of rows, and on stderr where the next starts.
pub(super) async fn scan(client: &Client, args: ScanArgs, json: bool) -> Result<(), Failure> {
    let page = client
        .scan(
            &args.view,
            &args.prefix,
            args.after.as_deref(),
            // A limit beyond usize is no limit.
            usize::try_from(args.limit).unwrap_or(usize::MAX),
        )
        .await?;
    say_capped(args.limit, page.capped_at);
    if json {
        return print_json(&page);
    }
    let page = page.page;
    for row in &page.rows {
        println!("{}\t{}", row.key, render_json(&row.value));
    }
    if let Some(next) = &page.next_after {
        eprintln!("(more rows: --after '{next}')");
    }
    Ok(())
}

/// `kappa digest VIEW`.
pub(super) async fn digest(client: &Client, view: &str, json: bool) -> Result<(), Failure> {
    let d = client.digest(view).await?;
    if json {
        return print_json(&d);
    }
    println!(
        "{}  {}  ({} rows, offsets {:?})",
        d.sha256,
        d.id,
        group(d.rows),
        d.offsets
    );
    Ok(())
}

/// `kappa diff A B`.
pub(super) async fn diff(client: &Client, args: DiffArgs, json: bool) -> Result<(), Failure> {
    let report = client
        .diff_page(
            &args.a,
            &args.b,
            &args.prefix,
            args.after.as_deref(),
            // A limit beyond usize is no limit.
            usize::try_from(args.limit).unwrap_or(usize::MAX),
            args.wait.saturating_mul(1000),
        )
        .await?;
    say_capped(args.limit, report.capped_at);
    if json {
        return print_json(&report);
    }
    print!("{}", render_diff(&report.page));
    Ok(())
}

/// Says on stderr that the server gave fewer rows than `--limit` asked.
fn say_capped(limit: u64, capped_at: Option<usize>) {
    if let Some(cap) = capped_at {
        eprintln!(
            "(--limit {limit} capped: the server puts at most {cap} rows in a page; page on with --after)"
        );
    }
}
