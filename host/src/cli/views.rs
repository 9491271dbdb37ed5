//! `kappa get|scan|digest|diff`: reading views, NAME (the promoted version)
//! or NAME@VERSION, and comparing two of them.

use std::io::Write as _;

use super::{DiffArgs, Failure, ScanArgs, failed, print_json};
use crate::client::Client;
use crate::model::Row;
use crate::render::{group, render_diff};

/// `kappa get VIEW KEY`: exit 1 when the key is not in the view. With
/// `--raw`, the stored bytes exactly.
pub(super) async fn get(
    client: &Client,
    view: &str,
    key: &str,
    (hex, raw): (bool, bool),
    json: bool,
) -> Result<(), Failure> {
    let reply = client.get_with(view, key, hex, raw).await?;
    if json {
        print_json(&reply)?;
    } else if let Some(row) = &reply.row {
        if raw {
            let mut out = std::io::stdout().lock();
            out.write_all(&stored_bytes(row)?)
                .and_then(|()| out.flush())
                .map_err(|e| failed(format!("cannot write the value to stdout: {e}")))?;
        } else {
            println!("{}", row.value.display());
        }
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
        .scan_with(
            &args.view,
            &args.prefix,
            args.after.as_deref(),
            // A limit beyond usize is no limit.
            usize::try_from(args.limit).unwrap_or(usize::MAX),
            args.raw,
        )
        .await?;
    say_capped(args.limit, page.capped_at);
    if json {
        return print_json(&page);
    }
    let page = page.page;
    for row in &page.rows {
        match &row.value_base64 {
            Some(b64) if args.raw => println!("{}\t{b64}", row.key),
            _ => println!("{}\t{}", row.key, row.value.display()),
        }
    }
    if let Some(next) = &page.next_after {
        eprintln!("(more rows: --after '{next}')");
    }
    Ok(())
}

/// The stored bytes of `row`, which the server sends when asked (`raw`).
fn stored_bytes(row: &Row) -> Result<Vec<u8>, Failure> {
    row.raw_bytes()
        .map_err(failed)?
        .ok_or_else(|| failed("the server sent no `value_base64`: is it older than this client?"))
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
